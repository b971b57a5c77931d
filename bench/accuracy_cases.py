"""The accuracy bench's cases, the estate they run in, and what a run records.

Every case is a fault profile (``accuracy_faults.FaultProfile``) of the demo's
clinical-critical ``scheduling-api``, judged with the demo's own settings for
that service (taken from ``primum.demo.files.estate_document``: tier, SLOs,
analysis settings, probes, ``affinity: none``, canary 25% -> analysis -> 50%
-> analysis) with a shorter analysis window. The judge's settings are not
built here: they come out of the estate model and the planner
(``plan(...).items[i].analysis``), so tier defaults made there are what the
bench measures.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from accuracy_faults import FaultProfile
from primum.core.engine.planner import plan
from primum.core.model.actions import VersionRef
from primum.core.model.estate import Estate
from primum.core.model.release import Release, canonical_digest
from primum.core.model.rollout import ServiceRollout
from primum.demo.files import estate_document

DEMO_SERVICE = "scheduling-api"  # the demo's clinical-critical service, its artifact and its settings
ENV = "bench"
TENANTS = tuple(f"clinic-{i:02d}" for i in range(1, 11))
FAULT_TENANT = "clinic-03"
MODES = ("primum", "kayenta")
FALLBACK_MEAN_MS = 12.0  # a request's mean latency through the router, when not calibrated

# the four outcomes a rollout can have, as printed
PROMOTED, ROLLED_BACK, PAUSED, FAILED = "promoted", "rolled_back", "paused", "failed"
OUTCOMES = (PROMOTED, ROLLED_BACK, PAUSED, FAILED)


@dataclass(frozen=True)
class Case:
    """One fault profile. ``path``: ``replay`` (judge-only, on real router samples) or ``rollout`` (the
    controller on the local target). ``regression``: it should be rolled back; ``gross``: within 10 s of
    taking traffic. ``profile(mean_ms, ramp_s)``: the fault, from the stable version's measured mean
    latency and the time over which a slow burn grows."""

    name: str
    what: str
    path: str
    regression: bool
    profile: Callable[[float, float], FaultProfile]
    gross: bool = False


def cases() -> list[Case]:
    healthy = FaultProfile()
    return [
        Case("healthy", "identical code, another version", "replay", False, lambda m, r: healthy),
        Case("noisy-healthy", "1% of requests +0-100 ms jitter", "replay", False,
             lambda m, r: FaultProfile(jitter_fraction=0.01, jitter_ms=100.0)),
        Case("spread-only", "normal(7 ms, sd 5) for uniform(2, 12)", "replay", False,
             lambda m, r: FaultProfile(spread_sd_ms=5.0)),
        Case("tail-only", "5% of requests +400 ms", "replay", True,
             lambda m, r: FaultProfile(tail_fraction=0.05, tail_ms=400.0)),
        Case("latency+20%", "+20% of the mean latency", "replay", True,
             lambda m, r: FaultProfile(extra_ms=0.20 * m)),
        Case("latency+30%", "+30% of the mean latency", "replay", True,
             lambda m, r: FaultProfile(extra_ms=0.30 * m)),
        Case("errors+1pt", "1% of requests 5xx", "replay", True, lambda m, r: FaultProfile(error_rate=0.01)),
        Case("one-tenant", f"{FAULT_TENANT} (1/10): 20% 5xx, +100 ms", "replay", True,
             lambda m, r: FaultProfile(error_rate=0.20, extra_ms=100.0, fault_tenants=(FAULT_TENANT,))),
        Case("slow-burn", "0 -> 5% 5xx and +50% latency over the window", "replay", True,
             lambda m, r: FaultProfile(error_rate=0.05, extra_ms=0.5 * m, ramp_s=r)),
        Case("gross-errors", "60% of requests 5xx", "rollout", True,
             lambda m, r: FaultProfile(error_rate=0.60), gross=True),
        Case("gross-latency", "+5x the mean latency (6x in all)", "rollout", True,
             lambda m, r: FaultProfile(extra_ms=5.0 * m), gross=True),
        Case("dead-on-arrival", "/healthz never passes", "rollout", True,
             lambda m, r: FaultProfile(health_ok=False)),
        Case("metrics-outage", "healthy; the metrics source stops answering after the 1st measurement",
             "rollout", False, lambda m, r: healthy),
    ]


@dataclass
class Run:
    """One run of a case in one mode: its outcome and seconds to detect (None: not rolled back)."""

    outcome: str
    ttd: float | None = None
    note: str = ""
    promoted_without_metrics: bool = False


@dataclass
class CaseResult:
    case: Case
    runs: dict[str, list[Run]] = field(default_factory=lambda: {m: [] for m in MODES})


def demo_service(mode: str, window_s: float, rate: float, startup_timeout_s: float) -> dict:
    """The demo's scheduling-api settings with ``window_s`` analysis windows, ``rate`` req/s of traffic and
    the judge in ``mode``."""
    svc = copy.deepcopy(estate_document()["services"][DEMO_SERVICE])
    svc.pop("depends_on", None)
    window = f"{window_s:g}s"
    svc["strategy"] = {"type": "canary", "steps": [
        {"set_weight": 25}, {"analysis": {"duration": window}},
        {"set_weight": 50}, {"analysis": {"duration": window}}]}
    svc["analysis"] = {**svc.get("analysis", {}), "mode": mode}
    svc["traffic"] = {**svc.get("traffic", {}), "rate": rate}
    svc["target"] = {**svc.get("target", {}), "startup_timeout": f"{startup_timeout_s:g}s"}
    return svc


def bench_estate(name: str, services: dict[str, dict], identities: Path | None = None) -> Estate:
    """A one-environment (nonprod) estate of ``services``; ``identities``: who may approve (the demo's)."""
    governance = {"governance": {"identities": str(identities)}} if identities is not None else {}
    return Estate.model_validate({**governance,
        "apiVersion": "primum/v1", "kind": "Estate", "name": name,
        "environments": [{"name": ENV, "class": "nonprod", "description": "the accuracy bench"}],
        "tenants": [{"id": t, "name": f"{t} (synthetic)"} for t in TENANTS],
        "services": services,
    })


def release_doc(release_id: str, pins: dict[str, VersionRef]) -> dict:
    return {
        "apiVersion": "primum/v1", "kind": "Release", "id": release_id, "ticket": "CHG-BENCH",
        "description": "accuracy bench", "source_commit": "5eed0000c0ffee00000000000000000000000d30",
        "services": {name: {"artifact": ref.artifact, "digest": ref.digest, "version": ref.label}
                     for name, ref in pins.items()},
    }


def planned_item(estate: Estate, service: str, stable: VersionRef, canary: VersionRef) -> ServiceRollout:
    """The rollout item the planner makes for ``service`` (its analysis settings and SLOs as a rollout
    would judge them), running ``canary`` against ``stable``."""
    release = Release.model_validate(release_doc("bench-plan", {service: canary}))
    status = plan(estate, release, canonical_digest(release), {service: canary}, [ENV], 0.0)
    item = next(i for i in status.items if i.service == service)
    return item.model_copy(update={"stable": stable, "new": canary})


def version_ref(path: str, digest: str, label: str) -> VersionRef:
    return VersionRef(digest=digest, artifact=path, label=label)


def short(digest: str) -> str:
    return hashlib.sha256(digest.encode()).hexdigest()[:6]
