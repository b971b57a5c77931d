"""The Kubernetes API, as the kubernetes target needs it: read, list, create-or-patch, delete, as JSON.

Through the official ``kubernetes`` client (its typed APIs validate each body against the OpenAPI models
before it is sent). Every failure becomes a :class:`TargetError` that says what failed and how to fix it:
an API that cannot be reached, credentials refused (401), a verb the kubeconfig's user may not use (403),
a conflict (409). Nothing is retried here: the controller re-asserts the desired state on its next tick.

Writes are create-or-patch with a JSON merge patch (RFC 7386): a merge patch of the whole desired object
is idempotent, and it is what the emulator the tests run against (kmock) understands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from primum.adapters.targets.base import TargetError
from primum.adapters.targets.kubernetes import objects as o

MERGE = "application/merge-patch+json"


def connect(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """An API client from a kubeconfig file and context (references: the estate holds no credentials)."""
    where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
    settings = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=settings)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise TargetError(f"kubernetes: cannot load kubeconfig {where}" + (f" context {context!r}" if context else "")
                          + f": {exc}; fix target.kubeconfig / target.context in the estate, or the file") from exc
    settings.retries = 0  # a dead API fails this tick at once; the next tick asks again
    return client.ApiClient(settings)


class Cluster:
    """One cluster's API (one kubeconfig context), with the request timeout of the target's settings."""

    def __init__(self, api: client.ApiClient, timeout: float) -> None:
        self.api = api
        self.host = str(api.configuration.host)
        self.timeout = timeout
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # --------------------------------------------------------------- calls

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one API call; the decoded JSON answer, ``None`` for 404, or a TargetError with the fix."""
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise TargetError(self._explain(what, exc)) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise TargetError(f"kubernetes: cannot reach the API at {self.host} ({what}): {_reason(exc)}; check the "
                              "kubeconfig's server and context, and that the cluster is up") from exc
        try:
            return json.loads(resp.data or b"null")
        except ValueError as exc:
            raise TargetError(f"kubernetes: {what}: the API at {self.host} answered something other than JSON") from exc

    def _explain(self, what: str, exc: ApiException) -> str:
        message = _status_message(exc)
        if exc.status == 401:
            return (f"kubernetes: {what}: the API at {self.host} refused the credentials (401 Unauthorized): "
                    "renew the token or certificate of the kubeconfig's user")
        if exc.status == 403:
            return (f"kubernetes: {what}: forbidden (403): {message}; grant the kubeconfig's user a Role in that "
                    "namespace allowing get, list, create, patch and delete on deployments, services "
                    "(and httproutes with traffic: gateway-api)")
        if exc.status == 409:
            return (f"kubernetes: {what}: conflict (409): {message}; another writer changed the object "
                    "(primum asserts it again on the next tick; if it keeps conflicting, find that writer)")
        if exc.status == 422 or exc.status == 400:
            return f"kubernetes: {what}: the API refused the object ({exc.status}): {message}"
        return f"kubernetes: {what}: the API at {self.host} answered {exc.status} {exc.reason}: {message}"

    # ---------------------------------------------------------- resources

    def get_deployment(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._call(f"read deployment {ns}/{name}", self.apps.read_namespaced_deployment, name, ns)

    def list_deployments(self, ns: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Deployments carrying all of ``labels`` (filtered here too: an emulator may ignore the selector)."""
        found = self._call(f"list deployments in {ns}", self.apps.list_namespaced_deployment, ns,
                           label_selector=",".join(f"{k}={v}" for k, v in labels.items()))
        return _matching(found, labels, f"deployments in {ns}")

    def apply_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        return self._apply(f"deployment {ns}/{name}", body, lambda: self.get_deployment(ns, name),
                           self.apps.create_namespaced_deployment, self.apps.patch_namespaced_deployment)

    def delete_deployment(self, ns: str, name: str) -> None:
        # Background: the API removes the ReplicaSets and pods after the Deployment (never orphans them)
        self._call(f"delete deployment {ns}/{name}", self.apps.delete_namespaced_deployment, name, ns,
                   body={"propagationPolicy": "Background"})

    def get_service(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._call(f"read service {ns}/{name}", self.core.read_namespaced_service, name, ns)

    def apply_service(self, body: dict[str, Any]) -> dict[str, Any]:
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        return self._apply(f"service {ns}/{name}", body, lambda: self.get_service(ns, name),
                           self.core.create_namespaced_service, self.core.patch_namespaced_service)

    def delete_service(self, ns: str, name: str) -> None:
        self._call(f"delete service {ns}/{name}", self.core.delete_namespaced_service, name, ns)

    def get_route(self, ns: str, name: str) -> dict[str, Any] | None:
        return self._call(f"read httproute {ns}/{name}", self.custom.get_namespaced_custom_object,
                          o.GATEWAY_GROUP, o.GATEWAY_VERSION, ns, o.HTTPROUTES, name)

    def apply_route(self, body: dict[str, Any]) -> dict[str, Any]:
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        what = f"httproute {ns}/{name}"
        gv = (o.GATEWAY_GROUP, o.GATEWAY_VERSION, ns, o.HTTPROUTES)
        if self.get_route(ns, name) is None:
            made = self._call(f"create {what}", self.custom.create_namespaced_custom_object, *gv, body)
            if made is None:
                raise TargetError(f"kubernetes: create {what}: the API has no HTTPRoute resource (404): the cluster "
                                  "lacks the Gateway API CRDs; install them, or use traffic: service")
            return dict(made)
        return self._patched(what, self._call(f"patch {what}", self.custom.patch_namespaced_custom_object,
                                              *gv, name, body, _content_type=MERGE))

    def _apply(self, what: str, body: dict[str, Any], read: Callable[[], dict[str, Any] | None],
               create: Callable[..., Any], patch: Callable[..., Any]) -> dict[str, Any]:
        """Create ``body``, or merge-patch it onto the object that exists: the same end state either way."""
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        if read() is None:
            made = self._call(f"create {what}", create, ns, _without_nulls(body))
            if made is None:
                raise TargetError(f"kubernetes: create {what}: not found (404): does namespace {ns} exist? "
                                  "create it, or fix target.namespaces in the estate")
            return dict(made)
        return self._patched(what, self._call(f"patch {what}", patch, name, ns, body, _content_type=MERGE))

    @staticmethod
    def _patched(what: str, answer: Any) -> dict[str, Any]:
        if answer is None:
            raise TargetError(f"kubernetes: patch {what}: the object disappeared (404) while primum patched it; "
                              "it is created again on the next tick")
        return dict(answer)

    def close(self) -> None:
        self.api.close()


def _without_nulls(value: Any) -> Any:
    """A merge patch's ``null`` removes a key; a created object simply has no such key."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _matching(found: Any, labels: dict[str, str], what: str) -> list[dict[str, Any]]:
    if found is None:
        return []  # the resource or namespace is not there: nothing of primum's runs there
    items = found.get("items") if isinstance(found, dict) else None
    if not isinstance(items, list):
        raise TargetError(f"kubernetes: list {what}: the answer has no items list")
    out = []
    for item in items:
        have = (item.get("metadata") or {}).get("labels") or {}
        if all(have.get(k) == v for k, v in labels.items()):
            out.append(item)
    return out


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    inner = getattr(exc, "reason", None)
    return str(inner or exc).split(": ", 1)[-1] if inner else type(exc).__name__
