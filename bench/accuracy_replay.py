"""Judge-only replay of the statistical cases on real router samples (fast).

One router, the stable version (1 instance) and one canary at a time, routed
50/50 (``affinity: none``, so every tenant's traffic splits) under the
estate's synthetic traffic. Each run starts a fresh canary with the case's
fault, lets traffic warm it up, then from t0 every second measures the window
[t0, now] exactly as the controller does (``app.gather.measure``) and judges
it with the planned item's settings in each mode (the same samples for both).

A run's outcome is the verdict at the end of the window (t0 + window), which is
where today's engine decides: Failed -> rolled back, Inconclusive -> paused
(held for a person), Successful -> promoted, no verdict (Error, no data) ->
failed. Its time to detect is the first second the judge failed the growing
window (what an engine deciding at every scrape on this judge could do), for
the runs that were rolled back.
"""

from __future__ import annotations

import time
from pathlib import Path

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
    planned_item,
    version_ref,
)
from accuracy_faults import FaultProfile, write_faulty
from primum.adapters.targets.local.target import LocalTarget
from primum.app.gather import measure
from primum.core.analysis.data import Outcome
from primum.core.analysis.judge import judge
from primum.core.model.actions import EnsureInstances, ServiceRuntimeSpec, SetRoute, VersionRef
from primum.core.model.analysis import MetricKind
from primum.core.model.validate import runtime_spec

ESTATE = "bench-replay"
SERVICE = "sched"
FENCE = 1
READY_TIMEOUT_S = 30.0
VERDICT_TO_OUTCOME = {Outcome.failed: ROLLED_BACK, Outcome.inconclusive: PAUSED, Outcome.successful: PROMOTED}


def wait_ready(target: LocalTarget, spec: ServiceRuntimeSpec, version: VersionRef) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        v = target.observe(spec).versions.get(version.key)
        if v is not None and v.ready >= 1 and v.starting == 0:
            return
        if v is not None and v.error and v.failed:
            raise RuntimeError(f"{version.describe()} failed to start: {v.error}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{version.describe()} not ready after {READY_TIMEOUT_S:.0f}s: {v}")
        time.sleep(0.1)


class Replay:
    """The replay's runtime: a router and the stable version, canaries swapped in one at a time."""

    def __init__(self, home: Path, artifacts: Path, window_s: float, rate: float):
        self.artifacts = artifacts
        self.estates = {m: bench_estate(ESTATE, {SERVICE: demo_service(m, window_s, rate, READY_TIMEOUT_S)})
                        for m in MODES}
        self.estate = self.estates[MODES[0]]
        self.spec = runtime_spec(self.estate, ENV, SERVICE)
        self.target = LocalTarget(home, ESTATE)
        self.canary: VersionRef | None = None
        self.stable = self.version("1.0.0", FaultProfile())
        self.versions = 0

    def version(self, label: str, fault: FaultProfile) -> VersionRef:
        path, digest = write_faulty(self.artifacts, DEMO_SERVICE, label, fault)
        return version_ref(str(path), digest, label)

    def start(self) -> None:
        self.target.prepare([self.spec])
        self.apply(EnsureInstances(env=ENV, service=SERVICE, version=self.stable, count=1))
        wait_ready(self.target, self.spec, self.stable)
        self.apply(SetRoute(env=ENV, service=SERVICE, weights={self.stable.key: 100}))

    def apply(self, action: EnsureInstances | SetRoute) -> None:
        self.target.apply(action, self.spec, FENCE)

    def calibrate(self, settle_s: float = 2.0, seconds: float = 4.0) -> float:
        """The stable version's mean latency through the router (ms), over ``seconds`` of traffic once its
        cold start has passed (``settle_s``): the latency faults are relative to it."""
        time.sleep(settle_s)
        start = time.time()
        time.sleep(seconds)
        item = planned_item(self.estate, SERVICE, self.stable, self.stable)
        data = measure(self.estate, item, self.target.router_admin(self.spec), start, time.time())
        for spec in item.analysis.metrics:
            metric = data.metrics.get(spec.name)
            if spec.kind is MetricKind.latency and metric is not None and metric.baseline is not None:
                values = [v for v in metric.baseline.values if v == v]
                if values:
                    return 1000.0 * sum(values) / len(values)
        raise RuntimeError("no latency samples of the stable version to calibrate on")

    def swap(self, fault: FaultProfile) -> VersionRef:
        """Start a fresh canary with ``fault``, route 50/50, stop the previous canary (drained first)."""
        self.versions += 1
        new = self.version(f"1.1.{self.versions}", fault)
        self.apply(EnsureInstances(env=ENV, service=SERVICE, version=new, count=1))
        wait_ready(self.target, self.spec, new)
        self.apply(SetRoute(env=ENV, service=SERVICE, weights={self.stable.key: 50, new.key: 50}))
        if self.canary is not None:
            self.apply(EnsureInstances(env=ENV, service=SERVICE, version=self.canary, count=0))
        self.canary = new
        return new

    def run(self, case: Case, mean_ms: float, window_s: float, warmup_s: float) -> dict[str, Run]:
        canary = self.swap(case.profile(mean_ms, warmup_s + window_s))
        items = {m: planned_item(self.estates[m], SERVICE, self.stable, canary) for m in MODES}
        router = self.target.router_admin(self.spec)
        time.sleep(warmup_s)
        t0 = time.time()
        first_fail: dict[str, float | None] = {m: None for m in MODES}
        last: dict[str, Outcome] = {}
        reasons: dict[str, str] = {}
        ticks = max(1, round(window_s))
        for k in range(1, ticks + 1):
            delay = t0 + k * window_s / ticks - time.time()
            if delay > 0:
                time.sleep(delay)
            end = time.time()
            for mode in MODES:
                report = judge(items[mode].analysis, measure(self.estates[mode], items[mode], router, t0, end))
                last[mode], reasons[mode] = report.outcome, report.reason
                if report.outcome is Outcome.failed and first_fail[mode] is None:
                    first_fail[mode] = end - t0
        runs = {}
        for mode in MODES:
            outcome = VERDICT_TO_OUTCOME.get(last[mode], FAILED)
            ttd = first_fail[mode] if outcome == ROLLED_BACK else None
            runs[mode] = Run(outcome, ttd, "" if outcome == PROMOTED else reasons[mode])
        return runs

    def close(self) -> None:
        self.target.close()


def run_replay(home: Path, artifacts: Path, plan: list[Case], runs: int, window_s: float, warmup_s: float,
               rate: float, progress) -> tuple[list[CaseResult], float]:
    """Every replay case ``runs`` times; (results, the stable version's calibrated mean latency in ms)."""
    replay = Replay(home, artifacts, window_s, rate)
    try:
        replay.start()
        mean_ms = replay.calibrate()
        progress(f"replay: stable mean latency {mean_ms:.1f} ms through the router; {len(plan)} cases x {runs} runs")
        results = []
        for case in plan:
            result = CaseResult(case)
            for _ in range(runs):
                for mode, run in replay.run(case, mean_ms, window_s, warmup_s).items():
                    result.runs[mode].append(run)
            results.append(result)
            progress(f"  {case.name:<16} " + "; ".join(
                f"{m} " + " ".join(r.outcome for r in result.runs[m]) for m in MODES))
        return results, mean_ms
    finally:
        replay.close()
