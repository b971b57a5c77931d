"""Canary judge accuracy: detection rate, false-alarm rate and time to detect,
default (primum) mode against kayenta mode, on the real local runtime.

One router, the stable scheduling-api (1 instance) and one canary version
(1 instance) at a time, routed 50/50 with ``affinity: none`` so every tenant's
traffic splits, under synthetic traffic (``--rate`` req/s spread over
``--tenants`` synthetic clinics). For each scenario the canary is swapped in
(the router and the stable instance stay), traffic warms it up for
``--warmup`` seconds, then from t0 every second for ``--horizon`` seconds the
window [t0, now] (cumulative) is collected once with the builtin provider and
the same data is judged twice: ``AnalysisSettings()`` (mode primum) and
``AnalysisSettings(mode="kayenta")`` (the same default metrics).

Scenarios: healthy canaries (identical code, another version label, so another
digest; the service's own latency jitter makes them noisy baselines: any
Failed verdict is a false alarm), mean latency and error-rate regressions of
several sizes, a tail regression (a large delay for the requests of 1 of 20
tenants, 5 % of requests: the median barely moves) and one-tenant regressions
(errors or latency for 1 of 5 tenants; the tenant set is switched to 5 for
these, last). Per mode: verdict (Failed if any tick failed, else the last
tick's outcome), time to detect (t0 to the first Failed), inconclusive and
error ticks. A regression scenario stops early once both modes have failed
(``--full-horizon`` runs every tick), so its tick counts cover the ticks
judged. The service's SLOs are passed as a rollout would pass them (the
default ``Slo()``: 1 % errors, p95 500 ms; ``--no-slo`` leaves them out, to
see the statistics alone); "caught by" names the checks that failed first.
Figures, not assertions. Every process is stopped on the way out.

    .venv/bin/python bench/judge_accuracy.py
    .venv/bin/python bench/judge_accuracy.py --quick
    .venv/bin/python bench/judge_accuracy.py --horizon 20 --rate 120 --no-slo
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from primum.adapters.providers.collect import collect
from primum.adapters.targets.local import processes
from primum.adapters.targets.local.runtime import LocalRuntime
from primum.adapters.targets.local.target import LocalTarget
from primum.core.analysis.data import Classification, JudgeReport, MeasurementData, Outcome
from primum.core.analysis.judge import judge
from primum.core.model.actions import EnsureInstances, ServiceRuntimeSpec, SetRoute, TrafficSpec, VersionRef
from primum.core.model.analysis import AnalysisSettings, JudgeMode, MetricKind
from primum.core.model.estate import Slo
from primum.demo.render import write_artifact

ESTATE = "bench-judge"
ENV = "bench"
SERVICE = "scheduling-api"  # a demo service with natural latency jitter (2-12 ms per request)
PATHS = ("/appointments", "/slots")
FENCE = 1
MODES = (JudgeMode.primum.value, JudgeMode.kayenta.value)
READY_TIMEOUT_S = 30.0
FAULT_TENANT = "clinic-03"


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # healthy, latency, errors, tail, tenant
    size: str
    extra_latency_ms: int = 0
    error_rate: float = 0.0
    fault_tenants: tuple[str, ...] = ()
    tenants: int = 0  # 0: the run's --tenants; else this many (tenant scenarios)

    @property
    def regression(self) -> bool:
        return self.kind != "healthy"


@dataclass
class ModeResult:
    outcomes: list[str] = field(default_factory=list)
    ttd: float | None = None  # seconds from t0 to the first Failed
    caught_by: str = ""  # the checks that failed first
    first_fail_reason: str = ""
    first_held: float | None = None  # seconds from t0 to the first Inconclusive
    first_held_reason: str = ""
    last_reason: str = ""

    @property
    def detected(self) -> bool:
        return self.ttd is not None

    @property
    def verdict(self) -> str:
        if self.detected:
            return Outcome.failed.value
        return self.outcomes[-1] if self.outcomes else "-"

    @property
    def flagged(self) -> bool:
        """Any tick Failed or Inconclusive: the rollout would have stopped or paused for a person."""
        return any(o in (Outcome.failed.value, Outcome.inconclusive.value) for o in self.outcomes)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o == outcome.value)


@dataclass
class ScenarioResult:
    scenario: Scenario
    modes: dict[str, ModeResult]
    ticks: int = 0
    baseline_n: int = 0
    canary_n: int = 0
    judge_s: float = 0.0  # wall time spent judging (both modes), all ticks


def scenarios(tenants: list[str], quick: bool) -> list[Scenario]:
    one_of_many = (tenants[len(tenants) // 2],)
    many = len(tenants)
    tail = Scenario("tail", "tail", f"+300 ms, 1/{many} tenants", extra_latency_ms=300, fault_tenants=one_of_many)
    tenant_err = Scenario("tenant-errors", "tenant", "20% 5xx, 1/5 tenants", error_rate=0.20,
                          fault_tenants=(FAULT_TENANT,), tenants=5)
    tenant_lat = Scenario("tenant-latency", "tenant", "+100 ms, 1/5 tenants", extra_latency_ms=100,
                          fault_tenants=(FAULT_TENANT,), tenants=5)
    if quick:
        return [
            Scenario("healthy-1", "healthy", "-"),
            Scenario("healthy-2", "healthy", "-"),
            Scenario("latency-50ms", "latency", "+50 ms", extra_latency_ms=50),
            Scenario("errors-5pct", "errors", "5% 5xx", error_rate=0.05),
            tail,
            tenant_err,
        ]
    return [
        Scenario("healthy-1", "healthy", "-"),
        Scenario("healthy-2", "healthy", "-"),
        Scenario("healthy-3", "healthy", "-"),
        Scenario("healthy-4", "healthy", "-"),
        Scenario("latency-5ms", "latency", "+5 ms", extra_latency_ms=5),
        Scenario("latency-15ms", "latency", "+15 ms", extra_latency_ms=15),
        Scenario("latency-50ms", "latency", "+50 ms", extra_latency_ms=50),
        Scenario("latency-200ms", "latency", "+200 ms", extra_latency_ms=200),
        Scenario("errors-2pct", "errors", "2% 5xx", error_rate=0.02),
        Scenario("errors-5pct", "errors", "5% 5xx", error_rate=0.05),
        Scenario("errors-20pct", "errors", "20% 5xx", error_rate=0.20),
        tail,
        Scenario("healthy-5t", "healthy", "-, 5 tenants", tenants=5),
        tenant_err,
        tenant_lat,
    ]


def artifact(directory: Path, label: str, sc: Scenario | None = None) -> VersionRef:
    path, digest = write_artifact(
        directory, SERVICE, label,
        extra_latency_ms=sc.extra_latency_ms if sc else 0,
        error_rate=sc.error_rate if sc else 0.0,
        fault_tenants=sc.fault_tenants if sc else (),
    )
    return VersionRef(digest=digest, artifact=str(path), label=label)


def make_spec(tenants: list[str], rate: float) -> ServiceRuntimeSpec:
    return ServiceRuntimeSpec(
        estate=ESTATE,
        env=ENV,
        service=SERVICE,
        command=(sys.executable, "{artifact}", "--port", "{port}"),
        affinity="none",
        tenants=tuple(tenants),
        traffic=TrafficSpec(rate=rate, paths=PATHS, tenants=tuple(tenants)),
    )


def wait_ready(target: LocalTarget, spec: ServiceRuntimeSpec, version: VersionRef) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        obs = target.observe(spec)
        v = obs.versions.get(version.key)
        if v is not None and v.ready >= 1 and v.starting == 0:
            return
        if v is not None and v.error and v.failed:
            raise RuntimeError(f"{version.describe()} failed to start: {v.error}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{version.describe()} not ready after {READY_TIMEOUT_S:.0f}s: {v}")
        time.sleep(0.1)


def ensure(target: LocalTarget, spec: ServiceRuntimeSpec, version: VersionRef, count: int) -> None:
    target.apply(EnsureInstances(env=spec.env, service=spec.service, version=version, count=count), spec, FENCE)


def route(target: LocalTarget, spec: ServiceRuntimeSpec, weights: dict[str, int]) -> None:
    target.apply(SetRoute(env=spec.env, service=spec.service, weights=weights), spec, FENCE)


def failing_checks(report: JudgeReport) -> str:
    """The distinct checks that failed in a report, e.g. ``fisher-exact, tail-p99[clinic-03]``."""
    bad = (Classification.high, Classification.low, Classification.nodata_fail, Classification.error)
    seen: list[str] = []
    for r in report.results:
        if r.classification in bad and not r.muted:
            name = r.check + (f"[{r.slice}]" if r.slice is not None else "") + f" n={r.baseline_n}/{r.canary_n}"
            p_value = r.statistics.get("p_value")
            if p_value is not None:
                name += f" p={p_value:.2g}"
            if name not in seen:
                seen.append(name)
    if len(seen) > 3:
        seen = [*seen[:3], f"+{len(seen) - 3}"]
    return ", ".join(seen)


def sample_counts(settings: AnalysisSettings, data: MeasurementData) -> tuple[int, int]:
    """Requests of the baseline and the canary in the window (from the latency metric)."""
    for metric in settings.metrics:
        if metric.kind is MetricKind.latency:
            md = data.metrics.get(metric.name)
            if md is not None and md.baseline is not None and md.canary is not None:
                return len(md.baseline.values), len(md.canary.values)
    return 0, 0


def run_scenario(sc: Scenario, target: LocalTarget, spec: ServiceRuntimeSpec, stable: VersionRef,
                 canary: VersionRef, settings: dict[str, AnalysisSettings], args: argparse.Namespace,
                 slo: tuple[float | None, float | None]) -> ScenarioResult:
    router_url = target.router_admin(spec)  # the records are on the admin socket
    tenants = list(spec.tenants)
    result = ScenarioResult(sc, {m: ModeResult() for m in MODES})
    time.sleep(args.warmup)
    t0 = time.time()
    for k in range(1, int(args.horizon) + 1):
        delay = t0 + k * args.interval - time.time()
        if delay > 0:
            time.sleep(delay)
        end = time.time()
        data = collect(settings[MODES[0]], env=spec.env, service=spec.service, baseline=stable, canary=canary,
                       start=t0, end=end, tenants=tenants, router_url=router_url,
                       slo_error_rate=slo[0], slo_p95_s=slo[1])
        result.ticks = k
        result.baseline_n, result.canary_n = sample_counts(settings[MODES[0]], data)
        started = time.perf_counter()
        for mode in MODES:
            report = judge(settings[mode], data)
            mr = result.modes[mode]
            mr.outcomes.append(report.outcome.value)
            mr.last_reason = report.reason
            if report.outcome is Outcome.inconclusive and mr.first_held is None:
                mr.first_held, mr.first_held_reason = end - t0, report.reason
            if report.outcome is Outcome.failed and mr.ttd is None:
                mr.ttd = end - t0
                mr.caught_by = failing_checks(report)
                mr.first_fail_reason = report.reason
        result.judge_s += time.perf_counter() - started
        if sc.regression and not args.full_horizon and all(m.detected for m in result.modes.values()):
            break
    return result


def swap_canary(target: LocalTarget, spec: ServiceRuntimeSpec, stable: VersionRef, new: VersionRef,
                old: VersionRef | None) -> None:
    """Start ``new``, route 50/50 stable/new, stop ``old`` (drained from the router first)."""
    ensure(target, spec, new, 1)
    wait_ready(target, spec, new)
    route(target, spec, {stable.key: 50, new.key: 50})
    if old is not None:
        ensure(target, spec, old, 0)


def fmt_ttd(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def print_table(results: list[ScenarioResult]) -> None:
    head = f"{'scenario':<15} {'kind':<8} {'size':<22} {'ticks':>5} {'n base/can':>11}"
    for mode in MODES:
        head += f" | {mode + ' verdict':<16} {'ttd':>6} {'inc':>3} {'err':>3}"
    head += " | caught by (primum; kayenta)"
    print(head)
    print("-" * len(head))
    for r in results:
        sc = r.scenario
        line = f"{sc.name:<15} {sc.kind:<8} {sc.size:<22} {r.ticks:>5} {f'{r.baseline_n}/{r.canary_n}':>11}"
        for mode in MODES:
            m = r.modes[mode]
            verdict = m.verdict + (" (FA)" if m.detected and not sc.regression else "")
            if sc.regression and not m.detected:
                verdict += " (miss)"
            line += (f" | {verdict:<16} {fmt_ttd(m.ttd):>6} {m.count(Outcome.inconclusive):>3}"
                     f" {m.count(Outcome.error):>3}")
        caught = "; ".join(r.modes[mode].caught_by or "-" for mode in MODES)
        print(line + f" | {caught}")


def rate(num: int, den: int) -> str:
    return f"{num}/{den} ({100 * num / den:.0f}%)" if den else "-"


def median_ttd(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}s" if values else "-"


def print_summary(results: list[ScenarioResult]) -> None:
    regressions = [r for r in results if r.scenario.regression]
    healthy = [r for r in results if not r.scenario.regression]
    kinds = list(dict.fromkeys(r.scenario.kind for r in regressions))
    print()
    print(f"{'mode':<8} {'detection':>12} {'false alarms':>13} {'median ttd':>10} {'inconcl. ticks':>14} "
          f"{'flagged':>12} {'healthy held':>12}  " + "  ".join(f"{k + ' det/ttd':<16}" for k in kinds))
    for mode in MODES:
        det = [r.modes[mode].ttd for r in regressions if r.modes[mode].detected]
        fa = sum(1 for r in healthy if r.modes[mode].detected)
        inc = sum(r.modes[mode].count(Outcome.inconclusive) for r in results)
        ticks = sum(r.ticks for r in results)
        per_kind = []
        for k in kinds:
            of_kind = [r for r in regressions if r.scenario.kind == k]
            got = [r.modes[mode].ttd for r in of_kind if r.modes[mode].detected]
            per_kind.append(f"{f'{len(got)}/{len(of_kind)} {median_ttd(got)}':<16}")
        flagged = sum(1 for r in regressions if r.modes[mode].flagged)
        held = sum(1 for r in healthy if r.modes[mode].flagged)
        print(f"{mode:<8} {rate(len(det), len(regressions)):>12} {rate(fa, len(healthy)):>13} "
              f"{median_ttd(det):>10} {f'{inc}/{ticks}':>14} {rate(flagged, len(regressions)):>12} "
              f"{rate(held, len(healthy)):>12}  " + "  ".join(per_kind))


def print_notes(results: list[ScenarioResult]) -> None:
    notes: list[str] = []
    for r in results:
        for mode in MODES:
            m = r.modes[mode]
            if m.detected and not r.scenario.regression:
                notes.append(f"{r.scenario.name} [{mode}] false alarm at {fmt_ttd(m.ttd)}: {m.first_fail_reason}")
            elif not r.scenario.regression and m.first_held is not None:
                notes.append(f"{r.scenario.name} [{mode}] held (Inconclusive) at {fmt_ttd(m.first_held)}, "
                             f"{m.count(Outcome.inconclusive)} ticks: {m.first_held_reason}")
            elif r.scenario.regression and not m.detected:
                notes.append(f"{r.scenario.name} [{mode}] missed; last verdict {m.verdict}: {m.last_reason}")
    if notes:
        print()
        for note in notes:
            print("  " + note)


def stop_everything(target: LocalTarget | None, home: Path) -> None:
    if target is not None:
        with contextlib.suppress(Exception):
            target.close()
    try:
        LocalRuntime(home, ESTATE).stop_all()
    finally:
        # Last line of defence: kill every process group this process started.
        for proc in processes.started_children():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer scenarios and a shorter horizon (8 s)")
    parser.add_argument("--horizon", type=float, default=None, help="seconds judged per scenario (default 12)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between judgements")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of traffic before t0")
    parser.add_argument("--rate", type=float, default=100.0, help="synthetic requests per second")
    parser.add_argument("--tenants", type=int, default=20, help="synthetic tenants (clinic-01..)")
    parser.add_argument("--no-slo", action="store_true", help="do not pass the service's SLOs to the judge")
    parser.add_argument("--full-horizon", action="store_true",
                        help="judge every tick even after both modes detected a regression")
    args = parser.parse_args()
    if args.horizon is None:
        args.horizon = 8.0 if args.quick else 12.0
    if args.tenants < 5:
        parser.error("--tenants must be at least 5")

    wall = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below runs
    many = [f"clinic-{i:02d}" for i in range(1, args.tenants + 1)]
    five = many[:5]
    plan = scenarios(many, args.quick)
    default_slo = Slo()
    slo = (None, None) if args.no_slo else (default_slo.error_rate, default_slo.p95_ms / 1000.0)
    settings = {mode: AnalysisSettings(mode=JudgeMode(mode)) for mode in MODES}

    print(f"judge accuracy: {SERVICE}, 1 stable + 1 canary instance, 50/50, affinity none, "
          f"{args.rate:g} req/s over {args.tenants} tenants (5 for the tenant scenarios)")
    print(f"warm-up {args.warmup:g}s, horizon {args.horizon:g}s, a judgement every {args.interval:g}s "
          f"over [t0, now]; SLOs {'none' if args.no_slo else f'error rate {slo[0]:g}, p95 {slo[1]:g}s'}; "
          f"confidence {settings['primum'].confidence:g}; {len(plan)} scenarios")
    print()

    with tempfile.TemporaryDirectory(prefix="primum-bench-judge-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        artifacts = Path(tmp) / "artifacts"
        target: LocalTarget | None = None
        results: list[ScenarioResult] = []
        try:
            stable = artifact(artifacts, "1.0.0")
            canaries = [artifact(artifacts, f"1.0.{i + 1}", sc) for i, sc in enumerate(plan)]
            target = LocalTarget(home, ESTATE)
            spec = make_spec(many, args.rate)
            target.prepare([spec])
            ensure(target, spec, stable, 1)
            wait_ready(target, spec, stable)
            route(target, spec, {stable.key: 100})
            previous: VersionRef | None = None
            setup = time.perf_counter() - wall
            for sc, canary in zip(plan, canaries, strict=True):
                wanted = five if sc.tenants == 5 else many
                if list(spec.tenants) != wanted:
                    spec = make_spec(wanted, args.rate)
                    target.prepare([spec])  # same router: pushes the tenant list, retargets traffic
                swap_canary(target, spec, stable, canary, previous)
                previous = canary
                results.append(run_scenario(sc, target, spec, stable, canary, settings, args, slo))
                r = results[-1]
                print(f"  {sc.name:<15} done: {r.ticks} ticks, "
                      + ", ".join(f"{m} {r.modes[m].verdict} {fmt_ttd(r.modes[m].ttd)}" for m in MODES),
                      flush=True)
        finally:
            stop_everything(target, home)

    print()
    print_table(results)
    print_summary(results)
    print_notes(results)
    ticks = sum(r.ticks for r in results)
    judging = sum(r.judge_s for r in results)
    print()
    print("verdict: Failed if any tick failed within the horizon, else the last tick's outcome; "
          "ttd: seconds from t0 to the first Failed;\ninc/err: Inconclusive/Error ticks; (FA): a false alarm "
          "(healthy canary failed); n base/can: requests in the last window judged;\n"
          "caught by: the checks failing at the first Failed tick, [tenant] for a slice, n=baseline/canary samples, "
          "p: the test's p-value;\n"
          "detection: regressions with a Failed tick; false alarms: healthy canaries with a Failed tick; "
          "flagged / healthy held: the same counting Inconclusive ticks too (a rollout pauses for a person)")
    print(f"judge: {1000 * judging / max(1, 2 * ticks):.0f} ms per judgement on average; "
          f"setup {setup:.1f}s; wall time {time.perf_counter() - wall:.1f}s")


if __name__ == "__main__":
    main()
