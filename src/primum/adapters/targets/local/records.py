"""What the local runtime knows, as it lies on disk: records of the processes it runs.

What the runtime knows lives in a JSON file ``<home>/runtime/<estate>.json``
and not in the control-plane database, because pids mean something only on
this machine. Every read-modify-write of that file happens under an exclusive
``fcntl.flock`` on a side lock file (the state file itself is replaced by an
atomic rename, so it cannot carry the lock), which makes several controller
processes -- or several runtime objects in one process -- safe.

:class:`RuntimeFiles` owns those files and their locks; the supervisors
(``instances.py``, ``runtime.py``) derive from it and change the state only
inside :meth:`RuntimeFiles._locked`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from primum.adapters.targets.base import TargetError
from primum.adapters.targets.local.fencing import KEY_BYTES
from primum.core.model.actions import VersionRef

STARTING, READY, UNHEALTHY, STOPPING = "starting", "ready", "unhealthy", "stopping"


@dataclass
class RouterRecord:
    env: str
    service: str
    port: int
    pid: int
    start_time: int  # /proc/<pid>/stat field 22, clock ticks since boot
    log: str
    admin_socket: str = ""  # the admin API's Unix socket ("" : a router from before it had one)
    metrics_port: int | None = None  # the loopback listener for Prometheus (bearer token)
    metrics_token: str = ""  # the 0600 file holding that token

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
class RuntimeState:
    routers: dict[str, RouterRecord] = field(default_factory=dict)  # by "env/service"
    instances: list[InstanceRecord] = field(default_factory=list)
    versions: dict[str, dict[str, VersionRecord]] = field(default_factory=dict)  # svc -> key
    routes: dict[str, RouteRecord] = field(default_factory=dict)
    fences: dict[str, int] = field(default_factory=dict)  # highest fence seen per service
    seqs: dict[str, int] = field(default_factory=dict)  # highest router push seq issued per service
    traffic: TrafficRecord | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuntimeState:
        return cls(
            routers={r.key: r for r in (RouterRecord(**v) for v in _router_dicts(data.get("routers")))},
            instances=[InstanceRecord(**v) for v in data.get("instances", [])],
            versions={
                svc: {k: VersionRecord(**v) for k, v in per.items()} for svc, per in data.get("versions", {}).items()
            },
            routes={k: RouteRecord(**v) for k, v in data.get("routes", {}).items()},
            fences={k: int(v) for k, v in data.get("fences", {}).items()},
            seqs={k: int(v) for k, v in data.get("seqs", {}).items()},
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
            "seqs": dict(self.seqs),
            "traffic": asdict(self.traffic) if self.traffic else None,
        }

    def service_instances(self, svc: str) -> list[InstanceRecord]:
        return [i for i in self.instances if f"{i.env}/{i.service}" == svc]


    def used_ports(self) -> set[int]:
        """Ports handed out to routers and instances (a new process must not get one)."""
        metrics = {r.metrics_port for r in self.routers.values() if r.metrics_port is not None}
        return {r.port for r in self.routers.values()} | metrics | {i.port for i in self.instances}


def _router_dicts(raw: Any) -> list[dict[str, Any]]:
    """Routers as stored: a list (current) or a dict keyed by env/service (first drafts)."""
    if isinstance(raw, dict):
        return list(raw.values())
    return list(raw or [])


def safe_name(name: str) -> str:
    """A name made safe for a file name (estate, environment, service)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` by an fsynced temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RuntimeFiles:
    """The runtime files of one estate under ``<home>`` and the locks around them."""

    def __init__(self, home: Path, estate: str) -> None:
        self.home = Path(home).absolute()
        self.estate = estate
        self.runtime_dir = self.home / "runtime"
        self.logs_dir = self.home / "logs"
        name = safe_name(estate)
        self.state_path = self.runtime_dir / f"{name}.json"
        self.lock_path = self.runtime_dir / f"{name}.lock"
        self.route_lock_path = self.runtime_dir / f"{name}.route.lock"
        self.traffic_config_path = self.runtime_dir / f"{name}-traffic.json"
        self.fence_key_path = self.runtime_dir / f"{name}.fence-key"
        # Owner-only: the routers' admin sockets, the fence key and the state live here.
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.runtime_dir.stat().st_mode & 0o077:
            self.runtime_dir.chmod(0o700)
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    def fence_key(self) -> bytes:
        """The runtime's fence key (created on first use: 32 random bytes, hex, in a 0600 file).

        Only the controller and the routers read it; a router accepts a configuration
        only when it is sealed with it (``fencing.py``).
        """
        path = self.fence_key_path
        if not path.exists():
            # written whole under another name, then linked into place: a reader never sees half a
            # key, and of two processes making one at once, the first link wins and both use it
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            self.secret_file(tmp, secrets.token_hex(KEY_BYTES))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise TargetError(
                f"the fence key {path} must be a regular file of this user with mode 0600"
                f" (found mode {stat.S_IMODE(st.st_mode):o}); chmod 600 {path}, or delete it and restart the"
                " runtime (primum down, primum up) to make a new one"
            )
        try:
            key = bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise TargetError(f"the fence key {path} is unreadable ({exc}); delete it and restart the runtime") from exc
        if len(key) != KEY_BYTES:
            raise TargetError(
                f"the fence key {path} does not hold {KEY_BYTES} bytes; delete it and restart the runtime"
            )
        return key

    def secret_file(self, path: Path, text: str) -> None:
        """Write ``text`` to a new 0600 file at ``path`` (replacing any), never readable by others."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _flock(self, path: Path) -> Iterator[IO[str]]:
        with open(path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _load(self) -> RuntimeState:
        return self._load_text()[0]

    def _load_text(self) -> tuple[RuntimeState, str | None]:
        try:
            text = self.state_path.read_text()
        except FileNotFoundError:
            return RuntimeState(), None
        try:
            return RuntimeState.from_json(json.loads(text)), text
        except (ValueError, TypeError, KeyError) as exc:
            # Fail closed: guessing would mean losing track of live processes.
            raise TargetError(f"runtime state {self.state_path} is unreadable: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self, write: bool = True) -> Iterator[RuntimeState]:
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
                    write_atomic(self.state_path, after)

    @contextlib.contextmanager
    def route_lock(self) -> Iterator[None]:
        """Serialises router config pushes (read config, compute, put) across processes.

        Taken *before* the state lock, never while holding it.
        """
        with self._flock(self.route_lock_path):
            yield
