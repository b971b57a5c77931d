"""The service instances of the local runtime: desired counts, restarts, health, observation.

The supervision is level-triggered: :meth:`InstanceSupervision.ensure_instances`
records a desired count and :meth:`InstanceSupervision.reconcile` (called by
``ensure_instances`` and by ``observe``) moves the world towards it --
restarting instances that died, starting missing ones and stopping surplus
ones. Nothing here blocks for long: stops are SIGTERM now, SIGKILL later from
a reaper thread (and again from the next reconcile if the controller died
meanwhile).

This is one half of :class:`~primum.adapters.targets.local.runtime.LocalRuntime`
(which adds the routers, the traffic generator, routes and fences), split off
because the instances' life cycle is a whole subject of its own; it is a base
class rather than a separate object so that the runtime stays one object with
one state lock.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import httpx

from primum.adapters.secrets import SecretUnavailable, resolve_env
from primum.adapters.targets.base import TargetError
from primum.adapters.targets.local.artifacts import ArtifactError, materialize
from primum.adapters.targets.local.processes import (
    TERM_GRACE_S,
    exit_text,
    free_port,
    is_alive,
    log_tail,
    signal_group,
    spawn,
    terminate_async,
)
from primum.adapters.targets.local.records import (
    READY,
    STARTING,
    STOPPING,
    UNHEALTHY,
    InstanceRecord,
    RuntimeFiles,
    RuntimeState,
    VersionRecord,
    safe_name,
)
from primum.core.model.actions import ServiceRuntimeSpec, VersionObservation, VersionRef

# The runtime's logger, not this module's: the instances' log lines kept the name
# they had before the runtime was split, so log configurations that select it still see them.
log = logging.getLogger("primum.adapters.targets.local.runtime")

MAX_CRASHES = 3  # deaths within CRASH_WINDOW_S before a version is marked failed
CRASH_WINDOW_S = 300.0
HEALTH_TIMEOUT_S = 1.0
# Consecutive failed probes before a ready instance leaves the router: one slow
# probe on a loaded machine must not empty the router (Kubernetes uses 3 too).
UNHEALTHY_AFTER = 3

# A hook the target passes in: called with the instances about to be stopped,
# *before* they are signalled, so the router can stop sending them traffic.
# If it raises, nothing is stopped.
BeforeStop = Callable[[list["InstanceRecord"]], None]


class InstanceSupervision(RuntimeFiles):
    """Starts, restarts, probes and stops the instances of the estate's services."""

    _http: httpx.Client  # set by LocalRuntime; used for health probes

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
                self._record_death(per.get(inst.version_key), inst, now, exit_text(inst.pid))
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

    def _surplus(self, st: RuntimeState, spec: ServiceRuntimeSpec) -> list[InstanceRecord]:
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
                    terminate_async(inst.pid, inst.start_time, f"{inst.version_key}-{inst.slot}")

    def _collect_stopping(self, st: RuntimeState, now: float) -> None:
        """Forget stopped instances; SIGKILL those past their grace (reaper thread lost)."""
        for inst in list(st.instances):
            if inst.status != STOPPING:
                continue
            if not is_alive(inst.pid, inst.start_time):
                st.instances.remove(inst)
            elif now - (inst.stop_requested_at or now) > TERM_GRACE_S + 1.0:
                signal_group(inst.pid, inst.start_time, signal.SIGKILL)

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

    def _start_slots(self, st: RuntimeState, spec: ServiceRuntimeSpec, vrec: VersionRecord, slots: list[int]) -> None:
        ref = vrec.version_ref()
        try:
            # verified while copied into the content-addressed cache: the copy is what runs
            ready = materialize(ref, self.home / "artifacts")
        except ArtifactError as exc:
            log.error("%s: refusing to start %s: %s", spec.key, ref.describe(), exc)
            vrec.failed, vrec.error = True, str(exc)
            return
        used = st.used_ports()
        for slot in slots:
            port = free_port(used)
            used.add(port)
            subst = {"{artifact}": str(ready.artifact), "{port}": str(port), "{python}": sys.executable}
            if ready.unpacked is not None:
                subst["{unpacked}"] = str(ready.unpacked)
            elif any("{unpacked}" in tok for tok in (*spec.command, *(v for v in spec.env_vars.values()
                                                                       if isinstance(v, str)))):
                vrec.failed = True
                vrec.error = (f"the command uses {{unpacked}} but {ref.artifact} is not an archive "
                              "(.tar.gz, .tgz, .tar, .zip)")
                return
            argv = [_substitute(tok, subst) for tok in spec.command]
            try:  # the secrets target.env refers to are read here, into the process's environment only
                settings = resolve_env({k: _substitute(v, subst) if isinstance(v, str) else v
                                        for k, v in spec.env_vars.items()})
            except SecretUnavailable as exc:
                vrec.failed, vrec.error = True, str(exc)
                log.error("%s: %s", spec.key, exc)
                return
            env = dict(os.environ)
            env.update(settings)
            env.update(
                PRIMUM_SERVICE=spec.service,
                PRIMUM_ENV=spec.env,
                PRIMUM_VERSION=ref.label or ref.key,
            )
            log_path = self.logs_dir / (
                f"{safe_name(self.estate)}.{safe_name(spec.env)}.{safe_name(spec.service)}.{vrec.key}.{slot}.log"
            )
            try:
                pid, start = spawn(argv, env, log_path, self.home)
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
                terminate_async(inst.pid, inst.start_time, f"{inst.version_key}-{inst.slot}")

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


def _substitute(token: str, subst: dict[str, str]) -> str:
    for k, v in subst.items():
        token = token.replace(k, v)
    return token
