"""The ``local`` target: services as local processes behind a weighted router.

This adapts :class:`~primum.adapters.targets.local.runtime.LocalRuntime` (processes)
and the router admin API (traffic) to the :class:`~primum.adapters.targets.base.Target`
protocol. The invariants it keeps:

* The router only ever knows *ready* instances. Instances that are about to be
  stopped are removed from the router first (drain), and the router is
  re-synchronised whenever the set of ready instances changes -- on ``apply``
  and on every ``observe``.
* Never route to nothing silently: a route giving weight (or the preview) to
  a version without a ready instance is refused, and so is stopping the last
  ready instances of a version that still has weight.
* Fencing: the caller's token is checked against the highest token this
  machine has seen (for process actions) and passed to the router (for
  routes); either rejecting it raises :class:`StaleFenceError`.
* The last route pushed is remembered in the runtime state file, so that a
  restarted router gets it back and a restarted controller can observe it.
* The router is steered only through its admin socket, with pushes sealed by
  the runtime's fence key and numbered by a persisted ``seq`` (``fencing.py``).
  Every push, and every failover the router made on its own, is reported once
  as a :class:`~primum.core.model.actions.RouteChange` in the next observation,
  which the controller records as the rollout's evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from primum.adapters.targets.base import TargetError
from primum.adapters.targets.local.records import InstanceRecord, RouteRecord, RouterRecord
from primum.adapters.targets.local.router_client import RouterClient
from primum.adapters.targets.local.runtime import LocalRuntime
from primum.core.model.actions import (
    Action,
    EnsureInstances,
    RouteChange,
    RouteObservation,
    ServiceObservation,
    ServiceRuntimeSpec,
    SetRoute,
)

log = logging.getLogger(__name__)


class LocalTarget:
    """Target running an estate's services as local processes (see module docstring)."""

    name = "local"

    def __init__(self, home: Path, estate: str, runtime: LocalRuntime | None = None) -> None:
        self.runtime = runtime if runtime is not None else LocalRuntime(home, estate)
        self._clients: dict[tuple[str, int, int], RouterClient] = {}
        self._changes: dict[str, list[RouteChange]] = {}  # by spec key, until observed
        self._failed_over: dict[str, tuple[str, ...]] = {}  # the router's last reported failover

    # ------------------------------------------------------------ protocol

    def prepare(self, specs: list[ServiceRuntimeSpec]) -> None:
        """Start or adopt one router per service, restore its route, run traffic.

        Routers start concurrently: each spends most of its start-up importing
        aiohttp, and an estate has a router per service and environment.
        """
        if specs:
            with ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool:
                list(pool.map(self.runtime.ensure_router, specs))
        for spec in specs:
            self._sync_router(spec)
        self.runtime.ensure_traffic(specs)

    def apply(self, action: Action, spec: ServiceRuntimeSpec, fence: int) -> None:
        """Carry out one idempotent action; returns without waiting for readiness.

        ``EnsureInstances`` records the desired count first (level-triggered),
        then starts/stops. If stopping is refused because the doomed instances
        are the last ready ones of a version that still has weight, this
        raises, but the lower count stays recorded: the instances are stopped
        by a later ``apply`` or ``observe`` as soon as the route no longer
        needs them, whatever order the engine issues the two actions in.
        """
        if (action.env, action.service) != (spec.env, spec.service):
            raise TargetError(f"action for {action.env}/{action.service} applied with the spec of {spec.key}")
        self.runtime.check_fence(spec, fence)
        self.runtime.ensure_router(spec)
        if isinstance(action, EnsureInstances):

            def drain(doomed: list[InstanceRecord]) -> None:
                self._sync_router(spec, fence=fence, exclude=doomed)

            self.runtime.ensure_instances(spec, action.version, action.count, before_stop=drain)
            self._sync_router(spec, fence=fence)
        elif isinstance(action, SetRoute):
            self._set_route(spec, action, fence)
        else:  # pragma: no cover - the Action union is closed
            raise TargetError(f"local target cannot apply {type(action).__name__}")

    def observe(self, spec: ServiceRuntimeSpec, metrics: bool = False) -> ServiceObservation:
        """One supervision tick plus a report of instances, route and metrics.

        Dead instances are restarted and health is probed here (the runtime is
        level-triggered), then the router is re-synchronised with the ready
        set. Router problems never raise: they show as ``route=None`` and a
        ``metrics_error``, which the engine treats as "no data", never a pass.
        """
        router = self.runtime.router(spec)

        def drain(doomed: list[InstanceRecord]) -> None:
            if router is None:
                raise TargetError(f"router for {spec.key} is not running; cannot drain")
            self._sync_router(spec, exclude=doomed)

        versions = self.runtime.observe(spec, before_stop=drain)
        route: RouteObservation | None = None
        snapshot = None
        metrics_error: str | None = None
        if router is None:
            metrics_error = f"router for {spec.key} is not running"
        else:
            client = self._client(router)
            try:
                self._sync_router(spec)
            except TargetError as exc:
                log.warning("%s: router sync failed: %s", spec.key, exc)
            try:
                config = client.get_config()
                route = _route_observation(config)
                self._note_failover(spec, config)
            except TargetError as exc:
                log.warning("%s: %s", spec.key, exc)
                metrics_error = str(exc)
            if metrics and route is not None:
                try:
                    snapshot = client.metrics()
                except TargetError as exc:
                    metrics_error = str(exc)
        return ServiceObservation(
            env=spec.env,
            service=spec.service,
            versions=versions,
            route=route,
            metrics=snapshot,
            metrics_error=metrics_error if metrics else None,
            route_changes=tuple(self._changes.pop(spec.key, [])),
        )

    def close(self) -> None:
        """Close HTTP clients. The data plane keeps running."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self.runtime.close()

    def router_url(self, spec: ServiceRuntimeSpec) -> str:
        """Base URL (``http://127.0.0.1:PORT``) of the service's router's data port (probes go there).

        Raises :class:`TargetError` when that router is not running.
        """
        router = self.runtime.router(spec)
        if router is None:
            raise TargetError(f"router for {spec.key} is not running")
        return router.url

    def router_admin(self, spec: ServiceRuntimeSpec) -> str:
        """The admin socket (``unix:PATH``) of the service's router: the builtin metric provider reads
        the per-request records there. Raises :class:`TargetError` when that router is not running."""
        router = self.runtime.router(spec)
        if router is None:
            raise TargetError(f"router for {spec.key} is not running")
        return f"unix:{router.admin_socket}"

    # ------------------------------------------------------------- helpers

    def _client(self, router: RouterRecord) -> RouterClient:
        ident = (router.admin_socket, *router.ident)
        client = self._clients.get(ident)
        if client is None:
            client = self._clients[ident] = self.runtime.admin_client(router)
        return client

    def _router_client(self, spec: ServiceRuntimeSpec) -> RouterClient:
        router = self.runtime.router(spec)
        if router is None:
            raise TargetError(f"router for {spec.key} is not running")
        return self._client(router)

    def _push(self, spec: ServiceRuntimeSpec, client: RouterClient, config: dict[str, Any], router_seq: int,
              cause: str) -> None:
        """Push ``config`` with the next seq (recorded first) and keep the change for the evidence."""
        seq = self.runtime.next_seq(spec, router_seq)
        applied = client.put_config(config, seq)  # 409 stale fence -> StaleFenceError
        self._changes.setdefault(spec.key, []).append(_route_change(cause, config, applied, seq))
        self._failed_over[spec.key] = tuple(applied.get("failed_over") or ())

    def _note_failover(self, spec: ServiceRuntimeSpec, config: dict[str, Any]) -> None:
        """A failover (or recovery) the router made on its own since we last looked is a change too."""
        now = tuple(config.get("failed_over") or ())
        if now != self._failed_over.get(spec.key, ()):
            self._failed_over[spec.key] = now
            seq = int(config.get("seq") or 0)
            self._changes.setdefault(spec.key, []).append(_route_change("failover", config, config, seq))

    def _set_route(self, spec: ServiceRuntimeSpec, action: SetRoute, fence: int) -> None:
        weights = dict(action.weights)
        bad = {k: w for k, w in weights.items() if w < 0 or w > 100}
        if bad:
            raise TargetError(f"{spec.key}: weights out of 0..100: {bad}")
        total = sum(weights.values())
        if total not in (0, 100):
            raise TargetError(f"{spec.key}: weights must sum to 100 or all be 0, got {total}")
        client = self._router_client(spec)
        with self.runtime.route_lock():
            known = self.runtime.version_records(spec)
            ready = self.runtime.ready_urls(spec)
            wanted = {k for k, w in weights.items() if w > 0}
            if action.preview is not None:
                wanted.add(action.preview)
            for key in sorted(wanted):
                if key not in known:
                    raise TargetError(f"{spec.key}: cannot route to unknown version {key}")
                if not ready.get(key):
                    what = "the preview" if key == action.preview else f"weight {weights[key]}"
                    raise TargetError(
                        f"{spec.key}: version {known[key].label or key} ({key}) would get {what}"
                        " but has no ready instance"
                    )
            labels = {k: v.label for k, v in known.items()}
            config = _build_config(spec, weights, action.preview, fence, ready, labels)
            current = client.get_config()
            self._push(spec, client, config, int(current.get("seq") or 0), "route")
            self.runtime.set_route(spec, RouteRecord(weights, action.preview, fence))
            log.info("%s: route %s preview %s (fence %s)", spec.key, weights, action.preview, fence)

    def _sync_router(
        self,
        spec: ServiceRuntimeSpec,
        fence: int | None = None,
        exclude: Iterable[InstanceRecord] = (),
    ) -> None:
        """Make the router's instance lists equal the ready instances (minus ``exclude``).

        Weights and preview are kept as the router has them -- it is the
        authority on the route, since a push can succeed just before a crash
        prevents it from being recorded -- unless the router has restarted
        (lower fence than recorded, or empty), in which case the recorded
        route is restored. Pushes nothing if nothing changed.
        """
        doomed = [i.ident for i in exclude]
        client = self._router_client(spec)
        with self.runtime.route_lock():
            current = client.get_config()
            stored = self.runtime.get_route(spec)
            cur_fence = int(current.get("fence") or 0)
            cur_versions: dict[str, Any] = current.get("versions") or {}
            restore = stored is not None and (cur_fence < stored.fence or not cur_versions)
            if stored is not None and restore:
                weights, preview, base_fence = dict(stored.weights), stored.preview, stored.fence
            else:
                weights = {k: int(v.get("weight", 0)) for k, v in cur_versions.items()}
                preview, base_fence = current.get("preview"), cur_fence
            ready_now = self.runtime.ready_urls(spec)
            ready = self.runtime.ready_urls(spec, exclude=doomed) if doomed else ready_now
            if doomed:
                routed = {k for k, w in weights.items() if w > 0} | ({preview} if preview else set())
                for key in sorted(routed):
                    if ready_now.get(key) and not ready.get(key):
                        share = "the preview" if key == preview else f"weight {weights[key]}"
                        raise TargetError(
                            f"{spec.key}: refusing to stop the last ready instances of {key}:"
                            f" it still has {share}; route traffic away first"
                        )
            labels = {k: str(v.get("label", "")) for k, v in cur_versions.items()}
            labels.update({k: v.label for k, v in self.runtime.version_records(spec).items()})
            push_fence = max(base_fence, fence if fence is not None else 0)
            config = _build_config(spec, weights, preview, push_fence, ready, labels)
            if _comparable(config) == _comparable(current):
                return
            self._push(spec, client, config, int(current.get("seq") or 0), "restore" if restore else "instances")


def _build_config(
    spec: ServiceRuntimeSpec,
    weights: dict[str, int],
    preview: str | None,
    fence: int,
    ready: dict[str, list[str]],
    labels: dict[str, str],
) -> dict[str, Any]:
    """The router config: every version with weight, the preview or a ready instance."""
    keys = {k for k, w in weights.items() if w > 0} | set(ready)
    if preview is not None:
        keys.add(preview)
    return {
        "fence": fence,
        "versions": {
            key: {
                "label": labels.get(key, ""),
                "weight": int(weights.get(key, 0)),
                "instances": list(ready.get(key, [])),
            }
            for key in sorted(keys)
        },
        "preview": preview,
        "affinity": spec.affinity,
        "tenant_header": spec.tenant_header,
        "tenants": list(spec.tenants),
        "health_path": spec.health_path,
    }


def _route_change(cause: str, config: dict[str, Any], applied: dict[str, Any], seq: int) -> RouteChange:
    versions: dict[str, Any] = config.get("versions") or {}
    return RouteChange(
        cause=cause,
        fence=int(config.get("fence") or 0),
        seq=seq,
        weights={k: int(v.get("weight", 0)) for k, v in versions.items()},
        effective={k: int(w) for k, w in (applied.get("effective") or {}).items()},
        preview=config.get("preview"),
        instances={k: len(v.get("instances") or []) for k, v in versions.items()},
        failed_over=tuple(applied.get("failed_over") or ()),
    )


def _comparable(config: dict[str, Any]) -> tuple[Any, ...]:
    versions = config.get("versions") or {}
    return (
        int(config.get("fence") or 0),
        config.get("preview"),
        config.get("affinity"),
        config.get("tenant_header"),
        tuple(config.get("tenants") or ()),
        config.get("health_path"),
        tuple(
            sorted(
                (
                    k,
                    str(v.get("label", "")),
                    int(v.get("weight", 0)),
                    tuple(u.rstrip("/") for u in v.get("instances", [])),
                )
                for k, v in versions.items()
            )
        ),
    )


def _route_observation(config: dict[str, Any]) -> RouteObservation:
    versions = config.get("versions")
    if not isinstance(versions, dict):
        raise TargetError(f"router config has no versions object: {config!r}")
    return RouteObservation(
        weights={k: int(v.get("weight", 0)) for k, v in versions.items()},
        preview=config.get("preview"),
        fence=int(config.get("fence") or 0),
    )
