"""The kmock Kubernetes API emulator, run in a thread of its own for the kubernetes target's tests.

kmock keeps the objects it is sent (create, merge patch, delete, list, watch) but runs no controllers: no
Deployment controller, no kubelet, no Gateway. A test plays them: :meth:`Emulator.kubelet` writes a
Deployment's status the way its controller and kubelets would. This is an emulator, not a cluster: what
these tests show is the target's requests and its reading of the answers, against kmock's idea of the API.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kmock
from kubernetes import client

RESOURCES = ("apps/v1/deployments", "v1/services")
GATEWAY = "gateway.networking.k8s.io/v1/httproutes"


class Emulator:
    """A kmock ``KubernetesEmulator`` on a loopback port, with a kubeconfig file pointing at it."""

    def __init__(self, tmp: Path, gateway_api: bool = False) -> None:
        self._ready = threading.Event()
        self._box: dict[str, Any] = {}
        self.resources = RESOURCES + ((GATEWAY,) if gateway_api else ())
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or "url" not in self._box:
            raise RuntimeError(f"kmock did not start: {self._box.get('error')}")
        self.url = str(self._box["url"]).rstrip("/")
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(kubeconfig(self.url, "kmock"))
        cfg = client.Configuration(host=self.url)
        cfg.retries = 0
        self.api = client.ApiClient(cfg)
        self.apps = client.AppsV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._box["loop"] = loop

        async def main() -> None:
            async with kmock.KubernetesEmulator() as km, kmock.Server(km) as server:
                for res in self.resources:
                    km.resources[res] = {}
                self._box.update(km=km, url=server.url, stop=asyncio.Event())
                self._ready.set()
                await self._box["stop"].wait()

        try:
            loop.run_until_complete(main())
        except Exception as exc:  # reported by the constructor
            self._box["error"] = repr(exc)
            self._ready.set()
        finally:
            loop.close()

    def in_loop(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(kmock)`` on the emulator's loop (its DSL and objects are not thread-safe)."""
        done: dict[str, Any] = {}
        flag = threading.Event()

        def call() -> None:
            try:
                done["value"] = fn(self._box["km"])
            finally:
                flag.set()

        self._box["loop"].call_soon_threadsafe(call)
        assert flag.wait(5)
        return done.get("value")

    def react(self, criteria: tuple[Any, ...], status: int, message: str) -> None:
        """Answer requests matching ``criteria`` with a Kubernetes ``Status`` error."""
        body = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": status, "message": message}
        self.in_loop(lambda km: km[criteria] << status << body)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self.api.close()
        loop = self._box.get("loop")
        if loop is not None and "stop" in self._box:
            loop.call_soon_threadsafe(self._box["stop"].set)
        self._thread.join(10)

    # ----------------------------------------------------------- reading

    def deployment(self, ns: str, name: str) -> dict[str, Any]:
        return _json(self.apps.read_namespaced_deployment(name, ns, _preload_content=False))

    def deployments(self, ns: str) -> dict[str, dict[str, Any]]:
        found = _json(self.apps.list_namespaced_deployment(ns, _preload_content=False))
        return {d["metadata"]["name"]: d for d in found["items"]}

    def service(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self.core.read_namespaced_service(name, ns, _preload_content=False))
        except client.exceptions.NotFoundException:
            return None

    def route(self, ns: str, name: str) -> dict[str, Any]:
        return _json(self.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", ns, "httproutes", name, _preload_content=False))

    # ------------------------------------------------- playing the kubelet

    def kubelet(self, ns: str, name: str, ready: int | None = None, generation: int = 1, observed: int | None = None,
                conditions: list[dict[str, Any]] | None = None) -> None:
        """Write a Deployment's status as its controller and kubelets would: ``ready`` pods (default: all)."""
        obj = self.deployment(ns, name)
        replicas = int(obj["spec"]["replicas"])
        n = replicas if ready is None else ready
        self.apps.patch_namespaced_deployment(name, ns, {"metadata": {"generation": generation}},
                                              _content_type="application/merge-patch+json")
        status = {"observedGeneration": generation if observed is None else observed, "replicas": replicas,
                  "updatedReplicas": replicas, "readyReplicas": n, "availableReplicas": n,
                  "conditions": conditions or [{"type": "Available", "status": "True" if n else "False"}]}
        self.apps.patch_namespaced_deployment_status(name, ns, {"status": status},
                                                     _content_type="application/merge-patch+json")

    def kubelet_all(self, ns: str) -> None:
        for name in self.deployments(ns):
            self.kubelet(ns, name)


def kubeconfig(server: str, context: str) -> str:
    """A kubeconfig with one cluster and a user with no credentials (the emulator asks for none)."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": server}}],
        "users": [{"name": "primum-test", "user": {}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": "primum-test"}}],
    })


def _json(resp: Any) -> Any:
    return json.loads(resp.data)
