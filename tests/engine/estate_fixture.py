from __future__ import annotations

from primum.core.model.estate import Estate
from primum.core.model.validate import estate_from_document
from primum.core.model.yamlfile import parse_yaml

ESTATE = """
apiVersion: primum/v1
kind: Estate
name: test-hospital
environments:
  - {name: staging, class: nonprod}
  - {name: prod, class: prod}
tenants: [{id: clinic-a}, {id: clinic-b}, {id: clinic-c}]
services:
  fhir:
    owner: integration
    tier: clinical-critical
    data_class: phi
    strategy: {type: canary, steps: [{set_weight: 20}, {analysis: {duration: 10s}}, {set_weight: 50},
                                     {analysis: {duration: 10s}}]}
  sched:
    owner: scheduling
    tier: clinical-critical
    data_class: phi
    depends_on: [fhir]
    strategy: {type: canary, steps: [{set_weight: 25}, {analysis: {duration: 10s}}]}
  portal:
    owner: portal
    tier: patient-facing
    data_class: phi
    depends_on: [sched]
    target: {replicas: 2}
    strategy: {type: blue_green, preview_analysis: 10s, post_analysis: 10s, scale_down_delay: 5s}
  hl7:
    owner: integration
    tier: clinical-critical
    data_class: phi
    target: {replicas: 3}
    strategy: {type: rolling, max_unavailable: 1, batch_analysis: 5s}
  manual:
    owner: ops
    tier: internal
    data_class: none
    strategy: {type: canary, steps: [{set_weight: 10}, {pause: {}}]}
"""


def estate(text: str = ESTATE) -> Estate:
    return estate_from_document(parse_yaml(text, "estate.yaml"))
