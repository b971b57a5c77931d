"""``type: haproxy`` in an estate file: accepted with its settings, refused with the file, line and fix."""

from __future__ import annotations

import pytest

import primum.adapters.targets.registry  # noqa: F401 - registers the target kinds with the estate schema
from primum.adapters.targets.haproxy.settings import HaproxyTargetSettings
from primum.adapters.targets.registry import TARGETS
from primum.core.model.errors import InputError
from primum.core.model.validate import estate_from_document, runtime_spec
from primum.core.model.yamlfile import parse_yaml

ESTATE = """
apiVersion: primum/v1
kind: Estate
name: onprem
environments: [{name: prod, class: prod}]
services:
  integration:
    owner: team
    tier: internal
    data_class: none
    target:
      type: haproxy
      sockets: {prod: /run/haproxy/admin.sock}
      backend: be_integration
      slots: [s1, s2, s3, s4]
      replicas: 2
    strategy: {type: rolling, max_unavailable: 1, batch_analysis: 0}
"""


def test_an_haproxy_service_loads_and_its_spec_carries_the_settings() -> None:
    estate = estate_from_document(parse_yaml(ESTATE, "estate.yaml"))
    target = estate.services["integration"].target
    assert isinstance(target, HaproxyTargetSettings) and target.backend == "be_integration"
    spec = runtime_spec(estate, "prod", "integration")
    assert HaproxyTargetSettings.model_validate(spec.target_settings) == target
    assert spec.replicas == 2
    assert "haproxy" in TARGETS.tags()


def test_too_few_slots_is_an_error_naming_the_file_and_line() -> None:
    with pytest.raises(InputError) as caught:
        estate_from_document(parse_yaml(ESTATE.replace("[s1, s2, s3, s4]", "[s1, s2, s3]"), "estate.yaml"))
    text = "\n".join(p.render() for p in caught.value.problems)
    assert "estate.yaml:" in text and "at least 4 slots" in text, text


def test_a_missing_socket_map_is_an_error() -> None:
    with pytest.raises(InputError) as caught:
        estate_from_document(parse_yaml(ESTATE.replace("      sockets: {prod: /run/haproxy/admin.sock}\n", ""),
                                        "estate.yaml"))
    text = "\n".join(p.render() for p in caught.value.problems)
    assert "sockets" in text, text
