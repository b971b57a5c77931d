"""A simulated world for decision tests: the noop target plus a clock and a traffic model.

Each version key can be given an error rate and a latency; every tick adds
requests in proportion to the route weights, so the analysis gate sees
realistic cumulative counters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from primum.engine.decide import Decision, Observations, decide, wanted_observations
from primum.model.estate import Estate
from primum.model.load import runtime_spec
from primum.model.rollout import Command, RolloutStatus
from primum.model.runtime import LatencyHistogram, MetricsSnapshot, VersionMetrics, VersionRef
from primum.targets.noop import NoopTarget

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, float("inf"))


def ref(service: str, version: str) -> VersionRef:
    digest = "sha256:" + hashlib.sha256(f"{service}-{version}".encode()).hexdigest()
    return VersionRef(digest=digest, artifact=f"/artifacts/{service}-{version}.py", label=version)


@dataclass
class Behaviour:
    error_rate: float = 0.0
    latency_s: float = 0.02


@dataclass
class Counters:
    ok: float = 0.0
    err: float = 0.0
    latency: dict[float, float] = field(default_factory=dict)


class World:
    def __init__(self, estate: Estate, rate: float = 50.0, metrics: bool = True):
        self.estate = estate
        self.now = 1_000_000.0
        self.rate = rate
        self.behaviour: dict[str, Behaviour] = {}
        self.counters: dict[str, dict[str, Counters]] = {}
        self.target = NoopTarget(self._metrics if metrics else None)
        self.fence = 1
        self.commands: list[Command] = []
        self.blocked_by: list[str] = []
        self.history: list[Decision] = []
        self.drop_actions: set[int] = set()  # tick numbers whose actions are lost (simulated crash)

    def spec(self, env: str, service: str):
        return runtime_spec(self.estate, env, service)

    def deploy(self, env: str, service: str, version: VersionRef, replicas: int = 1) -> None:
        from primum.model.runtime import EnsureInstances, SetRoute
        spec = self.spec(env, service)
        self.target.apply(EnsureInstances(env=env, service=service, version=version, count=replicas), spec, 0)
        self.target.apply(SetRoute(env=env, service=service, weights={version.key: 100}), spec, 0)

    def _metrics(self, env: str, service: str, weights: dict[str, int]) -> MetricsSnapshot:
        per = self.counters.get(f"{env}/{service}", {})
        versions = {}
        for key, c in per.items():
            cumulative = []
            for b in BOUNDS:
                cumulative.append((b, int(sum(n for lb, n in c.latency.items() if lb <= b))))
            versions[key] = VersionMetrics(
                requests={"200": int(c.ok), "500": int(c.err)},
                latency=LatencyHistogram(buckets=tuple(cumulative), count=int(sum(c.latency.values()))))
        return MetricsSnapshot(taken_at=self.now, router_started_at=1.0, versions=versions)

    def _traffic(self, dt: float) -> None:
        for qualified, svc in self.target._services.items():
            key = qualified.split("/", 1)[1]
            weights = dict(svc.route.weights)
            if svc.route.preview:
                weights[svc.route.preview] = weights.get(svc.route.preview, 0) + 20
            for vkey, w in weights.items():
                if not w or vkey not in svc.versions:
                    continue
                b = self.behaviour.get(vkey, Behaviour())
                n = self.rate * dt * w / 100
                c = self.counters.setdefault(key, {}).setdefault(vkey, Counters())
                c.err += n * b.error_rate
                c.ok += n * (1 - b.error_rate)
                bucket = next(x for x in BOUNDS if x >= b.latency_s)
                c.latency[bucket] = c.latency.get(bucket, 0) + n

    def tick(self, status: RolloutStatus) -> Decision:
        services, errors = {}, {}
        for w in wanted_observations(status):
            services[f"{w.env}/{w.service}"] = self.target.observe(self.spec(w.env, w.service), w.metrics)
        obs = Observations(now=self.now, services=services, errors=errors, commands=list(self.commands),
                           blocked_by=list(self.blocked_by))
        self.commands = []
        decision = decide(status, obs)
        self.history.append(decision)
        if len(self.history) not in self.drop_actions:
            for action in decision.actions:
                self.target.apply(action, self.spec(action.env, action.service), self.fence)
        dt = decision.next_due_in if decision.next_due_in is not None else 1.0
        self._traffic(dt)
        self.now += dt
        return decision

    def run(self, status: RolloutStatus, max_ticks: int = 5000, until=None) -> RolloutStatus:
        from primum.model.rollout import TERMINAL
        for _ in range(max_ticks):
            status = self.tick(status).status
            if status.phase in TERMINAL or (until and until(status)):
                return status
        raise AssertionError(f"rollout did not finish: {status.phase} {status.pause_reason}")

    def events(self) -> list[str]:
        return [e.kind for d in self.history for e in d.events]

    def route(self, env: str, service: str) -> dict[str, int]:
        svc = self.target._services[f"{self.estate.name}/{env}/{service}"]
        return {k: w for k, w in svc.route.weights.items() if w}

    def running(self, env: str, service: str) -> dict[str, int]:
        return {k: n for k, (_, n) in self.target._services[f"{self.estate.name}/{env}/{service}"].versions.items()}
