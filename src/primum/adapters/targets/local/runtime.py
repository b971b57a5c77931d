"""Process supervisor for the embedded local data plane.

The local target runs every service instance, every router and the synthetic
traffic generator as real child processes of the controller, but in their own
session (``start_new_session=True``): the data plane must outlive the control
plane, exactly as a Kubernetes pod outlives a crashed deploy tool. A
restarted controller therefore *adopts* the processes it finds instead of
starting duplicates.

:class:`LocalRuntime` is one object with one state lock, written in parts:

* ``records.py`` -- the on-disk records of what runs and the locked state file
  (:class:`~primum.adapters.targets.local.records.RuntimeFiles`, its base);
* ``processes.py`` -- process identity (pid plus start time), signals to
  process groups, reaping, spawning, free ports, log tails;
* ``instances.py`` -- the level-triggered supervision of service instances
  (desired counts, restarts, crash loops, health, observation);
* this module -- the routers, the traffic generator, routes and fences, and
  stopping everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.local.instances import HEALTH_TIMEOUT_S, InstanceSupervision
from primum.adapters.targets.local.processes import (
    exit_text,
    free_port,
    is_alive,
    log_tail,
    port_is_free,
    spawn,
    terminate,
    terminate_async,
)
from primum.adapters.targets.local.records import (
    RouteRecord,
    RouterRecord,
    RuntimeState,
    TrafficRecord,
    safe_name,
    write_atomic,
)
from primum.adapters.targets.local.router_client import RouterClient
from primum.core.model.actions import ServiceRuntimeSpec

log = logging.getLogger(__name__)

ROUTER_START_TIMEOUT_S = 10.0
SOCKET_PATH_MAX = 100  # AF_UNIX paths end at 107 bytes on Linux; leave room


class LocalRuntime(InstanceSupervision):
    """Supervisor of the local data plane of one estate (see the module docstring)."""

    def __init__(self, home: Path, estate: str) -> None:
        super().__init__(home, estate)
        self._http = httpx.Client(timeout=HEALTH_TIMEOUT_S, trust_env=False)

    def close(self) -> None:
        """Close HTTP clients. Never stops any process."""
        self._http.close()

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
                elif rec is not None and rec.admin_socket != str(self.admin_socket(spec)):
                    # a router from before the admin API left the data port: replace it
                    log.info("router %s has no admin socket; replacing it", spec.key)
                    terminate([rec.ident])
                    st.routers.pop(spec.key)
                    prev_port, rec = rec.port, None
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
                write_atomic(self.traffic_config_path, json.dumps(cfg, indent=1))

    def _start_router(self, st: RuntimeState, spec: ServiceRuntimeSpec, prev_port: int | None) -> RouterRecord:
        used = st.used_ports()
        if spec.router_port is not None:
            port = spec.router_port
            if not port_is_free(port):
                raise TargetError(f"router port {port} for {spec.key} is in use by another process")
        elif prev_port is not None and prev_port not in used and port_is_free(prev_port):
            port = prev_port  # keep the URL stable for clients and the traffic generator
        else:
            port = free_port(used)
        metrics_port = free_port(used | {port})
        name = self._router_name(spec)
        log_path = self.logs_dir / f"{name}.log"
        socket_path = self.admin_socket(spec)
        token_path = self.runtime_dir / f"{name}.metrics-token"
        self.fence_key()  # made now if missing, so the router can read it
        self.secret_file(token_path, secrets.token_urlsafe(32))
        stored = st.routes.get(spec.key)
        argv = [
            sys.executable,
            "-m",
            "primum.adapters.targets.local.router",
            "--port",
            str(port),
            "--name",
            spec.key,
            "--admin-socket",
            str(socket_path),
            "--fence-key",
            str(self.fence_key_path),
            # a restarted router refuses what its predecessor would have: older fences, replays
            "--min-fence",
            str(stored.fence if stored is not None else 0),
            "--min-seq",
            str(st.seqs.get(spec.key, 0)),
            "--metrics-port",
            str(metrics_port),
            "--metrics-token",
            str(token_path),
        ]
        try:
            pid, start = spawn(argv, dict(os.environ), log_path, self.home)
        except OSError as exc:
            raise TargetError(f"cannot start router for {spec.key}: {exc}") from exc
        log.info("started router %s pid %s on port %s, admin %s", spec.key, pid, port, socket_path)
        return RouterRecord(spec.env, spec.service, port, pid, start, str(log_path), str(socket_path),
                            metrics_port, str(token_path))

    def _router_name(self, spec: ServiceRuntimeSpec) -> str:
        return f"{safe_name(self.estate)}.router.{safe_name(spec.env)}.{safe_name(spec.service)}"

    def admin_socket(self, spec: ServiceRuntimeSpec) -> Path:
        """Where the router of ``spec`` listens for its admin API: a Unix socket in the 0700 runtime directory.

        A socket path has a hard limit (108 bytes on Linux); when the home is too
        deep for it, the sockets go to ``/tmp/primum-<uid>/<hash of the runtime
        directory>/`` instead, a directory checked to be this user's and 0700.
        """
        path = self.runtime_dir / f"{self._router_name(spec)}.sock"
        if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
            return path
        digest = hashlib.sha256(os.fsencode(self.runtime_dir)).hexdigest()[:16]
        short = Path(f"/tmp/primum-{os.getuid()}") / digest
        for directory in (short.parent, short):
            directory.mkdir(mode=0o700, exist_ok=True)
            st = directory.lstat()
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise TargetError(
                    f"{directory} (for the routers' admin sockets: {self.runtime_dir} is too deep for a socket"
                    " path) is not this user's private directory; remove it, or use a shorter PRIMUM_HOME"
                )
        return short / f"{hashlib.sha256(spec.key.encode()).hexdigest()[:16]}.sock"

    def admin_client(self, rec: RouterRecord, timeout: float = 2.0) -> RouterClient:
        """A client of the router's admin socket that can push (it holds the fence key)."""
        return RouterClient(rec.admin_socket, timeout=timeout, key=self.fence_key(), name=rec.key)

    def next_seq(self, spec: ServiceRuntimeSpec, router_seq: int) -> int:
        """The seq of the next push to the router of ``spec``: above every one issued, recorded first."""
        with self._locked() as st:
            seq = max(st.seqs.get(spec.key, 0), router_seq) + 1
            st.seqs[spec.key] = seq
        return seq

    def _wait_router(self, rec: RouterRecord, name: str) -> str | None:
        """None once the router answers health as itself on its admin socket; else why it did not."""
        deadline = time.monotonic() + ROUTER_START_TIMEOUT_S
        last = "no answer"
        while True:
            if not is_alive(rec.pid, rec.start_time):
                return f"router process {rec.pid} {exit_text(rec.pid)}; log:\n{log_tail(rec.log)}"
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=rec.admin_socket), trust_env=False,
                                  timeout=HEALTH_TIMEOUT_S) as admin:
                    resp = admin.get("http://router/_primum/health")
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
                write_atomic(self.traffic_config_path, json.dumps(wanted, indent=1))
            rec = st.traffic
            alive = rec is not None and is_alive(rec.pid, rec.start_time)
            if not targets:
                if rec is not None and alive:
                    terminate_async(rec.pid, rec.start_time, "traffic")
                st.traffic = None
                return
            if alive:
                return
            log_path = self.logs_dir / f"{safe_name(self.estate)}.traffic.log"
            argv = [
                sys.executable,
                "-m",
                "primum.adapters.targets.local.traffic",
                "--config",
                str(self.traffic_config_path),
            ]
            try:
                pid, start = spawn(argv, dict(os.environ), log_path, self.home)
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
            leftovers = [Path(p) for r in st.routers.values() for p in (r.admin_socket, r.metrics_token) if p]
            procs += [(i.pid, i.start_time) for i in st.instances]
            if st.traffic is not None:
                procs.append((st.traffic.pid, st.traffic.start_time))
            terminate(procs)
            left = [p for p in procs if is_alive(*p)]
            if left:
                raise TargetError(f"processes survived SIGKILL: {left}")
            for path in leftovers:
                path.unlink(missing_ok=True)
                if path.suffix == ".sock" and path.parent != self.runtime_dir:
                    with contextlib.suppress(OSError):
                        path.parent.rmdir()  # the private /tmp directory, once empty
            self.state_path.unlink(missing_ok=True)
            self.traffic_config_path.unlink(missing_ok=True)

