"""The builtin provider against a real router process and real backends."""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from primum.adapters.providers import builtin as builtin_mod
from primum.adapters.providers.base import ProviderError
from primum.adapters.providers.builtin import BuiltinProvider
from primum.adapters.targets.local.router_client import RouterClient, RouterSamples
from primum.core.model.analysis import MetricKind, MetricSpec
from tests.local import Backend, Processes, RouterProc

from . import free_port, scope

pytestmark = pytest.mark.slow

KEY_A = "aaaaaaaaaaa1"
KEY_B = "bbbbbbbbbbb2"
TENANTS = ["clinic-north", "clinic-south", "st-elsewhere-ed"]
LATENCY = MetricSpec(name="latency", kind=MetricKind.latency)
ERRORS = MetricSpec(name="error-rate", kind=MetricKind.errors)


def push(router: RouterProc, a: Backend, b: Backend, weights: tuple[int, int] = (50, 50)) -> None:
    body: dict[str, Any] = {
        "fence": 1,
        "versions": {
            KEY_A: {"label": "1.0.0", "weight": weights[0], "instances": [a.url]},
            KEY_B: {"label": "1.1.0", "weight": weights[1], "instances": [b.url]},
        },
        "affinity": "none",
        "tenants": TENANTS,
    }
    with router.client() as client:
        router.seq += 1
        client.put_config(body, router.seq)


def traffic(url: str, n: int, tenants: list[str | None]) -> Counter[tuple[str, int, str]]:
    """Send ``n`` requests cycling through ``tenants``; (version, status, tenant label) -> count."""
    seen: Counter[tuple[str, int, str]] = Counter()
    with httpx.Client(timeout=10, trust_env=False) as http:
        for i in range(n):
            tenant = tenants[i % len(tenants)]
            resp = http.get(f"{url}/appointments", headers={"x-tenant-id": tenant} if tenant else {})
            label = "-" if tenant is None else tenant if tenant in TENANTS else "other"
            seen[(resp.headers["x-primum-version"], resp.status_code, label)] += 1
    return seen


def count(seen: Counter[tuple[str, int, str]], version: str, tenant: str | None = None,
          errors: bool = False) -> int:
    return sum(n for (v, s, t), n in seen.items()
               if v == version and (tenant is None or t == tenant) and (not errors or s >= 500))


def test_latency_errors_and_tenant_slices(procs: Processes, backends: tuple[Backend, Backend]) -> None:
    a, b = backends
    b.status = 503
    a.delay = 0.02
    router = procs.router()
    push(router, a, b)
    start = time.time()
    seen = traffic(router.url, 90, [None, "clinic-north", "clinic-south", "walk-in"])
    time.sleep(0.05)
    end = time.time()
    provider = BuiltinProvider()

    for version in (KEY_A, KEY_B):
        lat = provider.fetch(LATENCY, scope(version, start=start, end=end, router_url=router.admin_address))
        assert len(lat.values) == count(seen, version) > 10
        assert lat.events is None and lat.total is None
        assert "/_primum/samples?since=" in lat.source and f"version={version}" in lat.source
        err = provider.fetch(ERRORS, scope(version, start=start, end=end, router_url=router.admin_address))
        assert err.total == count(seen, version) and err.events == count(seen, version, errors=True)
        assert len(err.values) == math.ceil(end - start)
        observed = [v for v in err.values if not math.isnan(v)]
        assert observed and set(observed) == ({0.0} if version == KEY_A else {1.0})
    slow = provider.fetch(LATENCY, scope(KEY_A, start=start, end=end, router_url=router.admin_address))
    assert min(slow.values) >= 0.02  # the backend's delay is in every latency

    for tenant in ("clinic-north", "clinic-south", "other", "st-elsewhere-ed"):
        for version in (KEY_A, KEY_B):
            sliced = provider.fetch(ERRORS, scope(version, start=start, end=end, tenant=tenant,
                                                  router_url=router.admin_address))
            assert sliced.total == count(seen, version, tenant), (tenant, version)
            assert f"tenant={tenant}" in sliced.source
    assert provider.fetch(LATENCY, scope(KEY_A, start=start, end=end, tenant="st-elsewhere-ed",
                                         router_url=router.admin_address)).values == []


def test_one_router_request_per_window(
    procs: Processes, backends: tuple[Backend, Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = backends
    router = procs.router()
    push(router, a, b)
    start = time.time()
    traffic(router.url, 20, ["clinic-north", None])
    end = time.time()
    calls: list[tuple[float, float]] = []

    class Counting(RouterClient):
        def samples(self, since: float, until: float, version: str | None = None) -> RouterSamples:
            calls.append((since, until))
            return super().samples(since, until, version)

    monkeypatch.setattr(builtin_mod, "RouterClient", Counting)
    provider = BuiltinProvider()
    for metric in (LATENCY, ERRORS):
        for version in (KEY_A, KEY_B):
            for tenant in (None, *TENANTS):
                provider.fetch(metric, scope(version, start=start, end=end, tenant=tenant,
                                             router_url=router.admin_address))
    assert calls == [(start, end)]
    provider.fetch(LATENCY, scope(KEY_A, start=start, end=end + 0.001, router_url=router.admin_address))
    assert len(calls) == 2  # another window is another request


def test_incomplete_windows_are_errors(procs: Processes, backends: tuple[Backend, Backend]) -> None:
    a, b = backends
    router = procs.router("staging/scheduling-api", "--samples-max", "10")
    push(router, a, b)
    before_router = time.time() - 60
    start = time.time()
    traffic(router.url, 15, [None])
    end = time.time()
    provider = BuiltinProvider()

    with pytest.raises(ProviderError) as info:
        provider.fetch(LATENCY, scope(KEY_A, start=before_router, end=end, router_url=router.admin_address))
    message = str(info.value)
    assert message.startswith(f"metric 'latency' (builtin {router.admin_address}): the router started at ")
    assert "after the window began" in message and "measure again" in message

    with pytest.raises(ProviderError, match=r"ring buffer no longer holds every request.*--samples-max"):
        provider.fetch(ERRORS, scope(KEY_A, start=start, end=end, router_url=router.admin_address))

    future = time.time() + 60
    with pytest.raises(ProviderError, match="fetch the window only once it has ended"):
        provider.fetch(ERRORS, scope(KEY_A, start=start, end=future, router_url=router.admin_address))

    # A window within what the buffer holds is fine.
    with RouterClient.at(router.admin_address) as client:
        held = client.samples(start, end)
    assert len(held) == 10
    ok = provider.fetch(ERRORS, scope(KEY_A, start=held.t[1], end=end, router_url=router.admin_address))
    assert (ok.total or 0) + (provider.fetch(ERRORS, scope(KEY_B, start=held.t[1], end=end,
                                                         router_url=router.admin_address)).total or 0) == 9


def test_no_router() -> None:
    provider = BuiltinProvider(retries=1)
    with pytest.raises(ProviderError, match="no router URL"):
        provider.fetch(LATENCY, scope(KEY_A))
    url = f"unix:/nonexistent/primum-{free_port()}.sock"
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.fetch(LATENCY, scope(KEY_A, router_url=url))
    message = str(info.value)
    assert "cannot read the router's records" in message and "unreachable" in message
    assert "(after 2 attempts)" in message
    # The failure is cached for the collection: the other scopes fail at once.
    again = time.monotonic()
    with pytest.raises(ProviderError, match="cannot read the router's records"):
        provider.fetch(ERRORS, scope(KEY_B, router_url=url))
    assert time.monotonic() - again < 0.1 < again - started


def test_the_data_port_is_no_source_of_records(procs: Processes, backends: tuple[Backend, Backend]) -> None:
    """The records are per-request tenant data: only the admin socket serves them."""
    a, b = backends
    router = procs.router()
    push(router, a, b)
    with pytest.raises(ProviderError, match="not a router admin address"):
        BuiltinProvider(retries=0).fetch(LATENCY, scope(KEY_A, start=0, end=1, router_url=router.url))
