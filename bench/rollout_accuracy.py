"""Rollout accuracy on issue 12's fault profiles: what a canary of the demo's clinical-critical service ends
as, per case and judge mode (primum and kayenta side by side), against the issue's goals.

Per case and mode, over ``--runs`` runs: promoted / rolled back / paused (held for a person) / failed, and
the median time to detect (seconds from the canary taking traffic to the rollback decision). Two paths:

* replay (``accuracy_replay.py``; fast, judge only): healthy, noisy-healthy, spread-only, tail-only,
  +20% and +30% mean latency, errors +1 point, one-tenant, slow burn. Real router samples, measured as the
  controller measures them and judged with the settings the planner gives the demo's scheduling-api; the
  outcome is the verdict at the window's end, the time to detect the first second the judge failed;
* rollouts (``accuracy_rollouts.py``; the real controller on the local target, canary 25% -> window ->
  50% -> window): gross errors, gross latency, dead on arrival, metrics outage mid-canary.

Fault profiles are the demo's scheduling-api with an overlay (``accuracy_faults.py``); the demo's own files
are unchanged. Figures, not assertions: the exit status is 0 whatever the goals say. Every process is
stopped on the way out.

    .venv/bin/python bench/rollout_accuracy.py --quick          # a smoke run, ~3-4 minutes on 2 cores
    .venv/bin/python bench/rollout_accuracy.py                  # 5 runs per case
    .venv/bin/python bench/rollout_accuracy.py --runs 10 --window 45 --cases tail-only,latency+20%
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
from pathlib import Path

from accuracy_cases import FALLBACK_MEAN_MS, MODES, OUTCOMES, PAUSED, PROMOTED, ROLLED_BACK, CaseResult, cases
from accuracy_replay import ESTATE as REPLAY_ESTATE
from accuracy_replay import run_replay
from accuracy_rollouts import ESTATE as ROLLOUT_ESTATE
from accuracy_rollouts import run_rollouts
from primum.adapters.targets.local import processes
from primum.adapters.targets.local.runtime import LocalRuntime

GROSS_WITHIN_S = 10.0


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}s" if values else "-"


def print_table(results: list[CaseResult]) -> None:
    cols = " ".join(f"{o[:6]:>6}" for o in ("prom", "rb", "paused", "failed")) + f" {'ttd':>6}"
    head = f"{'case':<16} {'path':<7} {'what':<44} | " + " | ".join(f"{m}: {cols}" for m in MODES)
    print(head)
    print("-" * len(head))
    for r in results:
        line = f"{r.case.name:<16} {r.case.path:<7} {r.case.what[:44]:<44} | "
        parts = []
        for mode in MODES:
            runs = r.runs[mode]
            counts = " ".join(f"{sum(1 for x in runs if x.outcome == o):>6}" for o in OUTCOMES)
            ttds = [x.ttd for x in runs if x.ttd is not None]
            parts.append(f"{' ' * (len(mode) + 2)}{counts} {median(ttds):>6}")
        print(line + " | ".join(parts))


def share(num: int, den: int) -> str:
    return f"{num}/{den} ({100 * num / den:.0f}%)" if den else "-"


def print_goals(results: list[CaseResult]) -> None:
    """The issue's goals next to the measured figures, per mode."""
    regressions = [r for r in results if r.case.path == "replay" and r.case.regression]
    healthy = [r for r in results if r.case.path == "replay" and not r.case.regression]
    gross = [r for r in results if r.case.gross]
    outage = [r for r in results if r.case.name == "metrics-outage"]
    doa = [r for r in results if r.case.name == "dead-on-arrival"]
    print()
    print(f"{'goal (issue 12)':<66} " + " ".join(f"{m:>22}" for m in MODES))

    def row(goal: str, figures: list[tuple[int, int]], met) -> None:
        cells = [f"{share(n, d)} {'met' if d and met(n, d) else ('-' if not d else 'NOT met')}" for n, d in figures]
        print(f"{goal:<66} " + " ".join(f"{c:>22}" for c in cells))

    def runs_of(rs: list[CaseResult], mode: str):
        return [x for r in rs for x in r.runs[mode]]

    row(">= 98% of regressions rolled back (latency, tail, errors, tenant, burn)",
        [(sum(1 for x in runs_of(regressions, m) if x.outcome == ROLLED_BACK), len(runs_of(regressions, m)))
         for m in MODES], lambda n, d: n >= 0.98 * d)
    row("<= 1% of healthy (incl. noisy, spread-only) rolled back or held",
        [(sum(1 for x in runs_of(healthy, m) if x.outcome in (ROLLED_BACK, PAUSED)), len(runs_of(healthy, m)))
         for m in MODES], lambda n, d: n <= 0.01 * d)
    row(f"gross failures rolled back within {GROSS_WITHIN_S:g} s of taking traffic",
        [(sum(1 for x in runs_of(gross, m) if x.outcome == ROLLED_BACK and x.ttd is not None
              and x.ttd <= GROSS_WITHIN_S), len(runs_of(gross, m))) for m in MODES], lambda n, d: n == d)
    row("0 promotions while metrics are missing (runs promoted in the outage)",
        [(sum(1 for x in runs_of(outage, m) if x.promoted_without_metrics), len(runs_of(outage, m)))
         for m in MODES], lambda n, d: n == 0)
    row("dead on arrival ends rolled_back (not failed)",
        [(sum(1 for x in runs_of(doa, m) if x.outcome == ROLLED_BACK), len(runs_of(doa, m))) for m in MODES],
        lambda n, d: n == d)


def print_notes(results: list[CaseResult]) -> None:
    """One reason per case and mode that did not end as it should (the first such run's)."""
    notes = []
    for r in results:
        for mode in MODES:
            if r.case.name == "metrics-outage":  # rolling back, or waiting, is right: promoting is not
                wrong = [x for x in r.runs[mode] if x.outcome == PROMOTED]
            else:
                wrong = [x for x in r.runs[mode] if (x.outcome == ROLLED_BACK) != r.case.regression]
            if wrong and wrong[0].note:
                notes.append(f"{r.case.name} [{mode}] {len(wrong)}x {wrong[0].outcome}: "
                             + " ".join(wrong[0].note.split())[:400])
    if notes:
        print()
        for note in notes:
            print("  " + note)


def stop_everything(home: Path) -> None:
    try:
        for estate in (REPLAY_ESTATE, ROLLOUT_ESTATE):
            with contextlib.suppress(Exception):
                LocalRuntime(home, estate).stop_all()
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
    parser.add_argument("--quick", action="store_true",
                        help="2 replay runs per case with 5 s windows, 1 rollout batch with 5 s windows")
    parser.add_argument("--runs", type=int, default=None, help="runs per case (default 5; --quick: 2 and 1)")
    parser.add_argument("--window", type=float, default=None,
                        help="analysis window, s (default 10; --quick 5; the demo's prod figure is 45)")
    parser.add_argument("--rate", type=float, default=100.0, help="replay: synthetic requests per second")
    parser.add_argument("--rollout-rate", type=float, default=24.0,
                        help="rollouts: requests per second per service (8 services run in parallel)")
    parser.add_argument("--warmup", type=float, default=1.0, help="replay: seconds of canary traffic before t0")
    parser.add_argument("--startup-timeout", type=float, default=10.0, help="rollouts: a version's startup_timeout")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = parser.parse_args()
    window = args.window or (5.0 if args.quick else 10.0)
    replay_runs = args.runs or (2 if args.quick else 5)
    rollout_runs = args.runs or (1 if args.quick else 5)
    plan = cases()
    if args.cases:
        wanted = {c.strip() for c in args.cases.split(",") if c.strip()}
        unknown = wanted - {c.name for c in plan}
        if unknown:
            parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(c.name for c in plan)}")
        plan = [c for c in plan if c.name in wanted]

    wall = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below runs
    print(f"rollout accuracy: the demo's clinical-critical scheduling-api, {window:g} s analysis windows; replay "
          f"{replay_runs} run(s) per case at {args.rate:g} req/s 50/50, rollouts {rollout_runs} run(s) per case "
          f"at {args.rollout_rate:g} req/s per service (canary 25% -> window -> 50% -> window)", flush=True)
    results: list[CaseResult] = []
    mean_ms = FALLBACK_MEAN_MS
    with tempfile.TemporaryDirectory(prefix="primum-bench-rollout-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        try:
            replay = [c for c in plan if c.path == "replay"]
            if replay:
                got, mean_ms = run_replay(home, Path(tmp) / "replay", replay, replay_runs, window, args.warmup,
                                          args.rate, lambda s: print(s, flush=True))
                results += got
                stop_everything(home)
            rollout = [c for c in plan if c.path == "rollout"]
            if rollout:
                results += run_rollouts(home, Path(tmp) / "rollouts", rollout, rollout_runs, window,
                                        args.rollout_rate, args.startup_timeout, mean_ms,
                                        lambda s: print(s, flush=True))
        finally:
            stop_everything(home)

    print()
    print_table(results)
    print_goals(results)
    print_notes(results)
    print()
    print("prom/rb/paused/failed: runs promoted, rolled back, paused for a person, failed (no verdict, or a "
          "rollback that could not complete);\nttd: median seconds to detect over the runs with a rollback "
          "decision: replay, the first second the judge failed the growing window [t0, now]\n(today's engine "
          "decides at the window's end); rollouts, from the canary taking traffic (dead on arrival: the item's "
          "start;\nmetrics outage: the outage) to the rollback decision. Latency faults are relative to the "
          f"stable version's mean through the router ({mean_ms:.1f} ms here).")
    print(f"wall time {time.perf_counter() - wall:.0f}s")


if __name__ == "__main__":
    main()
