"""Strategies as step programs.

Each strategy compiles to a list of ``Step`` values (``primum.model.rollout``)
that ``decide`` walks one by one. Keeping them as data means the program is
persisted with the rollout and a restarted controller continues exactly
where the last one stopped.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from primum.model.estate import (
    AnalysisStep,
    BlueGreenStrategy,
    CanaryStrategy,
    PauseStep,
    RollingStrategy,
    SetWeightStep,
    Strategy,
)
from primum.model.rollout import Analyze, Preview, Route, Scale, Step, Wait

_STRATEGY: TypeAdapter[Strategy] = TypeAdapter(Strategy)


def compile_steps(spec: dict[str, Any], replicas: int, has_stable: bool) -> list[Step]:
    """The step program for one service rollout."""
    strategy = _STRATEGY.validate_python(spec)
    if not has_stable:
        # A first deployment has nothing to compare with or fall back to: it is
        # verified by health checks only, then takes all traffic.
        return [Scale(new=replicas), Route(weight=100)]
    if isinstance(strategy, CanaryStrategy):
        return _canary(strategy, replicas)
    if isinstance(strategy, BlueGreenStrategy):
        return _blue_green(strategy, replicas)
    return _rolling(strategy, replicas)


def _canary(strategy: CanaryStrategy, replicas: int) -> list[Step]:
    steps: list[Step] = [Scale(new=replicas)]
    for step in strategy.steps:
        if isinstance(step, SetWeightStep):
            steps.append(Route(weight=step.set_weight))
        elif isinstance(step, PauseStep):
            steps.append(Wait(duration=step.pause.duration, reason="canary pause"))
        elif isinstance(step, AnalysisStep):
            steps.append(Analyze(duration=step.analysis.duration))
    steps += [Route(weight=100), Scale(stable=0)]
    return steps


def _blue_green(strategy: BlueGreenStrategy, replicas: int) -> list[Step]:
    steps: list[Step] = [Scale(new=replicas), Preview(on=True)]
    if strategy.preview_analysis > 0:
        steps.append(Analyze(duration=strategy.preview_analysis))
    steps += [Route(weight=100), Preview(on=False)]
    if strategy.post_analysis > 0:
        steps.append(Analyze(duration=strategy.post_analysis))
    if strategy.scale_down_delay > 0:
        steps.append(Wait(duration=strategy.scale_down_delay, reason="scale-down delay"))
    steps.append(Scale(stable=0))
    return steps


def _rolling(strategy: RollingStrategy, replicas: int) -> list[Step]:
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
                steps.append(Analyze(duration=strategy.batch_analysis))
        new = after
    return steps


def rollback_steps(replicas: int, has_stable: bool) -> list[Step]:
    """Put the stable version back: ensure it runs, route all traffic to it, stop the new one."""
    if not has_stable:
        return [Preview(on=False), Route(weight=0), Scale(new=0)]
    return [Scale(stable=replicas), Route(weight=0), Preview(on=False), Scale(new=0)]
