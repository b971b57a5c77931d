"""The HAProxy target against a real ``haproxy`` fronting real service processes.

What is proven here: the Runtime API calls the target makes do what the strategies need (weights split
the traffic in the declared ratio; blue-green moves all of it at once and keeps the old side warm until
it is scaled down; rolling drains and replaces slots one at a time), readiness comes from HAProxy's own
health checks, a restarted HAProxy gets its desired state back, and every fault is a ``TargetError``
that names the field and the fix, never a pass.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.haproxy.runtime_api import ServerState, parse_servers_state
from primum.adapters.targets.haproxy.settings import HaproxyTargetSettings
from primum.adapters.targets.haproxy.target import HaproxyTarget, server_weights
from primum.adapters.targets.local import processes
from primum.core.model.actions import EnsureInstances, ServiceObservation, ServiceRuntimeSpec, SetRoute, VersionRef
from tests.haproxy.harness import BACKEND, Haproxy, artifact, count_responses, spec_for, start_haproxy


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def ready(target: HaproxyTarget, spec: ServiceRuntimeSpec, version: VersionRef, n: int) -> Callable[[], bool]:
    def check() -> bool:
        o = target.observe(spec)
        v = o.versions.get(version.key)
        running = (v.ready + v.starting) if v else 0
        return (v.ready if v else 0) == n and running == n
    return check


@pytest.fixture
def hap(tmp_path: Path) -> Iterator[Haproxy]:
    h = start_haproxy(tmp_path / "haproxy")
    try:
        yield h
    finally:
        h.stop()
        for child in processes.started_children():  # the service processes the target started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)


# ---------------------------------------------------------------- without a process


def test_settings_need_two_sides_of_slots() -> None:
    with pytest.raises(ValueError, match="at least 4 slots"):
        HaproxyTargetSettings(sockets={"prod": "/run/haproxy.sock"}, backend="be", slots=["a", "b", "c"], replicas=2)
    with pytest.raises(ValueError, match="not a server name"):
        HaproxyTargetSettings(sockets={"prod": "/run/haproxy.sock"}, backend="be", slots=["a", "b/c"])
    assert "weighted-split" in {c.value for c in HaproxyTargetSettings.capabilities}


def test_weights_spread_a_share_over_a_version_s_slots() -> None:
    assert server_weights({"a": 75, "b": 25}, {"a": ["s1"], "b": ["s2"]}) == {"s1": 192, "s2": 64}
    assert server_weights({"a": 100}, {"a": ["s1", "s2"], "b": ["s3"]}) == {"s1": 128, "s2": 128, "s3": 0}
    assert server_weights({"a": 99, "b": 1}, {"a": ["s1"], "b": ["s2", "s3"]})["s3"] == 1  # a share is never 0


def test_servers_state_parser_reads_the_header_columns() -> None:
    text = ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
            "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
            "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port\n"
            "3 be 1 s1 127.0.0.1 2 0 64 0 1 1 0 0 14 0 0 0 - 18001\n"
            "3 be 2 s2 127.0.0.1 0 1 0 0 1 1 0 0 14 0 0 0 - 1\n")
    servers = parse_servers_state(text)
    assert servers["s1"].up and servers["s1"].weight == 64 and servers["s1"].port == 18001
    assert servers["s2"].maint and not servers["s2"].up
    running_unchecked = ServerState("s3", "127.0.0.1", 18002, 2, 0, 10, check="* L4CON")
    assert not running_unchecked.up  # leaving maintenance, HAProxy says running before the first check passed
    assert ServerState("s3", "127.0.0.1", 18002, 2, 0, 10, check="L7OK").up
    with pytest.raises(TargetError, match="no header"):
        parse_servers_state("No such backend.\n")


def test_unreachable_admin_socket_is_an_error_with_the_fix(tmp_path: Path) -> None:
    settings = HaproxyTargetSettings(sockets={"prod": str(tmp_path / "nothing.sock")}, backend="be",
                                     slots=["s1", "s2"])
    spec = ServiceRuntimeSpec(estate="e", env="prod", service="integration", command=(),
                              target_settings=settings.model_dump(mode="json"))
    target = HaproxyTarget(tmp_path / "home", "e")
    for call in (lambda: target.observe(spec), lambda: target.prepare([spec]),
                 lambda: target.apply(SetRoute(env="prod", service="integration", weights={}), spec, 1)):
        with pytest.raises(TargetError, match=r"cannot be reached.*fix: start haproxy with `stats socket .* "
                                              r"level admin`.*services\.integration\.target\.sockets\.prod"):
            call()
    other = spec.model_copy(update={"env": "staging"})
    with pytest.raises(TargetError, match="no admin socket for environment 'staging'"):
        target.observe(other)


# ---------------------------------------------------------------- a real haproxy


def _ensure(target: HaproxyTarget, spec: ServiceRuntimeSpec, version: VersionRef, n: int, fence: int = 1) -> None:
    target.apply(EnsureInstances(env="prod", service="integration", version=version, count=n), spec, fence)


def _route(target: HaproxyTarget, spec: ServiceRuntimeSpec, weights: dict[str, int], fence: int = 1,
           preview: str | None = None) -> None:
    target.apply(SetRoute(env="prod", service="integration", weights=weights, preview=preview), spec, fence)


@pytest.mark.slow
def test_canary_weights_split_the_traffic(hap: Haproxy, tmp_path: Path) -> None:
    a, b = artifact(tmp_path, "v1"), artifact(tmp_path, "v2")
    spec = spec_for(hap)
    target = HaproxyTarget(tmp_path / "home", "test-estate")
    target.prepare([spec])
    _ensure(target, spec, a, 1)
    _route(target, spec, {a.key: 100})
    wait_for("v1 ready", ready(target, spec, a, 1))
    assert count_responses(hap.url, 20) == {"v1": 20}
    _ensure(target, spec, b, 1)
    wait_for("v2 ready", ready(target, spec, b, 1))
    assert count_responses(hap.url, 20) == {"v1": 20}  # a ready new version gets nothing before the route
    _route(target, spec, {a.key: 75, b.key: 25})
    seen = count_responses(hap.url, 200)
    assert 40 <= seen["v2"] <= 60 and seen["v1"] + seen["v2"] == 200, (seen, target.servers(spec))
    obs: ServiceObservation = target.observe(spec)
    assert obs.route is not None and obs.route.weights == {a.key: 75, b.key: 25}
    servers = target.servers(spec)
    assert sorted(s.weight for s in servers.values() if s.up) == [64, 192]
    assert sum(s.total for s in servers.values()) >= 240  # show stat counts the sessions per server


@pytest.mark.slow
def test_blue_green_switches_all_traffic_and_keeps_the_old_side_warm(hap: Haproxy, tmp_path: Path) -> None:
    blue, green = artifact(tmp_path, "blue"), artifact(tmp_path, "green")
    spec = spec_for(hap, replicas=2)
    target = HaproxyTarget(tmp_path / "home", "test-estate")
    _ensure(target, spec, blue, 2)
    _route(target, spec, {blue.key: 100})
    _ensure(target, spec, green, 2)
    wait_for("both sides ready", lambda: ready(target, spec, blue, 2)() and ready(target, spec, green, 2)())
    _route(target, spec, {green.key: 100})
    assert count_responses(hap.url, 30) == {"green": 30}
    assert target.observe(spec).versions[blue.key].ready == 2  # kept warm for a fast switch back
    _route(target, spec, {blue.key: 100})  # the switch back is one push
    assert count_responses(hap.url, 10) == {"blue": 10}
    _route(target, spec, {green.key: 100})
    _ensure(target, spec, blue, 0)  # drained and put in maintenance
    obs = target.observe(spec)
    assert blue.key not in obs.versions
    assert sum(1 for s in target.servers(spec).values() if s.maint) == 2
    assert count_responses(hap.url, 10) == {"green": 10}


@pytest.mark.slow
def test_rolling_drains_and_replaces_one_slot_at_a_time(hap: Haproxy, tmp_path: Path) -> None:
    old, new = artifact(tmp_path, "old"), artifact(tmp_path, "new")
    spec = spec_for(hap, replicas=2)
    target = HaproxyTarget(tmp_path / "home", "test-estate")
    _ensure(target, spec, old, 2)
    _route(target, spec, {old.key: 100})
    wait_for("old ready", ready(target, spec, old, 2))
    # the engine's rolling program for 2 replicas, max_unavailable 1
    _ensure(target, spec, old, 1)
    _ensure(target, spec, new, 1)
    wait_for("first new instance", ready(target, spec, new, 1))
    _route(target, spec, {new.key: 50, old.key: 50})
    seen = count_responses(hap.url, 40)
    assert 16 <= seen["new"] <= 24 and seen["new"] + seen["old"] == 40, seen
    _route(target, spec, {new.key: 100})
    _ensure(target, spec, old, 0)
    _ensure(target, spec, new, 2)
    wait_for("all new", ready(target, spec, new, 2))
    assert count_responses(hap.url, 20) == {"new": 20}
    assert set(target.observe(spec).versions) == {new.key}


@pytest.mark.slow
def test_a_restarted_haproxy_gets_the_desired_state_back(hap: Haproxy, tmp_path: Path) -> None:
    a = artifact(tmp_path, "v1")
    spec = spec_for(hap)
    target = HaproxyTarget(tmp_path / "home", "test-estate")
    _ensure(target, spec, a, 1, fence=3)
    _route(target, spec, {a.key: 100}, fence=3)
    wait_for("v1 ready", ready(target, spec, a, 1))
    hap.stop()
    restarted = start_haproxy(hap.dir, port=hap.port)  # same config, same socket: every slot is back to `disabled`
    hap.pid = restarted.pid
    obs = target.observe(spec)
    assert [c.cause for c in obs.route_changes] == ["restore"]
    wait_for("v1 ready again", ready(target, spec, a, 1))
    assert count_responses(hap.url, 5) == {"v1": 5}
    assert target.observe(spec).route_changes == ()  # nothing drifted since


@pytest.mark.slow
def test_a_stale_fence_is_refused(hap: Haproxy, tmp_path: Path) -> None:
    a = artifact(tmp_path, "v1")
    spec = spec_for(hap)
    target = HaproxyTarget(tmp_path / "home", "test-estate")
    _route(target, spec, {a.key: 100}, fence=5)
    with pytest.raises(StaleFenceError, match="fence 4 is older than 5"):
        _route(target, spec, {}, fence=4)
    assert target.observe(spec).route is not None
    assert target.observe(spec).route.weights == {a.key: 100}  # type: ignore[union-attr]


@pytest.mark.slow
def test_unknown_backend_and_server_are_errors_with_the_fix(hap: Haproxy, tmp_path: Path) -> None:
    target = HaproxyTarget(tmp_path / "home", "test-estate")
    with pytest.raises(TargetError, match=r"find backend.*fix: name a backend"):
        target.prepare([spec_for(hap, backend="be_nothing")])
    with pytest.raises(TargetError, match=rf"backend '{BACKEND}' has no server s9.*target.slots"):
        target.prepare([spec_for(hap, slots=["s1", "s9"])])
    with pytest.raises(TargetError, match=r"No such server.*every name in target.slots"):
        _route(target, spec_for(hap, slots=["s1", "s9"]), {})


@pytest.mark.slow
def test_a_crashed_instance_is_reported_failed(hap: Haproxy, tmp_path: Path) -> None:
    bad = tmp_path / "crash.py"
    bad.write_text("import sys\nsys.stderr.write('fatal: synthetic crash\\n')\nsys.exit(3)\n")
    import hashlib
    ref = VersionRef(digest="sha256:" + hashlib.sha256(bad.read_bytes()).hexdigest(), artifact=str(bad), label="x")
    spec = spec_for(hap)
    target = HaproxyTarget(tmp_path / "home", "test-estate")
    _ensure(target, spec, ref, 1)
    wait_for("the crash", lambda: target.observe(spec).versions[ref.key].failed == 1)
    v = target.observe(spec).versions[ref.key]
    assert v.ready == 0 and "synthetic crash" in (v.error or "")
    wrong = ref.model_copy(update={"digest": "sha256:" + "0" * 64})
    with pytest.raises(TargetError, match="digest mismatch"):
        _ensure(target, spec, wrong, 1)
