"""A target that changes nothing outside this process.

Named as what it is: an in-memory stand-in used by the controller benchmark
and by decision tests. Instances are "ready" as soon as they are asked for
and routes apply at once; metrics come from an optional function the caller
supplies (none by default, which analysis treats as inconclusive).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from primum.adapters.targets.base import StaleFenceError
from primum.core.model.actions import (
    Action,
    EnsureInstances,
    MetricsSnapshot,
    RouteObservation,
    ServiceObservation,
    ServiceRuntimeSpec,
    SetRoute,
    VersionObservation,
    VersionRef,
)


def _key(spec: ServiceRuntimeSpec) -> str:
    return f"{spec.estate}/{spec.env}/{spec.service}"


MetricsFn = Callable[[str, str, dict[str, int]], MetricsSnapshot | None]


@dataclass
class _Service:
    versions: dict[str, tuple[VersionRef, int]] = field(default_factory=dict)
    route: RouteObservation = field(default_factory=RouteObservation)
    fence: int = 0  # like a router, each service remembers the newest fencing token it saw


class NoopTarget:
    name = "noop"

    def __init__(self, metrics: MetricsFn | None = None):
        self._services: dict[str, _Service] = {}
        self._metrics = metrics
        self._lock = threading.Lock()
        self.applied = 0

    def prepare(self, specs: list[ServiceRuntimeSpec]) -> None:
        for spec in specs:
            self._services.setdefault(_key(spec), _Service())

    def apply(self, action: Action, spec: ServiceRuntimeSpec, fence: int) -> None:
        with self._lock:
            svc = self._services.setdefault(_key(spec), _Service())
            if fence < svc.fence:
                raise StaleFenceError(f"{spec.key}: fence {fence} is older than {svc.fence}")
            svc.fence = fence
            self.applied += 1
            if isinstance(action, EnsureInstances):
                if action.count:
                    svc.versions[action.version.key] = (action.version, action.count)
                else:
                    svc.versions.pop(action.version.key, None)
            elif isinstance(action, SetRoute):
                svc.route = RouteObservation(weights=dict(action.weights), preview=action.preview, fence=fence)

    def observe(self, spec: ServiceRuntimeSpec, metrics: bool = False) -> ServiceObservation:
        with self._lock:
            svc = self._services.setdefault(_key(spec), _Service())
            versions = {key: VersionObservation(version=ref, desired=n, ready=n)
                        for key, (ref, n) in svc.versions.items()}
            route = svc.route
        snapshot = self._metrics(spec.env, spec.service, route.weights) if (metrics and self._metrics) else None
        return ServiceObservation(env=spec.env, service=spec.service, versions=versions, route=route,
                                  metrics=snapshot,
                                  metrics_error=None if snapshot or not metrics else "noop target has no metrics")

    def close(self) -> None:
        pass

    def router_url(self, spec: ServiceRuntimeSpec) -> str | None:
        return None  # nothing listens: probes are an error, never a pass

    def router_admin(self, spec: ServiceRuntimeSpec) -> str | None:
        return None  # nothing listens: builtin metrics are an error, never a pass
