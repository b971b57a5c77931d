"""The Kubernetes objects primum writes for a service, and how it reads them back. No I/O here.

Per service and environment (one namespace):

* one ``Deployment`` per version, named ``SERVICE-KEY`` (``KEY`` is the digest's first 12 hex digits), its
  pods labelled with the version, its container image pinned by digest (``image@sha256:...``);
* ``traffic: service``: one ``Service`` ``SERVICE`` whose selector is the traffic switch, plus a
  ``SERVICE-preview`` Service while blue-green's preview is on;
* ``traffic: gateway-api``: one ``Service`` ``SERVICE-KEY`` per version and one ``HTTPRoute`` ``SERVICE``
  with weighted ``backendRefs`` (and a first rule sending the preview header to the preview version).

What primum decided (the engine's instance count, the route's weights, the fencing token) is kept in
``primum.dev/*`` annotations on these objects, so a restarted controller reads it back from the cluster.
"""

from __future__ import annotations

import json
from typing import Any

from primum.adapters.targets.kubernetes.settings import KubernetesTargetSettings
from primum.core.model.actions import ServiceRuntimeSpec, VersionObservation, VersionRef

NAME = "app.kubernetes.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by"
VERSION = "primum.dev/version"
ESTATE = "primum.dev/estate"
A_DIGEST = "primum.dev/digest"
A_ARTIFACT = "primum.dev/artifact"
A_LABEL = "primum.dev/version-label"
A_INSTANCES = "primum.dev/instances"  # the engine's count; replicas may be fewer (replica-ratio canary)
A_WEIGHTS = "primum.dev/weights"
A_PREVIEW = "primum.dev/preview"
A_FENCE = "primum.dev/fence"
A_ORDER = "primum.dev/order"  # 1 for the service's first Deployment, then one more for each new version

GATEWAY_GROUP, GATEWAY_VERSION, HTTPROUTES = "gateway.networking.k8s.io", "v1", "httproutes"


def _base(service: str, limit: int) -> str:
    return service[:limit].rstrip("-")


def deployment_name(service: str, key: str) -> str:
    return f"{_base(service, 50)}-{key}"


def version_service_name(service: str, key: str) -> str:
    return deployment_name(service, key)


def preview_service_name(service: str) -> str:
    return f"{_base(service, 54)}-preview"


def selector(spec: ServiceRuntimeSpec, key: str | None = None) -> dict[str, str]:
    """The labels that pick the service's pods (of one version, if ``key``)."""
    labels = {NAME: spec.service, MANAGED_BY: "primum"}
    if key is not None:
        labels[VERSION] = key
    return labels


def label_selector(spec: ServiceRuntimeSpec) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(spec).items())


def _labels(spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings, key: str | None = None) -> dict[str, str]:
    return {**settings.labels, ESTATE: spec.estate, **selector(spec, key)}


def deployment(spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings, version: VersionRef, instances: int,
               replicas: int, fence: int, order: int) -> dict[str, Any]:
    """The Deployment of ``version``: ``replicas`` pods of the image pinned by the version's digest."""
    labels = _labels(spec, settings, version.key)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(spec.service, version.key),
            "namespace": settings.namespace(spec.env),
            "labels": labels,
            "annotations": {A_DIGEST: version.digest, A_ARTIFACT: version.artifact, A_LABEL: version.label,
                            A_INSTANCES: str(instances), A_FENCE: str(fence), A_ORDER: str(order)},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(spec, version.key)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": spec.service[:63],
                    "image": f"{settings.image}@{version.digest}",
                    "ports": [{"containerPort": settings.container_port}],
                    "readinessProbe": {"httpGet": {"path": settings.health_path, "port": settings.container_port}},
                }]},
            },
        },
    }


def service(spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings, name: str, pick: dict[str, str],
            annotations: dict[str, str]) -> dict[str, Any]:
    """A Service ``name`` selecting the pods labelled ``pick``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": settings.namespace(spec.env), "labels": _labels(spec, settings),
                     "annotations": annotations},
        "spec": {"selector": pick,
                 "ports": [{"name": "http", "port": settings.service_port, "targetPort": settings.container_port}]},
    }


def http_route(spec: ServiceRuntimeSpec, settings: KubernetesTargetSettings, weights: dict[str, int],
               preview: str | None, annotations: dict[str, str]) -> dict[str, Any]:
    """The HTTPRoute splitting the service's requests by exact weights (Gateway API)."""
    assert settings.gateway is not None  # the settings refuse gateway-api without one
    parent: dict[str, Any] = {"name": settings.gateway.name}
    if settings.gateway.namespace:
        parent["namespace"] = settings.gateway.namespace

    def ref(key: str, weight: int) -> dict[str, Any]:
        return {"name": version_service_name(spec.service, key), "port": settings.service_port, "weight": weight}

    rules: list[dict[str, Any]] = []
    if preview is not None:
        rules.append({"matches": [{"headers": [{"name": settings.preview_header, "value": "1"}]}],
                      "backendRefs": [ref(preview, 1)]})
    rules.append({"backendRefs": [ref(k, w) for k, w in sorted(weights.items()) if w > 0]})
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": spec.service, "namespace": settings.namespace(spec.env),
                     "labels": _labels(spec, settings), "annotations": annotations},
        "spec": {"parentRefs": [parent], "rules": rules},
    }


def route_annotations(weights: dict[str, int], preview: str | None, fence: int) -> dict[str, str]:
    return {A_WEIGHTS: json.dumps(dict(sorted(weights.items()))), A_PREVIEW: preview or "", A_FENCE: str(fence)}


def serving_replicas(instances: dict[str, int], weights: dict[str, int], newest: str | None) -> dict[str, int]:
    """Replicas per version that approximate ``weights`` by the ratio of pods behind one Service selector.

    Only the ``newest`` version (the canary) is ever trimmed, and only while it has less weight than the
    heaviest other version: to ``round(instances_of_the_heaviest * its_weight / heaviest_weight)``, at
    least 1 and never more than the engine asked for. The older (stable) version always keeps all its
    instances, so a rollback's "stable back at R" never waits on a trim; the price is that a canary weight
    above 50% gives the new version at most its share of pods (R of 2R: 50%) until the switch. The grain
    is one pod: with R stable replicas the smallest share is 1/(R+1). Trims nothing when one version takes
    all traffic, or when weights and instances already agree (a rolling update's batches).
    """
    routed = {k: w for k, w in weights.items() if w > 0 and instances.get(k, 0) > 0}
    out = dict(instances)
    if len(routed) < 2 or newest not in routed:
        return out
    others = {k: w for k, w in routed.items() if k != newest}
    heaviest = max(others, key=lambda k: (others[k], k))
    top, weight = others[heaviest], routed[newest]
    if weight < top:
        out[newest] = min(instances[newest], max(1, round(instances[heaviest] * weight / top)))
    return out


def order_of(obj: dict[str, Any]) -> int:
    notes = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        return int(notes.get(A_ORDER) or 0)
    except ValueError:
        return 0


def newest(deployments: dict[str, dict[str, Any]]) -> str | None:
    """The version whose Deployment was made last (the canary), if any."""
    return max(deployments, key=lambda k: (order_of(deployments[k]), k)) if deployments else None


def effective_weights(ready: dict[str, int]) -> dict[str, int]:
    """The share of requests each version gets when a Service spreads them evenly over ready pods."""
    total = sum(ready.values())
    if total == 0:
        return {}
    shares = {k: round(100 * n / total) for k, n in ready.items() if n > 0}
    return shares


def version_of(obj: dict[str, Any]) -> VersionRef | None:
    """The version a Deployment primum wrote runs (None: not one of primum's)."""
    meta = obj.get("metadata") or {}
    notes = meta.get("annotations") or {}
    digest = notes.get(A_DIGEST)
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        return None
    return VersionRef(digest=digest, artifact=str(notes.get(A_ARTIFACT) or ""), label=str(notes.get(A_LABEL) or ""))


def fence_of(obj: dict[str, Any] | None) -> int:
    notes = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    try:
        return int(notes.get(A_FENCE) or 0)
    except ValueError:
        return 0


def instances_of(obj: dict[str, Any]) -> int:
    notes = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        return int(notes.get(A_INSTANCES) or (obj.get("spec") or {}).get("replicas") or 0)
    except (TypeError, ValueError):
        return 0


def observe_deployment(obj: dict[str, Any], version: VersionRef) -> VersionObservation:
    """Readiness from the Deployment's status, as its controller and the kubelets report it.

    Ready pods count only once the controller has observed the current spec (``observedGeneration`` at
    least ``metadata.generation``) and only pods of that spec (``updatedReplicas``); a failed rollout
    (``Progressing`` False with ``ProgressDeadlineExceeded``, or ``ReplicaFailure`` True) is ``failed``
    with the condition's message. A status nobody wrote yet is "starting", never ready.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    desired = int(spec.get("replicas") or 0)
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    current = observed is not None and (generation is None or int(observed) >= int(generation))
    ready = 0
    if current:
        ready = min(int(status.get("readyReplicas") or 0), int(status.get("updatedReplicas", desired) or 0), desired)
    error = None
    for cond in status.get("conditions") or []:
        kind, state, reason = cond.get("type"), cond.get("status"), cond.get("reason")
        if (kind == "Progressing" and state == "False" and reason == "ProgressDeadlineExceeded") or (
                kind == "ReplicaFailure" and state == "True"):
            error = f"Deployment {meta.get('name')}: {reason}: {cond.get('message') or 'no message'}"
    failed = max(desired - ready, 1) if error and current else 0
    return VersionObservation(version=version, desired=desired, ready=ready,
                              starting=0 if failed else max(0, desired - ready), failed=failed,
                              error=error if current else None)
