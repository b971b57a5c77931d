"""One measurement's data: every metric, for the baseline and the canary,
overall and per tenant slice, fetched concurrently.

Tenant slices are fetched for a builtin metric whenever ``metric.slices`` is
set and there are tenants; for any other source only when, in addition, its
query, URL, body, headers, argv or env use ``{{tenant}}`` (otherwise every
slice would repeat the overall query). Without a baseline (a first
deployment) there is nothing to compare a slice with, so no slice is fetched.

Any failure of a metric's fetches makes that metric's
:attr:`MetricData.error <primum.core.analysis.data.MetricData.error>` (the first
failure in the order baseline, canary, then slices in tenant order), with
no samples; it is never raised, and the other metrics are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from primum.adapters.providers.base import Provider, ProviderError, Role, Scope
from primum.adapters.providers.registry import provider_for
from primum.core.analysis.data import MeasurementData, MetricData, Samples
from primum.core.model.actions import VersionRef
from primum.core.model.analysis import AnalysisSettings, MetricSpec, SourceSpec

log = logging.getLogger(__name__)

MAX_WORKERS = 8  # fetches are I/O bound; a handful at once keeps every backend polite

# (metric name, role, tenant or None)
_Key = tuple[str, Role, str | None]


def wants_slices(metric: MetricSpec, tenants: list[str]) -> bool:
    if not metric.slices or not tenants:
        return False
    source = metric.source
    return isinstance(source, SourceSpec) and source.slices_by_tenant()


def collect(
    settings: AnalysisSettings,
    *,
    env: str,
    service: str,
    baseline: VersionRef | None,
    canary: VersionRef,
    start: float,
    end: float,
    tenants: list[str],
    router_url: str | None,
    slo_error_rate: float | None,
    slo_p95_s: float | None,
    slo_p99_s: float | None = None,
    providers: Mapping[str, Provider] | None = None,
    max_workers: int = MAX_WORKERS,
    baseline_window: tuple[float, float] | None = None,
) -> MeasurementData:
    """Fetch every metric of ``settings`` for the window ``[start, end]``.

    ``providers`` (source type -> provider) replaces the default, one new
    provider per source type for this collection (so the builtin provider's
    cache lives exactly as long as the collection). ``baseline_window``: the
    baseline's own ``(start, end)`` when it took no traffic during ``[start, end]``
    (after a blue-green switch the old version is compared as it was just before).
    """
    tenants = list(dict.fromkeys(tenants))
    owned: dict[str, Provider] = {}

    def provider(metric: MetricSpec) -> Provider:
        kind = metric.source.type
        if providers is not None and kind in providers:
            return providers[kind]
        if kind not in owned:
            owned[kind] = provider_for(metric.source)
        return owned[kind]

    def scope(role: Role, version: VersionRef) -> Scope:
        begin, until = baseline_window if (role == "baseline" and baseline_window) else (start, end)
        return Scope(env=env, service=service, role=role, version=version.key, digest=version.digest,
                     start=begin, end=until, tenant=None, router_url=router_url)

    roots: list[tuple[Role, Scope]] = [("canary", scope("canary", canary))]
    if baseline is not None:
        roots.insert(0, ("baseline", scope("baseline", baseline)))

    plan: list[tuple[_Key, MetricSpec, Provider, Scope]] = []
    for metric in settings.metrics:
        chosen = provider(metric)
        slices = tenants if baseline is not None and wants_slices(metric, tenants) else []
        for tenant in [None, *slices]:
            for role, root in roots:
                plan.append(((metric.name, role, tenant), metric, chosen, root.for_tenant(tenant)))

    results: dict[_Key, Samples | str] = {}
    try:
        if plan:
            workers = max(1, min(max_workers, len(plan)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="primum-metrics") as pool:
                futures: list[tuple[_Key, Future[Samples | str]]] = [
                    (key, pool.submit(_fetch, chosen, metric, sc)) for key, metric, chosen, sc in plan
                ]
                for key, future in futures:
                    results[key] = future.result()
    finally:
        for owned_provider in owned.values():
            close: Callable[[], None] | None = getattr(owned_provider, "close", None)
            if close is not None:
                close()

    return MeasurementData(
        start=start,
        end=end,
        baseline_version=baseline.key if baseline is not None else None,
        canary_version=canary.key,
        metrics={m.name: _metric_data(m, results, baseline is not None, tenants) for m in settings.metrics},
        slo_error_rate=slo_error_rate,
        slo_p95_s=slo_p95_s,
        slo_p99_s=slo_p99_s,
        baseline_start=baseline_window[0] if baseline_window else None,
        baseline_end=baseline_window[1] if baseline_window else None,
    )


def _fetch(provider: Provider, metric: MetricSpec, scope: Scope) -> Samples | str:
    """Samples, or the error message (never raises)."""
    try:
        return provider.fetch(metric, scope)
    except ProviderError as exc:
        return str(exc)
    except Exception as exc:  # a provider bug must fail the metric, not the measurement
        log.exception("metric %s: provider %s failed unexpectedly", metric.name, getattr(provider, "name", "?"))
        return (f"metric {metric.name!r} ({getattr(provider, 'name', '?')}): unexpected "
                f"{type(exc).__name__}: {exc}")


def _metric_data(metric: MetricSpec, results: Mapping[_Key, Samples | str], has_baseline: bool,
                 tenants: list[str]) -> MetricData:
    name = metric.name
    order: list[_Key] = [(name, "baseline", None)] if has_baseline else []
    order.append((name, "canary", None))
    slices = [t for t in tenants if (name, "canary", t) in results]
    for tenant in slices:
        order += [(name, "baseline", tenant), (name, "canary", tenant)]
    for key in order:
        got = results[key]
        if isinstance(got, str):
            _, role, slice_tenant = key
            where = role + (f", tenant {slice_tenant}" if slice_tenant is not None else "")
            return MetricData(metric=name, error=f"{where}: {got}")
    baseline = results[(name, "baseline", None)] if has_baseline else None
    canary = results[(name, "canary", None)]
    assert not isinstance(baseline, str) and isinstance(canary, Samples)
    pairs: dict[str, tuple[Samples, Samples]] = {}
    for tenant in slices:
        b, c = results[(name, "baseline", tenant)], results[(name, "canary", tenant)]
        assert isinstance(b, Samples) and isinstance(c, Samples)
        pairs[tenant] = (b, c)
    return MetricData(metric=name, baseline=baseline, canary=canary, slices=pairs)
