"""`primum approve`, `reject`, `approvals`, `break-glass`, `reviews` and `review` (``app.governance``)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from primum.cli.common import EXIT_RELEASE_FAILED, As, KeyOption, Output, OutputOption, caller, handled, primum
from primum.cli.output import console, print_json

commands = typer.Typer()


@commands.command()
@handled
def approve(
    release_id: Annotated[str, typer.Argument(metavar="ID")],
    actor: As = None,
    env: Annotated[str | None, typer.Option(help="the environment (default: the one the release waits for)")] = None,
    comment: Annotated[str, typer.Option(help="why")] = "",
    digest: Annotated[str | None, typer.Option(help="the digest you reviewed; refused if the release differs")] = None,
    key: KeyOption = None,
) -> None:
    """Approve a release for one environment (signed by your key; bound to its digest; separation of duties
    applies)."""
    said = primum().governance.record_decision(release_id, "approve", caller=caller(key, actor), env=env,
                                               comment=comment, digest=digest)
    console.print(escape(said))


@commands.command()
@handled
def reject(
    release_id: Annotated[str, typer.Argument(metavar="ID")],
    comment: Annotated[str, typer.Option(help="the reason (required)")],
    actor: As = None,
    env: Annotated[str | None, typer.Option(help="the environment (default: the one the release waits for)")] = None,
    key: KeyOption = None,
) -> None:
    """Reject a release for one environment, with a reason (signed); it waits until that person approves."""
    said = primum().governance.record_decision(release_id, "reject", caller=caller(key, actor), env=env,
                                               comment=comment)
    console.print(escape(said))


@commands.command()
@handled
def approvals(output: OutputOption = Output.table) -> None:
    """What waits on whom: every release held by policy, approvals or a change window."""
    rows = primum().governance.waiting()
    if output is Output.json:
        print_json([row.__dict__ for row in rows])
        return
    if not rows:
        console.print("nothing waits on governance")
    for row in rows:
        state = "[green]may start[/]" if row.blocked_by is None else f"[yellow]held by {row.blocked_by}[/]"
        console.print(f"[bold]{escape(row.release)}[/] -> {row.env} (class {row.change_class or '?'}): {state}: "
                      f"{escape(row.reason)}")
        for a in row.approvals:
            void = "" if a["current"] else " [dim](void: another digest)[/]"
            if a["current"] and a["not_counted"]:
                void = f" [red](not counted: {escape(a['not_counted'])})[/]"
            console.print(f"    {a['decision']} by {escape(a['actor'])}{void}"
                          + (f": {escape(a['comment'])}" if a["comment"] else ""))


@commands.command("break-glass")
@handled
def break_glass_cmd(
    release_id: Annotated[str, typer.Argument(metavar="ID")],
    justification: Annotated[str, typer.Option(help="what is broken and why it cannot wait (required)")],
    actor: As = None,
    key: KeyOption = None,
) -> None:
    """Emergency path: bypass approvals and change windows (never analysis or rollback); recorded,
    notified, and reviewed afterwards."""
    use = primum().governance.break_glass(release_id, caller=caller(key, actor), justification=justification)
    due = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(use.review_due_at))
    console.print(f"break-glass #{use.id} recorded for {escape(release_id)} by {escape(use.actor)}; "
                  f"review due {due}; {escape(use.notified)}")


@commands.command()
@handled
def reviews(output: OutputOption = Output.table) -> None:
    """Break-glass uses and their retrospective reviews: open, overdue, done."""
    rows = primum().governance.reviews()
    if output is Output.json:
        print_json([{**use.__dict__, "state": state} for use, state in rows])
        return
    if not rows:
        console.print("no break-glass use on record")
    for use, state in rows:
        style = {"open": "yellow", "overdue": "bold red", "done": "green"}[state]
        due = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(use.review_due_at))
        console.print(f"#{use.id} [{style}]{state}[/] {escape(use.rollout_id)} by {escape(use.actor)} (due {due}): "
                      f"{escape(use.justification)}"
                      + (f" | reviewed by {escape(use.reviewed_by or '')}: {escape(use.review_notes or '')}"
                         if use.reviewed_at else ""))
    if any(state == "overdue" for _, state in rows):
        raise typer.Exit(EXIT_RELEASE_FAILED)


@commands.command()
@handled
def review(
    use_id: Annotated[int, typer.Argument(metavar="USE", help="the break-glass use number (`primum reviews`)")],
    notes: Annotated[str, typer.Option(help="what happened and what follows from it (required)")],
    actor: As = None,
    key: KeyOption = None,
) -> None:
    """Complete the retrospective review of a break-glass use (signed)."""
    console.print(escape(primum().governance.complete_review(use_id, caller=caller(key, actor), notes=notes)))

