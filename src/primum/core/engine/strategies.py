"""Strategies as step programs.

Each strategy compiles to a list of ``Step`` values (``primum.core.model.rollout``)
that ``decide`` walks one by one. Keeping them as data means the program is
persisted with the rollout and a restarted controller continues exactly
where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter

from primum.core.model.analysis import ProbeGate
from primum.core.model.estate import (
    AnalysisStep,
    ApplyStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    PauseStep,
    ProbeStep,
    RollingStrategy,
    SetWeightStep,
    Strategy,
)
from primum.core.model.rollout import Analyze, Preview, Probe, Route, Scale, Step, Wait

_STRATEGY: TypeAdapter[Strategy] = TypeAdapter(Strategy)


def compile_steps(spec: dict[str, Any], replicas: int, has_stable: bool, count: int = 1,
                  gates: Sequence[ProbeGate] = ()) -> list[Step]:
    """The step program for one service rollout. ``count``: measurements per analysis
    step unless the step says otherwise; ``gates``: the service's probe gates, run
    ``before`` traffic moves (against the new version's preview) and ``after``."""
    strategy = _STRATEGY.validate_python(spec)
    if not has_stable:
        # A first deployment has nothing to compare with or fall back to: it is
        # verified by health checks (and probe gates) only, then takes all traffic.
        steps: list[Step] = [Scale(new=replicas), Route(weight=100)]
    elif isinstance(strategy, CanaryStrategy):
        steps = _canary(strategy, replicas, count)
    elif isinstance(strategy, BlueGreenStrategy):
        steps = _blue_green(strategy, replicas, count)
    elif isinstance(strategy, ApplyStrategy):
        steps = _apply(strategy, replicas, count)
    else:
        steps = _rolling(strategy, replicas, count)
    return _with_gates(steps, gates)


def _with_gates(steps: list[Step], gates: Sequence[ProbeGate]) -> list[Step]:
    before = [g.name for g in gates if "before" in g.when]
    after = [g.name for g in gates if "after" in g.when]
    if before:
        first_route = next((i for i, s in enumerate(steps) if isinstance(s, Route) and s.weight > 0), len(steps))
        steps[first_route:first_route] = [Preview(on=True), Probe(gates=before, when="before"), Preview(on=False)]
    if after:
        last_full = max((i for i, s in enumerate(steps) if isinstance(s, Route) and s.weight == 100), default=-1)
        scale_down = [i for i, s in enumerate(steps) if i > last_full and isinstance(s, Scale) and s.stable == 0
                      and s.new is None]
        at = scale_down[-1] if scale_down and scale_down[-1] == len(steps) - 1 else len(steps)
        steps.insert(at, Probe(gates=after, when="after"))
    return steps


def _canary(strategy: CanaryStrategy, replicas: int, count: int) -> list[Step]:
    steps: list[Step] = [Scale(new=replicas)]
    for step in strategy.steps:
        if isinstance(step, SetWeightStep):
            steps.append(Route(weight=step.set_weight))
        elif isinstance(step, PauseStep):
            steps.append(Wait(duration=step.pause.duration, reason="canary pause"))
        elif isinstance(step, AnalysisStep):
            steps.append(Analyze(duration=step.analysis.duration, count=step.analysis.count or count))
        elif isinstance(step, ProbeStep):
            steps.append(Probe(gates=list(step.probe)))
    steps += [Route(weight=100), Scale(stable=0)]
    return steps


def _blue_green(strategy: BlueGreenStrategy, replicas: int, count: int) -> list[Step]:
    steps: list[Step] = [Scale(new=replicas), Preview(on=True)]
    if strategy.preview_analysis > 0:
        steps.append(Analyze(duration=strategy.preview_analysis, count=count))
    steps += [Route(weight=100), Preview(on=False)]
    if strategy.post_analysis > 0:
        steps.append(Analyze(duration=strategy.post_analysis, count=count, baseline="before"))
    if strategy.scale_down_delay > 0:
        steps.append(Wait(duration=strategy.scale_down_delay, reason="scale-down delay"))
    steps.append(Scale(stable=0))
    return steps


def _apply(strategy: ApplyStrategy, replicas: int, count: int) -> list[Step]:
    """Apply-only targets, in the existing step kinds so rollback, evidence and governance are unchanged:
    ``Scale new=N stable=0`` is "the new version is applied (and passed the target's verify)", ``Route
    100`` records that it now serves (the target has no traffic control; it reports the applied version as
    taking all traffic), an optional ``Analyze`` is the post-apply window. The rollback's ``Scale
    stable=N`` is "revert to the stable version"."""
    steps: list[Step] = [Scale(new=replicas, stable=0), Route(weight=100)]
    if strategy.post_analysis > 0:
        steps.append(Analyze(duration=strategy.post_analysis, count=count, baseline="before"))
    return steps


def _rolling(strategy: RollingStrategy, replicas: int, count: int) -> list[Step]:
    """Replace instances ``max_unavailable`` at a time.

    Per batch: stop k old instances (capacity never drops below
    ``replicas - max_unavailable``), start k new ones and wait until they are
    healthy, then move the new version's share of traffic to its share of
    instances. Before the last old instances stop, all traffic moves to the
    new version so no request is routed to a version with no instance.
    """
    k = strategy.max_unavailable
    steps: list[Step] = []
    new = 0
    while new < replicas:
        after = min(replicas, new + k)
        if after == replicas:
            steps.append(Route(weight=100))
        steps.append(Scale(stable=replicas - after))
        steps.append(Scale(new=after))
        if after < replicas:
            steps.append(Route(weight=round(100 * after / replicas)))
            if strategy.batch_analysis > 0:
                steps.append(Analyze(duration=strategy.batch_analysis, count=count))
        new = after
    return steps


def rollback_steps(replicas: int, has_stable: bool, took_traffic: bool = True) -> list[Step]:
    """Put the stable version back: ensure it runs, route all traffic to it, stop the new one.

    A new version that never took traffic (dead on arrival: it never became healthy, or the release
    stopped before its first traffic shift) is stopped first: nothing is routed to it, so there is
    nothing to drain, and a version whose instances keep failing must not be restarted while the
    stable version is checked. The rollback never waits for the new version to become healthy."""
    if not took_traffic:
        return [Scale(new=0, stable=replicas if has_stable else None), Route(weight=0), Preview(on=False)]
    if not has_stable:
        return [Preview(on=False), Route(weight=0), Scale(new=0)]
    return [Scale(stable=replicas), Route(weight=0), Preview(on=False), Scale(new=0)]


def describe(step: Step) -> str:
    if isinstance(step, Scale):
        parts = []
        if step.new is not None:
            parts.append(f"new={step.new}")
        if step.stable is not None:
            parts.append(f"stable={step.stable}")
        return "scale " + " ".join(parts)
    if isinstance(step, Route):
        return f"route {step.weight}% to the new version"
    if isinstance(step, Preview):
        return "preview on" if step.on else "preview off"
    if isinstance(step, Wait):
        return f"pause {step.duration:g}s ({step.reason})" if step.duration is not None else "pause until promoted"
    if isinstance(step, Probe):
        return f"probe gates {', '.join(step.gates)}" + (f" ({step.when})" if step.when != "step" else "")
    if step.count > 1:
        return f"analysis: {step.count} measurements of {step.interval:g}s"
    return f"analysis for {step.duration:g}s"
