"""HTTP probe against a small local server in a thread."""

from __future__ import annotations

import json

from primum.adapters.probes import ProbeContext, run_probe
from primum.core.model.analysis import HttpProbe

from .conftest import LocalHttp, RawStarter, free_port


def test_status_pass(local_http: LocalHttp) -> None:
    result = run_probe(HttpProbe(url=local_http.base_url + "/ok"), ProbeContext())
    assert result.ok, result.reason
    assert result.probe == "http"
    assert result.target == local_http.base_url + "/ok"
    assert result.details["status"] == 200
    assert result.latency_ms is not None and result.latency_ms >= 0
    assert result.reason.startswith(f"GET {local_http.base_url}/ok answered 200 in ")


def test_unexpected_status_fails(local_http: LocalHttp) -> None:
    url = local_http.base_url + "/status/503"
    result = run_probe(HttpProbe(url=url, expect_status=[200, 204]), ProbeContext())
    assert not result.ok
    assert result.reason == f"GET {url} answered 503, expected 200 or 204"
    assert result.details["status"] == 503
    assert run_probe(HttpProbe(url=url, expect_status=[503]), ProbeContext()).ok


def test_latency_budget(local_http: LocalHttp) -> None:
    url = local_http.base_url + "/slow?s=0.3"
    slow = run_probe(HttpProbe(url=url, max_latency=0.1), ProbeContext())
    assert not slow.ok
    assert "over the 100 ms latency budget" in slow.reason
    assert slow.latency_ms is not None and slow.latency_ms >= 300
    assert run_probe(HttpProbe(url=url, max_latency=2.0), ProbeContext()).ok


def test_timeout_fails_closed(local_http: LocalHttp) -> None:
    url = local_http.base_url + "/slow?s=2"
    result = run_probe(HttpProbe(url=url, timeout=0.2), ProbeContext())
    assert not result.ok
    assert result.reason == f"GET {url} got no answer within 200 ms"
    assert result.latency_ms is not None and result.latency_ms < 1500


def test_body_assertion(local_http: LocalHttp) -> None:
    url = local_http.base_url + "/ok"
    assert run_probe(HttpProbe(url=url, body_contains="synthetic test"), ProbeContext()).ok
    missing = run_probe(HttpProbe(url=url, body_contains="all systems go"), ProbeContext())
    assert not missing.ok
    assert missing.reason == f"GET {url} answered a body without 'all systems go'"


def test_every_problem_is_named(local_http: LocalHttp) -> None:
    url = local_http.base_url + "/status/500"
    result = run_probe(HttpProbe(url=url, body_contains="fine", max_latency=1e-9), ProbeContext())
    assert not result.ok
    assert "answered 500, expected 200" in result.reason
    assert "without 'fine'" in result.reason
    assert "latency budget" in result.reason


def test_redirects_are_not_followed(local_http: LocalHttp) -> None:
    url = local_http.base_url + "/redirect"
    result = run_probe(HttpProbe(url=url), ProbeContext())
    assert not result.ok
    assert "answered 302, expected 200" in result.reason
    assert result.details["location"] == "/ok"
    assert run_probe(HttpProbe(url=url, expect_status=[302]), ProbeContext()).ok
    assert [path for _, path, _ in local_http.seen] == ["/redirect", "/redirect"]


def test_router_default_and_headers(local_http: LocalHttp) -> None:
    ctx = ProbeContext(base_url=local_http.base_url + "/", headers={"x-primum-preview": "1", "x-tenant-id": "a"})
    spec = HttpProbe(path="/echo", headers={"x-tenant-id": "clinic-north"})
    result = run_probe(spec, ctx)
    assert result.ok, result.reason
    assert result.target == local_http.base_url + "/echo"
    method, path, headers = local_http.seen[-1]
    sent = {k.lower(): v for k, v in headers.items()}
    assert (method, path) == ("GET", "/echo")
    assert sent["x-primum-preview"] == "1"
    assert sent["x-tenant-id"] == "clinic-north"  # the probe's own headers win


def test_head_and_post(local_http: LocalHttp) -> None:
    url = local_http.base_url + "/ok"
    assert run_probe(HttpProbe(url=url, method="HEAD"), ProbeContext()).ok
    assert run_probe(HttpProbe(url=url, method="POST"), ProbeContext()).ok
    assert [m for m, _, _ in local_http.seen] == ["HEAD", "POST"]


def test_no_target_fails() -> None:
    result = run_probe(HttpProbe(), ProbeContext())
    assert not result.ok
    assert "has no target" in result.reason


def test_connection_refused_fails() -> None:
    url = f"http://127.0.0.1:{free_port()}/healthz"
    result = run_probe(HttpProbe(url=url), ProbeContext())
    assert not result.ok
    assert result.reason == f"GET {url} could not connect: connection refused"


def test_garbage_answer_fails(raw_server: RawStarter) -> None:
    server = raw_server(lambda _: b"this is not HTTP at all\r\n\r\n", b"\r\n\r\n")
    url = f"http://127.0.0.1:{server.port}/healthz"
    result = run_probe(HttpProbe(url=url), ProbeContext())
    assert not result.ok
    assert result.reason.startswith(f"GET {url} got no valid HTTP answer")


def test_silent_server_times_out(raw_server: RawStarter) -> None:
    server = raw_server(lambda _: None, b"\r\n\r\n")
    result = run_probe(HttpProbe(url=f"http://127.0.0.1:{server.port}/", timeout=0.3), ProbeContext())
    assert not result.ok
    assert "got no answer within 300 ms" in result.reason


def test_bad_urls_fail_closed() -> None:
    for url in ("ftp://example.invalid/x", "http://[::1/", "not a url", "http://"):
        result = run_probe(HttpProbe(url=url, timeout=1), ProbeContext())
        assert not result.ok, url
        assert result.reason.startswith(f"GET {url} "), result.reason
    assert json.dumps(result.model_dump())  # always serialisable
