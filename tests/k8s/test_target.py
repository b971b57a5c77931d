"""The kubernetes target against the kmock emulator (not a cluster): each action's effect on the objects.

kmock keeps objects but runs no controllers, so these tests play the Deployment controller and kubelets
(``Emulator.kubelet``) where a cluster would write a Deployment's status.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.kubernetes.target import KubernetesTarget
from primum.core.model.actions import EnsureInstances, ServiceRuntimeSpec, SetRoute, VersionRef
from tests.k8s.emulator import GATEWAY, Emulator

NS = "staging-ns"
OLD = VersionRef(digest="sha256:" + "a" * 64, artifact="registry.example/pas@sha256:" + "a" * 64, label="1.0.0")
NEW = VersionRef(digest="sha256:" + "b" * 64, artifact="registry.example/pas@sha256:" + "b" * 64, label="1.1.0")
DEP_OLD, DEP_NEW = "pas-" + OLD.key, "pas-" + NEW.key


def spec_for(emu: Emulator, **settings: Any) -> ServiceRuntimeSpec:
    target = {"type": "kubernetes", "kubeconfig": str(emu.kubeconfig), "namespaces": {"staging": NS},
              "image": "registry.example/pas", "labels": {"team.example/owner": "integration"}, **settings}
    return ServiceRuntimeSpec(estate="hospital", env="staging", service="pas", command=(), replicas=3,
                              target_settings=target)


def ensure(version: VersionRef, count: int) -> EnsureInstances:
    return EnsureInstances(env="staging", service="pas", version=version, count=count)


def route(weights: dict[str, int], preview: str | None = None) -> SetRoute:
    return SetRoute(env="staging", service="pas", weights=weights, preview=preview)


@pytest.fixture
def k8s() -> Any:
    target = KubernetesTarget()
    yield target
    target.close()


def running_old(emu: Emulator, k8s: KubernetesTarget, spec: ServiceRuntimeSpec, replicas: int = 3) -> None:
    k8s.apply(ensure(OLD, replicas), spec, fence=1)
    emu.kubelet(NS, DEP_OLD)
    k8s.apply(route({OLD.key: 100}), spec, fence=1)


def test_ensure_instances_writes_a_deployment_pinned_by_digest(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    k8s.apply(ensure(OLD, 3), spec, fence=1)
    k8s.apply(ensure(OLD, 3), spec, fence=1)  # idempotent: the same object, no error
    dep = emulator.deployment(NS, DEP_OLD)
    assert dep["spec"]["replicas"] == 3
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/pas@" + OLD.digest
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["primum.dev/version"] == OLD.key and labels["team.example/owner"] == "integration"
    assert dep["spec"]["selector"]["matchLabels"]["primum.dev/version"] == OLD.key
    assert list(emulator.deployments(NS)) == [DEP_OLD]


def test_readiness_comes_from_the_deployment_status(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    k8s.apply(ensure(OLD, 3), spec, fence=1)
    seen = k8s.observe(spec).versions[OLD.key]
    assert (seen.desired, seen.ready, seen.starting) == (3, 0, 3)  # nobody wrote a status yet: not ready
    emulator.kubelet(NS, DEP_OLD, ready=2)
    seen = k8s.observe(spec).versions[OLD.key]
    assert (seen.ready, seen.starting, seen.version) == (2, 1, OLD)
    emulator.kubelet(NS, DEP_OLD, generation=2, observed=1)  # the controller has not seen the new spec
    assert k8s.observe(spec).versions[OLD.key].ready == 0
    emulator.kubelet(NS, DEP_OLD, generation=2)
    assert k8s.observe(spec).versions[OLD.key].ready == 3


def test_a_stuck_rollout_is_failed_with_the_condition_message(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    k8s.apply(ensure(NEW, 2), spec, fence=1)
    emulator.kubelet(NS, DEP_NEW, ready=0, conditions=[{
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "pas-x" has timed out progressing.'}])
    seen = k8s.observe(spec).versions[NEW.key]
    assert seen.failed == 2 and seen.ready == 0
    assert seen.error is not None and "ProgressDeadlineExceeded" in seen.error


def test_blue_green_switches_the_service_selector(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    running_old(emulator, k8s, spec)
    svc = emulator.service(NS, "pas")
    assert svc is not None and svc["spec"]["selector"]["primum.dev/version"] == OLD.key
    k8s.apply(ensure(NEW, 3), spec, fence=1)
    emulator.kubelet(NS, DEP_NEW)
    k8s.apply(route({OLD.key: 100, NEW.key: 0}, preview=NEW.key), spec, fence=1)
    preview = emulator.service(NS, "pas-preview")
    assert preview is not None and preview["spec"]["selector"]["primum.dev/version"] == NEW.key
    seen = k8s.observe(spec).route
    assert seen is not None and seen.weights == {OLD.key: 100} and seen.preview == NEW.key
    k8s.apply(route({OLD.key: 0, NEW.key: 100}, preview=NEW.key), spec, fence=1)  # the switch
    assert emulator.service(NS, "pas")["spec"]["selector"]["primum.dev/version"] == NEW.key  # type: ignore[index]
    k8s.apply(route({OLD.key: 0, NEW.key: 100}), spec, fence=1)
    assert emulator.service(NS, "pas-preview") is None
    obs = k8s.observe(spec)
    assert obs.route is not None and obs.route.weights == {NEW.key: 100} and obs.route.preview is None
    assert [c.weights for c in obs.route_changes] == [{OLD.key: 0, NEW.key: 100}] * 2  # switch, preview off
    k8s.apply(route({OLD.key: 0, NEW.key: 100}), spec, fence=1)  # re-asserted each tick: no change, no evidence
    assert k8s.observe(spec).route_changes == ()
    k8s.apply(ensure(OLD, 0), spec, fence=1)  # the old side stops once it has no traffic
    assert list(emulator.deployments(NS)) == [DEP_NEW]


def test_canary_weights_are_approximated_by_replicas(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    running_old(emulator, k8s, spec, replicas=4)
    k8s.apply(ensure(NEW, 4), spec, fence=1)
    emulator.kubelet(NS, DEP_NEW)
    k8s.apply(route({OLD.key: 75, NEW.key: 25}), spec, fence=2)
    deps = emulator.deployments(NS)
    assert deps[DEP_NEW]["spec"]["replicas"] == 1 and deps[DEP_OLD]["spec"]["replicas"] == 4  # 1 of 5 pods: 20%
    selector = emulator.service(NS, "pas")["spec"]["selector"]  # type: ignore[index]
    assert "primum.dev/version" not in selector  # one selector for both versions' pods
    obs = k8s.observe(spec)
    assert obs.route is not None and obs.route.weights == {OLD.key: 75, NEW.key: 25} and obs.route.fence == 2
    assert obs.route_changes[-1].effective == {OLD.key: 80, NEW.key: 20}  # what the pod ratio gives
    k8s.apply(ensure(NEW, 4), spec, fence=2)  # the engine re-asserts its count: the trim holds
    assert emulator.deployment(NS, DEP_NEW)["spec"]["replicas"] == 1
    k8s.apply(route({OLD.key: 25, NEW.key: 75}), spec, fence=2)  # the old side is never trimmed: a rollback
    deps = emulator.deployments(NS)                                # never waits for it to grow back
    assert deps[DEP_NEW]["spec"]["replicas"] == 4 and deps[DEP_OLD]["spec"]["replicas"] == 4
    assert k8s.observe(spec).route_changes[-1].effective == {OLD.key: 50, NEW.key: 50}  # said as it is
    k8s.apply(route({OLD.key: 0, NEW.key: 100}), spec, fence=2)
    assert emulator.deployment(NS, DEP_NEW)["spec"]["replicas"] == 4  # all traffic: all the instances


def test_gateway_api_weights_are_exact(gateway_emulator: Emulator, k8s: KubernetesTarget) -> None:
    emu = gateway_emulator
    spec = spec_for(emu, traffic="gateway-api", gateway={"name": "public", "namespace": "gateways"})
    k8s.apply(ensure(OLD, 3), spec, fence=1)
    k8s.apply(ensure(NEW, 3), spec, fence=1)
    emu.kubelet_all(NS)
    k8s.apply(route({OLD.key: 90, NEW.key: 10}, preview=NEW.key), spec, fence=1)
    http_route = emu.route(NS, "pas")
    assert http_route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    preview_rule, main_rule = http_route["spec"]["rules"]
    assert preview_rule["matches"][0]["headers"] == [{"name": "x-primum-preview", "value": "1"}]
    assert [(r["name"], r["weight"]) for r in main_rule["backendRefs"]] == [(DEP_OLD, 90), (DEP_NEW, 10)]
    assert emu.service(NS, DEP_NEW)["spec"]["selector"]["primum.dev/version"] == NEW.key  # type: ignore[index]
    assert {d["spec"]["replicas"] for d in emu.deployments(NS).values()} == {3}  # nothing trimmed
    seen = k8s.observe(spec).route
    assert seen is not None and seen.weights == {OLD.key: 90, NEW.key: 10} and seen.preview == NEW.key


def test_gateway_api_missing_from_the_cluster_is_an_error(emulator: Emulator, k8s: KubernetesTarget) -> None:
    import kmock

    spec = spec_for(emulator, traffic="gateway-api", gateway={"name": "public"})
    # what a cluster without the Gateway API CRDs answers (kmock itself would keep any resource it is sent)
    emulator.react((kmock.resource(GATEWAY),), 404, "the server could not find the requested resource")
    k8s.apply(ensure(OLD, 1), spec, fence=1)
    emulator.kubelet(NS, DEP_OLD)
    with pytest.raises(TargetError, match="Gateway API CRDs"):
        k8s.apply(route({OLD.key: 100}), spec, fence=1)


def test_rolling_scales_new_up_and_old_down_in_batches(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    running_old(emulator, k8s, spec)
    k8s.apply(ensure(OLD, 2), spec, fence=1)  # scale stable=2
    k8s.apply(ensure(NEW, 1), spec, fence=1)  # scale new=1
    emulator.kubelet_all(NS)
    k8s.apply(route({OLD.key: 67, NEW.key: 33}), spec, fence=1)  # the share of instances: nothing trimmed
    deps = emulator.deployments(NS)
    assert (deps[DEP_OLD]["spec"]["replicas"], deps[DEP_NEW]["spec"]["replicas"]) == (2, 1)
    versions = k8s.observe(spec).versions
    assert (versions[OLD.key].ready, versions[NEW.key].ready) == (2, 1)


def test_refuses_to_route_to_a_version_with_no_ready_pod(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    running_old(emulator, k8s, spec)
    k8s.apply(ensure(NEW, 3), spec, fence=1)
    with pytest.raises(TargetError, match="no ready pod"):
        k8s.apply(route({OLD.key: 90, NEW.key: 10}), spec, fence=1)
    with pytest.raises(TargetError, match="no Deployment"):
        k8s.apply(route({"c" * 12: 100}), spec, fence=1)
    with pytest.raises(TargetError, match="route traffic away first"):
        k8s.apply(ensure(OLD, 0), spec, fence=1)
    assert emulator.service(NS, "pas")["spec"]["selector"]["primum.dev/version"] == OLD.key  # type: ignore[index]


def test_a_stale_fence_is_refused(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    k8s.apply(ensure(OLD, 1), spec, fence=5)
    emulator.kubelet(NS, DEP_OLD)
    k8s.apply(route({OLD.key: 100}), spec, fence=5)
    notes = emulator.service(NS, "pas")["metadata"]["annotations"]  # type: ignore[index]
    assert notes["primum.dev/fence"] == "5" and json.loads(notes["primum.dev/weights"]) == {OLD.key: 100}
    with pytest.raises(StaleFenceError, match="older than 5"):
        k8s.apply(ensure(NEW, 1), spec, fence=4)
    assert list(emulator.deployments(NS)) == [DEP_OLD]
    k8s.apply(ensure(OLD, 2), spec, fence=7)  # a newer lease scales it: its token is on the Deployment
    with pytest.raises(StaleFenceError, match="older than 7"):
        k8s.apply(route({OLD.key: 100}), spec, fence=6)


def test_an_unreachable_api_is_an_error_with_the_fix(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    emulator.close()  # nothing listens there any more
    with pytest.raises(TargetError, match=r"cannot reach the API at http://127\.0\.0\.1:.*check the kubeconfig"):
        k8s.apply(ensure(OLD, 1), spec, fence=1)
    with pytest.raises(TargetError, match="cannot reach"):
        k8s.observe(spec)


def test_forbidden_is_an_error_naming_the_rbac_fix(emulator: Emulator, k8s: KubernetesTarget) -> None:
    import kmock

    spec = spec_for(emulator)
    emulator.react((kmock.resource("apps/v1/deployments"),), 403,
                   'deployments.apps is forbidden: User "primum" cannot list resource "deployments"')
    with pytest.raises(TargetError, match=r"forbidden \(403\).*cannot list.*grant the kubeconfig's user a Role"):
        k8s.observe(spec)
    with pytest.raises(TargetError, match="forbidden"):
        k8s.apply(ensure(OLD, 1), spec, fence=1)


def test_a_missing_kubeconfig_names_the_file_and_the_field(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator, kubeconfig=str(emulator.kubeconfig) + ".missing")
    with pytest.raises(TargetError, match=r"cannot load kubeconfig .*\.missing.*fix target.kubeconfig"):
        k8s.observe(spec)


def test_an_object_deleted_behind_primums_back_is_seen(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    running_old(emulator, k8s, spec)
    emulator.apps.delete_namespaced_deployment(DEP_OLD, NS)
    obs = k8s.observe(spec)
    assert obs.versions == {}  # the engine sees no ready instance: no step completes on it
    k8s.apply(ensure(OLD, 3), spec, fence=1)  # the next tick's desired state makes it again
    assert emulator.deployment(NS, DEP_OLD)["spec"]["replicas"] == 3


def test_a_conflict_is_an_error_that_says_who_to_look_for(emulator: Emulator, k8s: KubernetesTarget) -> None:
    import kmock

    spec = spec_for(emulator)
    k8s.apply(ensure(OLD, 1), spec, fence=1)
    emulator.react(("patch", kmock.resource("apps/v1/deployments")), 409,
                   'Operation cannot be fulfilled on deployments.apps "pas": the object has been modified')
    with pytest.raises(TargetError, match=r"conflict \(409\).*another writer changed the object"):
        k8s.apply(ensure(OLD, 2), spec, fence=1)


def test_an_api_that_hangs_times_out(emulator: Emulator, k8s: KubernetesTarget) -> None:
    import asyncio

    import kmock

    spec = spec_for(emulator, timeout="0.5s")
    emulator.in_loop(lambda km: km[kmock.resource("apps/v1/deployments")] << (lambda: asyncio.sleep(5)) << {})
    started = __import__("time").monotonic()
    with pytest.raises(TargetError, match="cannot reach the API"):
        k8s.observe(spec)
    assert __import__("time").monotonic() - started < 3


def test_a_selector_edited_behind_primums_back_is_put_back(emulator: Emulator, k8s: KubernetesTarget) -> None:
    spec = spec_for(emulator)
    running_old(emulator, k8s, spec)
    k8s.apply(ensure(NEW, 3), spec, fence=1)
    emulator.kubelet(NS, DEP_NEW)
    k8s.observe(spec)  # the changes so far are taken
    emulator.core.patch_namespaced_service("pas", NS, {"spec": {"selector": {"primum.dev/version": NEW.key}}},
                                           _content_type="application/merge-patch+json")
    seen = k8s.observe(spec).route
    assert seen is not None and seen.weights == {NEW.key: 100}  # the selector is the truth, as it is
    k8s.apply(route({OLD.key: 100, NEW.key: 0}), spec, fence=1)  # the engine's next tick re-asserts its route
    assert emulator.service(NS, "pas")["spec"]["selector"]["primum.dev/version"] == OLD.key  # type: ignore[index]
    assert [c.weights for c in k8s.observe(spec).route_changes] == [{OLD.key: 100, NEW.key: 0}]


def test_refused_credentials_say_to_renew_them(emulator: Emulator, k8s: KubernetesTarget) -> None:
    import kmock

    spec = spec_for(emulator)
    emulator.react((kmock.resource("apps/v1/deployments"),), 401, "Unauthorized")
    with pytest.raises(TargetError, match=r"refused the credentials \(401 Unauthorized\): renew the token"):
        k8s.observe(spec)
