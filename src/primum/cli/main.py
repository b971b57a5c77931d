"""The `primum` command line: a thin front end over ``primum.service``.

Exit codes: 0 success; 1 the release failed or was rolled back (or the demo
saw primum misbehave); 2 bad input (a file, a flag, an unknown id); 3 an
internal error.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from primum.cli.output import console, err_console, event_line, history_table, print_json, status_table
from primum.model.errors import InputError
from primum.model.rollout import TERMINAL, RolloutPhase

EXIT_OK, EXIT_RELEASE_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="primum: a governed release control plane (first, do no harm).")
release_app = typer.Typer(no_args_is_help=True, help="Submit releases.")
app.add_typer(release_app, name="release")
analysis_app = typer.Typer(no_args_is_help=True, help="Show the analysis behind each verdict.")
app.add_typer(analysis_app, name="analysis")
policy_app = typer.Typer(no_args_is_help=True, help="Evaluate and test release policy (Rego).")
app.add_typer(policy_app, name="policy")
keys_app = typer.Typer(no_args_is_help=True, help="Evidence signing keys (Ed25519) in $PRIMUM_HOME/keys.")
app.add_typer(keys_app, name="keys")

F = TypeVar("F", bound=Callable[..., Any])


class Output(StrEnum):
    table = "table"
    json = "json"


class Schema(StrEnum):
    estate = "estate"
    release = "release"


def handled(fn: F) -> F:
    """Map errors to exit codes: bad input 2, internal 3; never a traceback for a user mistake."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from primum.governance.policy.engine import PolicyError
        from primum.service import NotAllowed, NotFound
        from primum.store.repository import ReleaseConflict, RolloutLeased, RolloutNotFound

        try:
            return fn(*args, **kwargs)
        except PolicyError as exc:
            err_console.print(f"[red]policy error:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except InputError as exc:
            for problem in exc.problems:
                err_console.print(f"[red]error:[/] {escape(problem.render())}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except (NotFound, NotAllowed, ReleaseConflict, RolloutLeased, RolloutNotFound) as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:
            err_console.print(f"[red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}")
            if os.environ.get("PRIMUM_DEBUG"):
                raise
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def _home() -> Path:
    from primum.service import primum_home

    return primum_home()


def _store():
    from primum.store.repository import Store

    _home()
    return Store()


def _service():
    from primum.service import ReleaseService

    return ReleaseService(_store())


# ------------------------------------------------------------------ files


@app.command()
@handled
def validate(
    file: Annotated[Path, typer.Argument(help="an estate or release file")],
    estate: Annotated[str | None, typer.Option(help="estate to check a release against")] = None,
) -> None:
    """Check an estate or release file; exit 2 with every problem found."""
    from primum.model.load import load_estate, load_release
    from primum.model.yamlfile import load_yaml
    from primum.service import resolve_estate

    doc = load_yaml(file)
    kind = doc.data.get("kind") if isinstance(doc.data, dict) else None
    if kind == "Estate":
        model = load_estate(file)
        console.print(f"[green]ok[/] {file}: estate {model.name}, {len(model.services)} services, "
                      f"environments {' -> '.join(model.environment_names())}")
    elif kind == "Release":
        est, est_path = resolve_estate(estate, _home())
        loaded = load_release(file, est)
        console.print(f"[green]ok[/] {file}: release {loaded.release.id} {loaded.digest} "
                      f"({len(loaded.versions)} artifacts verified against estate {est_path})")
    else:
        raise InputError.single(str(file), f"unknown kind {kind!r}", "set `kind: Estate` or `kind: Release`",
                                path="kind", line=doc.line_of(("kind",)))


@app.command()
@handled
def schema(which: Annotated[Schema, typer.Argument(help="estate or release")]) -> None:
    """Print the JSON Schema of estate or release files."""
    from primum.model.estate import Estate
    from primum.model.release import Release

    model = Estate if which is Schema.estate else Release
    print_json(model.model_json_schema(by_alias=True))


@app.command()
@handled
def init(
    directory: Annotated[Path, typer.Argument(help="where to write the example")] = Path("primum-example"),
    fast: Annotated[bool, typer.Option(help="shorter analysis windows")] = False,
) -> None:
    """Write the demo's estate, releases and artifacts as editable files."""
    from primum.demo.files import write_demo

    if directory.exists() and any(directory.iterdir()):
        raise InputError.single(str(directory), "directory is not empty", "choose a new or empty directory")
    files = write_demo(directory, fast=fast)
    console.print(f"wrote {files.estate}, {files.baseline.parent}/, {files.root / 'artifacts'}/ and "
                  f"{files.root / 'primum.env'} (settings)\n"
                  f"next: primum up {files.estate}   (in another terminal)\n"
                  f"      primum release apply {files.baseline} --estate {files.estate}")


# ---------------------------------------------------------------- runtime


def _print_event(rollout_id: str, event: Any) -> None:
    console.print(event_line(rollout_id, event.kind, event.message))


@app.command()
@handled
def up(
    estate_file: Annotated[Path, typer.Argument(metavar="ESTATE", help="the estate to run")],
    lease_ttl: Annotated[float, typer.Option(help="controller lease time in seconds")] = 10.0,
) -> None:
    """Start the local runtime (routers, services, synthetic traffic) and the controller, in the foreground."""
    from primum.controller.loop import Controller
    from primum.model.load import load_estate, runtime_spec
    from primum.targets.local.runtime import LocalRuntime
    from primum.targets.registry import Targets

    estate = load_estate(estate_file)
    home = _home()
    store = _store()
    marker = home / "up.json"
    marker.write_text(json.dumps({"pid": os.getpid(), "estate": str(estate_file.resolve()),
                                  "name": estate.name}))
    targets = Targets(home)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for name in estate.services:
            if estate.services[name].target.type == "local":
                specs = [runtime_spec(estate, env, name) for env in estate.environment_names()]
                targets.for_service(estate, name).prepare(specs)
        console.print(f"[bold]primum up[/]: estate {estate.name} runs; routers:")
        _print_routers(home, estate.name)
        console.print("controller running; Ctrl-C (or `primum down`) stops everything")
        controller = Controller(store, targets, lease_ttl=lease_ttl, on_event=_print_event)
        with contextlib.suppress(KeyboardInterrupt):
            controller.run(stop)
        controller.shutdown()
    finally:
        console.print("stopping the runtime ...")
        LocalRuntime(home, estate.name).stop_all()
        marker.unlink(missing_ok=True)
        console.print("stopped; no process left behind")


def _print_routers(home: Path, estate: str) -> None:
    state = home / "runtime" / f"{estate}.json"
    if not state.is_file():
        return
    data = json.loads(state.read_text())
    for router in data.get("routers", []):
        console.print(f"  {router.get('env')}/{router.get('service')}: http://127.0.0.1:{router.get('port')}")


@app.command()
@handled
def down() -> None:
    """Stop `primum up` and every process of the local runtime."""
    from primum.targets.local.runtime import LocalRuntime

    home = _home()
    marker = home / "up.json"
    if marker.is_file():
        pid = json.loads(marker.read_text()).get("pid")
        try:
            os.kill(int(pid), signal.SIGTERM)
            for _ in range(100):
                os.kill(int(pid), 0)
                time.sleep(0.1)
        except (ProcessLookupError, TypeError, ValueError):
            pass
        marker.unlink(missing_ok=True)
    stopped = 0
    runtime_dir = home / "runtime"
    for state in sorted(runtime_dir.glob("*.json")) if runtime_dir.is_dir() else []:
        if state.name.endswith("-traffic.json"):
            continue
        LocalRuntime(home, state.stem).stop_all()
        stopped += 1
    console.print(f"stopped {stopped} runtime(s); no process left behind")


@app.command("controller")
@handled
def controller_cmd(
    once: Annotated[bool, typer.Option(help="run one pass and exit")] = False,
    lease_ttl: Annotated[float, typer.Option(help="lease time in seconds")] = 10.0,
) -> None:
    """Run the reconcile loop (several may run against one PostgreSQL database)."""
    from primum.controller.loop import Controller
    from primum.targets.registry import Targets

    controller = Controller(_store(), Targets(_home()), lease_ttl=lease_ttl, on_event=_print_event)
    if once:
        try:
            controller.tick()
        finally:
            controller.shutdown()  # leave no lease behind: another controller may go on at once
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        controller.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        controller.shutdown()


# ---------------------------------------------------------------- releases


@release_app.command("apply")
@handled
def release_apply(
    file: Annotated[Path, typer.Argument(help="the release file")],
    env: Annotated[str | None, typer.Option(help="promote up to and including this environment")] = None,
    wait: Annotated[bool, typer.Option(help="follow progress until the release ends")] = True,
    estate: Annotated[str | None, typer.Option(help="estate file (default: the one `primum up` runs)")] = None,
    timeout: Annotated[float, typer.Option(help="give up waiting after this many seconds (0: never)")] = 0,
) -> None:
    """Submit a release; with --wait (default) follow it and exit 0 if promoted, 1 if not."""
    from primum.service import resolve_estate

    home = _home()
    est, estate_path = resolve_estate(estate, home)
    service = _service()
    submitted = service.submit(file, est, env, scan=[estate_path])
    record = submitted.record
    verb = "submitted" if submitted.created else "already submitted (same digest)"
    console.print(f"release [bold]{record.id}[/] {record.digest} {verb}")
    if not wait:
        return
    raise typer.Exit(follow(service, record.id, timeout))


def follow(service: Any, rollout_id: str, timeout: float = 0) -> int:
    """Print events until the release ends; the exit code says how it ended."""
    start = time.time()
    last = 0
    warned = False
    while True:
        for event in service.store.events(rollout_id, after_id=last):
            last = event.id
            console.print(event_line(rollout_id, event.kind, event.message, event.at))
        record = service.get(rollout_id)
        if record.phase in {p.value for p in TERMINAL}:
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


@app.command()
@handled
def status(
    release_id: Annotated[str | None, typer.Argument(metavar="ID", help="a release id (default: all active)")] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Show a release's progress per environment and service."""
    from primum.service import summary

    service = _service()
    if release_id:
        record, st = service.status(release_id)
        if output is Output.json:
            print_json({**summary(record), "status": record.status})
        else:
            console.print(status_table(st))
            if st.reason or st.pause_reason:
                console.print(f"reason: {st.reason or st.pause_reason}")
        return
    active = [summary(r) for r in service.store.list_rollouts(phases=("pending", "running", "paused"))]
    if output is Output.json:
        print_json(active)
    else:
        console.print(history_table(active) if active else "no active releases")


@app.command()
@handled
def probe(
    service_name: Annotated[str, typer.Argument(metavar="SERVICE")],
    env: Annotated[str, typer.Option(help="the environment whose router, MLLP port and instances to probe")],
    gate: Annotated[list[str] | None, typer.Option(help="only this probe gate (repeatable)")] = None,
    preview: Annotated[bool, typer.Option(help="ask the router for the preview version")] = False,
    estate: Annotated[str | None, typer.Option(help="estate file (default: the one `primum up` runs)")] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Run a service's probe gates now (HTTP, FHIR, MLLP, TCP, TLS); exit 0 only if all pass."""
    from primum.analysis.gather import PREVIEW_HEADER
    from primum.analysis.probes import ProbeContext, run_gate
    from primum.model.estate import LocalTargetSettings
    from primum.model.load import runtime_spec
    from primum.service import NotFound, resolve_estate
    from primum.targets.base import TargetError
    from primum.targets.registry import Targets

    home = _home()
    est, path = resolve_estate(estate, home)
    if service_name not in est.services:
        raise NotFound(f"no service {service_name!r} in {path}; services: {', '.join(sorted(est.services))}")
    if env not in est.environment_names():
        raise NotFound(f"no environment {env!r} in {path}; environments: {', '.join(est.environment_names())}")
    svc = est.services[service_name]
    gates = [g for g in svc.probes if not gate or g.name in gate]
    unknown = sorted(set(gate or ()) - {g.name for g in svc.probes})
    defined = ", ".join(g.name for g in svc.probes) or "none; define them under the service's probes:"
    if unknown:
        raise NotFound(f"{service_name} has no probe gate {', '.join(unknown)} (defined: {defined})")
    if not gates:
        raise NotFound(f"{service_name} has no probe gates (defined: {defined})")
    targets = Targets(home)
    try:
        base_url = targets.for_service(est, service_name).router_url(runtime_spec(est, env, service_name))
    except TargetError:
        base_url = None  # not running: probes with an explicit url, host or port still run
    finally:
        targets.close()
    mllp = svc.target.mllp_ports.get(env) if isinstance(svc.target, LocalTargetSettings) else None
    ctx = ProbeContext(base_url=base_url, mllp_port=mllp, headers={PREVIEW_HEADER: "1"} if preview else {})
    results = [(g.name, run_gate(g, ctx)) for g in gates]
    if output is Output.json:
        print_json([{"gate": name, **r.model_dump(mode="json")} for name, r in results])
    else:
        for name, r in results:
            mark = "[green]pass[/]" if r.ok else "[red]FAIL[/]"
            console.print(f"{mark} {escape(name)} ({r.probe} {escape(r.target)}): {escape(r.reason)}")
    raise typer.Exit(EXIT_OK if all(r.ok for _, r in results) else EXIT_RELEASE_FAILED)


def _governance():
    from primum.governance_service import GovernanceService

    return GovernanceService(_store())


As = Annotated[str | None, typer.Option("--as", help="who decides (default: $PRIMUM_USER)")]


@app.command()
@handled
def approve(
    release_id: Annotated[str, typer.Argument(metavar="ID")],
    actor: As = None,
    env: Annotated[str | None, typer.Option(help="the environment (default: the one the release waits for)")] = None,
    comment: Annotated[str, typer.Option(help="why")] = "",
    digest: Annotated[str | None, typer.Option(help="the digest you reviewed; refused if the release differs")] = None,
) -> None:
    """Approve a release for one environment (bound to its digest; separation of duties applies)."""
    console.print(escape(_governance().decide(release_id, "approve", actor=actor, env=env, comment=comment,
                                              digest=digest)))


@app.command()
@handled
def reject(
    release_id: Annotated[str, typer.Argument(metavar="ID")],
    comment: Annotated[str, typer.Option(help="the reason (required)")],
    actor: As = None,
    env: Annotated[str | None, typer.Option(help="the environment (default: the one the release waits for)")] = None,
) -> None:
    """Reject a release for one environment, with a reason; it waits until that person approves."""
    console.print(escape(_governance().decide(release_id, "reject", actor=actor, env=env, comment=comment)))


@app.command()
@handled
def approvals(output: Annotated[Output, typer.Option("--output", "-o")] = Output.table) -> None:
    """What waits on whom: every release held by policy, approvals or a change window."""
    rows = _governance().waiting()
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
            console.print(f"    {a['decision']} by {escape(a['actor'])}{void}"
                          + (f": {escape(a['comment'])}" if a["comment"] else ""))


@app.command("break-glass")
@handled
def break_glass_cmd(
    release_id: Annotated[str, typer.Argument(metavar="ID")],
    justification: Annotated[str, typer.Option(help="what is broken and why it cannot wait (required)")],
    actor: As = None,
) -> None:
    """Emergency path: bypass approvals and change windows (never analysis or rollback); recorded,
    notified, and reviewed afterwards."""
    use = _governance().break_glass(release_id, actor=actor, justification=justification)
    due = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(use.review_due_at))
    console.print(f"break-glass #{use.id} recorded for {escape(release_id)} by {escape(use.actor)}; "
                  f"review due {due}; {escape(use.notified)}")


@app.command()
@handled
def reviews(output: Annotated[Output, typer.Option("--output", "-o")] = Output.table) -> None:
    """Break-glass uses and their retrospective reviews: open, overdue, done."""
    rows = _governance().reviews()
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


@app.command()
@handled
def review(
    use_id: Annotated[int, typer.Argument(metavar="USE", help="the break-glass use number (`primum reviews`)")],
    notes: Annotated[str, typer.Option(help="what happened and what follows from it (required)")],
    actor: As = None,
) -> None:
    """Complete the retrospective review of a break-glass use."""
    console.print(escape(_governance().complete_review(use_id, actor=actor, notes=notes)))


@policy_app.command("eval")
@handled
def policy_eval(
    release: Annotated[Path, typer.Argument(help="the release file")],
    env: Annotated[str | None, typer.Option(help="one environment (default: every one)")] = None,
    estate: Annotated[str | None, typer.Option(help="estate file (default: the one `primum up` runs)")] = None,
    policy: Annotated[Path | None, typer.Option(help="organisation policy directory (default: the estate's)")] = None,
    emergency: Annotated[bool, typer.Option(help="as if break-glass were used")] = False,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Show a release's change class, requirements, denials and warnings per environment."""
    from primum.governance.policy.tools import evaluate
    from primum.model.load import load_release
    from primum.service import resolve_estate, scan_for_secrets

    est, estate_path = resolve_estate(estate, _home())
    loaded = load_release(release, est)
    decisions = evaluate(est, loaded.release, loaded.digest, env, emergency=emergency, now=time.time(),
                         policy_dir=policy or est.governance.policy_dir,
                         secrets=scan_for_secrets([release, estate_path]))
    if output is Output.json:
        print_json({name: d.model_dump(mode="json") for name, d in decisions.items()})
    else:
        for name, d in decisions.items():
            verdict = "[green]allowed[/]" if d.allowed else "[red]denied[/]"
            console.print(f"[bold]{name}[/]: class [bold]{d.change_class}[/] {verdict}")
            if d.requirements:
                r = d.requirements
                console.print(f"  requires: {r.approvals} approval(s) ({r.cab_approvals} from CAB), at least "
                              f"{r.min_analysis_seconds}s of analysis" + (f", gates: {', '.join(r.gates)}"
                                                                          if r.gates else "")
                              + (", break-glass only" if r.break_glass_only else ""))
            for svc, why in d.reasons.items():
                console.print(f"  {escape(svc)}: {escape('; '.join(why))}")
            for msg in d.deny:
                console.print(f"  [red]deny:[/] {escape(msg)}")
            for msg in d.warn:
                console.print(f"  [yellow]warn:[/] {escape(msg)}")
            console.print(f"  [dim]decision {d.log.decision_id}, bundle {d.log.bundle_revision[:19]}, input "
                          f"{d.log.input_digest[:19]}[/]")
    raise typer.Exit(EXIT_OK if all(d.allowed for d in decisions.values()) else EXIT_RELEASE_FAILED)


@policy_app.command("test")
@handled
def policy_test(
    directory: Annotated[Path | None, typer.Argument(help="organisation policy directory")] = None,
    baseline: Annotated[bool, typer.Option(help="with DIR: run the baseline's own tests too")] = False,
) -> None:
    """Run Rego unit tests (rules named test_*): DIR's tests against the baseline extended by DIR, or
    without DIR the baseline's own; exit 0 only if all pass."""
    from primum.governance.policy.tools import run_tests

    summary = run_tests(directory)
    results = [r for r in summary.results
               if directory is None or baseline or not r.file.startswith("baseline/")]
    if not results:
        console.print(f"no test_* rules in {directory}; `primum policy test` runs the baseline's own tests")
    for result in results:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        console.print(f"{mark} {escape(result.name)} ({escape(result.file)}:{result.line})"
                      + (f": {escape(result.message)}" if result.message else ""))
    failed = sum(1 for r in results if not r.passed)
    console.print(f"{len(results) - failed} passed, {failed} failed (bundle {summary.bundle_revision[:19]})")
    raise typer.Exit(EXIT_OK if failed == 0 and results else EXIT_RELEASE_FAILED)


def _print_keyring(keyring: Any, directory: Path) -> None:
    current = keyring.current.keyid if keyring.can_sign else None
    console.print(f"keys in {directory}")
    for keyid in keyring.keyids():
        state = "current (signs)" if keyid == current else "retired (verifies old evidence only)"
        console.print(f"  {keyid}  {state}")


@keys_app.command("init")
@handled
def keys_init() -> None:
    """Generate the first signing key (private key 0600; public keys kept for verification)."""
    from primum.evidence.keys import init_keyring, keys_dir

    _home()
    directory = keys_dir()
    _print_keyring(init_keyring(directory), directory)


@keys_app.command("rotate")
@handled
def keys_rotate() -> None:
    """Replace the signing key; the old public key stays so old evidence still verifies."""
    from primum.evidence.keys import keys_dir, rotate_keyring

    directory = keys_dir()
    _print_keyring(rotate_keyring(directory), directory)


@keys_app.command("list")
@handled
def keys_list() -> None:
    """List the key ids: the current signing key and the retired ones."""
    from primum.evidence.keys import keys_dir, load_public_keyring

    directory = keys_dir()
    keyring = load_public_keyring(directory)
    signing = directory / "signing.pem"
    if signing.is_file():
        from primum.evidence.keys import load_keyring

        keyring = load_keyring(directory)
    _print_keyring(keyring, directory)


@analysis_app.command("list")
@handled
def analysis_list_cmd(
    release_id: Annotated[str, typer.Argument(metavar="RELEASE")],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """List a release's measurements with their ids, outcomes and reasons."""
    from primum.cli.output import analysis_list

    rows = _service().analyses(release_id)
    if output is Output.json:
        print_json([{"id": e.id, "at": e.at, "env": e.env, "service": e.service, **e.data} for e in rows])
    elif not rows:
        console.print(f"release {release_id} has no analysis yet")
    else:
        console.print(analysis_list(rows))


@analysis_app.command("show")
@handled
def analysis_show(
    ref: Annotated[str, typer.Argument(metavar="ID", help="an analysis id, or a release id for its latest")],
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Explain one verdict: sources, sample sizes, statistics, effects, thresholds and reasons."""
    from primum.cli.output import analysis_report

    event = _service().analysis(ref)
    if output is Output.json:
        print_json({"id": event.id, "release": event.rollout_id, "at": event.at, "env": event.env,
                    "service": event.service, **event.data})
    else:
        analysis_report(event)


@app.command()
@handled
def history(
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 50,
) -> None:
    """List releases, newest first."""
    rows = _service().history(limit)
    if output is Output.json:
        print_json(rows)
    else:
        console.print(history_table(rows))


@app.command()
@handled
def promote(release_id: Annotated[str, typer.Argument(metavar="ID")],
            as_: Annotated[str | None, typer.Option("--as", help="who decides")] = None) -> None:
    """End the current pause or inconclusive analysis of a release: continue it."""
    _service().promote(release_id, as_)
    console.print(f"promote requested for {release_id}")


@app.command()
@handled
def abort(release_id: Annotated[str, typer.Argument(metavar="ID")],
          as_: Annotated[str | None, typer.Option("--as", help="who decides")] = None) -> None:
    """Roll a release back now."""
    _service().abort(release_id, as_)
    console.print(f"abort requested for {release_id}")


@app.command()
@handled
def retry(release_id: Annotated[str, typer.Argument(metavar="ID")],
          as_: Annotated[str | None, typer.Option("--as", help="who decides")] = None,
          wait: Annotated[bool, typer.Option(help="follow progress")] = False) -> None:
    """Start a rolled back or failed release again (services already updated are skipped)."""
    service = _service()
    service.retry(release_id, as_)
    console.print(f"{release_id} queued again")
    if wait:
        raise typer.Exit(follow(service, release_id))


@app.command()
@handled
def demo(
    fast: Annotated[bool, typer.Option(help="shorter analysis windows (the judgement stays real)")] = False,
    keep: Annotated[Path | None, typer.Option(help="keep the demo's files and database in this directory")] = None,
) -> None:
    """Run a fictional hospital through a bad release (rolled back) and a good one (promoted)."""
    from primum.demo.run import run_demo

    raise typer.Exit(run_demo(fast=fast, keep=keep))


def main() -> None:  # pragma: no cover
    sys.exit(app())
