"""The estate's ``type: kubernetes`` settings: accepted, refused with the field and fix, handed to the target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import primum.adapters.targets.registry  # noqa: F401 - registers the kubernetes kind with the estate
from primum.adapters.targets.kubernetes.objects import serving_replicas
from primum.core.model.errors import InputError
from primum.core.model.estate import Estate
from primum.core.model.validate import estate_from_document, runtime_spec
from primum.core.model.yamlfile import parse_yaml

ESTATE = """
apiVersion: primum/v1
kind: Estate
name: k8s-estate
environments: [{name: staging, class: nonprod}, {name: prod, class: prod}]
services:
  pas:
    owner: integration
    tier: internal
    data_class: none
    target:
      type: kubernetes
      kubeconfig: /etc/primum/kubeconfig
      context: hospital-prod
      namespaces: {staging: pas-staging}
      image: registry.example/integration/pas
      labels: {team.example/owner: integration}
      replicas: 3
    strategy: {type: blue_green}
"""


def _estate(text: str = ESTATE) -> Estate:
    return estate_from_document(parse_yaml(text, "estate.yaml"))


def test_the_estate_hands_its_kubernetes_settings_to_the_target() -> None:
    estate = _estate()
    spec = runtime_spec(estate, "staging", "pas")
    assert spec.replicas == 3
    assert spec.target_settings["image"] == "registry.example/integration/pas"
    assert spec.target_settings["context"] == "hospital-prod"
    assert estate.services["pas"].target.namespace("staging") == "pas-staging"  # type: ignore[attr-defined]
    assert estate.services["pas"].target.namespace("prod") == "prod"  # type: ignore[attr-defined]
    for strategy in ("canary, steps: [{set_weight: 20}]", "rolling"):  # it can carry out each strategy
        _estate(ESTATE.replace("type: blue_green", f"type: {strategy}"))


@pytest.mark.parametrize(("change", "field", "says"), [
    ("image: registry.example/integration/pas", "image: registry.example/integration/pas:2.0",
     "has a tag or digest"),
    ("context: hospital-prod", "token: s3cr3t-t0ken", "token"),  # credentials have no field: refused
    ("type: kubernetes", "type: kubernetes\n      traffic: gateway-api", "needs gateway"),
    ("labels: {team.example/owner: integration}", "labels: {Bad Key: x}", "labels"),
])
def test_bad_settings_name_the_field(change: str, field: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        _estate(ESTATE.replace(change, field))
    text = "\n".join(p.render() for p in caught.value.problems)
    assert "services.pas.target" in text and says in text and "estate.yaml:" in text


@pytest.mark.parametrize(("instances", "weights", "replicas"), [
    ({"a": 4, "b": 4}, {"a": 75, "b": 25}, {"a": 4, "b": 1}),  # 1 of 5 pods: 20%
    ({"a": 10, "b": 10}, {"a": 90, "b": 10}, {"a": 10, "b": 1}),
    ({"a": 3, "b": 3}, {"a": 50, "b": 50}, {"a": 3, "b": 3}),  # equal weights: nothing trimmed
    ({"a": 4, "b": 4}, {"a": 25, "b": 75}, {"a": 4, "b": 4}),  # the stable side is never trimmed: 50% at most
    ({"a": 4, "b": 4}, {"a": 0, "b": 100}, {"a": 4, "b": 4}),  # one version routed: the engine's counts
    ({"a": 2, "b": 1}, {"a": 67, "b": 33}, {"a": 2, "b": 1}),  # rolling: the weights are the instance shares
    ({"a": 1, "b": 1}, {"a": 99, "b": 1}, {"a": 1, "b": 1}),  # never trimmed to nothing: one pod is the grain
])
def test_serving_replicas_approximate_the_weights(instances: dict[str, int], weights: dict[str, int],
                                                  replicas: dict[str, int]) -> None:
    assert serving_replicas(instances, weights, newest="b") == replicas


def test_primum_validate_knows_the_kubernetes_kind(tmp_path: Path) -> None:
    """The command reads the estate without building targets: the kind must still be registered."""
    primum = Path(sys.executable).parent / "primum"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    good = tmp_path / "estate.yaml"
    good.write_text(ESTATE)
    done = subprocess.run([str(primum), "validate", str(good)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(ESTATE.replace("integration/pas\n", "integration/pas:2.0\n"))
    done = subprocess.run([str(primum), "validate", str(bad)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "bad.yaml:16: services.pas.target.image" in done.stdout + done.stderr
