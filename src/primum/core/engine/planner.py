"""Planner: a release and an estate -> the ordered plan of service rollouts.

Environments are promoted in the estate's order; within an environment,
services go providers first (a topological order of ``depends_on`` over the
whole estate, so transitive dependencies through unchanged services count),
ties broken by name so the plan is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping

from primum.core.model.actions import VersionRef
from primum.core.model.errors import InputError
from primum.core.model.estate import Estate
from primum.core.model.release import Release
from primum.core.model.rollout import RolloutStatus, ServiceRollout


def dependency_order(estate: Estate, services: list[str]) -> list[str]:
    """``services`` sorted providers-before-consumers (Kahn's algorithm, ties by name)."""
    graph = {name: set(svc.depends_on) for name, svc in estate.services.items()}
    remaining = dict(graph)
    order: list[str] = []
    while remaining:
        ready = sorted(n for n, deps in remaining.items() if not (deps & remaining.keys()))
        if not ready:  # validation rejects cycles; never loop forever on bad data
            raise ValueError(f"dependency cycle among {sorted(remaining)}")
        order.extend(ready)
        for n in ready:
            del remaining[n]
    wanted = set(services)
    return [n for n in order if n in wanted]


def promotion_path(estate: Estate, until: str | None, source: str = "--env") -> list[str]:
    names = estate.environment_names()
    if until is None:
        return names
    if until not in names:
        raise InputError.single(source, f"unknown environment '{until}'", f"use one of: {', '.join(names)}")
    return names[: names.index(until) + 1]


def plan(
    estate: Estate,
    release: Release,
    digest: str,
    versions: Mapping[str, VersionRef],
    environments: list[str],
    now: float,
) -> RolloutStatus:
    """The initial persisted status of a rollout of ``release`` through ``environments``."""
    order = dependency_order(estate, list(release.services))
    items: list[ServiceRollout] = []
    for env in environments:
        for name in order:
            svc = estate.services[name]
            pin = release.services[name]
            strategy = pin.strategy or svc.strategy
            startup = getattr(svc.target, "startup_timeout", 30.0)
            items.append(
                ServiceRollout(
                    env=env,
                    service=name,
                    strategy=strategy.type,
                    strategy_spec=strategy.model_dump(mode="json"),
                    replicas=svc.target.replicas,
                    slo=svc.slo,
                    analysis=svc.analysis,
                    probes=list(svc.probes),
                    progress_deadline_s=max(60.0, startup * 2),
                    forward_only=svc.target.forward_only,
                    new=versions[name],
                )
            )
    return RolloutStatus(
        release_id=release.id, digest=digest, environments=environments, items=items, created_at=now
    )
