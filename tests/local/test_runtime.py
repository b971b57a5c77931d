"""The local process supervisor with real child processes and real HTTP."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from primum.adapters.targets.base import TargetError
from primum.adapters.targets.local import processes
from primum.adapters.targets.local.records import STOPPING
from primum.adapters.targets.local.runtime import LocalRuntime
from primum.core.model.actions import TrafficSpec, VersionObservation, VersionRef

from . import helpers as H

home = H.home
runtime = H.runtime

pytestmark = pytest.mark.slow


def _ready(rt: LocalRuntime, spec, key: str, n: int) -> VersionObservation | None:
    obs = rt.observe(spec).get(key)
    return obs if obs is not None and obs.ready == n and obs.starting == 0 else None


def _pids(rt: LocalRuntime, spec, key: str) -> dict[int, int]:
    """slot -> pid of the non-stopping instances of one version."""
    return {i.slot: i.pid for i in rt.instances(spec).get(key, []) if i.status != STOPPING}


def test_digest_mismatch_is_refused_and_reported(runtime: LocalRuntime, tmp_path: Path) -> None:
    spec = H.make_spec()
    good = H.write_artifact(tmp_path, "v1")
    tampered = VersionRef(digest="sha256:" + "0" * 64, artifact=good.artifact, label="1.0")
    before = {p.pid for p in processes.started_children()}

    runtime.ensure_instances(spec, tampered, 2)

    assert {p.pid for p in processes.started_children()} == before, "a process was started for a bad digest"
    assert runtime.instances(spec) == {}
    obs = runtime.observe(spec)[tampered.key]
    assert (obs.desired, obs.ready, obs.starting, obs.failed) == (2, 0, 0, 2)
    assert obs.error is not None
    assert obs.error.startswith(f"digest mismatch for {good.artifact}: expected sha256:000")
    assert good.digest in obs.error  # what was actually found
    # Repeating the action (as a level-triggered controller does) still refuses.
    runtime.ensure_instances(spec, tampered, 2)
    assert runtime.instances(spec) == {}

    missing = VersionRef(digest=good.digest, artifact=str(tmp_path / "nope.py"), label="x")
    other = H.make_spec(service="other")
    runtime.ensure_instances(other, missing, 1)
    obs = runtime.observe(other)[missing.key]
    assert obs.failed == 1 and obs.error is not None and "nope.py" in obs.error
    assert {p.pid for p in processes.started_children()} == before


def test_instances_start_scale_down_and_env(runtime: LocalRuntime, tmp_path: Path) -> None:
    spec = H.make_spec(env_vars={"CLINIC_MODE": "test"})
    v1 = H.write_artifact(tmp_path, "v1", label="1.0.0")

    runtime.ensure_instances(spec, v1, 2)
    obs = H.wait_for(lambda: _ready(runtime, spec, v1.key, 2), what="2 ready")
    assert (obs.desired, obs.failed, obs.error) == (2, 0, None)
    assert obs.version == v1
    insts = runtime.instances(spec)[v1.key]
    assert [i.slot for i in insts] == [0, 1]
    assert len({i.port for i in insts}) == 2
    env = Path(f"/proc/{insts[0].pid}/environ").read_bytes().split(b"\0")
    for var in (b"CLINIC_MODE=test", b"PRIMUM_VERSION=1.0.0", b"PRIMUM_SERVICE=scheduling-api"):
        assert var in env
    assert b"PRIMUM_ENV=staging" in env
    # Each instance is the leader of its own session: it survives its parent.
    assert os.getsid(insts[0].pid) == insts[0].pid
    assert Path(insts[0].log).parent == runtime.logs_dir

    # Idempotent: the same action changes nothing.
    runtime.ensure_instances(spec, v1, 2)
    assert _pids(runtime, spec, v1.key) == {i.slot: i.pid for i in insts}

    # Scale down: the highest slot goes (SIGTERM, reaped), slot 0 stays.
    runtime.ensure_instances(spec, v1, 1)
    H.wait_for(lambda: H.pid_gone(insts[1].pid), timeout=10, what="slot 1 stopped")
    assert H.pid_running(insts[0].pid)
    obs = H.wait_for(lambda: _ready(runtime, spec, v1.key, 1), what="1 ready")
    assert obs.desired == 1
    assert _pids(runtime, spec, v1.key) == {0: insts[0].pid}

    # Scale to zero forgets the version once its processes are gone.
    runtime.ensure_instances(spec, v1, 0)
    H.wait_for(lambda: H.pid_gone(insts[0].pid), timeout=10, what="slot 0 stopped")
    H.wait_for(lambda: runtime.observe(spec) == {}, what="version forgotten")


def test_killed_instance_is_restarted(runtime: LocalRuntime, tmp_path: Path) -> None:
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    runtime.ensure_instances(spec, v1, 2)
    H.wait_for(lambda: _ready(runtime, spec, v1.key, 2), what="2 ready")
    before = _pids(runtime, spec, v1.key)

    os.kill(before[1], signal.SIGKILL)  # an "external" kill (OOM killer, operator)
    H.wait_for(lambda: not H.pid_running(before[1]), timeout=5, what="victim dead")

    obs = H.wait_for(
        lambda: (o := _ready(runtime, spec, v1.key, 2)) and _pids(runtime, spec, v1.key)[1] != before[1] and o,
        what="slot 1 restarted and ready",
    )
    after = _pids(runtime, spec, v1.key)
    assert after[0] == before[0] and after[1] != before[1]
    assert (obs.failed, obs.error) == (0, None)
    rec = runtime.version_records(spec)[v1.key]
    assert rec.restarts == 1 and rec.slot_restarts == {"1": 1}
    assert rec.last_crash is not None and "SIGKILL" in rec.last_crash
    assert runtime.instances(spec)[v1.key][1].restarts == 1


def test_crash_loop_marks_version_failed_with_log_tail(runtime: LocalRuntime, tmp_path: Path) -> None:
    spec = H.make_spec()
    bad = H.crashing_artifact(tmp_path)
    runtime.ensure_instances(spec, bad, 1)

    obs = H.wait_for(lambda: (o := runtime.observe(spec)[bad.key]).failed and o, timeout=30, what="failed")
    assert (obs.desired, obs.ready, obs.starting, obs.failed) == (1, 0, 0, 1)
    assert obs.error is not None
    assert "crash loop: 3 instance deaths" in obs.error
    assert "exited with code 3" in obs.error
    assert "fatal: cannot open /etc/clinic.conf (synthetic crash)" in obs.error
    starts = _log_of(runtime, bad).read_text()
    assert starts.count("=== primum") == 3  # started once, restarted twice, then given up
    # Stays failed: ticks and repeated actions do not resume the crash loop.
    runtime.ensure_instances(spec, bad, 1)
    time.sleep(0.5)
    assert runtime.observe(spec)[bad.key].failed == 1
    assert runtime.instances(spec) == {}
    # Scaling to 0 clears the failure.
    runtime.ensure_instances(spec, bad, 0)
    assert runtime.observe(spec) == {}


def _log_of(rt: LocalRuntime, version: VersionRef) -> Path:
    (path,) = rt.logs_dir.glob(f"*.{version.key}.0.log")
    return path


def test_startup_timeout_fails_version(runtime: LocalRuntime, tmp_path: Path) -> None:
    spec = H.make_spec(startup_timeout_s=1.0)
    never = H.gated_artifact(tmp_path, tmp_path / "never-created")
    runtime.ensure_instances(spec, never, 1)
    (inst,) = runtime.instances(spec)[never.key]
    assert runtime.observe(spec)[never.key].starting == 1
    obs = H.wait_for(lambda: (o := runtime.observe(spec)[never.key]).failed and o, timeout=10, what="failed")
    assert obs.error is not None and "not healthy within 1s on /healthz" in obs.error
    H.wait_for(lambda: H.pid_gone(inst.pid), timeout=10, what="timed-out instance stopped")


def test_new_runtime_object_readopts_instances(home: Path, tmp_path: Path) -> None:
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    first = LocalRuntime(home, H.ESTATE)
    first.ensure_instances(spec, v1, 2)
    H.wait_for(lambda: _ready(first, spec, v1.key, 2), what="2 ready")
    pids = _pids(first, spec, v1.key)
    first.close()

    second = LocalRuntime(home, H.ESTATE)  # as after a controller restart
    try:
        second.ensure_instances(spec, v1, 2)
        obs = second.observe(spec)[v1.key]
        assert (obs.ready, obs.starting) == (2, 0)
        assert _pids(second, spec, v1.key) == pids
        assert len(second.instances(spec)[v1.key]) == 2
    finally:
        second.close()


def test_data_plane_survives_sigkilled_controller(home: Path, tmp_path: Path) -> None:
    """A separate controller process starts a router and instances, then is SIGKILLed."""
    v1 = H.write_artifact(tmp_path, "v1")
    script = tmp_path / "controller.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, sys, time
            from pathlib import Path
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import helpers as H
            from primum.core.model.actions import VersionRef
            from primum.adapters.targets.local.runtime import LocalRuntime
            rt = LocalRuntime(Path({str(home)!r}), H.ESTATE)
            spec = H.make_spec()
            v1 = VersionRef.model_validate_json({v1.model_dump_json()!r})
            rt.ensure_router(spec)
            rt.ensure_instances(spec, v1, 2)
            while rt.observe(spec)[v1.key].ready < 2:
                time.sleep(0.1)
            print("READY", flush=True)
            time.sleep(600)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", proc.stderr.read() if proc.stderr else line
        proc.kill()
        proc.wait(timeout=10)

        spec = H.make_spec()
        rt = LocalRuntime(home, H.ESTATE)
        try:
            router = rt.router(spec)
            assert router is not None and H.pid_running(router.pid)
            pids = _pids(rt, spec, v1.key)
            assert len(pids) == 2 and all(H.pid_running(p) for p in pids.values())
            assert rt.ensure_router(spec) == router.url  # adopted, not restarted
            assert rt.router(spec) == router
            obs = rt.observe(spec)[v1.key]
            assert (obs.ready, obs.failed) == (2, 0)
            assert _pids(rt, spec, v1.key) == pids
        finally:
            rt.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dead_records_are_forgotten(home: Path, tmp_path: Path) -> None:
    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    rt = LocalRuntime(home, H.ESTATE)
    try:
        url = rt.ensure_router(spec)
        old = rt.router(spec)
        assert old is not None
        rt.ensure_instances(spec, v1, 1)
        H.wait_for(lambda: _ready(rt, spec, v1.key, 1), what="ready")
        (inst,) = rt.instances(spec)[v1.key]
        # Pretend the machine rebooted: recorded processes are gone.
        processes.terminate([(old.pid, old.start_time), (inst.pid, inst.start_time)])
        rt2 = LocalRuntime(home, H.ESTATE)
        assert rt2.router(spec) is None
        new_url = rt2.ensure_router(spec)
        new = rt2.router(spec)
        assert new is not None and new.pid != old.pid
        assert new_url == url  # the recorded port is reused when free
        H.wait_for(lambda: _ready(rt2, spec, v1.key, 1), what="instance restarted")
        (inst2,) = rt2.instances(spec)[v1.key]
        assert inst2.pid != inst.pid
        rt2.close()
    finally:
        rt.close()


def test_pid_reuse_guard(tmp_path: Path) -> None:
    """A recorded pid with another start time is not ours (pid reuse)."""
    pid = os.getpid()
    st = processes.proc_stat(pid)
    assert st is not None
    assert processes.is_alive(pid, st[1])
    assert not processes.is_alive(pid, st[1] + 1)
    assert not processes.is_alive(2**22 + 12345, st[1])


def test_stop_all_leaves_no_process(runtime: LocalRuntime, tmp_path: Path) -> None:
    spec = H.make_spec(traffic=TrafficSpec(rate=5.0, paths=("/",)))
    other = H.make_spec(service="records-api")
    v1 = H.write_artifact(tmp_path, "v1")
    v2 = H.write_artifact(tmp_path, "v2")
    runtime.ensure_router(spec)
    runtime.ensure_router(other)
    runtime.ensure_traffic([spec, other])
    runtime.ensure_instances(spec, v1, 2)
    runtime.ensure_instances(other, v2, 1)
    H.wait_for(lambda: _ready(runtime, spec, v1.key, 2), what="ready")
    cfg = json.loads(runtime.traffic_config_path.read_text())
    assert [t["name"] for t in cfg["targets"]] == ["staging/scheduling-api"]
    state = json.loads(runtime.state_path.read_text())
    pids = [r["pid"] for r in state["routers"]]
    pids += [i["pid"] for i in state["instances"]]
    assert state["traffic"] is not None
    pids.append(state["traffic"]["pid"])
    assert len(pids) == 6 and all(H.pid_running(p) for p in pids)
    assert sorted(runtime.all_pids()) == sorted(pids)
    assert [r.key for r in runtime.routers()] == ["staging/records-api", "staging/scheduling-api"]

    runtime.stop_all()

    assert [p for p in pids if not H.pid_gone(p)] == []
    assert not runtime.state_path.exists()
    assert not runtime.traffic_config_path.exists()


def test_stopping_kills_the_whole_process_group(runtime: LocalRuntime, tmp_path: Path) -> None:
    """Helpers an instance spawns (same process group) die with it, even if they ignore SIGTERM."""
    spec = H.make_spec()
    prelude = (
        "import subprocess\n"
        "helper = subprocess.Popen(['sh', '-c', 'trap \"\" TERM; exec sleep 300'])\n"
        f"open(os.path.join({str(tmp_path)!r}, f'helper-{{args.port}}'), 'w').write(str(helper.pid))"
    )
    v1 = H.write_artifact(tmp_path, "forking", prelude)
    runtime.ensure_instances(spec, v1, 1)
    H.wait_for(lambda: _ready(runtime, spec, v1.key, 1), what="ready")
    (inst,) = runtime.instances(spec)[v1.key]
    helper = int((tmp_path / f"helper-{inst.port}").read_text())
    assert H.pid_running(helper) and os.getpgid(helper) == inst.pid

    runtime.ensure_instances(spec, v1, 0)
    H.wait_for(lambda: H.pid_gone(inst.pid), timeout=10, what="instance gone")
    H.wait_for(lambda: not H.pid_running(helper), timeout=10, what="helper gone")


def test_concurrent_runtimes_do_not_duplicate(home: Path, tmp_path: Path) -> None:
    """Several runtime objects (as several controllers would) racing on one estate."""
    from concurrent.futures import ThreadPoolExecutor

    spec = H.make_spec()
    v1 = H.write_artifact(tmp_path, "v1")
    runtimes = [LocalRuntime(home, H.ESTATE) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            urls = list(pool.map(lambda rt: rt.ensure_router(spec), runtimes))
            list(pool.map(lambda rt: rt.ensure_instances(spec, v1, 2), runtimes))
        assert len(set(urls)) == 1
        assert len(runtimes[0].instances(spec)[v1.key]) == 2
        H.wait_for(lambda: _ready(runtimes[1], spec, v1.key, 2), what="ready")
        state = json.loads(runtimes[0].state_path.read_text())
        assert len(state["routers"]) == 1 and len(state["instances"]) == 2
        started = [
            line
            for path in runtimes[0].logs_dir.iterdir()
            for line in path.read_text().splitlines()
            if line.startswith("=== primum")
        ]
        assert len(started) == 3  # one router, two instances: nothing started twice
    finally:
        for rt in runtimes:
            rt.close()


def test_the_fence_key_is_made_once_owner_only_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    """The key that makes a router push genuine: 32 random bytes, 0600, in the 0700 runtime directory;
    two runtimes of one estate share it; a key others can read is an error naming the file and the fix."""
    first, second = LocalRuntime(tmp_path, "est"), LocalRuntime(tmp_path, "est")
    try:
        key = first.fence_key()
        assert len(key) == 32 and second.fence_key() == key
        assert stat.S_IMODE(first.fence_key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(first.runtime_dir.stat().st_mode) == 0o700
        assert LocalRuntime(tmp_path, "other").fence_key() != key
        first.fence_key_path.chmod(0o644)
        with pytest.raises(TargetError, match=f"chmod 600 {first.fence_key_path}"):
            second.fence_key()
    finally:
        first.close()
        second.close()
