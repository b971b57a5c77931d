"""Process supervisor for the embedded local data plane.

The local target runs every service instance, every router and the synthetic
traffic generator as real child processes of the controller, but in their own
session (``start_new_session=True``): the data plane must outlive the control
plane, exactly as a Kubernetes pod outlives a crashed deploy tool. A
restarted controller therefore *adopts* the processes it finds instead of
starting duplicates.

What the runtime knows lives in a JSON file ``<home>/runtime/<estate>.json``
and not in the control-plane database, because pids mean something only on
this machine. Every read-modify-write of that file happens under an exclusive
``fcntl.flock`` on a side lock file (the state file itself is replaced by an
atomic rename, so it cannot carry the lock), which makes several controller
processes -- or several runtime objects in one process -- safe.

A pid alone does not identify a process (pids are reused), so every record
also stores the process start time from ``/proc/<pid>/stat``; a process is
"ours and alive" only if both match and it is not a zombie. Signals go to the
whole process group (the pid is the group id because of the new session), so
helpers an instance spawns die with it.

The runtime is level-triggered: ``ensure_instances`` records a desired count
and :meth:`LocalRuntime.reconcile` (called by ``ensure_instances`` and by
``observe``) moves the world towards it -- restarting instances that died,
starting missing ones and stopping surplus ones. Nothing here blocks for long:
stops are SIGTERM now, SIGKILL later from a reaper thread (and again from the
next reconcile if the controller died meanwhile).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.local.artifacts import ArtifactError, materialize
from primum.core.model.runtime import ServiceRuntimeSpec, VersionObservation, VersionRef

log = logging.getLogger(__name__)

TERM_GRACE_S = 5.0  # SIGTERM -> SIGKILL
MAX_CRASHES = 3  # deaths within CRASH_WINDOW_S before a version is marked failed
CRASH_WINDOW_S = 300.0
HEALTH_TIMEOUT_S = 1.0
# Consecutive failed probes before a ready instance leaves the router: one slow
# probe on a loaded machine must not empty the router (Kubernetes uses 3 too).
UNHEALTHY_AFTER = 3
ROUTER_START_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 12
LOG_TAIL_CHARS = 2000

STARTING, READY, UNHEALTHY, STOPPING = "starting", "ready", "unhealthy", "stopping"

# A hook the target passes in: called with the instances about to be stopped,
# *before* they are signalled, so the router can stop sending them traffic.
# If it raises, nothing is stopped.
BeforeStop = Callable[[list["InstanceRecord"]], None]


# ------------------------------------------------------------------ records


@dataclass
class RouterRecord:
    env: str
    service: str
    port: int
    pid: int
    start_time: int  # /proc/<pid>/stat field 22, clock ticks since boot
    log: str

    @property
    def key(self) -> str:
        return f"{self.env}/{self.service}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ident(self) -> tuple[int, int]:
        return (self.pid, self.start_time)


@dataclass
class InstanceRecord:
    env: str
    service: str
    version_key: str
    digest: str
    artifact: str
    label: str
    slot: int
    port: int
    pid: int
    start_time: int
    started_at: float  # wall clock, for the startup timeout
    log: str
    status: str = STARTING  # starting | ready | unhealthy | stopping
    unhealthy_since: float | None = None
    probe_failures: int = 0  # consecutive failed health probes
    stop_requested_at: float | None = None
    restarts: int = 0  # how many times this slot has been restarted

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ident(self) -> tuple[int, int]:
        return (self.pid, self.start_time)

    def version_ref(self) -> VersionRef:
        return VersionRef(digest=self.digest, artifact=self.artifact, label=self.label)


@dataclass
class VersionRecord:
    env: str
    service: str
    key: str
    digest: str
    artifact: str
    label: str
    desired: int = 0
    failed: bool = False  # sticky until the version is scaled to 0
    error: str | None = None
    deaths: list[float] = field(default_factory=list)  # wall times of recent deaths
    restarts: int = 0  # instances restarted after dying, all slots
    slot_restarts: dict[str, int] = field(default_factory=dict)  # slot (as str) -> restarts
    last_crash: str | None = None

    def version_ref(self) -> VersionRef:
        return VersionRef(digest=self.digest, artifact=self.artifact, label=self.label)


@dataclass
class TrafficRecord:
    pid: int
    start_time: int
    config: str
    log: str


@dataclass
class RouteRecord:
    """The last route this machine successfully pushed for a service."""

    weights: dict[str, int]
    preview: str | None
    fence: int


@dataclass
class _State:
    routers: dict[str, RouterRecord] = field(default_factory=dict)  # by "env/service"
    instances: list[InstanceRecord] = field(default_factory=list)
    versions: dict[str, dict[str, VersionRecord]] = field(default_factory=dict)  # svc -> key
    routes: dict[str, RouteRecord] = field(default_factory=dict)
    fences: dict[str, int] = field(default_factory=dict)  # highest fence seen per service
    traffic: TrafficRecord | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _State:
        return cls(
            routers={r.key: r for r in (RouterRecord(**v) for v in _router_dicts(data.get("routers")))},
            instances=[InstanceRecord(**v) for v in data.get("instances", [])],
            versions={
                svc: {k: VersionRecord(**v) for k, v in per.items()} for svc, per in data.get("versions", {}).items()
            },
            routes={k: RouteRecord(**v) for k, v in data.get("routes", {}).items()},
            fences={k: int(v) for k, v in data.get("fences", {}).items()},
            traffic=TrafficRecord(**data["traffic"]) if data.get("traffic") else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            # A list (not keyed) because other tools read it: ``primum up`` prints it.
            "routers": [asdict(v) for _, v in sorted(self.routers.items())],
            "instances": [asdict(i) for i in self.instances],
            "versions": {svc: {k: asdict(v) for k, v in per.items()} for svc, per in self.versions.items()},
            "routes": {k: asdict(v) for k, v in self.routes.items()},
            "fences": dict(self.fences),
            "traffic": asdict(self.traffic) if self.traffic else None,
        }

    def service_instances(self, svc: str) -> list[InstanceRecord]:
        return [i for i in self.instances if f"{i.env}/{i.service}" == svc]


def _router_dicts(raw: Any) -> list[dict[str, Any]]:
    """Routers as stored: a list (current) or a dict keyed by env/service (first drafts)."""
    if isinstance(raw, dict):
        return list(raw.values())
    return list(raw or [])


# --------------------------------------------------------- process identity


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    rest = data[data.rfind(")") + 2 :].split()
    try:
        return rest[0], int(rest[19])  # fields 3 and 22
    except (IndexError, ValueError):
        return None


def same_process(pid: int, start_time: int) -> bool:
    """The pid still names the process we recorded (possibly a zombie)."""
    st = proc_stat(pid)
    return st is not None and st[1] == start_time


def is_alive(pid: int, start_time: int) -> bool:
    """The recorded process runs: same pid, same start time, not a zombie.

    A zombie child of this process is reaped on the way so that it does not
    linger in the process table.
    """
    st = proc_stat(pid)
    if st is None or st[1] != start_time:
        return False
    if st[0] in ("Z", "X"):
        _reap(pid)
        return False
    return True


# Popen objects of the children this process started, so that their exit
# status is collected (no zombies) and exit codes can be reported.
_children: dict[int, subprocess.Popen[bytes]] = {}
_exit_codes: dict[int, int] = {}
_children_lock = threading.Lock()


def _reap(pid: int) -> int | None:
    """Collect the exit status of a child of this process, if it has exited."""
    with _children_lock:
        proc = _children.get(pid)
        if proc is not None:
            rc = proc.poll()
            if rc is not None:
                _children.pop(pid, None)
                _exit_codes[pid] = rc
            return rc
        if pid in _exit_codes:
            return _exit_codes[pid]
    try:
        wpid, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None  # not our child (adopted): init reaps it
    if wpid == 0:
        return None
    rc = os.waitstatus_to_exitcode(status)
    with _children_lock:
        _exit_codes[pid] = rc
    return rc


def _exit_text(pid: int) -> str:
    with _children_lock:
        rc = _exit_codes.get(pid)
    if rc is None:
        return "exited"
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


def _signal_group(pid: int, start_time: int, sig: int) -> bool:
    """Signal the process group of a process we started, if the pid is still it."""
    if not same_process(pid, start_time):
        return False
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        try:  # the process left its group: signal it alone
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
    except PermissionError:
        return False
    return True


def _running(pid: int, start_time: int) -> bool:
    """Like :func:`is_alive` but never reaps, so a zombie leader keeps pinning its pid."""
    st = proc_stat(pid)
    return st is not None and st[1] == start_time and st[0] not in ("Z", "X")


def _wait_gone(pids: Sequence[tuple[int, int]], timeout: float) -> list[tuple[int, int]]:
    """Wait until the processes are gone or zombies; return those still running."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while True:
        left = [p for p in left if _running(*p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def terminate(procs: Sequence[tuple[int, int]], grace: float = TERM_GRACE_S, send_term: bool = True) -> None:
    """SIGTERM, wait up to ``grace``, SIGKILL, wait: blocking; leaves no process behind.

    Each ``(pid, start_time)`` is a group leader we started. Leaders that are
    zombies still hold their pid, so their group can be swept with SIGKILL
    safely before they are reaped.
    """
    procs = [p for p in procs if same_process(*p)]
    if send_term:
        for pid, start in procs:
            _signal_group(pid, start, signal.SIGTERM)
    left = _wait_gone(procs, grace)
    for pid, start in left:
        _signal_group(pid, start, signal.SIGKILL)
    _wait_gone(left, grace)
    for pid, start in procs:
        # Sweep leftovers of the group (e.g. helpers ignoring SIGTERM) while
        # the zombie leader still pins the pid, then reap the leader.
        _signal_group(pid, start, signal.SIGKILL)
        _reap(pid)


def _terminate_async(pid: int, start_time: int, what: str) -> None:
    """Stop one process without blocking the caller: a daemon reaper thread waits."""
    _signal_group(pid, start_time, signal.SIGTERM)
    threading.Thread(
        target=terminate,
        args=([(pid, start_time)], TERM_GRACE_S, False),
        name=f"primum-stop-{what}",
        daemon=True,
    ).start()


# ------------------------------------------------------------------ helpers


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"


def free_port(exclude: Iterable[int] = ()) -> int:
    """A currently free loopback TCP port (not one we have already handed out)."""
    taken = set(exclude)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise TargetError("no free loopback port found")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, for error messages a person can act on."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    tail = "\n".join(data.splitlines()[-lines:])
    return tail[-LOG_TAIL_CHARS:] if tail else "(log empty)"


def _spawn(argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> tuple[int, int]:
    """Start a detached child (own session) logging to ``log_path``; (pid, start time)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as logf:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        logf.write(f"=== primum {stamp} start: {' '.join(argv)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    with _children_lock:
        _children[proc.pid] = proc
    st = proc_stat(proc.pid)  # our unreaped child: readable even if it already died
    if st is None:
        raise TargetError(f"started {argv[0]} (pid {proc.pid}) but cannot read its /proc entry")
    return proc.pid, st[1]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------ runtime


class LocalRuntime:
    """Supervisor of the local data plane of one estate (see the module docstring)."""

    def __init__(self, home: Path, estate: str) -> None:
        self.home = Path(home).absolute()
        self.estate = estate
        self.runtime_dir = self.home / "runtime"
        self.logs_dir = self.home / "logs"
        name = _safe(estate)
        self.state_path = self.runtime_dir / f"{name}.json"
        self.lock_path = self.runtime_dir / f"{name}.lock"
        self.route_lock_path = self.runtime_dir / f"{name}.route.lock"
        self.traffic_config_path = self.runtime_dir / f"{name}-traffic.json"
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._http = httpx.Client(timeout=HEALTH_TIMEOUT_S, trust_env=False)

    def close(self) -> None:
        """Close HTTP clients. Never stops any process."""
        self._http.close()

    # ------------------------------------------------------------- state

    @contextlib.contextmanager
    def _flock(self, path: Path) -> Iterator[IO[str]]:
        with open(path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _load(self) -> _State:
        return self._load_text()[0]

    def _load_text(self) -> tuple[_State, str | None]:
        try:
            text = self.state_path.read_text()
        except FileNotFoundError:
            return _State(), None
        try:
            return _State.from_json(json.loads(text)), text
        except (ValueError, TypeError, KeyError) as exc:
            # Fail closed: guessing would mean losing track of live processes.
            raise TargetError(f"runtime state {self.state_path} is unreadable: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self, write: bool = True) -> Iterator[_State]:
        """Read-modify-write of the state file under the estate lock.

        The file is rewritten (atomically, fsynced) only if the state changed:
        observe runs every tick and mostly changes nothing.
        """
        with self._flock(self.lock_path):
            state, before = self._load_text()
            yield state
            if write:
                after = json.dumps(state.to_json(), indent=1)
                if after != before:
                    _write_atomic(self.state_path, after)

    @contextlib.contextmanager
    def route_lock(self) -> Iterator[None]:
        """Serialises router config pushes (read config, compute, put) across processes.

        Taken *before* the state lock, never while holding it.
        """
        with self._flock(self.route_lock_path):
            yield

    # ----------------------------------------------------------- routers

    def router(self, spec: ServiceRuntimeSpec) -> RouterRecord | None:
        """The recorded router of a service if its process is alive."""
        with self._locked(write=False) as st:
            rec = st.routers.get(spec.key)
        return rec if rec is not None and is_alive(rec.pid, rec.start_time) else None

    def routers(self) -> list[RouterRecord]:
        """Every recorded router of the estate whose process is alive."""
        with self._locked(write=False) as st:
            recs = sorted(st.routers.values(), key=lambda r: r.key)
        return [r for r in recs if is_alive(r.pid, r.start_time)]

    def all_pids(self) -> list[int]:
        """Pids of every recorded data-plane process (routers, instances, traffic)."""
        with self._locked(write=False) as st:
            pids = [r.pid for r in st.routers.values()] + [i.pid for i in st.instances]
            if st.traffic is not None:
                pids.append(st.traffic.pid)
        return pids

    def ensure_router(self, spec: ServiceRuntimeSpec) -> str:
        """Adopt the live router of ``spec`` or start one; return its base URL.

        Blocks until the router answers its health check with its own name and
        pid (at most ~10 s), because a router that is not listening yet cannot
        take a config push.
        """
        for _attempt in range(2):
            with self._locked() as st:
                rec = st.routers.get(spec.key)
                prev_port: int | None = None
                if rec is not None and not is_alive(rec.pid, rec.start_time):
                    log.info("router %s (pid %s) is gone; starting a new one", spec.key, rec.pid)
                    st.routers.pop(spec.key)
                    prev_port, rec = rec.port, None
                elif rec is not None and spec.router_port not in (None, rec.port):
                    log.info("router %s moves to port %s", spec.key, spec.router_port)
                    terminate([rec.ident])
                    st.routers.pop(spec.key)
                    rec = None
                started = rec is None
                if rec is None:
                    rec = self._start_router(st, spec, prev_port)
                    st.routers[spec.key] = rec
            error = self._wait_router(rec, spec.key)
            if error is None:
                if started:
                    self._retarget_traffic(spec.key, rec.url)
                return rec.url
            log.warning("router %s is not healthy: %s; replacing it", spec.key, error)
            terminate([(rec.pid, rec.start_time)])
            with self._locked() as st:
                cur = st.routers.get(spec.key)
                if cur is not None and cur.ident == rec.ident:
                    st.routers.pop(spec.key)
        raise TargetError(f"router for {spec.key} did not become healthy: {error}")

    def _retarget_traffic(self, name: str, url: str) -> None:
        """Point the traffic generator at a router that came back on another port."""
        with self._locked(write=False):
            try:
                cfg = json.loads(self.traffic_config_path.read_text())
            except (OSError, ValueError):
                return
            targets = cfg.get("targets", []) if isinstance(cfg, dict) else []
            changed = False
            for t in targets:
                if t.get("name") == name and t.get("url") != url:
                    t["url"], changed = url, True
            if changed:
                _write_atomic(self.traffic_config_path, json.dumps(cfg, indent=1))

    def _start_router(self, st: _State, spec: ServiceRuntimeSpec, prev_port: int | None) -> RouterRecord:
        used = self._used_ports(st)
        if spec.router_port is not None:
            port = spec.router_port
            if not port_is_free(port):
                raise TargetError(f"router port {port} for {spec.key} is in use by another process")
        elif prev_port is not None and prev_port not in used and port_is_free(prev_port):
            port = prev_port  # keep the URL stable for clients and the traffic generator
        else:
            port = free_port(used)
        log_path = self.logs_dir / f"{_safe(self.estate)}.router.{_safe(spec.env)}.{_safe(spec.service)}.log"
        argv = [
            sys.executable,
            "-m",
            "primum.adapters.targets.local.router",
            "--port",
            str(port),
            "--name",
            spec.key,
        ]
        try:
            pid, start = _spawn(argv, dict(os.environ), log_path, self.home)
        except OSError as exc:
            raise TargetError(f"cannot start router for {spec.key}: {exc}") from exc
        log.info("started router %s pid %s on port %s", spec.key, pid, port)
        return RouterRecord(spec.env, spec.service, port, pid, start, str(log_path))

    def _wait_router(self, rec: RouterRecord, name: str) -> str | None:
        """None once the router answers health as itself; else why it did not."""
        deadline = time.monotonic() + ROUTER_START_TIMEOUT_S
        last = "no answer"
        while True:
            if not is_alive(rec.pid, rec.start_time):
                return f"router process {rec.pid} {_exit_text(rec.pid)}; log:\n{log_tail(rec.log)}"
            try:
                resp = self._http.get(f"{rec.url}/_primum/health")
                body = resp.json() if resp.status_code == 200 else {}
                if (
                    isinstance(body, dict)
                    and body.get("ok") is True
                    and body.get("name") == name
                    and body.get("pid") == rec.pid
                ):
                    return None
                last = f"HTTP {resp.status_code} {resp.text[:200]!r}"
            except (httpx.HTTPError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                return f"no healthy answer within {ROUTER_START_TIMEOUT_S:.0f}s ({last})"
            time.sleep(0.1)

    # --------------------------------------------------------- instances

    def ensure_instances(
        self,
        spec: ServiceRuntimeSpec,
        version: VersionRef,
        count: int,
        before_stop: BeforeStop | None = None,
    ) -> None:
        """Record that ``count`` instances of ``version`` should run, then reconcile.

        Non-blocking: processes are started or signalled, not waited for. A
        failed version stays failed (no restarts) until it is scaled to 0; that
        keeps a level-triggered controller that repeats this call every tick
        from restarting a crash loop forever.
        """
        if count < 0:
            raise TargetError(f"negative instance count {count}")
        with self._locked() as st:
            per = st.versions.setdefault(spec.key, {})
            rec = per.get(version.key)
            if rec is None:
                per[version.key] = VersionRecord(
                    spec.env,
                    spec.service,
                    version.key,
                    version.digest,
                    version.artifact,
                    version.label,
                    desired=count,
                )
            else:
                rec.desired = count
                rec.digest, rec.artifact, rec.label = version.digest, version.artifact, version.label
                if count == 0:
                    rec.failed, rec.error, rec.deaths = False, None, []
        self.reconcile(spec, before_stop)

    def reconcile(self, spec: ServiceRuntimeSpec, before_stop: BeforeStop | None = None) -> None:
        """Move the service's instances towards their desired counts.

        Restarts dead instances (counting crashes), starts missing slots of
        versions that are not failed, and stops surplus instances -- after
        ``before_stop`` has taken them out of the router.
        """
        with self._locked() as st:
            now = time.time()
            self._collect_stopping(st, now)
            per = st.versions.setdefault(spec.key, {})
            for inst in list(st.service_instances(spec.key)):
                if inst.status == STOPPING or is_alive(inst.pid, inst.start_time):
                    continue
                st.instances.remove(inst)
                self._record_death(per.get(inst.version_key), inst, now, _exit_text(inst.pid))
            insts = st.service_instances(spec.key)
            for key, vrec in list(per.items()):
                mine = [i for i in insts if i.version_key == key]
                if vrec.desired == 0 and not mine:
                    del per[key]
                    continue
                if vrec.failed or vrec.desired == 0:
                    continue
                running = {i.slot for i in mine if i.status != STOPPING}
                missing = [s for s in range(vrec.desired) if s not in running]
                if missing:
                    self._start_slots(st, spec, vrec, missing)
            if not per:
                st.versions.pop(spec.key, None)
            surplus = self._surplus(st, spec)
        if not surplus:
            return
        if before_stop is not None:
            before_stop(surplus)
        self._stop(surplus)

    def _surplus(self, st: _State, spec: ServiceRuntimeSpec) -> list[InstanceRecord]:
        """Running instances beyond their version's desired count, highest slot first."""
        per = st.versions.get(spec.key, {})
        out: list[InstanceRecord] = []
        seen: set[tuple[str, int]] = set()
        for inst in sorted(st.service_instances(spec.key), key=lambda i: (i.slot, i.started_at)):
            if inst.status == STOPPING:
                continue
            vrec = per.get(inst.version_key)
            desired = vrec.desired if vrec else 0
            if inst.slot >= desired or (inst.version_key, inst.slot) in seen:
                out.append(inst)
            seen.add((inst.version_key, inst.slot))
        return sorted(out, key=lambda i: -i.slot)

    def _stop(self, doomed: list[InstanceRecord]) -> None:
        idents = {i.ident for i in doomed}
        with self._locked() as st:
            now = time.time()
            for inst in st.instances:
                if inst.ident in idents and inst.status != STOPPING:
                    inst.status = STOPPING
                    inst.stop_requested_at = now
                    log.info(
                        "stopping %s/%s %s slot %s pid %s",
                        inst.env,
                        inst.service,
                        inst.version_key,
                        inst.slot,
                        inst.pid,
                    )
                    _terminate_async(inst.pid, inst.start_time, f"{inst.version_key}-{inst.slot}")

    def _collect_stopping(self, st: _State, now: float) -> None:
        """Forget stopped instances; SIGKILL those past their grace (reaper thread lost)."""
        for inst in list(st.instances):
            if inst.status != STOPPING:
                continue
            if not is_alive(inst.pid, inst.start_time):
                st.instances.remove(inst)
            elif now - (inst.stop_requested_at or now) > TERM_GRACE_S + 1.0:
                _signal_group(inst.pid, inst.start_time, signal.SIGKILL)

    def _record_death(self, vrec: VersionRecord | None, inst: InstanceRecord, now: float, how: str) -> None:
        msg = (
            f"instance {inst.slot} of {inst.label or inst.version_key} ({inst.version_key}),"
            f" pid {inst.pid} port {inst.port}, {how}"
        )
        log.warning("%s/%s: %s", inst.env, inst.service, msg)
        if vrec is None or vrec.failed:
            return
        vrec.deaths = [t for t in vrec.deaths if now - t < CRASH_WINDOW_S] + [now]
        vrec.last_crash = msg
        if len(vrec.deaths) >= MAX_CRASHES:
            vrec.failed = True
            vrec.error = (
                f"crash loop: {len(vrec.deaths)} instance deaths within {CRASH_WINDOW_S:.0f}s,"
                f" not restarting; last: {msg}; log tail:\n{log_tail(inst.log)}"
            )
        elif inst.slot < vrec.desired:
            # The next reconcile pass starts this slot again.
            vrec.restarts += 1
            slot = str(inst.slot)
            vrec.slot_restarts[slot] = vrec.slot_restarts.get(slot, 0) + 1

    def _start_slots(self, st: _State, spec: ServiceRuntimeSpec, vrec: VersionRecord, slots: list[int]) -> None:
        ref = vrec.version_ref()
        try:
            # verified while copied into the content-addressed cache: the copy is what runs
            ready = materialize(ref, self.home / "artifacts")
        except ArtifactError as exc:
            log.error("%s: refusing to start %s: %s", spec.key, ref.describe(), exc)
            vrec.failed, vrec.error = True, str(exc)
            return
        used = self._used_ports(st)
        for slot in slots:
            port = free_port(used)
            used.add(port)
            subst = {"{artifact}": str(ready.artifact), "{port}": str(port), "{python}": sys.executable}
            if ready.unpacked is not None:
                subst["{unpacked}"] = str(ready.unpacked)
            elif any("{unpacked}" in tok for tok in (*spec.command, *spec.env_vars.values())):
                vrec.failed = True
                vrec.error = (f"the command uses {{unpacked}} but {ref.artifact} is not an archive "
                              "(.tar.gz, .tgz, .tar, .zip)")
                return
            argv = [_substitute(tok, subst) for tok in spec.command]
            env = dict(os.environ)
            env.update({k: _substitute(v, subst) for k, v in spec.env_vars.items()})
            env.update(
                PRIMUM_SERVICE=spec.service,
                PRIMUM_ENV=spec.env,
                PRIMUM_VERSION=ref.label or ref.key,
            )
            log_path = self.logs_dir / (
                f"{_safe(self.estate)}.{_safe(spec.env)}.{_safe(spec.service)}.{vrec.key}.{slot}.log"
            )
            try:
                pid, start = _spawn(argv, env, log_path, self.home)
            except (OSError, TargetError) as exc:
                vrec.failed = True
                vrec.error = f"cannot start {' '.join(argv)}: {exc}"
                log.error("%s: %s", spec.key, vrec.error)
                return
            restarts = vrec.slot_restarts.get(str(slot), 0)
            st.instances.append(
                InstanceRecord(
                    spec.env,
                    spec.service,
                    vrec.key,
                    ref.digest,
                    ref.artifact,
                    ref.label,
                    slot,
                    port,
                    pid,
                    start,
                    time.time(),
                    str(log_path),
                    restarts=restarts,
                )
            )
            log.info("%s: started %s slot %s pid %s port %s", spec.key, ref.key, slot, pid, port)

    @staticmethod
    def _used_ports(st: _State) -> set[int]:
        return {r.port for r in st.routers.values()} | {i.port for i in st.instances}

    # ------------------------------------------------------------ health

    def check_health(self, spec: ServiceRuntimeSpec) -> None:
        """Probe every live instance once (concurrently, 1 s timeout) and update states.

        ``starting`` -> ``ready`` on a 2xx. A starting instance that is not
        healthy within ``startup_timeout_s`` is stopped and its version marked
        failed. A ready instance that fails its probe becomes ``unhealthy``
        (out of the router, counted as starting); if it stays so for
        ``startup_timeout_s`` it is killed and counts as a crash.
        """
        with self._locked(write=False) as st:
            probes = [
                i for i in st.service_instances(spec.key) if i.status != STOPPING and is_alive(i.pid, i.start_time)
            ]
        if not probes:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(probes))) as pool:
            results = list(pool.map(lambda i: self._probe(i, spec.health_path), probes))
        outcome = {inst.ident: res for inst, res in zip(probes, results, strict=True)}
        doomed: list[InstanceRecord] = []
        with self._locked() as st:
            now = time.time()
            per = st.versions.get(spec.key, {})
            for inst in st.service_instances(spec.key):
                if inst.ident not in outcome or inst.status == STOPPING:
                    continue
                res = outcome[inst.ident]
                if res is None:
                    inst.status, inst.unhealthy_since, inst.probe_failures = READY, None, 0
                    continue
                vrec = per.get(inst.version_key)
                if inst.status == STARTING:
                    if now - inst.started_at > spec.startup_timeout_s:
                        if vrec is not None:
                            vrec.failed = True
                            vrec.error = (
                                f"instance {inst.slot} of {inst.label or inst.version_key}"
                                f" (pid {inst.pid}) not healthy within"
                                f" {spec.startup_timeout_s:g}s on {spec.health_path}"
                                f" (last: {res}); log tail:\n{log_tail(inst.log)}"
                            )
                        doomed.append(inst)
                elif inst.status == READY:
                    inst.probe_failures += 1
                    if inst.probe_failures >= UNHEALTHY_AFTER:
                        inst.status, inst.unhealthy_since = UNHEALTHY, now
                elif inst.status == UNHEALTHY and now - (inst.unhealthy_since or now) > spec.startup_timeout_s:
                    self._record_death(
                        vrec,
                        inst,
                        now,
                        f"unhealthy for more than {spec.startup_timeout_s:g}s ({res}), killed",
                    )
                    doomed.append(inst)
            for inst in doomed:
                # Not ready, hence not in the router: no drain needed.
                inst.status, inst.stop_requested_at = STOPPING, now
                _terminate_async(inst.pid, inst.start_time, f"{inst.version_key}-{inst.slot}")

    def _probe(self, inst: InstanceRecord, path: str) -> str | None:
        """None if healthy, else a short reason."""
        try:
            resp = self._http.get(f"{inst.url}{path}", timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if 200 <= resp.status_code < 300:
            return None
        return f"HTTP {resp.status_code}"

    # ------------------------------------------------------- observation

    def observe(self, spec: ServiceRuntimeSpec, before_stop: BeforeStop | None = None) -> dict[str, VersionObservation]:
        """One supervision tick (reconcile, health) and the per-version picture.

        Errors while draining surplus instances are logged and leave them
        running: observing must still work when the router is down.
        """
        try:
            self.reconcile(spec, before_stop)
        except TargetError as exc:
            log.warning("%s: could not stop surplus instances: %s", spec.key, exc)
        self.check_health(spec)
        return self.version_observations(spec)

    def version_observations(self, spec: ServiceRuntimeSpec) -> dict[str, VersionObservation]:
        """Per version key: desired/ready/starting/failed as last recorded, no probing."""
        with self._locked(write=False) as st:
            per = dict(st.versions.get(spec.key, {}))
            insts = [i for i in st.service_instances(spec.key) if i.status != STOPPING]
        out: dict[str, VersionObservation] = {}
        keys = list(per) + sorted({i.version_key for i in insts} - set(per))
        for key in keys:
            mine = [i for i in insts if i.version_key == key and is_alive(i.pid, i.start_time)]
            ready = sum(1 for i in mine if i.status == READY)
            starting = len(mine) - ready
            vrec = per.get(key)
            if vrec is None:  # a leftover nobody desires (should not happen, but report it)
                ref = next(i for i in insts if i.version_key == key).version_ref()
                out[key] = VersionObservation(version=ref, ready=ready, starting=starting)
                continue
            failed = max(1, vrec.desired - ready - starting) if vrec.failed else 0
            out[key] = VersionObservation(
                version=vrec.version_ref(),
                desired=vrec.desired,
                ready=ready,
                starting=starting,
                failed=failed,
                error=vrec.error if vrec.failed else None,
            )
        return out

    def instances(self, spec: ServiceRuntimeSpec) -> dict[str, list[InstanceRecord]]:
        """Recorded instances of a service by version key (including stopping ones)."""
        with self._locked(write=False) as st:
            insts = st.service_instances(spec.key)
        out: dict[str, list[InstanceRecord]] = {}
        for inst in sorted(insts, key=lambda i: (i.version_key, i.slot)):
            out.setdefault(inst.version_key, []).append(inst)
        return out

    def ready_urls(self, spec: ServiceRuntimeSpec, exclude: Iterable[tuple[int, int]] = ()) -> dict[str, list[str]]:
        """URLs of ready, live instances per version key (what the router may use)."""
        skip = set(exclude)
        out: dict[str, list[str]] = {}
        for key, insts in self.instances(spec).items():
            urls = [i.url for i in insts if i.status == READY and i.ident not in skip and is_alive(i.pid, i.start_time)]
            if urls:
                out[key] = urls
        return out

    def version_records(self, spec: ServiceRuntimeSpec) -> dict[str, VersionRecord]:
        with self._locked(write=False) as st:
            return dict(st.versions.get(spec.key, {}))

    # ------------------------------------------------------ route, fence

    def get_route(self, spec: ServiceRuntimeSpec) -> RouteRecord | None:
        with self._locked(write=False) as st:
            return st.routes.get(spec.key)

    def set_route(self, spec: ServiceRuntimeSpec, route: RouteRecord) -> None:
        with self._locked() as st:
            st.routes[spec.key] = route
            st.fences[spec.key] = max(st.fences.get(spec.key, 0), route.fence)

    def check_fence(self, spec: ServiceRuntimeSpec, fence: int) -> None:
        """Reject a fencing token older than the newest one seen for this service.

        The router checks fences on route pushes; this guards the process side
        (start/stop) too, and survives a router restart.
        """
        with self._locked() as st:
            highest = st.fences.get(spec.key, 0)
            if fence < highest:
                raise StaleFenceError(f"{spec.key}: fence {fence} is older than {highest} already seen")
            st.fences[spec.key] = fence

    # ----------------------------------------------------------- traffic

    def ensure_traffic(self, specs: Sequence[ServiceRuntimeSpec]) -> None:
        """Write the traffic config for these services and run one generator if needed.

        The config file is merged: entries of services not in ``specs`` are
        kept, so preparing one service does not silence another. The file is
        rewritten only when its content changes (the generator reloads on
        mtime change).
        """
        with self._locked() as st:
            try:
                current = json.loads(self.traffic_config_path.read_text())
                targets = list(current.get("targets", []))
            except (OSError, ValueError, AttributeError):
                current, targets = None, []
            names = {s.key for s in specs}
            targets = [t for t in targets if t.get("name") not in names]
            for spec in specs:
                if spec.traffic is None:
                    continue
                router = st.routers.get(spec.key)
                if router is None or not is_alive(router.pid, router.start_time):
                    raise TargetError(f"no running router for {spec.key}: call prepare first")
                targets.append(
                    {
                        "name": spec.key,
                        "url": router.url,
                        "rate": spec.traffic.rate,
                        "paths": list(spec.traffic.paths),
                        "tenants": list(spec.traffic.tenants),
                        "tenant_header": spec.tenant_header,
                        "preview_share": spec.traffic.preview_share,
                    }
                )
            targets.sort(key=lambda t: str(t.get("name")))
            wanted = {"targets": targets}
            if wanted != current:
                _write_atomic(self.traffic_config_path, json.dumps(wanted, indent=1))
            rec = st.traffic
            alive = rec is not None and is_alive(rec.pid, rec.start_time)
            if not targets:
                if rec is not None and alive:
                    _terminate_async(rec.pid, rec.start_time, "traffic")
                st.traffic = None
                return
            if alive:
                return
            log_path = self.logs_dir / f"{_safe(self.estate)}.traffic.log"
            argv = [
                sys.executable,
                "-m",
                "primum.adapters.targets.local.traffic",
                "--config",
                str(self.traffic_config_path),
            ]
            try:
                pid, start = _spawn(argv, dict(os.environ), log_path, self.home)
            except OSError as exc:
                raise TargetError(f"cannot start the traffic generator: {exc}") from exc
            st.traffic = TrafficRecord(pid, start, str(self.traffic_config_path), str(log_path))

    # -------------------------------------------------------------- stop

    def stop_all(self) -> None:
        """Stop every router, instance and the traffic generator; remove the state.

        Blocking (up to ~10 s): SIGTERM, 5 s grace, SIGKILL, wait. Holds the
        estate lock throughout so that nothing new is started meanwhile.
        """
        with self._flock(self.lock_path):
            st = self._load()
            procs = [(r.pid, r.start_time) for r in st.routers.values()]
            procs += [(i.pid, i.start_time) for i in st.instances]
            if st.traffic is not None:
                procs.append((st.traffic.pid, st.traffic.start_time))
            terminate(procs)
            left = [p for p in procs if is_alive(*p)]
            if left:
                raise TargetError(f"processes survived SIGKILL: {left}")
            self.state_path.unlink(missing_ok=True)
            self.traffic_config_path.unlink(missing_ok=True)


def _substitute(token: str, subst: dict[str, str]) -> str:
    for k, v in subst.items():
        token = token.replace(k, v)
    return token
