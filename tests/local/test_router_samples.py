"""The router's per-request records (``GET /_primum/samples``), over real HTTP.

The analysis' builtin provider judges these records directly, so what is
checked is that they say exactly what the router answered (version, status,
tenant label, latency), only within the asked window, never for admin
calls, and that a window the ring buffer no longer fully holds is flagged.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest

from primum.adapters.targets.base import TargetError
from primum.adapters.targets.local.router_client import RouterClient, RouterSamples, parse_samples

from . import Backend, Processes, RouterProc, request_counts

KEY_A = "aaaaaaaaaaa1"
KEY_B = "bbbbbbbbbbb2"
TENANTS = ["clinic-north", "clinic-south"]

_fence = iter(range(1, 10_000))


def push(router: RouterProc, a: Backend, b: Backend, weights: tuple[int, int]) -> None:
    body: dict[str, Any] = {
        "fence": next(_fence),
        "versions": {
            KEY_A: {"label": "1.0.0", "weight": weights[0], "instances": [a.url]},
            KEY_B: {"label": "1.1.0", "weight": weights[1], "instances": [b.url]},
        },
        "affinity": "none",
        "tenants": TENANTS,
    }
    resp = router.admin().put("/_primum/config", json=router.seal(body))
    assert resp.status_code == 200, resp.text


def samples(router: RouterProc, **params: Any) -> dict[str, Any]:
    """The records, read where the controller reads them: on the admin socket."""
    resp = router.admin().get("/_primum/samples", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_parse_samples_rejects_malformed_answers() -> None:
    good: dict[str, Any] = {
        "started_at": 1.0, "now": 5.0, "since": 2.0, "until": 4.0, "oldest": 2.5, "complete": True,
        "count": 1, "t": [3.0], "version": [KEY_A], "status": [200], "tenant": ["-"], "latency": [0.01],
    }
    parsed = parse_samples(good)
    assert parsed == RouterSamples(1.0, 5.0, 2.0, 4.0, 2.5, True, (3.0,), (KEY_A,), (200,), ("-",), (0.01,))
    assert len(parsed) == 1
    changes: list[dict[str, Any]] = [{"status": ["200"]}, {"latency": []}, {"complete": "yes"}, {"t": None},
                                     {"started_at": None}, {"oldest": "x"}, {"status": [True]}]
    for change in changes:
        with pytest.raises(TargetError):
            parse_samples({**good, **change})
    assert parse_samples({**good, "oldest": None}).oldest is None


@pytest.mark.slow
def test_records_what_was_answered(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    b.status = 500
    router = procs.router()
    since = time.time()
    client.get(f"{router.url}/before-config")  # 503, no version: recorded as "-"
    push(router, a, b, (50, 50))
    expected: Counter[tuple[str, int, str]] = Counter({("-", 503, "-"): 1})
    tenant_values = [None, "clinic-north", "clinic-south", "walk-in"]
    for i in range(60):
        tenant = tenant_values[i % len(tenant_values)]
        resp = client.get(f"{router.url}/slots", headers={"x-tenant-id": tenant} if tenant else {})
        label = "-" if tenant is None else (tenant if tenant in TENANTS else "other")
        expected[(resp.headers["x-primum-version"], resp.status_code, label)] += 1
    # Admin calls are never records, nor are the data port's refusals of the admin prefix.
    router.admin().get("/_primum/health")
    router.admin().get("/_primum/metrics")
    assert client.get(f"{router.url}/_primum/samples").status_code == 404
    until = time.time()

    body = samples(router, since=since, until=until)
    assert body["complete"] is True and body["count"] == 61
    assert body["since"] == since and body["until"] == until
    assert body["started_at"] <= since <= body["oldest"] <= body["t"][0]
    assert body["now"] >= until
    got = Counter(zip(body["version"], body["status"], body["tenant"], strict=True))
    assert got == expected
    assert body["t"] == sorted(body["t"]) and since <= body["t"][0] and body["t"][-1] <= until
    assert all(0 < x < 2 for x in body["latency"])
    # The records agree with the counters.
    counts = request_counts(router.admin().get("/_primum/metrics").text)
    assert {(v, int(s), t): n for (v, s, t), n in counts.items()} == dict(expected)

    # The typed client says the same, and filters by version.
    with RouterClient.at(router.admin_address) as rc:
        typed = rc.samples(since, until)
        only_b = rc.samples(since, until, version=KEY_B)
    assert list(typed.t) == body["t"] and list(typed.tenant) == body["tenant"]
    assert set(only_b.version) == {KEY_B}
    assert len(only_b) == sum(n for (v, _, _), n in expected.items() if v == KEY_B)
    assert set(only_b.status) == {500}


@pytest.mark.slow
def test_window_bounds_and_latency(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    push(router, a, b, (100, 0))
    for _ in range(5):
        client.get(f"{router.url}/early")
    middle_start = time.time()
    a.delay = 0.05
    for _ in range(4):
        client.get(f"{router.url}/slow", headers={"x-tenant-id": "clinic-south"})
    middle_end = time.time()
    a.delay = 0.0
    for _ in range(3):
        client.get(f"{router.url}/late")

    body = samples(router, since=middle_start, until=middle_end)
    assert body["count"] == 4 and body["complete"] is True
    assert body["tenant"] == ["clinic-south"] * 4
    assert all(0.05 <= x < 1.0 for x in body["latency"]), body["latency"]
    everything = samples(router, since=0, until=time.time())
    assert everything["count"] == 12
    # A window before the router started cannot be complete.
    assert everything["complete"] is False
    assert samples(router, since=time.time() + 100, until=time.time() + 200)["count"] == 0
    assert samples(router, since=middle_start, until=middle_end, version="nope")["count"] == 0


@pytest.mark.slow
def test_ring_buffer_eviction_is_flagged(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router("staging/scheduling-api", "--samples-max", "10")
    push(router, a, b, (100, 0))
    since = time.time()
    for _ in range(15):
        client.get(f"{router.url}/x")
    until = time.time()
    body = samples(router, since=since, until=until)
    assert body["count"] == 10
    assert body["complete"] is False  # five records of the window were evicted
    # A window that starts after the oldest record held is complete again.
    later = samples(router, since=body["t"][1], until=until)
    assert later["complete"] is True and later["count"] == 9
    with RouterClient.at(router.admin_address) as rc:
        assert rc.samples(since, until).complete is False


@pytest.mark.slow
def test_bad_requests(procs: Processes, client: httpx.Client) -> None:
    router = procs.router()
    url = "/_primum/samples"
    admin = router.admin()
    for params, field in (
        ({"until": "5"}, "since"),
        ({"since": "5"}, "until"),
        ({"since": "x", "until": "5"}, "since"),
        ({"since": "nan", "until": "5"}, "since"),
        ({"since": "1", "until": "inf"}, "until"),
        ({"since": "5", "until": "1"}, "until"),
    ):
        resp = admin.get(url, params=params)
        assert resp.status_code == 400, (params, resp.text)
        assert resp.json()["field"] == field
    assert admin.post(url, params={"since": 1, "until": 2}).status_code == 405
    with RouterClient.at(router.admin_address) as rc, pytest.raises(TargetError, match="until"):
        rc.samples(5, 1)
    # Nothing above was recorded (admin paths only).
    assert samples(router, since=0, until=time.time())["count"] == 0
