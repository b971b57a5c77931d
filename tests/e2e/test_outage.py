"""End to end through `primum up` (issue 12, items 4 and 5), with real processes:

* a version whose health check never passes (dead on arrival) is a clean rollback: `rolled_back`,
  "never became healthy" with the health detail, its processes stopped, the stable version untouched;
* a metrics source that starts failing mid-canary moves all traffic back to the stable version at
  once; when it answers again the canary returns and the release is promoted on a fresh window.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from primum.demo.render import digest_of, render_artifact

from .test_crash import Primum, estate_doc, release, versions_seen
from .test_crash import primum as primum

pytestmark = pytest.mark.slow
HEALTHY = "self._send(Reply(200, status), tenant, head)"
TERMINAL = ("promoted", "rolled_back", "failed")


def dead_on_arrival(root: Path, rid: str, version: str) -> Path:
    """A scheduling-api build whose /healthz always answers 500: it starts, and never becomes healthy."""
    source = render_artifact("scheduling-api", version)
    assert source.count(HEALTHY) == 1, "the demo artifact's health handler changed"
    data = source.replace(HEALTHY, "self._send(Reply(500, status), tenant, head)").encode()
    path = root / "artifacts" / f"scheduling-api-{version}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    doc = {"apiVersion": "primum/v1", "kind": "Release", "id": rid,
           "services": {"scheduling-api": {"artifact": str(path), "digest": digest_of(data), "version": version}}}
    out = root / f"{rid}.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def key_of(final: dict, field: str) -> str:
    return str(final["environments"]["prod"]["scheduling-api"][field]).removeprefix("sha256:")[:12]


def test_a_version_that_never_becomes_healthy_is_rolled_back_cleanly(primum: Primum, tmp_path: Path) -> None:
    doc = estate_doc([{"set_weight": 50}, {"analysis": {"duration": "4s"}}])
    doc["services"]["scheduling-api"]["target"] = {"startup_timeout": "5s"}
    primum.estate.write_text(yaml.safe_dump(doc))
    primum.up()
    primum.run("release", "apply", str(release(tmp_path, "rel-base", "1.0.0")), "--no-wait")
    primum.wait("rel-base", lambda s: s["state"] == "promoted")
    stable = {i["pid"] for i in primum.state()["instances"]}

    primum.run("release", "apply", str(dead_on_arrival(tmp_path, "rel-doa", "2.0.0")), "--no-wait")
    final = primum.wait("rel-doa", lambda s: s["state"] in TERMINAL)
    assert final["state"] == "rolled_back", final["reason"]
    assert "2.0.0 (" in final["reason"] and "never became healthy" in final["reason"]
    assert "not healthy within 5s on /healthz" in final["reason"] and "HTTP 500" in final["reason"]
    item = final["status"]["items"][0]
    assert item["phase"] == "rolled_back" and item["weight"] == 0
    # the dead version is stopped; the stable instance is the one that ran all along
    instances = primum.state()["instances"]
    assert {i["version_key"] for i in instances} == {key_of(final, "previous")}
    assert {i["pid"] for i in instances} == stable
    url = f"http://127.0.0.1:{primum.routers()[0]['port']}"
    assert versions_seen(url, 30) == {key_of(final, "previous")}


def test_a_metrics_outage_holds_traffic_on_the_stable_version_until_data_returns(primum: Primum,
                                                                                  tmp_path: Path) -> None:
    flag = tmp_path / "metrics-down"
    doc = estate_doc([{"set_weight": 50}, {"analysis": {"duration": "4s"}}])
    svc = doc["services"]["scheduling-api"]
    svc["analysis"].update({"consecutive_error_limit": 8, "metrics": [
        {"name": "error-rate", "kind": "errors", "group": "errors", "critical": True},
        # an external count (a queue's failed syncs, say) from a program that fails while the flag exists
        {"name": "sync-failures", "kind": "proportion", "group": "sync",
         "source": {"type": "command", "retries": 0, "timeout": "5s",
                    "argv": ["/bin/sh", "-c", f"test -e {flag} && {{ echo 'backend down' >&2; exit 3; }}; "
                                              "echo 0 100"]}},
    ]})
    primum.estate.write_text(yaml.safe_dump(doc))
    primum.up()
    primum.run("release", "apply", str(release(tmp_path, "rel-base", "1.0.0")), "--no-wait")
    primum.wait("rel-base", lambda s: s["state"] == "promoted")
    url = f"http://127.0.0.1:{primum.routers()[0]['port']}"
    old_key = next(iter(versions_seen(url, 10)))

    flag.touch()
    primum.run("release", "apply", str(release(tmp_path, "rel-new", "2.0.0")), "--no-wait")
    held = primum.wait("rel-new", lambda s: s["state"] in TERMINAL or s["status"]["items"][0]["outage"] is not None)
    assert held["state"] == "running", held["reason"]
    assert "metrics unavailable" in held["reason"] and "backend down" in held["reason"]
    assert held["status"]["items"][0]["weight"] == 50  # the step's weight, restored when data returns
    assert versions_seen(url, 40) == {old_key}  # ... but no request reaches the new version meanwhile

    flag.unlink()
    final = primum.wait("rel-new", lambda s: s["state"] in TERMINAL)
    assert final["state"] == "promoted", final["reason"]
    [verdict] = final["status"]["items"][0]["verdicts"][:1]
    attempts = [(m["index"], m["attempt"], m["outcome"]) for m in verdict["measurements"]]
    assert attempts[0] == (1, 1, "Error") and attempts[-1] == (1, 1, "Successful")
    assert all(a == (1, n + 1, "Error") for n, a in enumerate(attempts[:-1]))
    listed = json.loads(primum.run("analysis", "list", "rel-new", "--output", "json").stdout)
    assert [(r["measurement"], r["attempt"]) for r in listed][:2] == [(1, 1), (1, 2)]
    assert versions_seen(url, 30) == {key_of(final, "digest")}
