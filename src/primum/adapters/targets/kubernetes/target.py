"""The ``kubernetes`` target: each version a Deployment, traffic by Service selector or Gateway API.

How each engine action lands on the cluster (``objects.py`` names the objects):

* ``EnsureInstances(version, n)``: create-or-patch the version's Deployment to ``n`` replicas (the engine's
  count is kept in an annotation; with ``traffic: service`` a lightly weighted version may run fewer, see
  ``objects.serving_replicas``); ``n = 0`` deletes it, refused while the route still sends it traffic.
* ``SetRoute(weights, preview)``: ``traffic: service`` points the Service's selector at the one version
  that takes all traffic (blue-green's switch, rolling's and canary's last step) or, for a split, at every
  version of the service and trims replicas to the weights; the preview is a second Service.
  ``traffic: gateway-api`` writes the HTTPRoute's ``backendRefs`` weights, exactly.

Readiness is the Deployment's status (``readyReplicas``, ``observedGeneration``, conditions): on a cluster
the Deployment controller and kubelets write it; the emulator the tests use keeps objects but runs no
controllers, so the tests write that status the way a kubelet would.

Fencing: each write's token is an annotation of the object written (Deployment, Service, HTTPRoute); an
action carrying a token older than any of the service's objects has is refused with
:class:`StaleFenceError`. The check and the write are two requests, not one transaction: the controller's
lease is what keeps two writers apart, the annotation catches a controller that outlived its lease.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.kubernetes import objects as o
from primum.adapters.targets.kubernetes.api import Cluster, connect
from primum.adapters.targets.kubernetes.settings import KubernetesTargetSettings
from primum.core.model.actions import (
    Action,
    EnsureInstances,
    RouteChange,
    RouteObservation,
    ServiceObservation,
    ServiceRuntimeSpec,
    SetRoute,
    VersionObservation,
)


class KubernetesTarget:
    """Drives an estate's services on Kubernetes clusters (see the module docstring)."""

    name = "kubernetes"

    def __init__(self, home: Path | None = None, estate: str = "") -> None:
        self._clusters: dict[tuple[str | None, str | None, float], Cluster] = {}
        self._changes: dict[str, list[RouteChange]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ protocol

    def prepare(self, specs: list[ServiceRuntimeSpec]) -> None:
        """Nothing to start: the cluster runs the data plane. Checks the settings and that the API answers."""
        for spec in specs:
            settings = self._settings(spec)
            self._cluster(settings).list_deployments(settings.namespace(spec.env), o.selector(spec))

    def apply(self, action: Action, spec: ServiceRuntimeSpec, fence: int) -> None:
        """Carry out one action (idempotent, returns without waiting for pods); an older fence is refused."""
        if (action.env, action.service) != (spec.env, spec.service):
            raise TargetError(f"action for {action.env}/{action.service} applied with the spec of {spec.key}")
        settings = self._settings(spec)
        cluster = self._cluster(settings)
        ns = settings.namespace(spec.env)
        route_obj = self._route_object(cluster, spec, settings)
        deployments = self._deployments(cluster, spec, settings)
        seen = max([o.fence_of(route_obj), *(o.fence_of(d) for d in deployments.values())])
        if fence < seen:
            raise StaleFenceError(f"{spec.key}: fence {fence} is older than {seen} (recorded on the service's "
                                  "objects in the cluster)")
        if isinstance(action, EnsureInstances):
            self._ensure(cluster, spec, settings, ns, action, deployments, route_obj, fence)
        elif isinstance(action, SetRoute):
            self._route(cluster, spec, settings, ns, action, deployments, route_obj, fence)
        else:  # pragma: no cover - the Action union is closed
            raise TargetError(f"kubernetes target cannot apply {type(action).__name__}")

    def observe(self, spec: ServiceRuntimeSpec, metrics: bool = False) -> ServiceObservation:
        """Versions from the Deployments' status, the route from the Service or HTTPRoute as the cluster has it.

        An API that does not answer raises :class:`TargetError` (the controller records it; no step
        completes on it). There are no router metrics: analysis needs a metric source (e.g. Prometheus)."""
        settings = self._settings(spec)
        cluster = self._cluster(settings)
        deployments = self._deployments(cluster, spec, settings)
        versions: dict[str, VersionObservation] = {}
        for key, obj in deployments.items():
            ref = o.version_of(obj)
            if ref is not None:
                versions[key] = o.observe_deployment(obj, ref)
        route = self._read_route(cluster, spec, settings)
        with self._lock:
            changes = tuple(self._changes.pop(spec.key, []))
        return ServiceObservation(
            env=spec.env, service=spec.service, versions=versions, route=route,
            metrics_error="the kubernetes target has no router metrics: give the service a metric source "
                          "(e.g. prometheus)" if metrics else None,
            route_changes=changes)

    def router_url(self, spec: ServiceRuntimeSpec) -> str | None:
        return None  # the Service is inside the cluster: probes need an address the estate gives

    def router_admin(self, spec: ServiceRuntimeSpec) -> str | None:
        return None  # no builtin router: builtin metrics are an error, never a pass

    def close(self) -> None:
        for cluster in self._clusters.values():
            cluster.close()
        self._clusters.clear()

    # ---------------------------------------------------------- settings

    @staticmethod
    def _settings(spec: ServiceRuntimeSpec) -> KubernetesTargetSettings:
        try:
            return KubernetesTargetSettings.model_validate(spec.target_settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise TargetError(f"{spec.key}: the kubernetes target settings are invalid at target.{where}: "
                              f"{first.get('msg')}; fix the estate and run primum validate") from exc

    def _cluster(self, settings: KubernetesTargetSettings) -> Cluster:
        key = (settings.kubeconfig, settings.context, settings.timeout)
        with self._lock:
            cluster = self._clusters.get(key)
            if cluster is None:
                cluster = self._clusters[key] = Cluster(connect(settings.kubeconfig, settings.context),
                                                        settings.timeout)
            return cluster

    # ------------------------------------------------------------ reading

    @staticmethod
    def _deployments(cluster: Cluster, spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings
                     ) -> dict[str, dict[str, Any]]:
        found = cluster.list_deployments(settings.namespace(spec.env), o.selector(spec))
        out: dict[str, dict[str, Any]] = {}
        for obj in found:
            key = ((obj.get("metadata") or {}).get("labels") or {}).get(o.VERSION)
            if isinstance(key, str) and key:
                out[key] = obj
        return out

    @staticmethod
    def _route_object(cluster: Cluster, spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings
                      ) -> dict[str, Any] | None:
        ns = settings.namespace(spec.env)
        if settings.traffic == "gateway-api":
            return cluster.get_route(ns, spec.service)
        return cluster.get_service(ns, spec.service)

    def _read_route(self, cluster: Cluster, spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings
                    ) -> RouteObservation:
        ns = settings.namespace(spec.env)
        obj = self._route_object(cluster, spec, settings)
        if obj is None:
            return RouteObservation()  # nothing routed yet
        fence = o.fence_of(obj)
        if settings.traffic == "gateway-api":
            return _gateway_route(spec, obj, fence)
        pick = (obj.get("spec") or {}).get("selector") or {}
        one = pick.get(o.VERSION)
        # the selector is the truth: one version takes all (or none, if it names no Deployment)
        weights = ({one: 100} if one != _NOBODY else {}) if one else _annotated_weights(obj)
        preview_svc = cluster.get_service(ns, o.preview_service_name(spec.service))
        preview = (((preview_svc or {}).get("spec") or {}).get("selector") or {}).get(o.VERSION) or None
        return RouteObservation(weights=weights, preview=preview, fence=fence)

    # ------------------------------------------------------------ writing

    def _ensure(self, cluster: Cluster, spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings, ns: str,
                action: EnsureInstances, deployments: dict[str, dict[str, Any]], route_obj: dict[str, Any] | None,
                fence: int) -> None:
        key = action.version.key
        weights, preview = _current_route(settings, route_obj)
        if action.count == 0:
            if key not in deployments:
                return
            if weights.get(key, 0) > 0 or preview == key:
                share = "the preview" if preview == key else f"weight {weights[key]}"
                raise TargetError(f"{spec.key}: refusing to delete the Deployment of {action.version.describe()}: "
                                  f"it still has {share}; route traffic away first")
            cluster.delete_deployment(ns, o.deployment_name(spec.service, key))
            if settings.traffic == "gateway-api":
                cluster.delete_service(ns, o.version_service_name(spec.service, key))
            return
        existing = deployments.get(key)
        order = o.order_of(existing) if existing is not None else 1 + max(
            (o.order_of(d) for d in deployments.values()), default=0)
        instances = {k: o.instances_of(d) for k, d in deployments.items()}
        instances[key] = action.count
        replicas = action.count
        if settings.traffic == "service":
            newest = key if existing is None else o.newest(deployments)
            replicas = o.serving_replicas(instances, weights, newest).get(key, action.count)
        cluster.apply_deployment(o.deployment(spec, settings, action.version, action.count, replicas, fence, order))
        if settings.traffic == "gateway-api":
            cluster.apply_service(o.service(spec, settings, o.version_service_name(spec.service, key),
                                            o.selector(spec, key), {o.A_FENCE: str(fence)}))

    def _route(self, cluster: Cluster, spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings, ns: str,
               action: SetRoute, deployments: dict[str, dict[str, Any]], route_obj: dict[str, Any] | None,
               fence: int) -> None:
        weights = {k: int(w) for k, w in action.weights.items()}
        bad = {k: w for k, w in weights.items() if w < 0 or w > 100}
        if bad:
            raise TargetError(f"{spec.key}: weights out of 0..100: {bad}")
        if sum(weights.values()) not in (0, 100):
            raise TargetError(f"{spec.key}: weights must sum to 100 or all be 0, got {sum(weights.values())}")
        wanted = {k for k, w in weights.items() if w > 0} | ({action.preview} if action.preview else set())
        ready: dict[str, int] = {}
        for key in sorted(wanted):
            obj = deployments.get(key)
            ref = o.version_of(obj) if obj is not None else None
            if obj is None or ref is None:
                raise TargetError(f"{spec.key}: cannot route to version {key}: it has no Deployment in {ns}")
            seen = o.observe_deployment(obj, ref)
            if seen.ready == 0:
                what = "the preview" if key == action.preview else f"weight {weights[key]}"
                raise TargetError(f"{spec.key}: version {ref.describe()} would get {what} but has no ready pod")
            ready[key] = seen.ready
        if route_obj is not None and _current_route(settings, route_obj) == (weights, action.preview) \
                and o.fence_of(route_obj) == fence and self._in_place(cluster, spec, settings, weights,
                                                                     action.preview):
            # the engine re-asserts its route every tick: write (and record) only a change; a selector or
            # rule someone edited behind primum's back no longer matches, and is written again
            if settings.traffic == "service":
                self._trim(cluster, spec, settings, weights, deployments, fence)
            return
        seq = _seq_of(route_obj) + 1
        notes = {**o.route_annotations(weights, action.preview, fence), _A_SEQ: str(seq)}
        effective = {k: w for k, w in weights.items() if w > 0}
        if settings.traffic == "gateway-api":
            cluster.apply_route(o.http_route(spec, settings, weights, action.preview, notes))
        else:
            effective = self._service_route(cluster, spec, settings, ns, weights, action.preview, deployments,
                                            notes, fence)
        change = RouteChange(cause="route", fence=fence, seq=seq, weights=weights, effective=effective,
                             preview=action.preview, instances=ready)
        with self._lock:
            self._changes.setdefault(spec.key, []).append(change)

    def _service_route(self, cluster: Cluster, spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings,
                       ns: str, weights: dict[str, int], preview: str | None,
                       deployments: dict[str, dict[str, Any]], notes: dict[str, str], fence: int) -> dict[str, int]:
        """Point the Service at the routed versions and trim replicas to the weights; the effective shares."""
        routed = sorted(k for k, w in weights.items() if w > 0)
        if len(routed) >= 2:
            idle = sorted(k for k in deployments if k not in routed and int(
                (deployments[k].get("spec") or {}).get("replicas") or 0) > 0)
            if idle:
                raise TargetError(f"{spec.key}: cannot split traffic by replicas while {', '.join(idle)} runs with "
                                  "no weight (a Service selector would send it requests too); stop it first")
        replicas = self._trim(cluster, spec, settings, weights, deployments, fence)
        pick: dict[str, Any] = o.selector(spec)
        pick[o.VERSION] = routed[0] if len(routed) == 1 else (None if routed else _NOBODY)
        cluster.apply_service(o.service(spec, settings, spec.service, pick, notes))
        preview_name = o.preview_service_name(spec.service)
        if preview is not None:
            cluster.apply_service(o.service(spec, settings, preview_name, o.selector(spec, preview),
                                            {o.A_FENCE: str(fence)}))
        elif cluster.get_service(ns, preview_name) is not None:
            cluster.delete_service(ns, preview_name)
        return o.effective_weights({k: replicas.get(k, 0) for k in routed})


    def _in_place(self, cluster: Cluster, spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings,
                  weights: dict[str, int], preview: str | None) -> bool:
        """Whether the cluster routes as ``weights`` and ``preview`` say (the selector or rules, as read)."""
        seen = self._read_route(cluster, spec, settings)
        def routed(given: dict[str, int]) -> dict[str, int]:
            return {k: w for k, w in given.items() if w > 0}

        return routed(seen.weights) == routed(weights) and seen.preview == preview

    @staticmethod
    def _trim(cluster: Cluster, spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings,
              weights: dict[str, int], deployments: dict[str, dict[str, Any]], fence: int) -> dict[str, int]:
        """Scale each version to its share of the weights (``objects.serving_replicas``); the replicas."""
        instances = {k: o.instances_of(d) for k, d in deployments.items()}
        replicas = o.serving_replicas(instances, weights, o.newest(deployments))
        for key, count in sorted(replicas.items()):
            obj = deployments[key]
            ref = o.version_of(obj)
            if ref is not None and int((obj.get("spec") or {}).get("replicas") or 0) != count:
                cluster.apply_deployment(o.deployment(spec, settings, ref, instances[key], count, fence,
                                                      o.order_of(obj)))
        return replicas


_NOBODY = "none"  # a selector value no Deployment carries: the Service routes to nothing
_A_SEQ = "primum.dev/seq"


def _seq_of(obj: dict[str, Any] | None) -> int:
    notes = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    try:
        return int(notes.get(_A_SEQ) or 0)
    except ValueError:
        return 0


def _annotated_weights(obj: dict[str, Any]) -> dict[str, int]:
    notes = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        raw = json.loads(notes.get(o.A_WEIGHTS) or "{}")
        return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    except (ValueError, TypeError):
        return {}


def _current_route(settings: KubernetesTargetSettings, obj: dict[str, Any] | None) -> tuple[dict[str, int], str | None]:
    """The weights and preview primum last wrote on the route object (empty if none yet)."""
    if obj is None:
        return {}, None
    notes = (obj.get("metadata") or {}).get("annotations") or {}
    return _annotated_weights(obj), (notes.get(o.A_PREVIEW) or None)


def _gateway_route(spec: ServiceRuntimeSpec, obj: dict[str, Any], fence: int) -> RouteObservation:
    """Weights and preview as the HTTPRoute's rules say (backend Service names back to version keys)."""
    prefix = o.deployment_name(spec.service, "")
    weights: dict[str, int] = {}
    preview = None
    for rule in (obj.get("spec") or {}).get("rules") or []:
        refs = rule.get("backendRefs") or []
        keys = [(str(r.get("name", "")).removeprefix(prefix), int(r.get("weight", 1))) for r in refs]
        if rule.get("matches"):
            preview = keys[0][0] if keys else None
        else:
            for key, weight in keys:
                weights[key] = weights.get(key, 0) + weight
    return RouteObservation(weights=weights, preview=preview, fence=fence)
