"""The locked data plane (issue 13, point 1), with real processes through `primum up`.

* An attacker on the host hijacks nothing: the data port answers 404 for the admin prefix (even a fence of
  10**18), the admin socket and the fence key are the owner's alone, and a push without the key is refused;
  the next release is promoted as if nothing had happened. Prometheus can scrape with the token.
* A canary that crash-loops during analysis (killed three times): the runtime stops restarting it, the
  router moves its share to the stable version on its own, and the release ends `rolled_back` (not
  `failed`): traffic 100% on the stable version, the canary's processes gone, no 503 for the canary, and
  every router change in the rollout's events.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import httpx
import pytest
import yaml

from primum.adapters.store.repository import Store
from tests.local import request_counts

from .test_crash import Primum, alive, estate_doc, release, versions_seen, weights
from .test_crash import primum as primum

pytestmark = pytest.mark.slow
TERMINAL = ("promoted", "rolled_back", "failed")


def test_an_attacker_on_the_host_cannot_steer_the_router_nor_lock_the_controller_out(
        primum: Primum, tmp_path: Path) -> None:
    primum.estate.write_text(yaml.safe_dump(estate_doc([{"set_weight": 50}, {"pause": {"duration": "2s"}}])))
    primum.up()
    primum.run("release", "apply", str(release(tmp_path, "rel-base", "1.0.0")), "--no-wait")
    primum.wait("rel-base", lambda s: s["state"] == "promoted")
    [router] = primum.routers()
    url = f"http://127.0.0.1:{router['port']}"
    [stable_key] = versions_seen(url, 10)

    hijack = {"fence": 10**18, "versions": {"ffffffffffff": {"weight": 100, "instances": ["http://192.0.2.1:80"]}}}
    with httpx.Client(timeout=5, trust_env=False) as client:
        for method, path in (("PUT", "/_primum/config"), ("GET", "/_primum/config"), ("GET", "/_primum/metrics"),
                             ("GET", "/_primum/samples?since=0&until=99999999999"), ("GET", "/_primum/health")):
            resp = client.request(method, url + path, json=hijack if method == "PUT" else None)
            assert resp.status_code == 404, (method, path, resp.text)

    runtime = primum.home / "runtime"
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    sock = Path(router["admin_socket"])
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and sock.stat().st_uid == os.getuid()
    # in the runtime directory, or (a home too deep for a socket path) in a private one under /tmp
    assert sock.parent == runtime or str(sock.parent).startswith(f"/tmp/primum-{os.getuid()}/")
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    key = next(runtime.glob("*.fence-key"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(bytes.fromhex(key.read_text().strip())) == 32
    assert str(key.read_text().strip()) not in " ".join(Path(f"/proc/{router['pid']}/cmdline").read_text().split(
        "\0"))  # the key is passed as a file, never on the command line
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://router",
                      trust_env=False) as admin:
        unsigned = admin.put("/_primum/config", json=hijack)
        assert unsigned.status_code == 400 and "signed envelope" in unsigned.json()["error"]
        assert admin.get("/_primum/config").json()["fence"] < 10**18

    token = Path(router["metrics_token"])
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    scrape = f"http://127.0.0.1:{router['metrics_port']}/metrics"
    with httpx.Client(timeout=5, trust_env=False) as client:
        assert client.get(scrape).status_code == 401
        ok = client.get(scrape, headers={"Authorization": f"Bearer {token.read_text().strip()}"})
    assert ok.status_code == 200 and f'version="{stable_key}"' in ok.text

    primum.run("release", "apply", str(release(tmp_path, "rel-next", "2.0.0")), "--no-wait")
    final = primum.wait("rel-next", lambda s: s["state"] in TERMINAL)
    assert final["state"] == "promoted", final["reason"]
    new_key = str(final["environments"]["prod"]["scheduling-api"]["digest"]).removeprefix("sha256:")[:12]
    assert versions_seen(url, 20) == {new_key}


def canary_instance(primum: Primum, key: str) -> dict | None:
    live = [i for i in primum.state()["instances"] if i["version_key"] == key and i["status"] != "stopping"
            and alive(i["pid"])]
    return live[0] if live else None


def test_a_crash_looping_canary_is_rolled_back_and_the_router_stops_sending_it_traffic(
        primum: Primum, tmp_path: Path) -> None:
    doc = estate_doc([{"set_weight": 25}, {"analysis": {"duration": "60s"}}], min_requests=2000)
    primum.estate.write_text(yaml.safe_dump(doc))
    primum.up()
    primum.run("release", "apply", str(release(tmp_path, "rel-base", "1.0.0")), "--no-wait")
    primum.wait("rel-base", lambda s: s["state"] == "promoted")
    url = f"http://127.0.0.1:{primum.routers()[0]['port']}"
    [stable_key] = versions_seen(url, 10)

    primum.run("release", "apply", str(release(tmp_path, "rel-loop", "2.0.0")), "--no-wait")
    primum.wait("rel-loop", lambda s: weights(s) == 25 and s["status"]["items"][0]["step_index"] >= 2)
    running = primum.status("rel-loop")
    canary_key = str(running["environments"]["prod"]["scheduling-api"]["digest"]).removeprefix("sha256:")[:12]
    assert canary_key != stable_key
    killed: set[int] = set()
    for _ in range(3):
        deadline = time.time() + 30
        while (inst := canary_instance(primum, canary_key)) is None or inst["pid"] in killed:
            assert time.time() < deadline, "the canary was not restarted"
            time.sleep(0.1)
        os.killpg(inst["pid"], signal.SIGKILL)
        killed.add(inst["pid"])

    final = primum.wait("rel-loop", lambda s: s["state"] in TERMINAL, timeout=60)
    assert final["state"] == "rolled_back", final["reason"]
    assert "crash loop" in final["reason"]
    assert final["status"]["items"][0]["phase"] == "rolled_back"
    # every request after the rollback goes to the stable version, none is refused
    statuses, seen = [], set()
    with httpx.Client(timeout=5, trust_env=False) as client:
        for _ in range(60):
            r = client.get(url + "/appointments")
            statuses.append(r.status_code)
            seen.add(r.headers.get("x-primum-version", "?"))
    assert seen == {stable_key} and 503 not in statuses, (seen, statuses)
    assert {i["version_key"] for i in primum.state()["instances"]} == {stable_key}
    assert not [pid for pid in killed if alive(pid)]
    # the router never refused a request for want of a canary instance (it failed the canary over)
    with httpx.Client(transport=httpx.HTTPTransport(uds=primum.routers()[0]["admin_socket"]), trust_env=False,
                      base_url="http://router") as admin:
        counts = request_counts(admin.get("/_primum/metrics").text)
    assert not {k: n for k, n in counts.items() if k[0] == canary_key and k[1] == "503"}, counts

    # every router change is the rollout's evidence: the pushes, and the failover the router made itself
    store = Store(f"sqlite:///{primum.home / 'primum.db'}", migrate=False, keys=primum.home / "keys")
    try:
        events = store.events("rel-loop")
    finally:
        store.close()
    configs = [e for e in events if e.kind == "router_config"]
    assert any(e.data["weights"].get(canary_key) == 25 for e in configs)
    assert configs[-1].data["weights"] == {stable_key: 100, canary_key: 0} or \
        configs[-1].data["weights"].get(stable_key) == 100
    assert all(e.data["fence"] > 0 and e.data["seq"] > 0 for e in configs)
    # the canary's share went to the stable version while it had no instance: recorded as such
    # (in the push that emptied its instance list, or as the router's own failover if it saw it first)
    routed = [e for e in events if e.kind in ("router_config", "router_failover")]
    assert any(e.data["failed_over"] == [canary_key] and e.data["effective"] == {stable_key: 100, canary_key: 0}
               for e in routed), [e.message for e in routed]
    text = " ".join(e.message for e in routed)
    assert "clinic-" not in text and "clinic-" not in str([e.data for e in routed])  # no tenant in the evidence
