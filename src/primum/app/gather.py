"""The I/O edge of analysis: fetch a measurement's data and run probe gates for one
rollout item. The controller calls these between observing and deciding; the
judge (pure) sees only their results. Nothing here raises for a provider or
network failure: those become Error metrics or failed probes (fail closed).

`primum probe` runs a service's gates on demand through :func:`probe_now`, with the
same context (router, MLLP port, preview header) the controller gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from primum.adapters.probes import ProbeContext, run_gate, run_probe
from primum.adapters.providers.collect import collect
from primum.core.analysis.data import MeasurementData, ProbeResult, Samples
from primum.core.analysis.sequential import early_metrics
from primum.core.errors import NotFound
from primum.core.model.estate import Estate, LocalTargetSettings
from primum.core.model.rollout import ServiceRollout

if TYPE_CHECKING:
    from primum.adapters.targets.registry import Targets

PREVIEW_HEADER = "x-primum-preview"


def measure(estate: Estate, item: ServiceRollout, router_url: str | None, start: float, end: float,
            baseline_window: tuple[float, float] | None = None) -> MeasurementData:
    """Baseline (the stable version) and canary (the new one) samples of every metric over [start, end]
    (the baseline over ``baseline_window`` when given)."""
    data = collect(item.analysis, env=item.env, service=item.service, baseline=item.stable, canary=item.new,
                   start=start, end=end, tenants=[t.id for t in estate.tenants], router_url=router_url,
                   slo_error_rate=item.slo.error_rate, slo_p95_s=item.slo.p95_s, slo_p99_s=item.slo.p99_s,
                   baseline_window=baseline_window)
    return pooled_slice_baselines(data, item.analysis.min_slice_samples)


def measure_early(estate: Estate, item: ServiceRollout, router_url: str | None, start: float, end: float,
                  baseline_window: tuple[float, float] | None = None) -> MeasurementData:
    """The partial window ``[start, end]`` of a measurement not yet due, for the early look: only the
    metrics it reads and only all traffic (no tenant slices), so looking at every tick stays cheap."""
    settings = item.analysis.model_copy(update={"metrics": early_metrics(item.analysis)})
    return collect(settings, env=item.env, service=item.service, baseline=item.stable, canary=item.new,
                   start=start, end=end, tenants=[], router_url=router_url, slo_error_rate=item.slo.error_rate,
                   slo_p95_s=item.slo.p95_s, slo_p99_s=item.slo.p99_s, baseline_window=baseline_window)


def _size(samples: Samples) -> int:
    return samples.total if samples.total is not None else len(samples.values)


def pooled_slice_baselines(data: MeasurementData, min_slice_samples: int) -> MeasurementData:
    """A tenant slice whose baseline saw too little of that tenant's traffic is compared with the
    baseline's traffic of all tenants instead. With tenant affinity (the default) a tenant rides
    one version only, so this is the usual case: the canary's share of clinic X is judged against
    how the stable version serves every clinic. The substitution is written into the source."""
    metrics = {}
    for name, metric in data.metrics.items():
        if metric.baseline is None or not metric.slices:
            metrics[name] = metric
            continue
        slices = {}
        for tenant, (base, canary) in metric.slices.items():
            if _size(base) < min_slice_samples <= _size(canary):
                note = f"all tenants (tenant {tenant} had {_size(base)} baseline sample(s)): {metric.baseline.source}"
                base = metric.baseline.model_copy(update={"source": note})
            slices[tenant] = (base, canary)
        metrics[name] = metric.model_copy(update={"slices": slices})
    return data.model_copy(update={"metrics": metrics})


def probe(estate: Estate, item: ServiceRollout, gates: Sequence[str], router_url: str | None, *,
          preview: bool) -> dict[str, ProbeResult]:
    """Run the named gates once each. ``preview``: the new version is in preview (a
    ``before`` gate), so HTTP and FHIR probes ask the router for it."""
    ctx = probe_context(estate, item.service, item.env, router_url, preview=preview)
    by_name = {g.name: g for g in item.probes}
    results: dict[str, ProbeResult] = {}
    for name in gates:
        gate = by_name.get(name)
        if gate is None:
            results[name] = ProbeResult(probe="unknown", target="-", ok=False,
                                        reason=f"probe gate {name!r} is not defined for {item.service}")
            continue
        results[name] = run_probe(gate.probe, ctx)
    return results


def probe_context(estate: Estate, service: str, env: str, router_url: str | None, *, preview: bool) -> ProbeContext:
    """What a probe of ``service`` in ``env`` talks to: its router, its MLLP port, the preview header."""
    target = estate.services[service].target
    mllp_port = target.mllp_ports.get(env) if isinstance(target, LocalTargetSettings) else None
    return ProbeContext(base_url=router_url, mllp_port=mllp_port, headers={PREVIEW_HEADER: "1"} if preview else {})


def probe_now(estate: Estate, estate_path: str, targets: Targets, service: str, env: str,
              names: Sequence[str] = (), *, preview: bool = False) -> list[tuple[str, ProbeResult]]:
    """Run ``service``'s probe gates in ``env`` now (only ``names`` if given), each with its attempts.

    A service that is not running is no error: probes with an explicit url, host or port still run, the
    others fail for want of a router. Unknown service, environment or gate names are the user's to fix."""
    from primum.adapters.targets.base import TargetError
    from primum.core.model.validate import runtime_spec

    if service not in estate.services:
        raise NotFound(f"no service {service!r} in {estate_path}; services: {', '.join(sorted(estate.services))}")
    if env not in estate.environment_names():
        raise NotFound(f"no environment {env!r} in {estate_path}; environments: "
                       f"{', '.join(estate.environment_names())}")
    svc = estate.services[service]
    gates = [g for g in svc.probes if not names or g.name in names]
    unknown = sorted(set(names) - {g.name for g in svc.probes})
    defined = ", ".join(g.name for g in svc.probes) or "none; define them under the service's probes:"
    if unknown:
        raise NotFound(f"{service} has no probe gate {', '.join(unknown)} (defined: {defined})")
    if not gates:
        raise NotFound(f"{service} has no probe gates (defined: {defined})")
    try:
        router_url = targets.for_service(estate, service).router_url(runtime_spec(estate, env, service))
    except TargetError:
        router_url = None
    ctx = probe_context(estate, service, env, router_url, preview=preview)
    return [(g.name, run_gate(g, ctx)) for g in gates]
