"""Bad input, rule by rule: every problem names the file, the line, the field and the fix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from primum.core.model.errors import InputError
from primum.core.model.release import canonical_digest
from primum.core.model.types import parse_duration
from primum.core.model.validate import load_estate, load_release, runtime_spec

ESTATE = """\
apiVersion: primum/v1
kind: Estate
name: test-hospital
environments:
  - {name: staging, class: nonprod}
  - {name: prod, class: prod}
tenants:
  - {id: clinic-a}
services:
  fhir:
    template: fhir-integration
    owner: integration
  sched:
    template: web-api
    owner: scheduling
    tier: clinical-critical
    depends_on: [fhir]
  portal:
    owner: portal
    tier: patient-facing
    data_class: phi
    depends_on: [sched]
    target: {replicas: 2, ports: {prod: 28080}}
"""


def write(tmp_path: Path, text: str, name: str = "estate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list:
    with pytest.raises(InputError) as info:
        load_estate(write(tmp_path, text))
    return info.value.problems


def test_the_valid_estate_loads_and_templates_apply(tmp_path):
    estate = load_estate(write(tmp_path, ESTATE))
    fhir = estate.services["fhir"]
    assert fhir.tier.value == "clinical-critical" and fhir.touches == ["integration-engine"]  # from template
    assert estate.services["sched"].tier.value == "clinical-critical"  # overrides web-api's "business"
    assert estate.services["sched"].slo.p95_ms == 300  # inherited
    spec = runtime_spec(estate, "prod", "portal")
    assert spec.router_port == 28080 and spec.replicas == 2 and spec.tenants == ("clinic-a",)


@pytest.mark.parametrize("old, new, line, path, words", [
    ("    owner: portal\n", "    owner: portal\n    colour: blue\n", 20, "services.portal.colour", "unknown field"),
    ("    tier: patient-facing\n", "    tier: critical\n", 20, "services.portal.tier", "clinical-critical"),
    ("    data_class: phi\n", "    data_class: 3\n", 21, "services.portal.data_class", "not allowed"),
    ("    data_class: phi\n", "", 18, "services.portal.data_class", "missing"),
    ("depends_on: [sched]", "depends_on: [billing]", 22, "services.portal.depends_on[0]", "unknown service"),
    ("depends_on: [sched]", "depends_on: [portal]", 22, "services.portal.depends_on[0]", "itself"),
    ("    depends_on: [fhir]\n", "    depends_on: [fhir, portal]\n", 22, "services.portal.depends_on",
     "dependency cycle"),
    ("template: web-api", "template: webapi", 14, "services.sched.template", "unknown template"),
    ("ports: {prod: 28080}", "ports: {qa: 28080}", 23, "services.portal.target.ports.qa", "unknown environment"),
    ("{replicas: 2,", "{replicas: 0,", 23, "services.portal.target.replicas", "from 1 to 20"),
    ("  - {name: prod, class: prod}", "  - {name: prod, class: production}", 6, "environments[1].class",
     "not allowed"),
    ("  - {name: prod, class: prod}", "  - {name: staging, class: prod}", 6, "environments[1].name", "unique"),
    ("  - {id: clinic-a}", "  - {id: clinic-a}\n  - {id: clinic-a}", 9, "tenants[1].id", "duplicate tenant"),
    ("name: test-hospital", "name: Test Hospital", 3, "name", "does not match"),
    ("    owner: integration\n", "    owner: integration\n    strategy: {type: rolling, max_unavailable: 1}\n",
     13, "services.fhir.strategy.max_unavailable", "out of service"),
    ("    target: {replicas", "    strategy: {type: canary, steps: [{set_weigh: 5}]}\n    target: {replicas", 23,
     "services.portal.strategy.steps[0]", "canary step"),
    ("    target: {replicas", "    strategy: {type: canary, steps: [{pause: {duration: soon}}]}\n"
     "    target: {replicas", 23, "services.portal.strategy.steps[0].pause.duration", "not a duration"),
    ("{replicas: 2, ports: {prod: 28080}}", "{command: [python, app.py]}", 23, "services.portal.target.command",
     "{artifact}"),
])
def test_each_estate_rule_names_line_field_and_fix(tmp_path, old, new, line, path, words):
    assert old in ESTATE, old
    found = problems(tmp_path, ESTATE.replace(old, new, 1))
    match = [p for p in found if p.path.startswith(path)]
    assert match, [p.render() for p in found]
    problem = match[0]
    assert words in problem.message or words in problem.fix, problem.render()
    assert problem.line == line, problem.render()
    assert problem.fix and problem.file.endswith("estate.yaml")


def test_duplicate_keys_and_broken_yaml_are_errors(tmp_path):
    found = problems(tmp_path, ESTATE + "services:\n  x: {}\n")
    assert "duplicate key" in found[0].message and found[0].line == 24
    found = problems(tmp_path, "apiVersion: primum/v1\nkind: [Estate\n")
    assert "not valid YAML" in found[0].message
    found = problems(tmp_path, "")
    assert "empty" in found[0].message


def release_text(digest: str, artifact: str = "app.py", extra: str = "") -> str:
    return f"""\
apiVersion: primum/v1
kind: Release
id: rel-1
description: test
ticket: CHG-1
source_commit: 0123abc
services:
  sched:
    artifact: {artifact}
    digest: {digest}
    version: 2.0.0
{extra}"""


@pytest.fixture
def estate(tmp_path):
    return load_estate(write(tmp_path, ESTATE))


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "app.py"
    path.write_text("print('hello')\n")
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_valid_release_resolves_artifacts_and_has_a_stable_digest(tmp_path, estate, artifact):
    loaded = load_release(write(tmp_path, release_text(artifact), "release.yaml"), estate)
    assert loaded.versions["sched"].digest == artifact
    assert loaded.versions["sched"].artifact == str(tmp_path / "app.py")
    again = load_release(write(tmp_path, release_text(artifact).replace("test", "test") + "\n", "r2.yaml"), estate)
    assert again.digest == loaded.digest  # formatting does not change the canonical digest
    data = loaded.release.model_dump(mode="json", by_alias=True)
    expected = "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert canonical_digest(loaded.release) == expected


@pytest.mark.parametrize("mutate, line, path, words", [
    (lambda t, d: t.replace(d, "latest"), 10, "services.sched.digest", "not pinned"),
    (lambda t, d: t.replace(d, "sha256:" + "0" * 64), 10, "services.sched.digest", "has digest"),
    (lambda t, d: t.replace("app.py", "missing.py"), 9, "services.sched.artifact", "not found"),
    (lambda t, d: t.replace("  sched:", "  billing:"), 8, "services.billing", "not in estate"),
    (lambda t, d: t.replace("id: rel-1", "id: 'rel 1'"), 3, "id", "does not match"),
    (lambda t, d: t.replace("source_commit: 0123abc", "source_commit: main"), 6, "source_commit", "commit"),
    (lambda t, d: t + "    strategy: {type: rolling}\n", 12, "services.sched.strategy.max_unavailable",
     "out of service"),
    (lambda t, d: t + "approved: true\n", 12, "approved", "unknown field"),
    (lambda t, d: t.replace("kind: Release", "kind: Estate"), 2, "kind", "expected kind Release"),
])
def test_each_release_rule_names_line_field_and_fix(tmp_path, estate, artifact, mutate, line, path, words):
    text = mutate(release_text(artifact), artifact)
    with pytest.raises(InputError) as info:
        load_release(write(tmp_path, text, "release.yaml"), estate)
    match = [p for p in info.value.problems if p.path.startswith(path)]
    assert match, info.value
    assert words in match[0].message or words in match[0].fix, match[0].render()
    assert match[0].line == line, match[0].render()


def test_shipped_templates_all_validate(tmp_path):
    from primum.core.model.validate import shipped_templates

    names = sorted(shipped_templates())
    assert {"web-api", "patient-portal", "fhir-integration", "hl7-interface", "batch-job", "erp-connector"} <= set(
        names)
    services = {f"s-{n}": {"template": n, "owner": "x"} for n in names}
    doc = yaml.safe_load(ESTATE)
    doc["services"] = services
    estate = load_estate(write(tmp_path, yaml.safe_dump(doc)))
    assert len(estate.services) == len(names)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.sampled_from(["", "s", "ms", "m", "h"]))
def test_durations_parse(value, unit):
    text = f"{value:.3f}{unit}"
    factor = {"": 1, "s": 1, "ms": 0.001, "m": 60, "h": 3600}[unit]
    assert parse_duration(text) == pytest.approx(float(f"{value:.3f}") * factor)
