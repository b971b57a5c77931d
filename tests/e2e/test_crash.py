"""SIGKILL the controller mid-rollout: traffic keeps flowing, a restarted controller
re-adopts the data plane and finishes or rolls back; nothing is left split or orphaned.

Real processes throughout: `primum up` (runtime + controller), routers, service
instances, synthetic traffic; `primum release apply`, `primum status`, `primum down`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from primum.demo.render import write_artifact

pytestmark = pytest.mark.slow
PRIMUM = str(Path(sys.executable).parent / "primum")


def estate_doc(steps: list, min_requests: int = 15) -> dict:
    return {
        "apiVersion": "primum/v1", "kind": "Estate", "name": "crash-test",
        # not a production class: these tests are about crashes, not about approvals (tests/governance)
        "environments": [{"name": "prod", "class": "nonprod"}],
        "tenants": [{"id": "clinic-a"}, {"id": "clinic-b"}, {"id": "clinic-c"}, {"id": "clinic-d"}],
        "services": {"scheduling-api": {
            "owner": "t", "tier": "business", "data_class": "none", "affinity": "none",
            "strategy": {"type": "canary", "steps": steps},
            "slo": {"error_rate": 0.01, "p95_ms": 250},
            "analysis": {"min_samples": min_requests, "initial_delay": "0.5s"},
            "traffic": {"rate": 30, "paths": ["/appointments"]},
        }},
    }


def release(root: Path, rid: str, version: str, **faults) -> Path:
    path, digest = write_artifact(root / "artifacts", "scheduling-api", version, **faults)
    doc = {"apiVersion": "primum/v1", "kind": "Release", "id": rid,
           "services": {"scheduling-api": {"artifact": str(path), "digest": digest, "version": version}}}
    out = root / f"{rid}.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


class Primum:
    def __init__(self, home: Path, estate: Path):
        self.home, self.estate = home, estate
        self.env = {**os.environ, "PRIMUM_HOME": str(home), "PRIMUM_USER": "crash-test"}
        self.env.pop("PRIMUM_DATABASE_URL", None)
        self.up_proc: subprocess.Popen | None = None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([PRIMUM, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"primum {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def up(self) -> None:
        log = open(self.home / f"up-{time.time():.0f}.log", "w")  # noqa: SIM115
        self.up_proc = subprocess.Popen([PRIMUM, "up", str(self.estate), "--lease-ttl", "2"], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while not (self.home / "up.json").exists() or not self.routers():
            assert self.up_proc.poll() is None, "primum up died"
            assert time.time() < deadline, "primum up did not start"
            time.sleep(0.2)

    def kill_controller(self) -> None:
        assert self.up_proc is not None
        self.up_proc.send_signal(signal.SIGKILL)
        self.up_proc.wait(timeout=10)

    def state(self) -> dict:
        return json.loads((self.home / "runtime" / "crash-test.json").read_text())

    def routers(self) -> list:
        try:
            return self.state()["routers"]
        except (OSError, ValueError, KeyError):
            return []

    def pids(self) -> set[int]:
        s = self.state()
        pids = {r["pid"] for r in s["routers"]} | {i["pid"] for i in s["instances"]}
        if s.get("traffic"):
            pids.add(s["traffic"]["pid"])
        return pids

    def status(self, rid: str) -> dict:
        return json.loads(self.run("status", rid, "--output", "json").stdout)

    def wait(self, rid: str, until, timeout: float = 90) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.status(rid)
            if until(s):
                return s
            time.sleep(0.3)
        raise AssertionError(f"{rid}: timed out, last status {s['state']}: {s['reason']}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def primum(tmp_path):
    p = Primum(tmp_path / "home", tmp_path / "estate.yaml")
    p.home.mkdir()
    yield p
    if p.up_proc and p.up_proc.poll() is None:
        p.up_proc.kill()
    pids = p.pids() if (p.home / "runtime" / "crash-test.json").exists() else set()
    p.run("down", check=False)
    deadline = time.time() + 10
    while any(alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], "processes left behind"


def lease_evidence(home: Path, rid: str) -> list[tuple[str, dict]]:
    """The release's lease events (issue 13 point 6), read from the store as an auditor would."""
    import sqlite3

    with sqlite3.connect(home / "primum.db") as db:
        rows = db.execute("SELECT kind, data FROM rollout_events WHERE rollout_id = ? AND kind LIKE 'lease_%' "
                          "ORDER BY id", (rid,)).fetchall()
    return [(kind, json.loads(data)) for kind, data in rows]


def assert_takeover_recorded(primum: Primum, rid: str, ttl: float = 2.0) -> float:
    """The killed controller's lost lease and the restarted one's takeover are evidence; returns its duration."""
    events = lease_evidence(primum.home, rid)
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["lease_lost", "lease_taken_over"], events
    lost, taken = events[0][1], events[1][1]
    assert lost["owner"] == taken["previous_owner"] != taken["owner"]
    assert taken["fence"] > taken["previous_fence"]
    # the rollout went unattended at least until the lease expired, and not much longer: the new
    # controller claims it on its first tick after the lease runs out
    assert ttl * 0.9 <= taken["takeover_s"] < ttl + 30, taken
    verified = primum.run("evidence", "verify", check=False)
    assert verified.returncode == 0, verified.stderr
    return float(taken["takeover_s"])


def versions_seen(url: str, n: int = 60) -> set[str]:
    seen = set()
    with httpx.Client(timeout=5) as client:
        for _ in range(n):
            r = client.get(url + "/appointments")
            seen.add(r.headers.get("x-primum-version", "?"))
    return seen


def weights(status: dict) -> int:
    item = status["status"]["items"][0]
    return item["weight"] if item["phase"] in ("progressing", "paused") else -1


def test_sigkill_mid_canary_traffic_keeps_flowing_and_the_restarted_controller_finishes(primum, tmp_path):
    primum.estate.write_text(yaml.safe_dump(estate_doc([{"set_weight": 50}, {"pause": {"duration": "6s"}}])))
    base = release(tmp_path, "rel-base", "1.0.0")
    new = release(tmp_path, "rel-new", "2.0.0")
    primum.up()
    primum.run("release", "apply", str(base), "--no-wait")
    primum.wait("rel-base", lambda s: s["state"] == "promoted")
    primum.run("release", "apply", str(new), "--no-wait")
    primum.wait("rel-new", lambda s: weights(s) == 50 and s["status"]["items"][0]["step_index"] >= 2)
    before = primum.pids()
    primum.kill_controller()

    # The data plane lives on: the router still splits traffic between both versions.
    url = f"http://127.0.0.1:{primum.routers()[0]['port']}"
    assert len(versions_seen(url) - {"?"}) == 2
    assert all(alive(pid) for pid in before)

    primum.up()  # re-adopts: takes the lease over once it expires, no duplicate processes
    final = primum.wait("rel-new", lambda s: s["state"] in ("promoted", "rolled_back", "failed"))
    assert final["state"] == "promoted", final["reason"]
    routers_after = {r["pid"] for r in primum.state()["routers"]}
    assert routers_after == {r for r in before if r in routers_after} and len(routers_after) == 1
    new_key = final["environments"]["prod"]["scheduling-api"]["digest"].removeprefix("sha256:")[:12]
    assert versions_seen(url, 30) == {new_key}
    instances = primum.state()["instances"]
    assert [i["version_key"] for i in instances] == [new_key]  # the old version stopped, nothing duplicated
    assert instances[0]["pid"] in before  # the canary instance was adopted, not restarted
    assert_takeover_recorded(primum, "rel-new")


def test_sigkill_during_analysis_of_a_bad_version_still_rolls_back(primum, tmp_path):
    # enough requests are needed that the verdict cannot come before the kill
    primum.estate.write_text(yaml.safe_dump(estate_doc([{"set_weight": 50}, {"analysis": {"duration": "10s"}}],
                                                       min_requests=120)))
    base = release(tmp_path, "rel-base", "1.0.0")
    bad = release(tmp_path, "rel-bad", "2.0.0", extra_latency_ms=400, error_rate=0.3)
    primum.up()
    primum.run("release", "apply", str(base), "--no-wait")
    primum.wait("rel-base", lambda s: s["state"] == "promoted")
    primum.run("release", "apply", str(bad), "--no-wait")
    primum.wait("rel-bad", lambda s: weights(s) == 50 and s["status"]["items"][0]["step_index"] >= 2)
    primum.kill_controller()
    assert primum.status("rel-bad")["state"] == "running"  # killed mid-analysis
    time.sleep(1.0)
    primum.up()
    final = primum.wait("rel-bad", lambda s: s["state"] in ("promoted", "rolled_back", "failed"))
    assert final["state"] == "rolled_back", final["reason"]
    assert "analysis failed" in final["reason"]
    url = f"http://127.0.0.1:{primum.routers()[0]['port']}"
    old_key = final["environments"]["prod"]["scheduling-api"]["previous"].removeprefix("sha256:")[:12]
    assert versions_seen(url, 30) == {old_key}
    assert {i["version_key"] for i in primum.state()["instances"]} == {old_key}
    assert_takeover_recorded(primum, "rel-bad")


def test_ctrl_c_on_primum_up_stops_everything(primum, tmp_path):
    primum.estate.write_text(yaml.safe_dump(estate_doc([{"set_weight": 50}, {"pause": {}}])))
    primum.up()
    primum.run("release", "apply", str(release(tmp_path, "rel-base", "1.0.0")), "--no-wait")
    primum.wait("rel-base", lambda s: s["state"] == "promoted")
    pids = primum.pids()
    assert len(pids) == 3  # router, instance, traffic generator
    primum.up_proc.send_signal(signal.SIGINT)
    assert primum.up_proc.wait(timeout=30) == 0
    assert not (primum.home / "up.json").exists()
    assert not [pid for pid in pids if alive(pid)]
