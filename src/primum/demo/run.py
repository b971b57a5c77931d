"""`primum demo`: a fictional hospital, a bad release and a good one, end to end.

Everything is real: the five services run as child processes behind real
routers, synthetic clinics send real HTTP traffic, the controller judges the
router's metrics. The demo checks that primum behaved (the regression was
caught and rolled back by analysis, the healthy release reached prod) and
exits 0 only then. It leaves no process behind, and keeps its state (store,
keys, logs, files, audit bundles) for the ordinary commands: in ``--keep DIR``
or else in the last demo's directory (``primum.demo.state``), replaced on each
run and never the user's own ``PRIMUM_HOME``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.markup import escape

from primum.adapters.evidence.personal import load_personal_key
from primum.adapters.store.records import EventRecord
from primum.adapters.store.repository import Store
from primum.adapters.targets.local.runtime import LocalRuntime
from primum.app.bootstrap import Primum
from primum.app.controller import Controller
from primum.app.governance import GovernanceService
from primum.app.identity import Caller
from primum.app.releases import ReleaseService
from primum.core.model.rollout import TERMINAL, Event, RolloutStatus
from primum.core.model.validate import load_estate
from primum.demo.files import APPROVERS, AUTHOR, FAULT_TENANT, OPERATOR, DemoFiles, write_demo
from primum.demo.state import demo_settings, explore_hint, fresh_last_demo, last_demo_dir

RELEASE_TIMEOUT_S = 150.0


@dataclass
class Outcome:
    title: str
    release_id: str
    expected: str
    status: RolloutStatus

    @property
    def ok(self) -> bool:
        return self.status.phase.value == self.expected


class DemoOutput(Protocol):
    """How the demo prints: the front end that runs it hands it one (the CLI: its rich console)."""

    console: Any

    def event_line(self, rollout_id: str, kind: str, message: str) -> str: ...

    def styled(self, phase: str) -> str: ...


console: Any = None  # bound by run_demo to the front end's output; the demo never imports the CLI


def event_line(rollout_id: str, kind: str, message: str) -> str:
    return _out.event_line(rollout_id, kind, message)


def styled(phase: str) -> str:
    return _out.styled(phase)


_out: Any = None


def run_demo(out: DemoOutput, fast: bool = False, keep: Path | None = None) -> int:
    """Run the demo, printing through ``out``; its state stays in ``keep``, or else in the last
    demo's directory (replaced on each run)."""
    global console, _out
    console, _out = out.console, out
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return _run(fast, keep.resolve())
    with fresh_last_demo(last_demo_dir()) as home:
        return _run(fast, home)


def _run(fast: bool, scratch: Path) -> int:
    started = time.time()
    files = write_demo(scratch / "files", fast=fast, people_dir=scratch / "people")
    estate = load_estate(files.estate)
    app = Primum(demo_settings(scratch))  # what the CLI builds with PRIMUM_HOME=scratch
    store, targets, service = app.store, app.targets, app.releases
    stop = threading.Event()
    controller = Controller(store, targets, lease_ttl=5.0, on_event=_show)
    thread = threading.Thread(target=controller.run, args=(stop, 0.2), name="primum-controller", daemon=True)
    console.rule("[bold]primum demo[/]: St Elsewhere General (fictional), synthetic clinics only")
    console.print(f"estate {estate.name}: {', '.join(estate.services)}; environments "
                  f"{' -> '.join(estate.environment_names())}; files in {files.root}")
    outcomes: list[Outcome] = []
    leftovers: list[int] = []
    bundles: Bundles | None = None
    analyses: dict[str, list[EventRecord]] = {}
    # SIGTERM (a CI timeout, `kill`) must still run the clean-up below.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        thread.start()
        outcomes.append(_release(service, files, files.baseline, estate, "0. baseline: first deployment of all five "
                                 "services", "promoted"))
        if outcomes[-1].ok:
            time.sleep(2.0)  # let synthetic traffic reach every service
            outcomes.append(_release(service, files, files.regression, estate, "A. scheduling-api 2.0.0 with an "
                                     "injected regression (+300 ms, 15% errors)", "rolled_back"))
            outcomes.append(_release(service, files, files.one_tenant, estate, "B. scheduling-api 2.0.2 that fails "
                                     f"one clinic only ({FAULT_TENANT})", "rolled_back"))
            outcomes.append(_release(service, files, files.healthy, estate, "C. scheduling-api 2.0.1, patient-portal "
                                     "1.1.0 (blue-green), hl7-interface 1.1.0 (rolling)", "promoted"))
            outcomes.append(_release(service, files, files.vulnerable, estate, "D. billing-sync 1.1.0, whose image "
                                     "scan finds a critical vulnerability", "denied"))
    finally:
        stop.set()
        thread.join(timeout=10)
        for o in outcomes:
            analyses[o.release_id] = service.analyses(o.release_id)
        controller.shutdown()
        if outcomes:
            bundles = _export_evidence(store, [o.release_id for o in outcomes], scratch / "evidence")
        runtime = LocalRuntime(scratch, estate.name)
        pids = runtime.all_pids()
        runtime.stop_all()
        leftovers = [pid for pid in pids if _alive(pid)]
        app.close()
        signal.signal(signal.SIGTERM, previous)
    behaved = _summary(outcomes, files, time.time() - started, leftovers, analyses, bundles)
    _explore(scratch, outcomes)
    return 0 if behaved else 1


@dataclass
class Bundles:
    directory: Path
    public_key: Path
    log: str  # `primum evidence verify` of the whole log, in words
    log_ok: bool
    verified: dict[str, tuple[Path, bool, str]]  # release -> (bundle, verified elsewhere, what the verifier said)


def _export_evidence(store: Store, release_ids: list[str], directory: Path) -> Bundles:
    """Export each release's audit bundle and verify it in a separate process with only the public key."""
    from cryptography.hazmat.primitives import serialization

    from primum.app.evidence import EvidenceService

    directory.mkdir(parents=True, exist_ok=True)
    public_key = directory / "primum-evidence.pub.pem"
    keyring = store.evidence.keys.keyring()
    public_key.write_bytes(b"".join(k.public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
                                    for k in keyring.public_keys().values()))
    report = store.verify_evidence()
    log = (f"{report.entries} signed entries, {report.checkpoints} signed checkpoints, root "
           f"{report.root_hash.hex()[:16]}…" if report.ok else f"NOT verified: {report.problem}")
    evidence = EvidenceService(store)
    paths = {}
    for rid in release_ids:
        paths[rid] = directory / f"{rid}.tar.gz"
        evidence.export(rid, paths[rid])

    def verify(rid: str) -> tuple[str, tuple[Path, bool, str]]:
        # another process, another home, no database and no key directory: only the bundle and the public key
        with tempfile.TemporaryDirectory(prefix="primum-auditor-") as auditor:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PRIMUM_HOME": auditor, "NO_COLOR": "1",
                   "COLUMNS": "200"}
            proc = subprocess.run([sys.executable, "-m", "primum", "evidence", "verify", str(paths[rid]), "--key",
                                   str(public_key)], cwd=auditor, env=env, capture_output=True, text=True,
                                  timeout=120)
        said = " ".join((proc.stdout if proc.returncode == 0 else proc.stderr).split())
        return rid, (paths[rid], proc.returncode == 0, said)

    with ThreadPoolExecutor(max_workers=2) as pool:
        verified = dict(pool.map(verify, release_ids))
    return Bundles(directory, public_key, log, report.ok, verified)


def _release(service: ReleaseService, files: DemoFiles, path: Path, estate, title: str, expected: str) -> Outcome:
    console.rule(title)
    _attach_ci_evidence(service.store, files.ci.get(path, []))
    submitted = service.submit(path, estate, caller=_person(files, AUTHOR))
    governance = GovernanceService(service.store)
    approved: set[str] = set()
    deadline = time.time() + RELEASE_TIMEOUT_S
    while True:
        record = service.get(submitted.record.id)
        status = RolloutStatus.model_validate(record.status)
        if status.phase in TERMINAL:
            break
        waiting = status.pause_reason or ""
        item = status.active_item()
        if item is not None and item.env not in approved and "waiting for approval" in waiting:
            approved.add(item.env)  # the people a hospital would page: a release manager and the CAB chair
            for person in APPROVERS:
                said = governance.record_decision(record.id, "approve", caller=_person(files, person),
                                                  env=item.env, comment="reviewed in the demo")
                console.print(f"[dim]{escape(said)}[/]")
        if status.phase.value == "paused" or time.time() > deadline:
            # a person would decide here; the demo expects no pause, so it aborts and reports it
            service.abort(record.id, caller=_person(files, OPERATOR))
            deadline = time.time() + 60
        time.sleep(0.25)
    return Outcome(title, record.id, expected, status)


def _person(files: DemoFiles, user: str) -> Caller:
    """The fictional person, by the key the demo generated for them."""
    return Caller(load_personal_key(files.people[user]))


def _attach_ci_evidence(store: Store, ci: list[tuple[str, Path]]) -> None:
    """What CI does after a build: `primum evidence add` its provenance, tests and scan for each artifact."""
    from primum.app.evidence import EvidenceService

    evidence = EvidenceService(store)
    added: dict[str, list[str]] = {}
    for ref, ci_file in ci:
        done = evidence.add(ref, ci_file)
        extra = f" ({done.summary['critical']} critical)" if done.summary.get("critical") else ""
        added.setdefault(ref.split("@")[0], []).append(f"{done.kind} #{done.index}{extra}")
    for name, kinds in added.items():
        console.print(f"[dim]CI evidence for {name}: {', '.join(kinds)} (signed into the log)[/]")


def _show(rollout_id: str, event: Event) -> None:
    # the step-by-step detail is in `primum status`; keep the story readable
    if event.kind not in ("step", "step_finished"):
        console.print(event_line(rollout_id, event.kind, event.message))


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _failed_rows(events: list[EventRecord]) -> list[dict]:
    """The failing checks of the last failed measurement."""
    for ev in reversed(events):
        report = ev.data.get("report", {})
        if report.get("outcome") == "Failed":
            return [r for r in report.get("results", []) if r["classification"] in ("High", "Low", "NodataFail")]
    return []


def _summary(outcomes: list[Outcome], files: DemoFiles, elapsed: float, leftovers: list[int],
             analyses: dict[str, list[EventRecord]], bundles: Bundles | None) -> bool:
    console.rule("[bold]what happened and why[/]")
    for o in outcomes:
        mark = "[green]as expected[/]" if o.ok else f"[red]expected {o.expected}[/]"
        console.print(f"[bold]{escape(o.title)}[/]\n  {o.release_id}: {styled(o.status.phase.value)} ({mark})")
        if o.status.reason:
            console.print(f"  why: {escape(o.status.reason)}")
        for item in o.status.items:
            line = f"  {item.env}/{item.service}: {styled(item.phase.value)}"
            if item.message:
                line += f" - {escape(item.message)}"
            console.print(line)
            for verdict in item.verdicts:
                shown = "(the why above)" if o.status.reason and verdict.reason in o.status.reason else verdict.reason
                console.print(f"      {verdict.kind} {verdict.result.value}: {escape(shown)}")
        events = analyses.get(o.release_id, [])
        failing = _failed_rows(events)
        if failing:
            console.print("  the judge's evidence (failing checks of the deciding measurement):")
            for row in failing:
                console.print(f"    - {escape(row['reason'])}")
        if events:
            console.print(f"  {len(events)} measurement(s) stored with their inputs: primum analysis list "
                          f"{o.release_id}  (with the PRIMUM_HOME below)")
    behaved = len(outcomes) == 5 and all(o.ok for o in outcomes)
    if len(outcomes) == 5:
        bad = outcomes[1].status
        caught = bad.reason is not None and "analysis failed" in bad.reason
        never_prod = all(i.phase.value == "not_started" for i in (*bad.items, *outcomes[2].status.items)
                         if i.env == "prod")
        tenant_rows = [r for r in _failed_rows(analyses.get(outcomes[2].release_id, []))
                       if r.get("slice") == FAULT_TENANT]
        vulnerable = outcomes[4].status.reason or ""
        scan_denied = "critical vulnerabilit" in vulnerable
        behaved = behaved and caught and never_prod and bool(tenant_rows) and scan_denied
        console.print(f"regression caught by analysis: {'yes' if caught else 'NO'}; one-clinic regression caught "
                      f"by the {FAULT_TENANT} slice: {'yes' if tenant_rows else 'NO'}; "
                      f"a bad version reached prod: {'no' if never_prod else 'YES'}; the critical vulnerability "
                      f"denied by policy: {'yes' if scan_denied else 'NO'}")
    if bundles is not None:
        console.rule("[bold]evidence[/]: signed, in a transparency log, verified offline")
        console.print(f"the log: {escape(bundles.log)}")
        for rid, (path, ok, said) in bundles.verified.items():
            mark = "[green]verified[/]" if ok else "[red]NOT verified[/]"
            console.print(f"  {rid}: {path}  {mark} by a separate process with only the public key")
            if not ok:
                console.print(f"    {escape(said)}")
        console.print(f"audit bundles (envelopes, proofs, checkpoint, report.md/.html) in {bundles.directory}")
        console.print(f"verify one yourself: primum evidence verify {next(iter(bundles.verified.values()))[0]} "
                      f"--key {bundles.public_key}")
        behaved = behaved and bundles.log_ok and all(ok for _, ok, _ in bundles.verified.values())
    elif outcomes:
        console.print("[red]no audit bundle was exported[/]")
        behaved = False
    if leftovers:
        console.print(f"[red]processes left behind: {leftovers}[/]")
        behaved = False
    verdict = "[green]primum behaved correctly[/]" if behaved else "[red]primum did NOT behave as expected[/]"
    console.print(f"{verdict} in {elapsed:.0f}s; no process left behind: {'yes' if not leftovers else 'NO'}")
    console.print(f"try it yourself: primum init my-estate  (writes {files.estate.name}, identities.yaml, policy/, "
                  "releases/, artifacts/, ci/)")
    return behaved


def _explore(home: Path, outcomes: list[Outcome]) -> None:
    """Close with how to explore this run's state with the ordinary commands."""
    console.rule("[bold]explore this run[/]")
    console.print(f"this run's state (database, keys, logs, files, audit bundles) is kept in {escape(str(home))}",
                  highlight=False)
    if not outcomes:
        return
    # the caught regression's measurements are the most telling; the baseline had no analysis
    shown = outcomes[1] if len(outcomes) > 1 else outcomes[0]
    console.print("explore it with the ordinary commands:")
    for line in explore_hint(home, shown.release_id):
        console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)  # never broken: it is copied
