"""The `primum` command line: a thin front end over ``primum.app.releases``.

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

from primum.adapters.evidence.ingest.registry import INGEST_FORMATS
from primum.cli.output import console, err_console, event_line, history_table, print_json, status_table
from primum.core.model.errors import InputError
from primum.core.model.rollout import TERMINAL, RolloutPhase

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
evidence_app = typer.Typer(no_args_is_help=True, help="Signed evidence: CI ingest, the transparency log, audit "
                           "bundles, legal holds and retention.")
app.add_typer(evidence_app, name="evidence")

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
        from primum.adapters.policy import PolicyError
        from primum.adapters.store.repository import ReleaseConflict, RolloutLeased, RolloutNotFound
        from primum.app.releases import NotAllowed, NotFound

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
    from primum.app.releases import primum_home

    return primum_home()


def _store():
    from primum.adapters.store.repository import Store

    _home()
    return Store()


def _service():
    from primum.app.releases import ReleaseService

    return ReleaseService(_store())


# ------------------------------------------------------------------ files


@app.command()
@handled
def validate(
    file: Annotated[Path, typer.Argument(help="an estate or release file")],
    estate: Annotated[str | None, typer.Option(help="estate to check a release against")] = None,
) -> None:
    """Check an estate or release file; exit 2 with every problem found."""
    from primum.app.releases import resolve_estate
    from primum.core.model.validate import load_estate, load_release
    from primum.core.model.yamlfile import load_yaml

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
    from primum.core.model.estate import Estate
    from primum.core.model.release import Release

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
    from primum.adapters.targets.local.runtime import LocalRuntime
    from primum.adapters.targets.registry import Targets
    from primum.app.controller import Controller
    from primum.core.model.validate import load_estate, runtime_spec

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
    from primum.adapters.targets.local.runtime import LocalRuntime

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
    from primum.adapters.targets.registry import Targets
    from primum.app.controller import Controller

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
    from primum.app.releases import resolve_estate

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
    from primum.app.releases import summary

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
    from primum.adapters.probes import ProbeContext, run_gate
    from primum.adapters.targets.base import TargetError
    from primum.adapters.targets.registry import Targets
    from primum.app.gather import PREVIEW_HEADER
    from primum.app.releases import NotFound, resolve_estate
    from primum.core.model.estate import LocalTargetSettings
    from primum.core.model.validate import runtime_spec

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
    from primum.app.governance import GovernanceService

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
    console.print(escape(_governance().record_decision(release_id, "approve", actor=actor, env=env,
                                                       comment=comment, digest=digest)))


@app.command()
@handled
def reject(
    release_id: Annotated[str, typer.Argument(metavar="ID")],
    comment: Annotated[str, typer.Option(help="the reason (required)")],
    actor: As = None,
    env: Annotated[str | None, typer.Option(help="the environment (default: the one the release waits for)")] = None,
) -> None:
    """Reject a release for one environment, with a reason; it waits until that person approves."""
    console.print(escape(_governance().record_decision(release_id, "reject", actor=actor, env=env, comment=comment)))


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
    from primum.adapters.policy.tools import evaluate
    from primum.app.releases import resolve_estate, scan_for_secrets
    from primum.core.model.validate import load_release

    est, estate_path = resolve_estate(estate, _home())
    loaded = load_release(release, est)
    from primum.app.gate import Governance

    decisions = evaluate(est, loaded.release, loaded.digest, env, emergency=emergency, now=time.time(),
                         policy_dir=policy or est.governance.policy_dir,
                         secrets=scan_for_secrets([release, estate_path]),
                         evidence=Governance(_store()).evidence(loaded.release))  # as the controller sees it
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
    from primum.adapters.policy.tools import run_tests

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
    from primum.adapters.evidence.keys import init_keyring, keys_dir

    _home()
    directory = keys_dir()
    _print_keyring(init_keyring(directory), directory)


@keys_app.command("rotate")
@handled
def keys_rotate() -> None:
    """Replace the signing key; the old public key stays so old evidence still verifies."""
    from primum.adapters.evidence.keys import keys_dir, rotate_keyring

    directory = keys_dir()
    _print_keyring(rotate_keyring(directory), directory)


@keys_app.command("export")
@handled
def keys_export(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="every public key, retired ones too")] = False,
) -> None:
    """The public key(s) an auditor needs for `primum evidence verify FILE --key PUB.pem` (PEM)."""
    from cryptography.hazmat.primitives import serialization

    from primum.adapters.evidence.keys import keys_dir, load_keyring, load_public_keyring

    directory = keys_dir()
    keyring = load_keyring(directory) if (directory / "signing.pem").is_file() else load_public_keyring(directory)
    chosen = keyring.public_keys().values() if all_keys or not keyring.can_sign else [keyring.current.public_key]
    pem = b"".join(k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                   for k in chosen)
    if out is None:
        sys.stdout.write(pem.decode())
    else:
        out.write_bytes(pem)
        err_console.print(f"wrote {out}", highlight=False)


@keys_app.command("list")
@handled
def keys_list() -> None:
    """List the key ids: the current signing key and the retired ones."""
    from primum.adapters.evidence.keys import keys_dir, load_public_keyring

    directory = keys_dir()
    keyring = load_public_keyring(directory)
    signing = directory / "signing.pem"
    if signing.is_file():
        from primum.adapters.evidence.keys import load_keyring

        keyring = load_keyring(directory)
    _print_keyring(keyring, directory)


def _evidence():
    from primum.app.evidence import EvidenceService

    return EvidenceService(_store())


def _public_keys(paths: list[Path]) -> list[Any]:
    """Ed25519 public keys from PEM files (or key directories holding <keyid>.pem files)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys: list[Any] = []
    for path in paths:
        files = sorted(path.glob("*.pem")) if path.is_dir() else [path]
        if not files:
            raise InputError.single(str(path), "no .pem public keys in this directory",
                                    "pass the public key file given with the bundle, e.g. --key primum-evidence.pem")
        for file in files:
            try:
                text = file.read_bytes()
                marker = b"-----BEGIN PUBLIC KEY-----"
                blocks = [marker + b for b in text.split(marker)[1:]] or [text]  # a file may hold several
                loaded = [load_pem_public_key(block) for block in blocks]
            except (OSError, ValueError) as exc:
                raise InputError.single(str(file), f"not a readable PEM public key ({exc})",
                                        "pass the evidence log's Ed25519 public key (PEM)") from None
            for key in loaded:
                if not isinstance(key, Ed25519PublicKey):
                    raise InputError.single(str(file), "not an Ed25519 public key",
                                            "pass the evidence log's Ed25519 public key")
                keys.append(key)
    return keys


@evidence_app.command("add")
@handled
def evidence_add(
    artifact: Annotated[str, typer.Argument(metavar="ARTIFACT", help="sha256:<hex> or NAME@sha256:<hex>")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="SLSA provenance, JUnit XML, SARIF, Trivy/Grype "
                                         "JSON or a CycloneDX SBOM")],
    fmt: Annotated[str | None, typer.Option("--format", help=f"{'|'.join(INGEST_FORMATS.names())} "
                                            "(default: detected)")] = None,
    trust_key: Annotated[list[Path] | None, typer.Option("--trust-key", help="a builder's public key (PEM) to "
                                                         "verify signed provenance with")] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Attach CI evidence to an artifact digest, signed into the log (policy can then require it)."""
    added = _evidence().add(artifact, file, fmt=fmt, trusted_keys=_public_keys(trust_key) if trust_key else None)
    if output is Output.json:
        print_json({"index": added.index, "kind": added.kind, "artifact": added.artifact, "summary": added.summary})
        return
    console.print(f"recorded {added.kind} evidence for {added.artifact[:19]}… as log entry {added.index}: "
                  + ", ".join(f"{k} {v}" for k, v in added.summary.items()), highlight=False)


@evidence_app.command("verify")
@handled
def evidence_verify(
    bundle: Annotated[Path | None, typer.Argument(metavar="[FILE.tar.gz]", help="an audit bundle; without "
                                                  "it, the whole local log is verified")] = None,
    key: Annotated[list[Path] | None, typer.Option("--key", help="public key PEM (or a directory of them); "
                                                   "repeat for rotated keys")] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Verify an audit bundle with only a public key, or the whole log; names the first bad entry (exit 1)."""
    if bundle is not None:
        from primum.adapters.evidence.bundle import verify_bundle

        if not key:
            raise InputError.single(str(bundle), "verifying a bundle needs the public key you trust",
                                    "pass --key PUB.pem (obtained from the log operator, not from the bundle)")
        if not bundle.is_file():
            raise InputError.single(str(bundle), "bundle file not found", "pass the .tar.gz written by "
                                    "`primum evidence export`")
        result = verify_bundle(bundle, _public_keys(key))
        previous = None if result.previous_size is None else {
            "tree_size": result.previous_size, "root_hash": result.previous_root_hash}
        if output is Output.json:
            print_json({"ok": result.ok, "problems": result.problems, "release": result.release_id,
                        "digest": result.release_digest, "entries": result.entries, "purged": result.purged,
                        "tree_size": result.tree_size, "root_hash": result.root_hash.hex()
                        if isinstance(result.root_hash, bytes) else result.root_hash, "previous": previous})
        elif result.ok:
            since = ("" if previous is None else f"; the log extends the previous checkpoint at tree size "
                     f"{result.previous_size} (consistency proof verified)")
            console.print(f"[green]verified[/] {bundle}: release {result.release_id} ({result.release_digest[:19]}…),"
                          f" {result.entries} signed statements ({result.purged} purged) included in the log at "
                          f"tree size {result.tree_size}{since}", highlight=False)
        else:
            err_console.print(f"[red]NOT verified[/] {bundle}: {escape(result.problems[0])}", highlight=False)
            for problem in result.problems[1:5]:
                err_console.print(f"  also: {escape(problem)}", highlight=False)
        raise typer.Exit(EXIT_OK if result.ok else EXIT_RELEASE_FAILED)
    store = _store()
    keyring = None
    if key:
        from primum.adapters.evidence.keys import Keyring

        keyring = Keyring(None, _public_keys(key))
    report = store.verify_evidence(keyring)
    if output is Output.json:
        print_json({"ok": report.ok, "problem": report.problem, "bad_index": report.bad_index,
                    "origin": report.origin, "size": report.size, "entries": report.entries,
                    "purged": report.purged, "checkpoints": report.checkpoints, "root_hash": report.root_hash.hex()})
    elif report.ok:
        console.print(f"[green]verified[/] log {report.origin}: {report.entries} entries ({report.purged} purged), "
                      f"{report.checkpoints} signed checkpoints, root {report.root_hash.hex()[:16]}…",
                      highlight=False)
    else:
        err_console.print(f"[red]NOT verified[/] log {report.origin}: {escape(report.problem or '')}",
                          highlight=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_RELEASE_FAILED)


@evidence_app.command("export")
@handled
def evidence_export(
    release_id: Annotated[str, typer.Argument(metavar="RELEASE")],
    out: Annotated[Path, typer.Option("--output", "-o", help="the .tar.gz to write")],
    since: Annotated[Path | None, typer.Option("--since", metavar="OLD_CHECKPOINT",
                                               help="an earlier checkpoint of this log (from `primum evidence "
                                               "checkpoint -o FILE`): include it and the consistency proof from "
                                               "it")] = None,
) -> None:
    """Write a release's audit bundle: envelopes, inclusion proofs, checkpoint, public keys, report."""
    summary = _evidence().export(release_id, out, since=since)
    extends = ("" if summary.previous_size is None else
               f", consistency proof from the checkpoint at size {summary.previous_size} in {since}")
    console.print(f"wrote {out}: {summary.entries} statements, checkpoint at tree size {summary.tree_size}"
                  f"{extends}; verify anywhere with `primum evidence verify {out} --key PUB.pem`", highlight=False)


@evidence_app.command("checkpoint")
@handled
def evidence_checkpoint(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="write the checkpoint to this file "
                                             "(default: print it)")] = None,
) -> None:
    """The log's newest signed checkpoint, exactly as stored: keep it to check the log later."""
    origin, latest = _evidence().checkpoint()
    if out is None:
        sys.stdout.write(latest.note)
        sys.stdout.flush()
        return
    try:
        out.write_bytes(latest.note.encode())
    except OSError as exc:
        raise InputError.single(str(out), f"cannot write the checkpoint ({exc.strerror or exc})",
                                "pass a writable file path to --output") from None
    console.print(f"wrote {out}: checkpoint of {origin} at tree size {latest.size}; later, `primum evidence "
                  f"consistency {out}` checks that the log still extends it", highlight=False)


@evidence_app.command("consistency")
@handled
def evidence_consistency(
    old: Annotated[Path, typer.Argument(metavar="OLD_CHECKPOINT_FILE", help="a checkpoint of this log kept "
                                        "earlier (`primum evidence checkpoint -o FILE`)")],
    key: Annotated[list[Path] | None, typer.Option("--key", help="public key PEM (or a directory of them) to "
                                                   "open the checkpoints with; default: the local keyring")] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """Check that the log extends a checkpoint kept earlier (RFC 9162 consistency proof); exit 1 if rewritten."""
    result = _evidence().consistency(old, _public_keys(key) if key else None)
    if output is Output.json:
        print_json({"ok": result.ok, "problem": result.problem, "origin": result.origin,
                    "old_size": result.old_size, "old_root": result.old_root.hex(), "new_size": result.new_size,
                    "new_root": None if result.new_root is None else result.new_root.hex(),
                    "proof": [h.hex() for h in result.proof]})
    elif result.ok:
        console.print(f"log {result.origin}\n"
                      f"  kept:    tree size {result.old_size}, root {result.old_root.hex()}\n"
                      f"  current: tree size {result.new_size}, root {(result.new_root or b'').hex()}\n"
                      f"[green]consistent[/]: the current log extends the checkpoint you kept "
                      f"(RFC 9162 consistency proof of {len(result.proof)} hashes verified)", highlight=False)
    else:
        err_console.print(f"[red]NOT consistent[/] {old}: {escape(result.problem or '')}", highlight=False)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_RELEASE_FAILED)


@evidence_app.command("list")
@handled
def evidence_list(
    release_id: Annotated[str | None, typer.Argument(metavar="[RELEASE]")] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
) -> None:
    """The log's entries (of one release and its artifacts' CI evidence, or all)."""
    store = _store()
    artifacts: list[str] = []
    if release_id is not None:
        record = store.get_rollout(release_id)
        if record is None:
            raise InputError.single("RELEASE", f"no release with id {release_id!r}", "`primum history` lists them")
        artifacts = [pin["digest"] for pin in record.artifacts.values()]
    entries = store.evidence_entries(release_id, artifacts)
    rows = [{"index": e.index, "kind": e.kind, "predicate_type": e.predicate_type, "release": e.rollout_id,
             "artifact": e.artifact, "at": e.at, "purged": e.purged_at is not None} for e in entries]
    if output is Output.json:
        print_json(rows)
        return
    for r in rows:
        what = r["release"] or (r["artifact"] or "")[:19]
        console.print(f"{r['index']:>7}  {r['kind']:<20} {what:<24} {r['predicate_type']}"
                      + ("  (purged)" if r["purged"] else ""), highlight=False)


@evidence_app.command("hold")
@handled
def evidence_hold(
    release_id: Annotated[str, typer.Argument(metavar="RELEASE")],
    reason: Annotated[str, typer.Option("--reason", help="the matter or ticket the hold is for")],
) -> None:
    """Place a legal hold: nothing of this release's evidence is purged until the hold is released."""
    hold_id = _evidence().hold(release_id, reason)
    console.print(f"legal hold {hold_id} on {release_id}: its evidence is kept until `primum evidence unhold "
                  f"{release_id}`", highlight=False)


@evidence_app.command("unhold")
@handled
def evidence_unhold(release_id: Annotated[str, typer.Argument(metavar="RELEASE")]) -> None:
    """Release the legal holds on a release; its evidence follows the retention period again."""
    count = _evidence().unhold(release_id)
    console.print(f"released {count} legal hold(s) on {release_id}", highlight=False)


@evidence_app.command("purge")
@handled
def evidence_purge(
    retention: Annotated[str, typer.Option("--retention", help="keep this long: 6y (default) or days, 2190d")] = "6y",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would be purged")] = False,
    allow_short: Annotated[bool, typer.Option("--allow-short-retention",
                                              help="allow less than 6 years (test installations)")] = False,
) -> None:
    """Purge evidence older than the retention period (legal holds excepted); the log stays verifiable."""
    purged = _evidence().purge(retention, dry_run=dry_run, allow_short=allow_short)
    verb = "would purge" if dry_run else "purged"
    console.print(f"{verb} {len(purged)} entries older than {retention}"
                  + (f" (indices {purged[0]}..{purged[-1]})" if purged else ""), highlight=False)


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
    keep: Annotated[Path | None, typer.Option(help="keep this run's state here instead of the last demo's "
                                              "directory ($XDG_STATE_HOME/primum/last-demo)")] = None,
) -> None:
    """Run a fictional hospital through a bad release (rolled back) and a good one (promoted)."""
    from primum.cli import output
    from primum.demo.run import run_demo

    raise typer.Exit(run_demo(output, fast=fast, keep=keep))


def main() -> None:  # pragma: no cover
    from primum.adapters.logs import configure_logging

    configure_logging()  # every log line passes redaction: no secret or PHI-like value reaches a log
    sys.exit(app())
