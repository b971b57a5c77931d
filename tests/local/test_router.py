"""The data-plane router, mostly as a real process spoken to over real HTTP.

Why real processes: the router's promises (keeps routing when the controller
dies, rejects stale controllers, counts what it answered) are about the
process and the wire, so they are checked there. The pure choice logic is
also checked in-process, against an independent re-implementation of the
documented algorithm, because the controller and analysis rely on it.
"""

from __future__ import annotations

import hashlib
import itertools
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from primum.adapters.targets.local.routes import ConfigError, RouteConfig

from . import Backend, Processes, RouterProc, free_port, parse_metrics, request_counts

KEY_A = "aaaaaaaaaaa1"
KEY_B = "bbbbbbbbbbb2"
TENANTS = ["clinic-north", "clinic-south", "st-elsewhere-ed"]


# ------------------------------------------------------------------ fixtures


_fences = itertools.count(1)


def config(
    a: Backend | str | None,
    b: Backend | str | None,
    weights: tuple[int, int],
    *,
    fence: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    def urls(x: Backend | str | None) -> list[str]:
        if x is None:
            return []
        return [x.url if isinstance(x, Backend) else x]

    body: dict[str, Any] = {
        "fence": next(_fences) if fence is None else fence,
        "versions": {
            KEY_A: {"label": "1.0.0", "weight": weights[0], "instances": urls(a)},
            KEY_B: {"label": "1.1.0", "weight": weights[1], "instances": urls(b)},
        },
        "preview": None,
        "affinity": "none",
        "tenant_header": "x-tenant-id",
        "tenants": TENANTS,
    }
    body.update(extra)
    return body


def push(router: RouterProc, body: Any, expect: int = 200) -> dict[str, Any]:
    """Push ``body`` as the controller does: sealed with the fence key, the next seq, on the admin socket."""
    resp = router.admin().put("/_primum/config", json=router.seal(body))
    assert resp.status_code == expect, resp.text
    return dict(resp.json())


def metrics(router: RouterProc) -> str:
    resp = router.admin().get("/_primum/metrics")
    assert resp.status_code == 200
    return resp.text


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


# --------------------------------------------------------- choice, in-process


def reference_choice(cfg: dict[str, Any], tenant: str) -> str | None:
    """The algorithm exactly as documented, written independently of the router."""
    weights = {k: v["weight"] for k, v in cfg["versions"].items()}
    active = sorted(k for k, w in weights.items() if w > 0)
    salt = ",".join(active)

    def digest(t: str) -> bytes:
        return hashlib.sha256(f"{salt}|{t}".encode()).digest()

    tenants = list(dict.fromkeys(cfg["tenants"]))
    if tenant in tenants:
        ranked = sorted(tenants, key=lambda t: digest(t).hex())
        point = (ranked.index(tenant) + 0.5) / len(tenants)
    else:
        point = int.from_bytes(digest(tenant)[:8], "big") / 2**64
    cumulative = 0
    for key in active:
        cumulative += weights[key]
        if cumulative / 100 > point:
            return key
    return None


@pytest.mark.parametrize("weights", [(100, 0), (0, 100), (80, 20), (34, 66), (50, 50), (1, 99)])
def test_tenant_choice_matches_documented_algorithm(weights: tuple[int, int]) -> None:
    body = config("http://127.0.0.1:1", "http://127.0.0.1:2", weights, affinity="tenant")
    route = RouteConfig.from_json(body)
    for tenant in [*TENANTS, "unknown-1", "unknown-2", "x" * 40]:
        assert route.for_tenant(tenant) == reference_choice(body, tenant)
        assert route.for_tenant(tenant) == route.for_tenant(tenant)  # cached path agrees


def test_three_tenants_quantisation_is_as_documented() -> None:
    """With 3 known tenants a 20 % version holds exactly one of them, a 10 % one none."""
    for canary_weight, expected in ((20, 1), (10, 0)):
        for weights in ((100 - canary_weight, canary_weight), (canary_weight, 100 - canary_weight)):
            body = config("http://127.0.0.1:1", "http://127.0.0.1:2", weights, affinity="tenant")
            route = RouteConfig.from_json(body)
            canary = KEY_B if weights[1] == canary_weight else KEY_A
            on_canary = [t for t in TENANTS if route.for_tenant(t) == canary]
            assert len(on_canary) == expected, (weights, on_canary)


def test_weighted_random_in_process() -> None:
    route = RouteConfig.from_json(config("http://127.0.0.1:1", "http://127.0.0.1:2", (80, 20)))
    counts = Counter(route.weighted_random() for _ in range(20_000))
    assert abs(counts[KEY_A] / 20_000 - 0.8) < 0.02
    nobody = RouteConfig.from_json(config("http://127.0.0.1:1", "http://127.0.0.1:2", (0, 0)))
    assert nobody.weighted_random() is None


def test_choose_order_preview_then_tenant_then_weights() -> None:
    body = config("http://127.0.0.1:1", "http://127.0.0.1:2", (100, 0), preview=KEY_B, affinity="tenant")
    route = RouteConfig.from_json(body)
    assert route.choose({"x-primum-preview": "1", "x-tenant-id": TENANTS[0]}) == (KEY_B, TENANTS[0])
    assert route.choose({"x-tenant-id": TENANTS[0]}) == (KEY_A, TENANTS[0])
    assert route.choose({"x-tenant-id": "somebody-else"}) == (KEY_A, "other")
    assert route.choose({}) == (KEY_A, "-")
    nobody = RouteConfig.from_json(config("http://127.0.0.1:1", "http://127.0.0.1:2", (0, 0)))
    assert nobody.choose({"x-tenant-id": TENANTS[0]}) == (None, TENANTS[0])


def test_routes_module_does_no_io() -> None:
    """The route configuration imports no server, socket or event loop (it is the pure half)."""
    code = (
        "import sys; import primum.adapters.targets.local.routes; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiohttp', 'asyncio', 'socket', 'ssl', 'multidict', 'yarl', 'prometheus_client', 'httpx'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_config_error_names_field() -> None:
    body = config("http://127.0.0.1:1", "ftp://127.0.0.1:2", (50, 50))
    with pytest.raises(ConfigError) as info:
        RouteConfig.from_json(body)
    assert info.value.field == f"versions.{KEY_B}.instances[0]"


# ------------------------------------------------------------ real processes


@pytest.mark.slow
def test_health_and_503_before_any_config(procs: Processes, client: httpx.Client) -> None:
    router = procs.router("staging/scheduling-api")
    health = router.admin().get("/_primum/health").json()
    assert health["ok"] is True
    assert health["name"] == "staging/scheduling-api"
    assert health["pid"] == router.pid
    assert abs(health["started_at"] - time.time()) < 60

    resp = client.get(f"{router.url}/appointments")
    assert resp.status_code == 503
    assert resp.json() == {"error": "no version is taking traffic"}

    cfg = router.admin().get("/_primum/config").json()
    assert cfg["versions"] == {} and cfg["started_at"] == health["started_at"]

    assert request_counts(metrics(router)) == {("-", "503", "-"): 1}
    gauge = parse_metrics(metrics(router))["primum_router_started_at_seconds"]
    assert gauge[()] == pytest.approx(health["started_at"])


@pytest.mark.slow
def test_all_traffic_to_the_full_weight_version(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    applied = push(router, config(a, b, (100, 0)))
    assert applied["versions"][KEY_A]["weight"] == 100
    for i in range(40):
        resp = client.get(f"{router.url}/appointments?page={i}")
        assert resp.status_code == 200
        assert resp.json()["name"] == "A"
        assert resp.headers["x-primum-version"] == KEY_A
    assert b.count() == 0
    assert a.seen[-1]["path"] == "/appointments?page=39"


@pytest.mark.slow
def test_weighted_split_80_20(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    push(router, config(a, b, (80, 20)))
    names = Counter(client.get(f"{router.url}/x").json()["name"] for _ in range(400))
    # Binomial(400, 0.8): sd 8 requests; +-40 is five sd.
    assert 280 <= names["A"] <= 360, names
    assert names["A"] + names["B"] == 400


@pytest.mark.slow
def test_tenant_affinity_is_sticky_and_spread(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    body = config(a, b, (34, 66), affinity="tenant")
    push(router, body)

    def versions_seen(tenant: str, n: int = 15) -> set[str]:
        return {
            client.get(f"{router.url}/x", headers={"x-tenant-id": tenant}).headers[
                "x-primum-version"
            ]
            for _ in range(n)
        }

    placement: dict[str, str] = {}
    for tenant in [*TENANTS, "walk-in-clinic"]:
        seen = versions_seen(tenant)
        assert len(seen) == 1, (tenant, seen)  # sticky
        placement[tenant] = seen.pop()
        assert placement[tenant] == reference_choice(body, tenant)
    assert {placement[t] for t in TENANTS} == {KEY_A, KEY_B}  # spread over both

    # Re-pushing the same weights (a new fence, e.g. another controller) keeps everyone put.
    push(router, {**body, "fence": next(_fences)})
    for tenant, version in placement.items():
        assert versions_seen(tenant, 3) == {version}


@pytest.mark.slow
def test_preview_header(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    push(router, config(a, b, (100, 0), preview=KEY_B, affinity="tenant"))
    preview = {"x-primum-preview": "1", "x-tenant-id": "clinic-north"}
    for _ in range(10):
        assert client.get(f"{router.url}/x", headers=preview).json()["name"] == "B"
        assert client.get(f"{router.url}/x").json()["name"] == "A"
    # A preview version still answers preview requests when nothing takes traffic.
    push(router, config(a, b, (0, 0), preview=KEY_B))
    assert client.get(f"{router.url}/x", headers=preview).json()["name"] == "B"
    assert client.get(f"{router.url}/x").status_code == 503
    # Without a configured preview the header is just ignored.
    push(router, config(a, b, (100, 0)))
    assert client.get(f"{router.url}/x", headers=preview).json()["name"] == "A"


@pytest.mark.slow
def test_fencing(procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client) -> None:
    a, b = backends
    router = procs.router()
    push(router, config(a, b, (90, 10), fence=17))
    before = router.admin().get("/_primum/config").json()

    stale = router.admin().put("/_primum/config", json=router.seal(config(a, b, (0, 100), fence=16)))
    assert stale.status_code == 409
    assert stale.json() == {"error": "stale fence", "reason": "stale fence", "fence": 17, "seq": router.seq - 1}
    assert router.admin().get("/_primum/config").json() == before

    same = push(router, config(a, b, (50, 50), fence=17))  # equal: accepted
    assert same["fence"] == 17 and same["versions"][KEY_B]["weight"] == 50
    newer = push(router, config(a, b, (0, 100), fence=18))
    assert newer["fence"] == 18
    push(router, config(a, b, (100, 0), fence=17), expect=409)
    assert client.get(f"{router.url}/x").json()["name"] == "B"

    # Same content under a newer fence (another controller took over): the fence moves.
    assert push(router, config(a, b, (0, 100), fence=25))["fence"] == 25
    assert router.admin().get("/_primum/config").json()["fence"] == 25
    stale = router.admin().put("/_primum/config", json=router.seal(config(a, b, (0, 100), fence=24)))
    assert stale.status_code == 409 and stale.json()["fence"] == 25


BAD_CONFIGS: list[tuple[str, Any]] = [
    ("fence", lambda c: c.pop("fence")),
    ("fence", lambda c: c.update(fence=-1)),
    ("fence", lambda c: c.update(fence=True)),
    ("versions", lambda c: c.update(versions=[])),
    ("versions", lambda c: c["versions"][KEY_A].update(weight=70)),  # sums to 70 + 0
    (f"versions.{KEY_A}.weight", lambda c: c["versions"][KEY_A].update(weight=101)),
    (f"versions.{KEY_A}.weight", lambda c: c["versions"][KEY_A].update(weight="100")),
    (f"versions.{KEY_A}.weight", lambda c: c["versions"][KEY_A].update(weight=99.5)),
    (f"versions.{KEY_A}.instances", lambda c: c["versions"][KEY_A].update(instances="x")),
    (
        f"versions.{KEY_A}.instances[0]",
        lambda c: c["versions"][KEY_A].update(instances=["https://127.0.0.1:1"]),
    ),
    (
        f"versions.{KEY_A}.instances[0]",
        lambda c: c["versions"][KEY_A].update(instances=["http://127.0.0.1:1/api"]),
    ),
    (f"versions.{KEY_A}.label", lambda c: c["versions"][KEY_A].update(label=3)),
    (f"versions.{KEY_A}.wieght", lambda c: c["versions"][KEY_A].update(wieght=1)),
    ("preview", lambda c: c.update(preview="cccccccccccc")),
    ("affinity", lambda c: c.update(affinity="sticky")),
    ("tenant_header", lambda c: c.update(tenant_header="x tenant")),
    ("tenants", lambda c: c.update(tenants="clinic-north")),
    ("tenants[1]", lambda c: c.update(tenants=["a", "other"])),
    ("weights", lambda c: c.update(weights={})),  # unknown top-level field
]


@pytest.mark.slow
def test_bad_config_is_400_naming_the_field(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    good = push(router, config(a, b, (100, 0)))
    for field, mutate in BAD_CONFIGS:
        body = config(a, b, (100, 0))
        mutate(body)
        resp = router.admin().put("/_primum/config", json=router.seal(body))
        assert resp.status_code == 400, (field, resp.text)
        error = resp.json()
        assert field in error["error"], (field, error)
        assert error["field"] == field
    resp = router.admin().put("/_primum/config", content=b"{not json")
    assert resp.status_code == 400 and "body" in resp.json()["error"]
    assert router.admin().get("/_primum/config").json()["fence"] == good["fence"]


@pytest.mark.slow
def test_metrics_match_what_was_answered(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    b.status = 500
    router = procs.router()
    push(router, config(a, b, (50, 50), affinity="none"))
    expected: Counter[tuple[str, str, str]] = Counter()
    tenant_values = [None, "clinic-north", "st-elsewhere-ed", "walk-in-clinic"]
    for i in range(120):
        tenant = tenant_values[i % len(tenant_values)]
        headers = {"x-tenant-id": tenant} if tenant else {}
        resp = client.get(f"{router.url}/slots", headers=headers)
        label = "-" if tenant is None else (tenant if tenant in TENANTS else "other")
        expected[(resp.headers["x-primum-version"], str(resp.status_code), label)] += 1
    assert {k[1] for k in expected} == {"200", "500"}

    text = metrics(router)
    assert request_counts(text) == dict(expected)
    parsed = parse_metrics(text)
    hist_counts = {
        dict(labels)["version"]: int(v)
        for labels, v in parsed["primum_router_request_duration_seconds_count"].items()
    }
    per_version: Counter[str] = Counter()
    for (version, _, _), n in expected.items():
        per_version[version] += n
    assert hist_counts == dict(per_version)
    buckets = {
        dict(labels)["le"]
        for labels in parsed["primum_router_request_duration_seconds_bucket"]
    }
    assert buckets == {
        "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.5",
        "0.75", "1.0", "1.5", "2.5", "5.0", "10.0", "+Inf",
    }


@pytest.mark.slow
def test_backend_down_is_502_and_counted(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, _ = backends
    router = procs.router()
    push(router, config(a, dead_url(), (0, 100)))
    for _ in range(5):
        resp = client.get(f"{router.url}/x")
        assert resp.status_code == 502
        assert resp.headers["x-primum-version"] == KEY_B
    assert request_counts(metrics(router)) == {(KEY_B, "502", "-"): 5}

    # One dead instance among two: the retry on the next instance hides it.
    body = config(a, None, (100, 0))
    body["versions"][KEY_A]["instances"] = [dead_url(), a.url]
    push(router, body)
    statuses = Counter(client.get(f"{router.url}/x").status_code for _ in range(10))
    assert statuses == {200: 10}


@pytest.mark.slow
def test_slow_backend_is_504(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    a.delay = 1.0
    router = procs.router("staging/slow", "--timeout", "0.3")
    push(router, config(a, b, (100, 0)))
    resp = client.get(f"{router.url}/x")
    assert resp.status_code == 504
    assert request_counts(metrics(router)) == {(KEY_A, "504", "-"): 1}


@pytest.mark.slow
def test_forwarding_details(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    push(router, config(a, b, (100, 0)))
    resp = client.post(
        f"{router.url}/appointments/new?when=tomorrow&x=%2F",
        content=b'{"patient": "p-1"}',
        headers={"X-Request-Id": "r-1", "Connection": "keep-alive, X-Secret", "X-Secret": "s"},
    )
    assert resp.status_code == 200
    assert resp.headers["x-backend"] == "A"
    seen = a.seen[-1]
    assert seen["method"] == "POST"
    assert seen["path"] == "/appointments/new?when=tomorrow&x=%2F"
    assert seen["body"] == '{"patient": "p-1"}'
    assert seen["headers"]["x-request-id"] == "r-1"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert "x-secret" not in seen["headers"]  # named by Connection: hop-by-hop

    head = client.head(f"{router.url}/appointments")
    assert head.status_code == 200
    assert head.headers["content-length"] == "1234"  # the length of the omitted body
    assert head.headers["x-primum-version"] == KEY_A

    # The admin prefix is never proxied.
    before = a.count()
    assert client.get(f"{router.url}/_primum/nope").status_code == 404
    assert a.count() == before


@pytest.mark.slow
def test_sigterm_exits_cleanly(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    push(router, config(a, b, (100, 0)))
    assert client.get(f"{router.url}/x").status_code == 200  # a pooled upstream connection
    router.popen.send_signal(signal.SIGTERM)
    assert router.popen.wait(timeout=10) == 0
