"""`primum release apply`, `status`, `history`, `promote`, `abort`, `pause` and `retry` (``app.releases``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from primum.cli.common import (
    EXIT_OK,
    EXIT_RELEASE_FAILED,
    As,
    EstateOption,
    KeyOption,
    Output,
    OutputOption,
    WideOption,
    caller,
    handled,
    home,
    long_running,
    primum,
)
from primum.cli.output import console, err_console, event_line, print_json

release_app = typer.Typer(no_args_is_help=True, help="Submit releases.")
commands = typer.Typer()

@release_app.command("apply")
@handled
def release_apply(
    file: Annotated[Path, typer.Argument(help="the release file")],
    env: Annotated[str | None, typer.Option(help="promote up to and including this environment")] = None,
    wait: Annotated[bool, typer.Option(help="follow progress until the release ends")] = True,
    estate: EstateOption = None,
    timeout: Annotated[float, typer.Option(help="give up waiting after this many seconds (0: never)")] = 0,
    as_: As = None,
    key: KeyOption = None,
) -> None:
    """Submit a release; with --wait (default) follow it and exit 0 if promoted, 1 if not."""
    from primum.app.releases import resolve_estate

    est, estate_path = resolve_estate(estate, home())
    service = primum().releases
    who = caller(key, as_) if est.governance.identities is not None else None
    submitted = service.submit(file, est, env, scan=[estate_path], actor=as_, caller=who)
    record = submitted.record
    verb = "submitted" if submitted.created else "already submitted (same digest)"
    console.print(f"release [bold]{record.id}[/] {record.digest} {verb}")
    if not wait:
        return
    raise typer.Exit(follow(service, record.id, timeout))


def follow(service: Any, rollout_id: str, timeout: float = 0) -> int:
    """Print events until the release ends; the exit code says how it ended."""
    from primum.core.model.rollout import TERMINAL, RolloutPhase

    terminal = {p.value for p in TERMINAL}
    long_running()
    start = time.time()
    last = 0
    warned = False
    while True:
        for event in service.store.events(rollout_id, after_id=last):
            last = event.id
            console.print(event_line(rollout_id, event.kind, event.message, event.at))
        record = service.get(rollout_id)
        if record.phase in terminal:
            return EXIT_OK if record.phase == RolloutPhase.promoted.value else EXIT_RELEASE_FAILED
        if not warned and record.lease_owner is None and time.time() - start > 10:
            err_console.print("[yellow]no controller has picked this release up yet: is `primum up ESTATE` "
                              "or `primum controller` running?[/]")
            warned = True
        if timeout and time.time() - start > timeout:
            err_console.print(f"[yellow]still {record.phase} after {timeout:g}s; it goes on (`primum status "
                              f"{rollout_id}`)[/]")
            return EXIT_RELEASE_FAILED
        time.sleep(0.3)


@commands.command()
@handled
def status(
    release_id: Annotated[str | None, typer.Argument(metavar="ID", help="a release id (default: all active)")] = None,
    output: OutputOption = Output.table,
    wide: WideOption = False,
) -> None:
    """Show a release's progress per environment and service."""
    from primum.cli.output import history_view, status_view

    if release_id:
        from primum.app.releases import summary

        record, st = primum().releases.status(release_id)
        if output is Output.json:
            print_json({**summary(record), "status": record.status})
        else:
            status_view(st, wide=wide)
            if st.reason or st.pause_reason:
                console.print(f"reason: {st.reason or st.pause_reason}")
        return
    from primum.app.listing import ACTIVE_PHASES, release_summaries

    active = release_summaries(primum(), limit=100, phases=ACTIVE_PHASES)
    if output is Output.json:
        print_json(active)
    elif active:
        history_view(active, wide=wide)
    else:
        console.print("no active releases")


@commands.command()
@handled
def history(
    output: OutputOption = Output.table,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
    wide: WideOption = False,
) -> None:
    """List releases, newest first."""
    from primum.app.listing import release_summaries
    from primum.cli.output import history_view

    rows = release_summaries(primum(), limit=limit)
    if output is Output.json:
        print_json(rows)
    elif rows:
        history_view(rows, wide=wide)
    else:
        console.print("no releases yet: `primum release apply FILE` submits one (`primum demo` shows the way)")


@commands.command()
@handled
def promote(release_id: Annotated[str, typer.Argument(metavar="ID")], as_: As = None, key: KeyOption = None) -> None:
    """End the current pause or inconclusive analysis of a release: continue it (signed; operator or
    release-manager of its services)."""
    primum().releases.promote(release_id, caller(key, as_))
    console.print(f"promote requested for {release_id}")


@commands.command()
@handled
def abort(release_id: Annotated[str, typer.Argument(metavar="ID")], as_: As = None, key: KeyOption = None) -> None:
    """Roll a release back now (signed; operator or release-manager of its services)."""
    primum().releases.abort(release_id, caller(key, as_))
    console.print(f"abort requested for {release_id}")


@commands.command()
@handled
def pause(release_id: Annotated[str, typer.Argument(metavar="ID")], as_: As = None, key: KeyOption = None) -> None:
    """Hold a running release at its current step, keeping its traffic split; `primum promote` resumes it
    (signed; operator or release-manager of its services)."""
    primum().releases.pause(release_id, caller(key, as_))
    console.print(f"pause requested for {release_id}; `primum promote {release_id}` resumes it")


@commands.command()
@handled
def retry(release_id: Annotated[str, typer.Argument(metavar="ID")], as_: As = None, key: KeyOption = None,
          wait: Annotated[bool, typer.Option(help="follow progress")] = False) -> None:
    """Start a rolled back or failed release again (services already updated are skipped)."""
    service = primum().releases
    service.retry(release_id, caller(key, as_))
    console.print(f"{release_id} queued again")
    if wait:
        raise typer.Exit(follow(service, release_id))
