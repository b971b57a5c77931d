"""Every number in an estate or release keeps its range: each value the issue found accepted is an input error
naming the file, the line, the field and the allowed range (core.model.types)."""

from __future__ import annotations

import pytest

from primum.core.model.errors import InputError
from primum.core.model.validate import load_estate
from tests.model.test_validation import ESTATE, write

PORTAL_TARGET = "    target: {replicas: 2, ports: {prod: 28080}}\n"  # line 23 of ESTATE


def portal(extra: str) -> str:
    """ESTATE with ``extra`` (YAML lines of the portal service) in place of its target line."""
    assert PORTAL_TARGET in ESTATE
    return ESTATE.replace(PORTAL_TARGET, extra)


CASES = [
    # ports: 1-65535, whole numbers only
    ("    target: {ports: {prod: 100000000000000000000}}\n", "services.portal.target.ports.prod", "1 to 65535"),
    ("    target: {ports: {prod: 0}}\n", "services.portal.target.ports.prod", "1 to 65535"),
    ("    target: {ports: {prod: -1}}\n", "services.portal.target.ports.prod", "1 to 65535"),
    ("    target: {ports: {prod: 8080.5}}\n", "services.portal.target.ports.prod", "whole number"),
    ("    target: {ports: {prod: true}}\n", "services.portal.target.ports.prod", "whole number"),
    ("    target: {ports: {prod: '8080'}}\n", "services.portal.target.ports.prod", "whole number"),
    ("    target: {mllp_ports: {prod: 70000}}\n", "services.portal.target.mllp_ports.prod", "1 to 65535"),
    ("    target: {replicas: 100000000000000000000}\n", "services.portal.target.replicas", "1 to 20"),
    # weights: whole numbers 0-100; `true` is not a weight
    ("    strategy: {type: canary, steps: [{set_weight: true}]}\n", "services.portal.strategy.steps[0].set_weight",
     "0 to 100"),
    ("    strategy: {type: canary, steps: [{set_weight: 50.0}]}\n", "services.portal.strategy.steps[0].set_weight",
     "whole number"),
    ("    strategy: {type: canary, steps: [{set_weight: 101}]}\n", "services.portal.strategy.steps[0].set_weight",
     "0 to 100"),
    # durations: finite, at most a year; timeouts and intervals above zero
    ("    strategy: {type: canary, steps: [{pause: {duration: .inf}}]}\n",
     "services.portal.strategy.steps[0].pause.duration", "finite"),
    ("    strategy: {type: canary, steps: [{analysis: {duration: .nan}}]}\n",
     "services.portal.strategy.steps[0].analysis.duration", "finite"),
    ("    strategy: {type: canary, steps: [{analysis: {duration: 0}}]}\n",
     "services.portal.strategy.steps[0].analysis.duration", "above 0"),
    ("    strategy: {type: canary, steps: [{analysis: {count: 100000000000000000000}}]}\n",
     "services.portal.strategy.steps[0].analysis.count", "1 to 1000000"),
    ("    strategy: {type: blue_green, post_analysis: 1.0e+300}\n", "services.portal.strategy.post_analysis",
     "366 days"),
    ("    target: {startup_timeout: -5}\n", "services.portal.target.startup_timeout", "negative"),
    # HTTP status codes: whole numbers 100-599
    ("    probes: [{name: up, probe: {type: http, expect_status: [-0.0]}}]\n",
     "services.portal.probes[0].probe.expect_status[0]", "100 to 599"),
    ("    probes: [{name: up, probe: {type: http, expect_status: [200, 600]}}]\n",
     "services.portal.probes[0].probe.expect_status[1]", "100 to 599"),
    ("    probes: [{name: up, probe: {type: http, timeout: 0}}]\n", "services.portal.probes[0].probe.timeout",
     "above 0"),
    ("    probes: [{name: up, probe: {type: tcp, port: 65536}}]\n", "services.portal.probes[0].probe.port",
     "1 to 65535"),
    ("    probes: [{name: up, probe: {type: http}, attempts: true}]\n", "services.portal.probes[0].attempts",
     "whole number"),
    # ratios and fractions: finite, in range
    ("    slo: {error_rate: .nan}\n", "services.portal.slo.error_rate", "from 0 to 1"),
    ("    slo: {p95_ms: .inf}\n", "services.portal.slo.p95_ms", "finite"),
    ("    traffic: {rate: .inf}\n", "services.portal.traffic.rate", "at most 500"),
    ("    analysis: {confidence: 1.5}\n", "services.portal.analysis.confidence", "below 1"),
    ("    analysis: {pass_score: true}\n", "services.portal.analysis.pass_score", "0 to 100"),
    ("    analysis: {failure_limit: -1}\n", "services.portal.analysis.failure_limit", "0 to 1000000"),
    ("    analysis: {groups: {latency: .inf}}\n", "services.portal.analysis.groups.latency", "0 to 100"),
    ("    analysis: {metrics: [{name: lat, kind: latency, threshold: {max: .inf}}]}\n",
     "services.portal.analysis.metrics[0].threshold.max", "finite"),
]


@pytest.mark.parametrize("extra, path, words", CASES, ids=[c[1] + ":" + c[0].strip()[:40] for c in CASES])
def test_out_of_range_numbers_name_the_field_line_and_range(tmp_path, extra, path, words):
    with pytest.raises(InputError) as info:
        load_estate(write(tmp_path, portal(extra)))
    found = [p for p in info.value.problems if p.path == path]
    assert found, [p.render() for p in info.value.problems]
    problem = found[0]
    assert words in problem.message, problem.render()
    assert problem.line == 23 and problem.file.endswith("estate.yaml"), problem.render()
    assert problem.fix


def test_the_governance_durations_are_finite(tmp_path):
    with pytest.raises(InputError) as info:
        load_estate(write(tmp_path, ESTATE + "governance:\n  approval_ttl: .inf\n"))
    problem = info.value.problems[0]
    assert problem.path == "governance.approval_ttl" and problem.line == 25 and "finite" in problem.message


def test_values_in_range_still_load(tmp_path):
    estate = load_estate(write(tmp_path, portal(
        "    target: {ports: {prod: 65535}, mllp_ports: {prod: 1}}\n"
        "    strategy: {type: canary, steps: [{set_weight: 0}, {pause: {duration: 0}}, {set_weight: 100}]}\n"
        "    probes: [{name: up, probe: {type: http, expect_status: [100, 599]}}]\n")))
    target = estate.services["portal"].target
    assert target.ports == {"prod": 65535} and target.mllp_ports == {"prod": 1}  # type: ignore[attr-defined]
