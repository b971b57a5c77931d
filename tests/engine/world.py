"""A simulated world for decision tests: the noop target plus a clock and a traffic model.

Each version key can be given an error rate and a latency; every tick adds
requests in proportion to the route weights (with a seeded random latency
around the version's mean and random errors), and a due measurement is
answered with those requests as the builtin provider would: per-request
latencies and error counts, overall and per tenant.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from primum.adapters.targets.noop import NoopTarget
from primum.core.analysis.data import MeasurementData, MetricData, ProbeResult, Samples
from primum.core.engine.decide import Decision, Observations, decide, wanted_observations
from primum.core.model.actions import ServiceObservation, VersionRef
from primum.core.model.analysis import MetricKind
from primum.core.model.estate import Estate
from primum.core.model.rollout import Command, Gate, RolloutStatus
from primum.core.model.validate import runtime_spec


def ref(service: str, version: str) -> VersionRef:
    digest = "sha256:" + hashlib.sha256(f"{service}-{version}".encode()).hexdigest()
    return VersionRef(digest=digest, artifact=f"/artifacts/{service}-{version}.py", label=version)


@dataclass
class Behaviour:
    error_rate: float = 0.0
    latency_s: float = 0.02


@dataclass(frozen=True)
class Request:
    at: float
    version: str
    tenant: str
    latency: float
    error: bool


class World:
    def __init__(self, estate: Estate, rate: float = 50.0, metrics: bool = True):
        self.estate = estate
        self.now = 1_000_000.0
        self.rate = rate
        self.behaviour: dict[str, Behaviour] = {}
        self.requests: dict[str, list[Request]] = {}  # by "env/service"
        self.metrics = metrics
        self.gates: dict[str, Gate] = {}  # env -> governance answer (default: allowed)
        self.gate_asks: list[tuple[str, bool]] = []  # (env, starting) the decision asked for
        self.probe_ok: dict[str, list[bool]] = {}  # gate name -> answers of successive attempts (default: pass)
        self.probes_run: list[tuple[str, str, dict[str, int], str | None]] = []  # (item, gate, weights, preview)
        self.rng = random.Random(7)
        self.target = NoopTarget()
        self.fence = 1
        self.commands: list[Command] = []
        self.blocked_by: list[str] = []
        self.history: list[Decision] = []
        self.drop_actions: set[int] = set()  # tick numbers whose actions are lost (simulated crash)
        # version key -> health detail: its instances start but never pass their health check (dead on
        # arrival), reported as the local runtime does: none ready, the version failed with that detail
        self.unhealthy: dict[str, str] = {}

    def spec(self, env: str, service: str):
        return runtime_spec(self.estate, env, service)

    def deploy(self, env: str, service: str, version: VersionRef, replicas: int = 1) -> None:
        from primum.core.model.actions import EnsureInstances, SetRoute
        spec = self.spec(env, service)
        self.target.apply(EnsureInstances(env=env, service=service, version=version, count=replicas), spec, 0)
        self.target.apply(SetRoute(env=env, service=service, weights={version.key: 100}), spec, 0)

    def measure(self, status: RolloutStatus, start: float, baseline_window=None) -> MeasurementData:
        item = status.active_item()
        assert item is not None
        data = MeasurementData(start=start, end=self.now, baseline_version=item.stable.key if item.stable else None,
                               canary_version=item.new.key, slo_error_rate=item.slo.error_rate,
                               slo_p95_s=item.slo.p95_s, slo_p99_s=item.slo.p99_s)
        log = self.requests.get(item.key, [])
        b_start, b_end = baseline_window or (start, self.now)

        def samples(version: str | None, kind: MetricKind, tenant: str | None = None) -> Samples:
            lo, hi = (b_start, b_end) if version != item.new.key else (start, self.now)
            rows = [r for r in log if lo <= r.at < hi and r.version == version
                    and (tenant is None or r.tenant == tenant)]
            if kind is MetricKind.latency:
                return Samples(values=[r.latency for r in rows], source=f"sim latency {version}")
            errors = sum(r.error for r in rows)
            return Samples(values=[errors / len(rows)] if rows else [], events=errors, total=len(rows),
                           source=f"sim errors {version}")

        baseline = item.stable.key if item.stable else None
        for metric in item.analysis.metrics:
            if not self.metrics:
                data.metrics[metric.name] = MetricData(metric=metric.name, error="simulated: no metrics")
                continue
            slices = {t.id: (samples(baseline, metric.kind, t.id), samples(item.new.key, metric.kind, t.id))
                      for t in self.estate.tenants}
            data.metrics[metric.name] = MetricData(metric=metric.name, baseline=samples(baseline, metric.kind),
                                                   canary=samples(item.new.key, metric.kind), slices=slices)
        return data

    def _traffic(self, dt: float) -> None:
        tenants = [t.id for t in self.estate.tenants] or ["-"]
        for qualified, svc in self.target._services.items():
            key = qualified.split("/", 1)[1]
            weights = dict(svc.route.weights)
            if svc.route.preview:
                weights[svc.route.preview] = weights.get(svc.route.preview, 0) + 20
            for vkey, w in weights.items():
                if not w or vkey not in svc.versions:
                    continue
                b = self.behaviour.get(vkey, Behaviour())
                expected = self.rate * dt * w / 100
                n = int(expected) + (1 if self.rng.random() < expected - int(expected) else 0)
                log = self.requests.setdefault(key, [])
                for _ in range(n):
                    log.append(Request(at=self.now + self.rng.random() * dt, version=vkey,
                                       tenant=self.rng.choice(tenants),
                                       latency=b.latency_s * self.rng.lognormvariate(0, 0.2),
                                       # an unhealthy version has no instance to answer: the router's 503
                                       error=vkey in self.unhealthy or self.rng.random() < b.error_rate))

    def tick(self, status: RolloutStatus) -> Decision:
        services, errors, measurements, probes, gates, early = {}, {}, {}, {}, {}, {}
        for w in wanted_observations(status, self.now):
            key = f"{w.env}/{w.service}"
            services[key] = self.observe(w.env, w.service)
            if w.gate_env is not None:
                self.gate_asks.append((w.gate_env, w.starting))
                gates[w.gate_env] = self.gates.get(w.gate_env, Gate(allowed=True, reason="test: allowed"))
            if w.measure_from is not None:
                measurements[key] = self.measure(status, w.measure_from, w.baseline_window)
            if w.early_from is not None:  # the partial window, for the early look
                early[key] = self.measure(status, w.early_from, w.baseline_window)
            if w.probes:
                svc = self.target._services[f"{self.estate.name}/{key}"]
                answers = {}
                for name in w.probes:
                    queue = self.probe_ok.get(name, [])
                    ok = queue.pop(0) if queue else True
                    self.probes_run.append((key, name, dict(svc.route.weights), svc.route.preview))
                    answers[name] = ProbeResult(probe="http", target="sim", ok=ok,
                                                reason="simulated pass" if ok else f"simulated failure of {name}")
                probes[key] = answers
        obs = Observations(now=self.now, services=services, errors=errors, commands=list(self.commands),
                           blocked_by=list(self.blocked_by), measurements=measurements, probes=probes, gates=gates,
                           early=early)
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

    def observe(self, env: str, service: str) -> ServiceObservation:
        o = self.target.observe(self.spec(env, service))
        dead = {k: v.model_copy(update={"ready": 0, "starting": 0, "failed": v.desired, "error": self.unhealthy[k]})
                for k, v in o.versions.items() if k in self.unhealthy}
        return o.model_copy(update={"versions": {**o.versions, **dead}}) if dead else o

    def run(self, status: RolloutStatus, max_ticks: int = 5000, until=None) -> RolloutStatus:
        from primum.core.model.rollout import TERMINAL
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
