"""Judge benchmark: the cost of one measurement's judgement against the bare rank test.

``--metrics`` latency-like metrics (builtin latency, tail check on, no tenant
slices), each with ``--samples`` samples per version (lognormal, a third of
the canaries shifted), judged in primum mode by ``judge()``: NaN handling,
Mann-Whitney, the Hodges-Lehmann shift with its confidence interval (three
to four order statistics of the n·m pairwise differences, found without
forming them), the tail check, summaries, explanations and scores. Against
it, in the same run on the same pairs: a bare loop of
``scipy.stats.mannwhitneyu(canary, baseline, method="asymptotic")``, which
gives a p-value and nothing else. Best of ``--repeat`` runs each. Figures,
not assertions.

    .venv/bin/python bench/judge.py
    .venv/bin/python bench/judge.py --metrics 50 --samples 1000 --repeat 7
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy import stats

from primum.core.analysis.data import MeasurementData, MetricData, Samples
from primum.core.analysis.judge import judge
from primum.core.model.analysis import AnalysisSettings, EffectSize, JudgeMode, MetricKind, MetricSpec, TailCheck


def settings(metrics: int, mode: JudgeMode) -> AnalysisSettings:
    return AnalysisSettings(mode=mode, slo_checks=False, metrics=[
        MetricSpec(name=f"latency-{i}", kind=MetricKind.latency, group=f"group-{i % 5}", tail=TailCheck(),
                   effect=EffectSize(allowed_increase=1.1, critical_increase=2.0))
        for i in range(metrics)])


def measurement(metrics: int, samples: int, seed: int) -> MeasurementData:
    rng = np.random.default_rng(seed)
    data: dict[str, MetricData] = {}
    for i in range(metrics):
        base = rng.lognormal(np.log(0.05), 0.4, samples)
        canary = rng.lognormal(np.log(0.05 * (1.15 if i % 3 == 0 else 1.0)), 0.4, samples)
        data[f"latency-{i}"] = MetricData(metric=f"latency-{i}", baseline=Samples(values=base.tolist()),
                                          canary=Samples(values=canary.tolist()))
    return MeasurementData(start=0.0, end=60.0, baseline_version="v1", canary_version="v2", metrics=data)


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=int, default=50)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    data = measurement(args.metrics, args.samples, args.seed)
    pairs = [(np.asarray(m.canary.values), np.asarray(m.baseline.values))
             for m in data.metrics.values() if m.canary and m.baseline]
    primum, kayenta = settings(args.metrics, JudgeMode.primum), settings(args.metrics, JudgeMode.kayenta)

    def scipy_loop() -> None:
        for canary, baseline in pairs:
            stats.mannwhitneyu(canary, baseline, alternative="two-sided", method="asymptotic", use_continuity=True)

    report = judge(primum, data)  # warm up imports and caches once
    t_scipy = best_of(args.repeat, scipy_loop)
    t_primum = best_of(args.repeat, lambda: judge(primum, data))
    t_kayenta = best_of(args.repeat, lambda: judge(kayenta, data))
    print(f"{args.metrics} metrics x 2 versions x {args.samples} samples, best of {args.repeat}")
    print(f"{'':28} {'total ms':>9} {'per metric ms':>14} {'vs scipy':>9}")
    for name, t in (("scipy mannwhitneyu loop", t_scipy), ("judge() primum", t_primum),
                    ("judge() kayenta", t_kayenta)):
        print(f"{name:28} {1000 * t:>9.1f} {1000 * t / args.metrics:>14.3f} {t / t_scipy:>8.1f}x")
    high = sum(1 for r in report.results if r.classification.value == "High")
    print(f"primum report: {report.outcome.value}, score {report.score}, {len(report.results)} rows, {high} High")
    print("scipy: a p-value per pair only; judge(): U, p, Hodges-Lehmann shift and its CI, effect, tail check, "
          "summaries, one sentence per row, scores")


if __name__ == "__main__":
    main()
