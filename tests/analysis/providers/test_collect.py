"""collect(): every metric for baseline and canary, overall and per tenant, concurrently."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from primum.adapters.providers.base import ProviderError, Scope
from primum.adapters.providers.collect import collect, wants_slices
from primum.core.analysis.data import MeasurementData, Samples
from primum.core.model.actions import VersionRef
from primum.core.model.analysis import (
    AnalysisSettings,
    CommandSource,
    MetricKind,
    MetricSpec,
    PrometheusSource,
    WebSource,
)
from tests.local import Backend, Processes, processes_fixture

from . import Server, free_port

KEY_A = "aaaaaaaaaaa1"
KEY_B = "bbbbbbbbbbb2"
TENANTS = ["clinic-north", "clinic-south"]
BASELINE = VersionRef(digest="sha256:" + KEY_A + "0" * 52, artifact="/artifacts/a.py", label="1.0.0")
CANARY = VersionRef(digest="sha256:" + KEY_B + "0" * 52, artifact="/artifacts/b.py", label="1.1.0")
PY = sys.executable


class Fake:
    """A provider answering from the scope, failing where told; records every call's thread."""

    name = "fake"

    def __init__(self, fail: set[tuple[str, str, str | None]] | None = None, delay: float = 0.0) -> None:
        self.fail = fail or set()
        self.delay = delay
        self.calls: list[tuple[str, str, str | None]] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def fetch(self, metric: MetricSpec, scope: Scope) -> Samples:
        with self._lock:
            self.calls.append((metric.name, scope.role, scope.tenant))
            self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if (metric.name, scope.role, scope.tenant) in self.fail:
            raise ProviderError(f"metric {metric.name!r} (fake): told to fail")
        if metric.name == "boom":
            raise KeyError("a bug")
        return Samples(values=[float(len(scope.tenant or ""))], source=f"{scope.version}/{scope.tenant}")


def prom(name: str, query: str) -> MetricSpec:
    return MetricSpec(name=name, source=PrometheusSource(query=query))


def run(settings: AnalysisSettings, fake: Fake, *, baseline: VersionRef | None = BASELINE,
        tenants: list[str] = TENANTS) -> MeasurementData:
    return collect(settings, env="staging", service="scheduling-api", baseline=baseline, canary=CANARY,
                   start=100.0, end=104.0, tenants=tenants, router_url=None, slo_error_rate=0.01,
                   slo_p95_s=0.5, providers={"prometheus": fake})


def test_slices_only_where_the_query_uses_the_tenant() -> None:
    assert wants_slices(MetricSpec(name="l", kind=MetricKind.latency), TENANTS)
    assert not wants_slices(MetricSpec(name="l", kind=MetricKind.latency, slices=False), TENANTS)
    assert not wants_slices(MetricSpec(name="l", kind=MetricKind.latency), [])
    assert wants_slices(prom("p", 'x{tenant=~"{{ tenant }}"}'), TENANTS)
    assert not wants_slices(prom("p", 'x{version="{{version}}"}'), TENANTS)
    assert wants_slices(MetricSpec(name="w", source=WebSource(url="http://x/{{tenant}}")), TENANTS)
    assert wants_slices(MetricSpec(name="c", source=CommandSource(argv=["x"], env={"T": "{{tenant}}"})), TENANTS)


def test_structure_order_and_errors() -> None:
    settings = AnalysisSettings(metrics=[
        prom("zeta", 'sum(x{version="{{version}}",tenant=~"{{tenant}}"})'),
        prom("alpha", 'sum(x{version="{{version}}"})'),
        prom("broken", 'sum(y{tenant=~"{{tenant}}"})'),
        prom("boom", "z"),
    ])
    fake = Fake(fail={("broken", "canary", "clinic-south")}, delay=0.02)
    data = run(settings, fake)
    assert list(data.metrics) == ["zeta", "alpha", "broken", "boom"]  # the settings' order
    assert (data.start, data.end, data.baseline_version, data.canary_version) == (100.0, 104.0, KEY_A, KEY_B)
    assert (data.slo_error_rate, data.slo_p95_s) == (0.01, 0.5)

    zeta = data.metrics["zeta"]
    assert zeta.error is None and list(zeta.slices) == TENANTS
    assert zeta.baseline == Samples(values=[0.0], source=f"{KEY_A}/None")
    assert zeta.canary == Samples(values=[0.0], source=f"{KEY_B}/None")
    north_b, north_c = zeta.slices["clinic-north"]
    assert (north_b.source, north_c.source) == (f"{KEY_A}/clinic-north", f"{KEY_B}/clinic-north")

    alpha = data.metrics["alpha"]
    assert alpha.error is None and alpha.slices == {} and alpha.canary is not None

    broken = data.metrics["broken"]
    assert broken.error == "canary, tenant clinic-south: metric 'broken' (fake): told to fail"
    assert broken.baseline is None and broken.canary is None and broken.slices == {}

    boom = data.metrics["boom"]
    assert boom.error == "baseline: metric 'boom' (fake): unexpected KeyError: 'a bug'"

    # Every fetch ran once, several at a time.
    assert len(fake.calls) == len(set(fake.calls)) == 2 * 3 + 2 + 2 * 3 + 2
    assert len(fake.threads) > 1


def test_first_deployment_has_no_baseline_and_no_slices() -> None:
    settings = AnalysisSettings(metrics=[prom("zeta", 'x{tenant=~"{{tenant}}"}')])
    fake = Fake()
    data = run(settings, fake, baseline=None)
    zeta = data.metrics["zeta"]
    assert data.baseline_version is None
    assert zeta.baseline is None and zeta.canary is not None and zeta.slices == {}
    assert fake.calls == [("zeta", "canary", None)]


# ------------------------------------------------------------ real providers


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    yield from processes_fixture(tmp_path)


@pytest.mark.slow
def test_mixed_real_providers_one_failing(procs: Processes) -> None:
    a, b = Backend("A"), Backend("B")
    missing = Server(lambda *_: (404, "text/plain", b"no such metric"))
    try:
        router = procs.router()
        with router.client() as client:
            client.put_config(seq=1, config={
                "fence": 1,
                "versions": {KEY_A: {"weight": 50, "instances": [a.url]}, KEY_B: {"weight": 50, "instances": [b.url]}},
                "affinity": "none",
                "tenants": TENANTS,
            })
        b.status = 500
        start = time.time()
        with httpx.Client(trust_env=False) as http:
            for i in range(40):
                http.get(f"{router.url}/x", headers={"x-tenant-id": TENANTS[i % 2]})
        end = time.time()

        settings = AnalysisSettings(metrics=[
            MetricSpec(name="error-rate", kind=MetricKind.errors, critical=True),
            MetricSpec(name="latency", kind=MetricKind.latency),
            MetricSpec(name="queue", source=CommandSource(argv=[PY, "-c", "import sys; print(len(sys.argv[1]))",
                                                                "{{version}}{{tenant}}"])),
            MetricSpec(name="success", kind=MetricKind.proportion,
                       source=WebSource(url=f"{missing.url}/counts/{{{{version}}}}", jsonpath="$.bad",
                                        total_jsonpath="$.all", retries=0)),
            MetricSpec(name="dead-prometheus", source=PrometheusSource(
                address=f"http://127.0.0.1:{free_port()}", query="up", retries=0)),
        ])
        data = collect(settings, env="staging", service="scheduling-api", baseline=BASELINE, canary=CANARY,
                       start=start, end=end, tenants=TENANTS, router_url=router.admin_address, slo_error_rate=None,
                       slo_p95_s=None)
    finally:
        a.close()
        b.close()
        missing.close()

    assert list(data.metrics) == ["error-rate", "latency", "queue", "success", "dead-prometheus"]
    errors = data.metrics["error-rate"]
    assert errors.error is None and errors.baseline is not None and errors.canary is not None
    assert errors.baseline.events == 0 and errors.canary.events == errors.canary.total
    assert (errors.baseline.total or 0) + (errors.canary.total or 0) == 40
    assert list(errors.slices) == TENANTS
    assert sum((bs.total or 0) + (cs.total or 0) for bs, cs in errors.slices.values()) == 40
    latency = data.metrics["latency"]
    assert latency.error is None and latency.canary is not None
    assert len(latency.canary.values) == errors.canary.total
    queue = data.metrics["queue"]
    assert queue.error is None and queue.canary is not None and queue.canary.values == [12.0]
    assert queue.slices["clinic-north"][1].values == [12.0 + len("clinic-north")]

    success = data.metrics["success"]
    assert success.error is not None and success.canary is None
    assert success.error.startswith(f"baseline: metric 'success' (web GET {missing.url}/counts/{KEY_A}): ")
    assert "answered HTTP 404: 'no such metric'" in success.error
    dead = data.metrics["dead-prometheus"]
    assert dead.error is not None and "cannot reach" in dead.error
