"""The locked data plane (issue 13, point 1): each attack on the router as a test, over real processes.

* nothing under ``/_primum`` is served or proxied on the data port: the admin API, the per-request
  records and the metrics are on a 0600 Unix socket (in a 0700 directory) or a token-guarded listener;
* only a configuration sealed with the runtime's fence key, addressed to this router, with a sane
  fence and a fresh seq changes anything: unsigned, forged, misaddressed, huge-fenced and replayed
  pushes are refused with an error naming the field;
* the router refuses to start on files others can read or a directory others can enter;
* a version whose instances stop answering loses its weight to the healthy versions on the router's
  own, visibly, and gets it back when it recovers.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from primum.adapters.targets.local.fencing import seal
from primum.adapters.targets.local.routes import MAX_FENCE, RouteConfig

from . import Backend, Processes, RouterProc, free_port, key_file, private_dir
from .test_router import KEY_A, KEY_B, config, dead_url, push

pytestmark = pytest.mark.slow


def current(router: RouterProc) -> dict[str, Any]:
    return dict(router.admin().get("/_primum/config").json())


def wait_for(what: str, check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# ------------------------------------------------------------- the data port


ATTACKS = [
    ("GET", "/_primum/config"),
    ("PUT", "/_primum/config"),
    ("GET", "/_primum/samples?since=0&until=99999999999"),
    ("GET", "/_primum/metrics"),
    ("GET", "/_primum/health"),
    ("GET", "/_primum"),
    ("GET", "/%5Fprimum/config"),  # percent-encoded: the same path once decoded
    ("DELETE", "/_primum/anything"),
]


def test_the_data_port_serves_and_proxies_nothing_under_the_admin_prefix(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    push(router, config(a, b, (100, 0), fence=3))
    before, seen = current(router), a.count() + b.count()
    hijack = {**config(dead_url(), dead_url(), (0, 100), fence=10**18)}
    for method, path in ATTACKS:
        resp = client.request(method, f"{router.url}{path}", json=hijack if method == "PUT" else None)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json() == {"error": "not found"} and "x-primum-version" not in resp.headers
    assert a.count() + b.count() == seen  # never proxied
    assert current(router) == before  # and nothing changed
    assert client.get(f"{router.url}/x").json()["name"] == "A"


def test_the_admin_socket_is_the_owners_alone(procs: Processes) -> None:
    router = procs.router()
    sock = os.stat(router.admin_socket)
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600
    assert sock.st_uid == os.getuid()
    directory = os.stat(os.path.dirname(router.admin_socket))
    assert stat.S_IMODE(directory.st_mode) == 0o700
    assert router.admin().get("/_primum/health").json()["name"] == "staging/scheduling-api"


# ---------------------------------------------------------------- signatures


def test_unsigned_forged_misaddressed_and_huge_fenced_pushes_are_refused(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    push(router, config(a, b, (100, 0), fence=7))
    before = current(router)
    hijack = config(dead_url(), dead_url(), (0, 100), fence=8)
    admin = router.admin()

    unsigned = admin.put("/_primum/config", json=hijack)
    assert unsigned.status_code == 400 and unsigned.json()["field"] == "body"
    assert "signed envelope" in unsigned.json()["error"]

    forged = admin.put("/_primum/config", json=router.seal(hijack, key=secrets.token_bytes(32)))
    assert forged.status_code == 403 and forged.json()["field"] == "mac"
    assert "not issued by its controller" in forged.json()["error"]

    other = admin.put("/_primum/config", json=seal(router.key, "prod/scheduling-api", router.seq + 1, hijack))
    assert other.status_code == 403 and other.json()["field"] == "router"

    tampered = router.seal(config(a, b, (0, 100), fence=8))
    tampered["payload"] = tampered["payload"].replace('"weight":0', '"weight":100', 1)
    assert admin.put("/_primum/config", json=tampered).status_code == 403

    for huge in (10**18, MAX_FENCE + 1):
        resp = admin.put("/_primum/config", json=router.seal(config(a, b, (0, 100), fence=huge)))
        assert resp.status_code == 400 and resp.json()["field"] == "fence", resp.text
        assert "above the largest fence" in resp.json()["error"]

    assert current(router) == before
    assert {client.get(f"{router.url}/x").json()["name"] for _ in range(10)} == {"A"}
    # the controller, with the key, still steers it
    assert push(router, config(a, b, (0, 100), fence=8))["fence"] == 8


def test_a_replayed_push_is_refused(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router()
    admin = router.admin()
    first = router.seal(config(a, b, (100, 0), fence=5))
    assert admin.put("/_primum/config", json=first).status_code == 200
    assert push(router, config(a, b, (0, 100), fence=5))["seq"] == 2
    replay = admin.put("/_primum/config", json=first)  # recorded on the wire earlier, sent again
    assert replay.status_code == 409 and replay.json()["reason"] == "replayed", replay.text
    assert "seq 1 is not above 2" in replay.json()["error"]
    older = admin.put("/_primum/config", json=router.seal(config(a, b, (100, 0), fence=4)))
    assert older.status_code == 409 and older.json()["reason"] == "stale fence"
    assert {client.get(f"{router.url}/x").json()["name"] for _ in range(10)} == {"B"}


def test_a_restarted_router_refuses_what_its_predecessor_would_have(
    procs: Processes, backends: tuple[Backend, Backend]
) -> None:
    a, b = backends
    router = procs.router("staging/scheduling-api", "--min-fence", "5", "--min-seq", "10")
    admin = router.admin()
    cfg = current(router)
    assert (cfg["fence"], cfg["seq"], cfg["versions"]) == (5, 10, {})
    replay = admin.put("/_primum/config", json=router.seal(config(a, b, (100, 0), fence=5), seq=10))
    assert replay.status_code == 409 and replay.json()["reason"] == "replayed"
    stale = admin.put("/_primum/config", json=router.seal(config(a, b, (100, 0), fence=4), seq=11))
    assert stale.status_code == 409 and stale.json()["reason"] == "stale fence"
    ok = admin.put("/_primum/config", json=router.seal(config(a, b, (100, 0), fence=5), seq=11))
    assert ok.status_code == 200 and ok.json()["seq"] == 11


def _start(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "primum.adapters.targets.local.router", "--port", str(free_port()),
         "--name", "staging/x", *args],
        capture_output=True, text=True, timeout=60,
    )


def test_the_router_refuses_to_start_on_files_or_a_directory_others_can_reach(tmp_path: Path) -> None:
    good = private_dir(tmp_path / "private")
    key = key_file(good / "key", secrets.token_bytes(32))
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    out = _start(["--admin-socket", str(open_dir / "r.sock"), "--fence-key", str(key)])
    assert out.returncode == 2 and f"chmod 700 {open_dir}" in out.stderr, out.stderr

    readable = key_file(good / "readable-key", secrets.token_bytes(32))
    readable.chmod(0o644)
    out = _start(["--admin-socket", str(good / "r.sock"), "--fence-key", str(readable)])
    assert out.returncode == 2 and f"chmod 600 {readable}" in out.stderr, out.stderr

    short = key_file(good / "short-key", b"0123")
    out = _start(["--admin-socket", str(good / "r.sock"), "--fence-key", str(short)])
    assert out.returncode == 2 and "must hold 32 bytes" in out.stderr, out.stderr

    out = _start(["--admin-socket", str(good / "r.sock"), "--fence-key", str(key), "--metrics-port", "0"])
    assert out.returncode == 2 and "--metrics-token" in out.stderr
    assert not (good / "r.sock").exists()


def test_the_metrics_listener_answers_only_with_the_bearer_token(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client, tmp_path: Path
) -> None:
    a, b = backends
    token = secrets.token_urlsafe(24)
    token_file = key_file(private_dir(tmp_path / "tok") / "token", b"")
    token_file.write_text(token)
    port = free_port()
    router = procs.router("staging/scheduling-api", "--metrics-port", str(port), "--metrics-token", str(token_file))
    push(router, config(a, b, (100, 0)))
    client.get(f"{router.url}/x")
    url = f"http://127.0.0.1:{port}/metrics"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(f"http://127.0.0.1:{port}/_primum/samples?since=0&until=1").status_code == 404
    ok = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and 'primum_router_requests_total{status="200",tenant="-",version="' in ok.text


# ------------------------------------------------------------------ failover


def test_failover_weights_are_proportional_and_sum_to_100() -> None:
    body = config("http://127.0.0.1:1", "http://127.0.0.1:2", (50, 30))
    body["versions"]["ccccccccccc3"] = {"label": "c", "weight": 20, "instances": ["http://127.0.0.1:3"]}
    route = RouteConfig.from_json(body)
    effective = route.failover(frozenset({"http://127.0.0.1:3"}))
    assert {k: v.weight for k, v in effective.versions.items()} == {KEY_A: 63, KEY_B: 37, "ccccccccccc3": 0}
    assert route.failed_over(effective) == ["ccccccccccc3"]
    assert effective.instances["ccccccccccc3"] == ("http://127.0.0.1:3",)  # kept, but gets nothing
    everything = route.failover(frozenset({"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"}))
    assert {k: v.weight for k, v in everything.versions.items()} == {KEY_A: 50, KEY_B: 30, "ccccccccccc3": 20}
    assert route.failover(frozenset()).to_json() == route.to_json()


def test_a_version_failing_its_health_check_loses_its_weight_and_gets_it_back(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, b = backends
    router = procs.router("staging/scheduling-api", "--probe-interval", "0.2")
    push(router, config(a, b, (75, 25), health_path="/healthz"))
    b.status = 503  # the canary's health check (and every answer) fails
    down = wait_for("the failover", lambda: current(router)["failed_over"] == [KEY_B] and current(router))
    assert down["effective"] == {KEY_A: 100, KEY_B: 0} and down["down_instances"] == [b.url]
    assert down["versions"][KEY_B]["weight"] == 25  # the pushed weights are kept as they were
    assert Counter(client.get(f"{router.url}/x").status_code for _ in range(40)) == {200: 40}
    assert any(r["path"] == "/healthz" for r in b.seen)
    assert "primum_router_failed_over{version=\"bbbbbbbbbbb2\"} 1.0" in router.admin().get("/_primum/metrics").text

    b.status = 200  # recovered: the weight comes back
    back = wait_for("the recovery", lambda: current(router)["failed_over"] == [] and current(router))
    assert back["effective"] == {KEY_A: 75, KEY_B: 25} and back["down_instances"] == []
    assert "failover: ['bbbbbbbbbbb2'] down" in router.stderr()


def test_a_refused_connection_fails_the_version_over_at_once_without_an_error(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    a, _ = backends
    router = procs.router("staging/scheduling-api", "--probe-interval", "60")  # only the requests notice
    push(router, config(a, dead_url(), (50, 50)))
    answers = [client.get(f"{router.url}/x") for _ in range(30)]
    assert Counter(r.status_code for r in answers) == {200: 30}  # the refused one was sent to A instead
    assert {r.headers["x-primum-version"] for r in answers} == {KEY_A}
    assert current(router)["failed_over"] == [KEY_B]


def test_with_no_healthy_version_left_nothing_moves(
    procs: Processes, backends: tuple[Backend, Backend], client: httpx.Client
) -> None:
    router = procs.router("staging/scheduling-api", "--probe-interval", "0.2")
    push(router, config(dead_url(), dead_url(), (60, 40)))
    wait_for("both down", lambda: len(current(router)["down_instances"]) == 2)
    cfg = current(router)
    assert cfg["effective"] == {KEY_A: 60, KEY_B: 40} and cfg["failed_over"] == []
    assert client.get(f"{router.url}/x").status_code == 502  # visibly failing, never silently elsewhere
