"""The HAProxy target: a fixed set of server "slots" of one backend, pointed at the instances of each version.

On-prem VMs and integration engines sit behind an HAProxy that the hospital already runs. primum does
not rewrite its configuration: the backend declares a fixed set of ``server`` lines (the slots, e.g.
``s1`` .. ``s4``, ``disabled`` with ``check``); primum starts an instance of a version on this host (the
declared command, like the local target), points a free slot at it (``set server B/S addr A port P``),
takes it out of maintenance (``state ready``), and reads readiness from HAProxy's own health checks
(``show servers state``). Weights are ``set weight B/S W`` spread over a version's slots, so a canary's
share is HAProxy's weighted round robin; blue-green is all weight moved at once; rolling replaces slots a
few at a time (``state drain``, stop, ``state maint``, start the new version in the freed slot).

HAProxy has no fencing tokens. The newest token applied is kept in the target's state file next to the
slot assignments and older ones are refused, which keeps out a stale controller *on this host*; across
hosts only the controller lease keeps a stale controller out, and every push is a whole desired state
(all weights of the service), so a late duplicate cannot leave a mix of two routes. See docs/TARGETS.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.haproxy.runtime_api import RuntimeApi, ServerState
from primum.adapters.targets.haproxy.settings import HaproxyTargetSettings
from primum.adapters.targets.local import processes
from primum.core.model.actions import (
    Action,
    EnsureInstances,
    RouteChange,
    RouteObservation,
    ServiceObservation,
    ServiceRuntimeSpec,
    SetRoute,
    VersionObservation,
    VersionRef,
)

MAX_WEIGHT = 256  # HAProxy's largest server weight


def server_weights(route: dict[str, int], slots_of: dict[str, list[str]]) -> dict[str, int]:
    """HAProxy weight per slot: a version's percentage spread over its slots (at least 1 if it has any share)."""
    out: dict[str, int] = {}
    for version, slots in slots_of.items():
        share = route.get(version, 0)
        for slot in slots:
            w = round(share * MAX_WEIGHT / 100 / len(slots)) if share > 0 else 0
            out[slot] = min(MAX_WEIGHT, max(1, w)) if share > 0 else 0
    return out


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class HaproxyTarget:
    """The ``Target`` of ``type: haproxy``; state (slot assignments, route, fence) in a JSON file per service."""

    name = "haproxy"

    def __init__(self, home: Path, estate: str):
        self.dir = home / "haproxy" / estate
        self._lock = threading.Lock()

    # ------------------------------------------------------------ helpers

    @staticmethod
    def settings(spec: ServiceRuntimeSpec) -> HaproxyTargetSettings:
        try:
            return HaproxyTargetSettings.model_validate(spec.target_settings)
        except ValueError as e:
            raise TargetError(f"{spec.key}: the service's target settings are not haproxy settings: {e}") from None

    def api(self, spec: ServiceRuntimeSpec) -> tuple[RuntimeApi, HaproxyTargetSettings]:
        s = self.settings(spec)
        path = s.sockets.get(spec.env)
        if path is None:
            raise TargetError(f"{spec.key}: target.sockets names no admin socket for environment {spec.env!r}; "
                              f"fix: add `{spec.env}: /path/to/admin.sock` under target.sockets")
        return RuntimeApi(path, f"services.{spec.service}.target.sockets.{spec.env}"), s

    def _state_path(self, spec: ServiceRuntimeSpec) -> Path:
        return self.dir / f"{spec.env}.{spec.service}.json"

    def _load(self, spec: ServiceRuntimeSpec) -> dict[str, Any]:
        path = self._state_path(spec)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return {"fence": 0, "seq": 0, "route": {}, "preview": None, "slots": {}}
        except (OSError, ValueError) as e:
            raise TargetError(f"{path}: the haproxy target's state cannot be read ({e}); fix: restore it or remove "
                              f"it after putting every slot of the backend in maintenance") from None
        return data

    def _save(self, spec: ServiceRuntimeSpec, state: dict[str, Any]) -> None:
        path = self._state_path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, path)

    @staticmethod
    def _slots_of(state: dict[str, Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for slot, rec in sorted(state["slots"].items()):
            out.setdefault(rec["version"]["digest"].removeprefix("sha256:")[:12], []).append(slot)
        return out

    def _push_weights(self, api: RuntimeApi, s: HaproxyTargetSettings, state: dict[str, Any]) -> None:
        """The whole desired state: every slot's weight (0 for a free one), so a repeat is harmless."""
        weights = server_weights(state["route"], self._slots_of(state))
        for slot in s.slots:
            api.set(f"set weight {s.backend}/{slot} {weights.get(slot, 0)}")

    # ------------------------------------------------------------ Target

    def prepare(self, specs: list[ServiceRuntimeSpec]) -> None:
        """Check that each service's backend and slots exist; HAProxy itself is the hospital's to run."""
        for spec in specs:
            api, s = self.api(spec)
            servers = api.servers(s.backend)
            missing = [slot for slot in s.slots if slot not in servers]
            if missing:
                raise TargetError(f"{spec.key}: backend {s.backend!r} has no server {', '.join(missing)}; fix: add "
                                  f"`server NAME 127.0.0.1:1 disabled check` lines or correct target.slots")

    def apply(self, action: Action, spec: ServiceRuntimeSpec, fence: int) -> None:
        api, s = self.api(spec)
        with self._lock:
            state = self._load(spec)
            if fence < state["fence"]:
                raise StaleFenceError(f"{spec.key}: fence {fence} is older than {state['fence']} (another "
                                      f"controller took the lease)")
            state["fence"] = fence
            try:
                if isinstance(action, EnsureInstances):
                    self._ensure(api, s, spec, state, action.version, action.count)
                elif isinstance(action, SetRoute):
                    state["route"] = dict(action.weights)
                    state["preview"] = action.preview
                    state["route_fence"] = fence
                self._push_weights(api, s, state)
            finally:
                self._save(spec, state)

    def _ensure(self, api: RuntimeApi, s: HaproxyTargetSettings, spec: ServiceRuntimeSpec,
                state: dict[str, Any], version: VersionRef, count: int) -> None:
        mine = self._slots_of(state).get(version.key, [])
        for slot in mine:  # a dead instance is replaced in its slot (level-triggered)
            rec = state["slots"][slot]
            if not processes.is_alive(rec["pid"], rec["start"]) and not rec.get("error"):
                rec["error"] = f"instance exited: {processes.log_tail(rec['log']) or 'no output'}"
        for slot in mine[count:]:
            self._stop(api, s, state, slot)
        if len(mine) >= count:
            return
        try:
            actual = _digest(version.artifact)
        except OSError as e:
            raise TargetError(f"{spec.key}: artifact {version.artifact} cannot be read: {e}") from None
        if actual != version.digest:
            raise TargetError(f"{spec.key}: digest mismatch for {version.artifact}: {actual} != {version.digest}")
        free = [slot for slot in s.slots if slot not in state["slots"]]
        need = count - len(mine)
        if len(free) < need:
            raise TargetError(f"{spec.key}: backend {s.backend} has {len(free)} free slot(s), {need} needed; fix: "
                              f"declare more target.slots (server lines)")
        for slot in free[:need]:
            self._start(api, s, spec, state, version, slot)

    def _start(self, api: RuntimeApi, s: HaproxyTargetSettings, spec: ServiceRuntimeSpec,
               state: dict[str, Any], version: VersionRef, slot: str) -> None:
        port = processes.free_port()
        argv = [tok.replace("{python}", sys.executable).replace("{artifact}", version.artifact)
                .replace("{port}", str(port)) for tok in s.command]
        log = self.dir / "logs" / f"{spec.env}.{spec.service}.{slot}.log"
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "PYTHONPATH")}
        pid, start = processes.spawn(argv, env, log, cwd=Path(version.artifact).parent)
        state["slots"][slot] = {"version": version.model_dump(), "pid": pid, "start": start, "port": port,
                                "log": str(log)}
        api.set(f"set weight {s.backend}/{slot} 0")  # no share until the route gives it one
        api.set_addr(s.backend, slot, s.host, port)
        api.set(f"set server {s.backend}/{slot} state ready")

    def _stop(self, api: RuntimeApi, s: HaproxyTargetSettings, state: dict[str, Any], slot: str) -> None:
        rec = state["slots"].pop(slot)
        api.set(f"set weight {s.backend}/{slot} 0")
        api.set(f"set server {s.backend}/{slot} state drain")
        if processes.is_alive(rec["pid"], rec["start"]):
            processes.terminate_async(rec["pid"], rec["start"], f"haproxy slot {slot}")
        api.set(f"set server {s.backend}/{slot} state maint")

    def servers(self, spec: ServiceRuntimeSpec) -> dict[str, ServerState]:
        """The backend's slots as HAProxy reports them (status, weight, sessions)."""
        api, s = self.api(spec)
        return api.servers(s.backend)

    def observe(self, spec: ServiceRuntimeSpec, metrics: bool = False) -> ServiceObservation:
        api, s = self.api(spec)
        with self._lock:
            state = self._load(spec)
            servers = api.servers(s.backend)
            changes: list[RouteChange] = []
            wanted = server_weights(state["route"], self._slots_of(state))
            drift = {slot for slot in s.slots if slot in servers and servers[slot].weight != wanted.get(slot, 0)}
            lost = [slot for slot, rec in sorted(state["slots"].items())  # HAProxy restarted: slots back to config
                    if slot in servers and (servers[slot].port != rec["port"] or servers[slot].maint)]
            if (drift or lost) and state["fence"]:  # push the whole desired state back
                for slot in lost:
                    api.set_addr(s.backend, slot, s.host, state["slots"][slot]["port"])
                    api.set(f"set server {s.backend}/{slot} state ready")
                self._push_weights(api, s, state)
                servers = api.servers(s.backend)
                state["seq"] = state.get("seq", 0) + 1
                changes.append(RouteChange(cause="restore", fence=state["fence"], seq=state["seq"],
                                           weights=dict(state["route"]), effective=dict(state["route"]),
                                           preview=state["preview"]))
                self._save(spec, state)
        versions: dict[str, VersionObservation] = {}
        for key, slots in self._slots_of(state).items():
            ref = VersionRef.model_validate(state["slots"][slots[0]]["version"])
            ready = starting = failed = 0
            error = None
            for slot in slots:
                rec = state["slots"][slot]
                srv = servers.get(slot)
                if not processes.is_alive(rec["pid"], rec["start"]):
                    failed += 1
                    error = rec.get("error") or f"instance in slot {slot} exited: {processes.log_tail(rec['log'])}"
                elif srv is not None and srv.up and srv.port == rec["port"]:
                    ready += 1
                else:
                    starting += 1
            versions[key] = VersionObservation(version=ref, desired=len(slots), ready=ready, starting=starting,
                                               failed=failed, error=error)
        route = RouteObservation(weights=dict(state["route"]), preview=state["preview"],
                                 fence=state.get("route_fence", 0))
        return ServiceObservation(env=spec.env, service=spec.service, versions=versions, route=route,
                                  metrics_error=("the haproxy target has no builtin metrics: declare a prometheus "
                                                 "or web source (HAProxy's exporter)") if metrics else None,
                                  route_changes=tuple(changes))

    def router_url(self, spec: ServiceRuntimeSpec) -> str | None:
        return self.settings(spec).frontends.get(spec.env)

    def router_admin(self, spec: ServiceRuntimeSpec) -> str | None:
        return None  # no builtin metrics: the builtin provider is an error, never a pass

    def close(self) -> None:
        pass
