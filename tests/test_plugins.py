"""Adding a plug-in kind is one module plus one registry line: this module is that module.

It defines a toy metric provider, a toy probe and a toy target (settings and
implementation each), registers each with one line, and shows that the estate
accepts them, its schema and its validation errors list them, and primum uses
them. Nothing under ``src/`` names them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from primum.adapters.probes import ProbeContext, run_gate
from primum.adapters.probes.context import Probe, result
from primum.adapters.probes.registry import PROBES
from primum.adapters.providers.base import Scope
from primum.adapters.providers.collect import collect
from primum.adapters.providers.registry import PROVIDERS, provider_for
from primum.adapters.targets.noop import NoopTarget
from primum.adapters.targets.registry import TARGETS, Targets
from primum.core.analysis.data import ProbeResult, Samples
from primum.core.model.actions import VersionRef
from primum.core.model.analysis import MetricSpec, SourceSpec
from primum.core.model.capabilities import TRAFFIC, Capability
from primum.core.model.errors import InputError
from primum.core.model.estate import Estate, TargetSpec
from primum.core.model.plugins import PluginSpec
from primum.core.model.validate import estate_from_document, runtime_spec
from primum.core.model.yamlfile import parse_yaml

# ------------------------------------------------------------------ a toy provider


class ConstantSource(SourceSpec):
    """A constant series (a toy provider for tests)."""

    type: Literal["constant"] = "constant"
    value: float = 1.0


class ConstantProvider:
    name = "constant"

    def fetch(self, metric: MetricSpec, scope: Scope) -> Samples:
        assert isinstance(metric.source, ConstantSource)
        bump = 1.0 if scope.role == "canary" else 0.0
        return Samples(values=[metric.source.value + bump] * 20, source=f"constant {metric.source.value}")


# ------------------------------------------------------------------ a toy probe


class AlwaysProbe(PluginSpec):
    """A probe that answers what it is told (a toy probe for tests)."""

    type: Literal["always"] = "always"
    ok: bool = True


def _always(spec: AlwaysProbe, ctx: ProbeContext) -> ProbeResult:
    return result("always", "nowhere", spec.ok, f"told to answer {spec.ok}", 0.0)


# ------------------------------------------------------------------ a toy target


class ToySettings(TargetSpec):
    """An in-memory target (a toy target for tests)."""

    type: Literal["toy"] = "toy"
    capabilities: ClassVar[frozenset[Capability]] = TRAFFIC
    colour: str = "blue"


class ToyTarget(NoopTarget):
    name = "toy"


@pytest.fixture()
def registered() -> Iterator[None]:
    # the three registry lines
    PROVIDERS.add(ConstantSource, ConstantProvider)
    PROBES.add(AlwaysProbe, Probe(_always, lambda spec, ctx: "nowhere"))
    TARGETS.add(ToySettings, lambda home, estate: ToyTarget())
    yield
    PROVIDERS.remove("constant")
    PROBES.remove("always")
    TARGETS.remove("toy")


ESTATE = """
apiVersion: primum/v1
kind: Estate
name: toy-estate
environments: [{name: staging, class: nonprod}]
services:
  api:
    owner: team
    tier: internal
    data_class: none
    target: {type: toy, colour: green, replicas: 2}
    analysis:
      metrics:
        - {name: level, kind: value, source: {type: constant, value: 3.0}}
    probes:
      - {name: ready, probe: {type: always}}
    strategy: {type: canary, steps: [{set_weight: 50}, {analysis: {duration: 5s}}]}
"""


def _estate(text: str = ESTATE) -> Estate:
    return estate_from_document(parse_yaml(text, "estate.yaml"))


def test_the_estate_accepts_registered_kinds_and_primum_uses_them(registered: None, tmp_path: Path) -> None:
    estate = _estate()
    svc = estate.services["api"]
    assert isinstance(svc.target, ToySettings) and svc.target.colour == "green"
    assert isinstance(svc.analysis.metrics[0].source, ConstantSource)
    # the provider answers through the registry ...
    metric = svc.analysis.metrics[0]
    scope = Scope("staging", "api", "canary", "2.0", "sha256:" + "0" * 64, 0.0, 5.0)
    assert provider_for(metric.source).fetch(metric, scope).values[0] == 4.0
    data = collect(svc.analysis, env="staging", service="api", baseline=VersionRef(digest="sha256:" + "1" * 64,
                   artifact="/a/1"), canary=VersionRef(digest="sha256:" + "2" * 64, artifact="/a/2"), start=0.0,
                   end=5.0, tenants=[], router_url=None, slo_error_rate=None, slo_p95_s=None)
    assert data.metrics["level"].canary.values[:1] == [4.0]
    # ... so do the probe and the target
    assert run_gate(svc.probes[0], ProbeContext()).ok
    targets = Targets(tmp_path)
    assert isinstance(targets.for_service(estate, "api"), ToyTarget)
    assert runtime_spec(estate, "staging", "api").replicas == 2
    # a stored estate round-trips with the toy kinds' own fields
    again = Estate.model_validate(json.loads(estate.model_dump_json(by_alias=True)))
    assert again == estate


def test_schema_and_errors_list_registered_kinds(registered: None) -> None:
    schema = json.dumps(Estate.model_json_schema(by_alias=True))
    for tag in ("constant", "always", "toy"):
        assert f'"const": "{tag}"' in schema
    with pytest.raises(InputError) as caught:
        _estate(ESTATE.replace("type: toy", "type: mainframe"))
    [problem] = caught.value.problems
    assert "'mainframe' is not a known target" in problem.render()
    assert f"use one of: {', '.join(TARGETS.tags())}" in problem.render()  # every registered kind, toy included
    assert "toy" in TARGETS.tags()
    assert problem.path == "services.api.target.type"


class ApplyOnlySettings(TargetSpec):
    """A target that can only apply a version and revert it (a toy for tests, like an SSH host)."""

    type: Literal["apply-only-toy"] = "apply-only-toy"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.apply})


def test_a_strategy_the_target_cannot_carry_out_is_a_validation_error_naming_the_field(registered: None) -> None:
    TARGETS.add(ApplyOnlySettings, lambda home, estate: ToyTarget())
    try:
        with pytest.raises(InputError) as caught:
            _estate(ESTATE.replace("type: toy, colour: green, replicas: 2", "type: apply-only-toy"))
        [problem] = caught.value.problems
        assert problem.path == "services.api.strategy.type"
        assert problem.line == 17  # the line of `strategy:`
        assert "strategy canary needs a target that can do weighted-split; target apply-only-toy can do apply" \
            in problem.message
        assert "use a strategy target apply-only-toy supports (apply)" in problem.fix
        for strategy in ("blue_green", "rolling"):
            with pytest.raises(InputError) as caught:
                _estate(ESTATE.replace("type: toy, colour: green, replicas: 2", "type: apply-only-toy")
                        .replace("{type: canary, steps: [{set_weight: 50}, {analysis: {duration: 5s}}]}",
                                 f"{{type: {strategy}}}"))
            assert caught.value.problems[0].path == "services.api.strategy.type"
    finally:
        TARGETS.remove("apply-only-toy")


def test_an_unregistered_kind_is_a_validation_error_naming_the_field() -> None:
    with pytest.raises(InputError) as caught:
        _estate()  # nothing registered the toy kinds here
    rendered = [p.render() for p in caught.value.problems]
    assert any("'toy' is not a known target" in r for r in rendered), rendered
    assert any("'constant' is not a known metric source" in r for r in rendered), rendered
    assert any("'always' is not a known probe" in r for r in rendered), rendered


ARCHITECTURE_DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"


def regenerate_docs_tables(path: Path = ARCHITECTURE_DOC) -> None:
    """Rewrite each registry's table in docs/ARCHITECTURE.md: ``.venv/bin/python tests/test_plugins.py``."""
    lines = path.read_text().split("\n")
    for registry in (TARGETS, PROVIDERS, PROBES):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"| {registry.kind.field}.type |"))
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[start:end] = registry.docs_table().split("\n")
    path.write_text("\n".join(lines))


def test_docs_tables_come_from_the_registries() -> None:
    text = ARCHITECTURE_DOC.read_text()
    for registry in (TARGETS, PROVIDERS, PROBES):
        assert registry.docs_table() in text, \
            f"the {registry.kind.what} table in docs/ARCHITECTURE.md drifted: run python tests/test_plugins.py"


def test_plugins_command_lists_every_kind_with_the_docs_data() -> None:
    """`primum plugins --output json` prints the registries (the same entries the docs tables come from)."""
    from typer.testing import CliRunner

    from primum.cli.main import app

    result = CliRunner().invoke(app, ["plugins", "--output", "json"])
    assert result.exit_code == 0, result.output
    catalog = json.loads(result.output)
    assert [e["type"] for e in catalog["targets"]] == TARGETS.tags()
    assert [e["type"] for e in catalog["providers"]] == PROVIDERS.tags()
    assert [e["type"] for e in catalog["probes"]] == PROBES.tags()
    by_type = {e["type"]: e for e in catalog["targets"]}
    assert by_type["ssh"]["capabilities"] == ["apply"] and by_type["ssh"]["strategies"] == ["apply"]
    assert by_type["local"]["strategies"] == ["canary", "blue_green", "rolling"]
    assert all("capabilities" not in e for e in catalog["providers"] + catalog["probes"])
    table = CliRunner().invoke(app, ["plugins"])
    assert table.exit_code == 0 and "capabilities: apply; strategies: apply" in table.output


if __name__ == "__main__":
    regenerate_docs_tables()
