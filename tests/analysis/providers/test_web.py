"""The web provider against a real local HTTP server."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from primum.adapters.providers.base import ProviderError
from primum.adapters.providers.web import WebProvider
from primum.core.model.analysis import MetricKind, MetricSpec, WebSource

from . import Server, free_port, json_answer, scope

DOCS: dict[str, Any] = {
    "/number": {"value": 3.5},
    "/list": {"data": {"values": [1, 2, "3.5", None, "NaN"]}},
    "/nested": {"series": [{"version": "v1", "p95": 0.2}, {"version": "v2", "p95": 0.3}],
                "meta": {"deep": {"deeper": {"n": 7}}}},
    "/counts": {"bad": 3, "all": 120, "name": "abc", "obj": {"x": 1}, "nothing": None, "half": 2.5},
}


def handle(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
    route = urlsplit(path).path
    if route in DOCS:
        return json_answer(DOCS[route])
    if route == "/echo":
        sent = json.loads(body)
        return json_answer({"got": sent, "env": headers.get("x-env"), "value": len(sent["version"])})
    if route == "/text":
        return 200, "text/plain", b"hello"
    if route.startswith("/status/"):
        return int(route.removeprefix("/status/")), "text/plain", b"overloaded: " + b"x" * 500
    if route == "/slow":
        time.sleep(1.0)
        return json_answer({"value": 1})
    return 404, "text/plain", b"no such page"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server(handle)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def provider() -> Iterator[WebProvider]:
    p = WebProvider()
    try:
        yield p
    finally:
        p.close()


def metric(url: str, *, kind: MetricKind = MetricKind.value, **source: Any) -> MetricSpec:
    return MetricSpec(name="web-metric", kind=kind, source=WebSource(url=url, **source))


def test_one_number(server: Server, provider: WebProvider) -> None:
    got = provider.fetch(metric(f"{server.url}/number", jsonpath="$.value"), scope())
    assert got.values == [3.5] and got.source == f"GET {server.url}/number"


def test_list_of_numbers(server: Server, provider: WebProvider) -> None:
    got = provider.fetch(metric(f"{server.url}/list", jsonpath="$.data.values"), scope())
    assert got.values[:3] == [1.0, 2.0, 3.5]
    assert math.isnan(got.values[3]) and math.isnan(got.values[4])  # null and "NaN" in a list


def test_nested_and_filtered_paths(server: Server, provider: WebProvider) -> None:
    url = f"{server.url}/nested?version={{{{version}}}}&tenant={{{{tenant}}}}&w={{{{window}}}}"
    got = provider.fetch(metric(url, jsonpath="$.series[*].p95"), scope("v2", tenant="clinic north"))
    assert got.values == [0.2, 0.3]
    assert got.source == f"GET {server.url}/nested?version=v2&tenant=clinic%20north&w=4s"  # URL-encoded
    assert unquote(server.seen[-1][1]).endswith("tenant=clinic north&w=4s")
    filtered = provider.fetch(metric(url, jsonpath="$.series[?(@.version == 'v2')].p95"), scope())
    assert filtered.values == [0.3]
    deep = provider.fetch(metric(url, jsonpath="$.meta.deep.deeper.n"), scope())
    assert deep.values == [7.0]


def test_post_with_templated_body_and_headers(server: Server, provider: WebProvider) -> None:
    spec = metric(f"{server.url}/echo", method="POST", body='{"version": "{{version}}", "role": "{{role}}"}',
                  headers={"X-Env": "{{env}}"}, jsonpath="$.value")
    got = provider.fetch(spec, scope("abcdef", role="baseline"))
    assert got.values == [6.0]
    method, _, headers, body = server.seen[-1]
    assert method == "POST" and json.loads(body) == {"version": "abcdef", "role": "baseline"}
    assert headers["x-env"] == "staging" and headers["content-type"] == "application/json"
    assert got.source == f'POST {server.url}/echo {{"version": "abcdef", "role": "baseline"}}'


def test_proportion(server: Server, provider: WebProvider) -> None:
    spec = metric(f"{server.url}/counts", kind=MetricKind.proportion, jsonpath="$.bad", total_jsonpath="$.all")
    got = provider.fetch(spec, scope())
    assert (got.events, got.total, got.values) == (3, 120, [])
    swapped = metric(f"{server.url}/counts", kind=MetricKind.proportion, jsonpath="$.all", total_jsonpath="$.bad")
    with pytest.raises(ProviderError, match=r"bad events \(120\) exceed all events \(3\)"):
        provider.fetch(swapped, scope())
    negative = metric(f"{server.url}/counts", kind=MetricKind.proportion, jsonpath="$.name", total_jsonpath="$.all")
    with pytest.raises(ProviderError, match="not a count"):
        provider.fetch(negative, scope())


@pytest.mark.parametrize(
    ("path", "jsonpath", "expected"),
    [
        ("/counts", "$.missing", "matched nothing"),
        ("/counts", "$.name", 'picked "abc", not a number'),
        ("/counts", "$.obj", "not a number"),
        ("/counts", "$.nothing", "picked null, not a number"),
        ("/counts", "$[[[", "invalid jsonpath"),
        ("/text", "$", "answered non-JSON: 'hello'"),
    ],
)
def test_unusable_answers(server: Server, provider: WebProvider, path: str, jsonpath: str, expected: str) -> None:
    before = server.hits(path)
    with pytest.raises(ProviderError) as info:
        provider.fetch(metric(f"{server.url}{path}", jsonpath=jsonpath), scope())
    message = str(info.value)
    assert expected in message
    assert message.startswith(f"metric 'web-metric' (web GET {server.url}{path}): ")
    assert server.hits(path) == before + 1  # not retried: it would not change


def test_non_2xx(server: Server, provider: WebProvider) -> None:
    before = server.hits("/status/404")
    with pytest.raises(ProviderError) as info:
        provider.fetch(metric(f"{server.url}/status/404", retries=2), scope())
    message = str(info.value)
    assert "answered HTTP 404: 'overloaded: xxx" in message
    assert len(message) < 400  # the body is cut at 200 characters
    assert server.hits("/status/404") == before + 1  # a 4xx is not retried

    before = server.hits("/status/503")
    with pytest.raises(ProviderError, match=r"HTTP 503.*\(after 3 attempts\)"):
        provider.fetch(metric(f"{server.url}/status/503", retries=2), scope())
    assert server.hits("/status/503") == before + 3


def test_timeout_with_retries(server: Server, provider: WebProvider) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.fetch(metric(f"{server.url}/slow", timeout=0.2, retries=1), scope())
    elapsed = time.monotonic() - started
    assert "no answer within 0.2 s" in str(info.value) and "(after 2 attempts)" in str(info.value)
    assert 0.6 <= elapsed < 3  # 2 x 0.2 s + 0.2 s backoff


def test_unreachable(provider: WebProvider) -> None:
    with pytest.raises(ProviderError, match=r"request failed: ConnectError.*\(after 2 attempts\)"):
        provider.fetch(metric(f"http://127.0.0.1:{free_port()}/x", retries=1), scope())
