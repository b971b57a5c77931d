"""The I/O edge of analysis: fetch a measurement's data and run probe gates for one
rollout item. The controller calls these between observing and deciding; the
judge (pure) sees only their results. Nothing here raises for a provider or
network failure: those become Error metrics or failed probes (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence

from primum.adapters.probes import ProbeContext, run_probe
from primum.adapters.providers.collect import collect
from primum.core.analysis.data import MeasurementData, ProbeResult, Samples
from primum.core.model.estate import Estate, LocalTargetSettings
from primum.core.model.rollout import ServiceRollout

PREVIEW_HEADER = "x-primum-preview"


def measure(estate: Estate, item: ServiceRollout, router_url: str | None, start: float, end: float,
            baseline_window: tuple[float, float] | None = None) -> MeasurementData:
    """Baseline (the stable version) and canary (the new one) samples of every metric over [start, end]
    (the baseline over ``baseline_window`` when given)."""
    data = collect(item.analysis, env=item.env, service=item.service, baseline=item.stable, canary=item.new,
                   start=start, end=end, tenants=[t.id for t in estate.tenants], router_url=router_url,
                   slo_error_rate=item.slo.error_rate, slo_p95_s=item.slo.p95_ms / 1000.0,
                   baseline_window=baseline_window)
    return pooled_slice_baselines(data, item.analysis.min_slice_samples)


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
    target = estate.services[item.service].target
    mllp_port = target.mllp_ports.get(item.env) if isinstance(target, LocalTargetSettings) else None
    ctx = ProbeContext(base_url=router_url, mllp_port=mllp_port,
                       headers={PREVIEW_HEADER: "1"} if preview else {})
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
