"""The Prometheus provider against a real Prometheus (``/usr/bin/prometheus``).

A module fixture starts Prometheus on a free port, scraping every second a
small exporter served from this process whose values the tests change, and
waits until the target is up. Without the binary the tests skip locally but
fail in CI (``CI=true``): there a missing service is an error.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from primum.adapters.providers.base import ProviderError
from primum.adapters.providers.prometheus import PrometheusProvider
from primum.core.model.analysis import MetricKind, MetricSpec, PrometheusSource

from . import Server, free_port, scope, wait_until

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 30.0


class Exporter:
    """Prometheus text exposition of ``values`` (sample text -> value), changeable while scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, float] = {
            'app_requests_total{version="v1"}': 120,
            'app_errors_total{version="v1"}': 3,
            'app_requests_total{version="v2"}': 80,
            'app_errors_total{version="v2"}': 9,
            'app_latency_seconds{version="v1"}': 0.1,
            'app_latency_seconds{version="v2"}': 0.2,
            'app_queue_depth{version="v1",shard="a"}': 1,
            'app_queue_depth{version="v1",shard="b"}': 2,
            'app_odd{version="v1"}': math.nan,
        }
        self.server = Server(self._handle)

    def set(self, sample: str, value: float) -> None:
        with self._lock:
            self.values[sample] = value

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        with self._lock:
            lines = [f"{sample} {value!r}".replace("nan", "NaN") for sample, value in self.values.items()]
        return 200, "text/plain; version=0.0.4", ("\n".join(lines) + "\n").encode()


@dataclass
class Prom:
    url: str
    exporter: Exporter
    launched_at: float  # before the process started: no sample is older


def _prometheus_binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if found is None:
        reason = "the prometheus binary is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    binary = _prometheus_binary()
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter = Exporter()
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: app\n    static_configs:\n"
        f"      - targets: ['{exporter.server.url.removeprefix('http://')}']\n"
    )
    log = (tmp / "prometheus.log").open("w")
    launched_at = time.time()
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(trust_env=False, timeout=2) as http:

            def target_up() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"prometheus exited with {proc.returncode}: "
                                         f"{(tmp / 'prometheus.log').read_text()[-2000:]}")
                try:
                    targets = http.get(f"{url}/api/v1/targets").json()["data"]["activeTargets"]
                    # Four scrapes (3 s of data), so every test window has some.
                    query = "count_over_time(app_latency_seconds[1m]) >= 4"
                    data = http.get(f"{url}/api/v1/query", params={"query": query}).json()
                except (httpx.HTTPError, ValueError, KeyError):
                    return False
                return bool(targets) and targets[0]["health"] == "up" and len(data["data"]["result"]) == 2

            wait_until(target_up, START_TIMEOUT_S, "prometheus to scrape the exporter four times")
        yield Prom(url, exporter, launched_at)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        exporter.server.close()


def metric(query: str, *, kind: MetricKind = MetricKind.value, **source: Any) -> MetricSpec:
    return MetricSpec(name="m", kind=kind, source=PrometheusSource(query=query, **source))


@pytest.fixture
def provider() -> Iterator[PrometheusProvider]:
    p = PrometheusProvider()
    try:
        yield p
    finally:
        p.close()


def test_instant_query_templated(prom: Prom, provider: PrometheusProvider) -> None:
    now = time.time()
    spec = metric('app_latency_seconds{version="{{version}}"}', address=prom.url, range=False)
    got = provider.fetch(spec, scope("v2", start=now - 4, end=now))
    assert got.values == [0.2]
    assert got.source == 'app_latency_seconds{version="v2"}'  # the query exactly as sent
    assert got.events is None and got.total is None


def test_range_query_on_the_step_grid(prom: Prom, provider: PrometheusProvider) -> None:
    end = time.time()
    start = prom.launched_at - 3  # the first steps are before any scrape: NaN
    spec = metric('app_latency_seconds{version="{{version}}"}', address=prom.url, step="1s")
    got = provider.fetch(spec, scope("v1", start=start, end=end))
    assert len(got.values) == math.floor(end - start) + 1
    assert all(math.isnan(v) for v in got.values[:3])
    assert got.values[-1] == 0.1
    assert {v for v in got.values if not math.isnan(v)} == {0.1}


def test_range_query_sees_a_change(prom: Prom, provider: PrometheusProvider) -> None:
    spec = metric('app_latency_seconds{version="{{version}}"} * 1000', address=prom.url, step="500ms")
    instant = metric('app_latency_seconds{version="{{version}}"}', address=prom.url, range=False)
    before = time.time()
    prom.exporter.set('app_latency_seconds{version="v2"}', 0.4)
    wait_until(lambda: provider.fetch(instant, scope("v2", start=0, end=time.time())).values == [0.4], 10,
               "the new value to be scraped")
    time.sleep(0.5)
    end = time.time()
    got = provider.fetch(spec, scope("v2", start=before - 2, end=end))
    assert len(got.values) == math.floor((end - before + 2) / 0.5) + 1
    assert got.values[0] == pytest.approx(200) and got.values[-1] == pytest.approx(400)
    assert got.values == sorted(got.values)  # 200 ... 200, 400 ... 400
    prom.exporter.set('app_latency_seconds{version="v2"}', 0.2)


def test_proportion_from_total_query(prom: Prom, provider: PrometheusProvider) -> None:
    now = time.time()
    spec = metric('app_errors_total{version="{{version}}"}', kind=MetricKind.proportion, address=prom.url,
                  total_query='app_requests_total{version="{{version}}"}')
    v1 = provider.fetch(spec, scope("v1", start=now - 4, end=now))
    v2 = provider.fetch(spec, scope("v2", start=now - 4, end=now))
    assert (v1.events, v1.total, v1.values) == (3, 120, [])
    assert (v2.events, v2.total) == (9, 80)
    assert v2.source == 'events: app_errors_total{version="v2"}; total: app_requests_total{version="v2"}'


def test_window_and_tenant_placeholders(prom: Prom, provider: PrometheusProvider) -> None:
    now = time.time()
    # {{window}} renders as a PromQL duration; {{tenant}} is ".*" for all traffic.
    spec = metric('max_over_time(app_latency_seconds{version="{{version}}",job=~"{{tenant}}"}[{{window}}])',
                  address=prom.url, range=False)
    got = provider.fetch(spec, scope("v1", start=now - 4, end=now))
    assert got.values == [0.1]
    assert got.source == 'max_over_time(app_latency_seconds{version="v1",job=~".*"}[4s])'


def test_nan_value(prom: Prom, provider: PrometheusProvider) -> None:
    now = time.time()
    got = provider.fetch(metric('app_odd{version="v1"}', address=prom.url, range=False), scope(end=now))
    assert len(got.values) == 1 and math.isnan(got.values[0])


def test_bad_promql_surfaces_prometheus_error(prom: Prom, provider: PrometheusProvider) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.fetch(metric("sum(app_latency_seconds", address=prom.url, range=False), scope(end=time.time()))
    message = str(info.value)
    assert "metric 'm' (prometheus http://127.0.0.1:" in message
    assert "HTTP 400 bad_data" in message and "parse error" in message
    assert "fix the PromQL" in message
    assert "attempts" not in message and time.monotonic() - started < 2  # not retried


def test_several_series_is_an_error(prom: Prom, provider: PrometheusProvider) -> None:
    with pytest.raises(ProviderError) as info:
        provider.fetch(metric('app_queue_depth{version="{{version}}"}', address=prom.url, range=False),
                       scope(end=time.time()))
    message = str(info.value)
    assert "returned 2 series, need exactly one" in message
    assert 'shard="a"' in message and 'shard="b"' in message and "sum(" in message
    with pytest.raises(ProviderError, match="returned 2 series"):
        now = time.time()
        provider.fetch(metric('app_queue_depth{version="v1"}', address=prom.url), scope(start=now - 4, end=now))
    with pytest.raises(ProviderError, match="returned 0 series"):
        provider.fetch(metric('app_latency_seconds{version="v9"}', address=prom.url, range=False),
                       scope(end=time.time()))
    # Aggregated, it is one series.
    got = provider.fetch(metric('sum(app_queue_depth{version="v1"})', address=prom.url, range=False),
                         scope(end=time.time()))
    assert got.values == [3.0]


def test_unreachable_retries_then_fails(provider: PrometheusProvider) -> None:
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.fetch(metric("up", address=address, retries=2, range=False), scope())
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert f"cannot reach {address}/api/v1/query" in message and "(after 3 attempts)" in message
    assert "check the source's address" in message
    assert 0.6 <= elapsed < 5  # backoff 0.2 s + 0.4 s


def test_timeout_retries_then_fails(provider: PrometheusProvider) -> None:
    # A listening socket that never answers: the connection is made, the answer never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ProviderError) as info:
            provider.fetch(metric("up", address=address, timeout=0.3, retries=1), scope())
        elapsed = time.monotonic() - started
    message = str(info.value)
    assert "no answer from" in message and "within 0.3 s" in message and "(after 2 attempts)" in message
    assert 0.8 <= elapsed < 5


def test_not_prometheus(provider: PrometheusProvider) -> None:
    server = Server(lambda *_: (404, "text/plain", b"no such page"))
    try:
        with pytest.raises(ProviderError, match="answered HTTP 404: 'no such page'"):
            provider.fetch(metric("up", address=server.url, range=False), scope())
        assert server.hits() == 1  # a 4xx is not retried
    finally:
        server.close()
