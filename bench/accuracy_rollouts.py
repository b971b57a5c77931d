"""The cases that need the real controller: canary rollouts on the local target.

One estate with one service per (case, mode), each the demo's clinical-critical
scheduling-api (canary 25% -> analysis -> 50% -> analysis, ``--window`` s
windows), all rolled out in parallel by one ``app.controller.Controller`` on
the local target, one release per service (``app.releases.ReleaseService``),
``--runs`` batches one after the other. The stable versions are deployed
first, by a release each.

* gross errors / gross latency: time to detect is from the canary taking traffic
  (the first route step giving it weight) to the rollback decision (the
  ``rollback_started`` event);
* dead on arrival: the canary's ``/healthz`` never passes; from the item's start
  to the rollback decision;
* metrics outage: a healthy canary whose metrics source stops answering once the
  rollout's first measurement is recorded, until the rollout ends (the target's
  ``router_admin`` names a socket nobody listens on, so the builtin provider fails
  while the router keeps serving); from the outage to the rollback decision. A
  promotion while the metrics are missing is counted.

A rollout that pauses for a person is counted as paused, then aborted so the
batch can finish.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import yaml

from accuracy_cases import (
    DEMO_SERVICE,
    ENV,
    FAILED,
    MODES,
    PAUSED,
    PROMOTED,
    ROLLED_BACK,
    Case,
    CaseResult,
    Run,
    bench_estate,
    demo_service,
    release_doc,
    version_ref,
)
from accuracy_faults import FaultProfile, write_faulty
from primum.adapters.evidence.personal import load_personal_key, public_line
from primum.adapters.targets.base import Target
from primum.adapters.targets.registry import Targets
from primum.app.bootstrap import Primum, Settings
from primum.app.controller import Controller
from primum.app.governance import GovernanceService
from primum.app.identity import Caller
from primum.app.releases import ReleaseService
from primum.core.model.actions import ServiceRuntimeSpec, VersionRef
from primum.core.model.estate import Estate
from primum.core.model.rollout import TERMINAL, RolloutStatus
from primum.demo.files import APPROVERS, AUTHOR, enrol_people, identities_text

ESTATE = "bench-rollouts"
RELEASE_MANAGER = "lee-chen"  # the demo's release manager: may abort any release
DEAD_URL = "unix:/nonexistent/primum-bench-dead.sock"  # no such socket: every connection fails
POLL_S = 0.2


class MetricsOutage:
    """A target whose router URL, for the services in ``down``, is one nobody answers: the builtin metric
    source fails as a metrics backend that went away would, while the router keeps serving traffic."""

    def __init__(self, inner: Target, down: set[str]):
        self._inner = inner
        self._down = down

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def router_admin(self, spec: ServiceRuntimeSpec) -> str | None:
        return DEAD_URL if spec.service in self._down else self._inner.router_admin(spec)


class OutageTargets(Targets):
    def __init__(self, home: Path):
        super().__init__(home)
        self.down: set[str] = set()
        self._wrapped: dict[int, MetricsOutage] = {}

    def for_service(self, estate: Estate, service: str) -> Target:
        inner = super().for_service(estate, service)
        if id(inner) not in self._wrapped:
            self._wrapped[id(inner)] = MetricsOutage(inner, self.down)
        return self._wrapped[id(inner)]  # type: ignore[return-value]


def service_name(case: Case, mode: str) -> str:
    return f"{case.name.replace('+', '').replace('%', '')}-{mode}"


class Rollouts:
    def __init__(self, home: Path, files: Path, plan: list[Case], window_s: float, rate: float, startup_s: float):
        self.files = files
        self.plan = plan
        self.window_s = window_s
        self.startup_s = startup_s
        self.names = {(c.name, m): service_name(c, m) for c in plan for m in MODES}
        identities = files / "identities.yaml"
        identities.parent.mkdir(parents=True, exist_ok=True)
        # the demo's fictional people, each with a key made for this run (never committed)
        self.people = {user: Caller(load_personal_key(path))
                       for user, path in enrol_people(files / "people").items()}
        identities.write_text(identities_text({user: public_line(caller.key.public_key, user)
                                               for user, caller in self.people.items()}))
        self.estate = bench_estate(ESTATE, {self.names[c.name, m]: demo_service(m, window_s, rate, startup_s)
                                            for c in plan for m in MODES}, identities)
        self.app = Primum(Settings.from_environment({"PRIMUM_HOME": str(home)}))
        self.releases = ReleaseService(self.app.store)
        self.governance = GovernanceService(self.app.store)
        self.approved: set[str] = set()
        self.targets = OutageTargets(home)
        self.controller = Controller(self.app.store, self.targets, lease_ttl=5.0)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.run, args=(self.stop, POLL_S), daemon=True,
                                       name="bench-controller")

    def artifact(self, label: str, fault: FaultProfile) -> VersionRef:
        path, digest = write_faulty(self.files / "artifacts", DEMO_SERVICE, label, fault)
        return version_ref(str(path), digest, label)

    def submit(self, release_id: str, service: str, ref: VersionRef) -> str:
        path = self.files / "releases" / f"{release_id}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(release_doc(release_id, {service: ref}), sort_keys=False))
        return self.releases.submit(path, self.estate, caller=self.people[AUTHOR]).record.id

    def status(self, rid: str) -> RolloutStatus:
        """The rollout's status, approving it first when it waits for approval (the demo's clinical-critical
        service is a high-impact change: a person approves it before it starts, as in the demo)."""
        status = RolloutStatus.model_validate(self.releases.get(rid).status)
        if rid not in self.approved and "waiting for approval" in (status.pause_reason or ""):
            self.approved.add(rid)
            for person in APPROVERS:  # the demo's release manager and CAB chair (synthetic people)
                self.governance.record_decision(rid, "approve", caller=self.people[person], env=ENV,
                                                comment="accuracy bench")
        return status

    def start(self) -> None:
        """Deploy the stable version of every service (one release each, in parallel)."""
        self.thread.start()
        stable = self.artifact("1.0.0", FaultProfile())
        ids = [self.submit(f"base-{name}", name, stable) for name in self.names.values()]
        deadline = time.time() + 60 + 4 * self.startup_s
        while True:
            phases = [self.status(i).phase.value for i in ids]
            if all(p in {t.value for t in TERMINAL} for p in phases):
                break
            if time.time() > deadline:
                raise RuntimeError(f"the stable versions were not deployed in time: {phases}")
            time.sleep(POLL_S)
        if any(p != PROMOTED for p in phases):
            raise RuntimeError(f"the stable versions were not deployed: {dict(zip(ids, phases, strict=True))}")

    def batch(self, run: int, mean_ms: float) -> dict[tuple[str, str], Run]:
        """One rollout per (case, mode), in parallel; their runs."""
        ramp = 2 * self.window_s
        ids: dict[tuple[str, str], str] = {}
        for i, case in enumerate(self.plan):
            for mode in MODES:
                ref = self.artifact(f"2.{run}.{i}", case.profile(mean_ms, ramp))
                ids[case.name, mode] = self.submit(f"r{run}-{self.names[case.name, mode]}", self.names[case.name, mode],
                                                   ref)
        outage_at: dict[str, float] = {}
        paused: set[str] = set()
        by_case = {c.name: c for c in self.plan}
        deadline = time.time() + 60 + 4 * self.startup_s + 12 * self.window_s
        done: dict[str, RolloutStatus] = {}
        promoted_in_outage: set[str] = set()
        while len(done) < len(ids) and time.time() < deadline:
            for (case_name, mode), rid in ids.items():
                if rid in done:
                    continue
                status = self.status(rid)
                name = self.names[case_name, mode]
                if (case_name == "metrics-outage" and name not in self.targets.down
                        and self.app.store.events_of_kind(rid, "analysis")):
                    self.targets.down.add(name)
                    outage_at[rid] = time.time()
                if status.phase in TERMINAL:
                    done[rid] = status
                    if status.phase.value == PROMOTED and name in self.targets.down:
                        promoted_in_outage.add(rid)
                elif status.phase.value == PAUSED and rid not in paused:
                    paused.add(rid)
                    # a person would decide; the batch goes on
                    self.releases.abort(rid, caller=self.people[RELEASE_MANAGER])
            time.sleep(POLL_S)
        self.targets.down.clear()
        runs = {}
        for key, rid in ids.items():
            case = by_case[key[0]]
            status = done.get(rid)
            if rid in paused:
                outcome = PAUSED
            elif status is None:
                outcome = FAILED
            else:
                outcome = status.phase.value if status.phase.value in (PROMOTED, ROLLED_BACK) else FAILED
            ttd = self.time_to_detect(rid, case, outage_at.get(rid))
            note = "timed out" if status is None else (status.reason or "")
            runs[key] = Run(outcome, ttd if outcome in (ROLLED_BACK, FAILED) else None, note,
                            promoted_without_metrics=rid in promoted_in_outage)
        for rid in ids.values():
            if rid not in done:
                self.releases.abort(rid, caller=self.people[RELEASE_MANAGER])
        return runs

    def time_to_detect(self, rid: str, case: Case, outage_at: float | None) -> float | None:
        events = self.app.store.events(rid)
        decided = next((e.at for e in events if e.kind == "rollback_started"), None)
        if decided is None:
            return None
        if case.name == "metrics-outage":
            start = outage_at
        elif case.name == "dead-on-arrival":
            start = next((e.at for e in events if e.kind == "item_started"), None)
        else:
            start = next((e.at for e in events if e.kind == "step" and e.data.get("step", {}).get("kind") == "route"
                          and e.data["step"].get("weight", 0) > 0), None)
        return None if start is None else decided - start

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        self.controller.shutdown()
        self.app.close()


def run_rollouts(home: Path, files: Path, plan: list[Case], runs: int, window_s: float, rate: float,
                 startup_s: float, mean_ms: float, progress) -> list[CaseResult]:
    rollouts = Rollouts(home, files, plan, window_s, rate, startup_s)
    try:
        started = time.time()
        rollouts.start()
        progress(f"rollouts: {len(rollouts.names)} services deployed in {time.time() - started:.0f}s "
                 f"({ENV}); {runs} batch(es) of {len(rollouts.names)} parallel rollouts")
        results = {c.name: CaseResult(c) for c in plan}
        for run in range(runs):
            started = time.time()
            for (case_name, mode), r in rollouts.batch(run, mean_ms).items():
                results[case_name].runs[mode].append(r)
            progress(f"  batch {run + 1}/{runs} in {time.time() - started:.0f}s: " + "; ".join(
                f"{c.name} " + "/".join(results[c.name].runs[m][-1].outcome for m in MODES) for c in plan))
        return list(results.values())
    finally:
        rollouts.close()
