"""The apply strategy (apply-only targets) in the pure engine: its step program, its one-step revert, and
the hold for a person when the target is forward-only. Observations are written by hand, as a target
would report them; the real SSH target is tested in tests/targets/test_ssh.py."""

from __future__ import annotations

import pytest

import primum.adapters.targets.registry  # noqa: F401 - registers the ssh kind with the estate model
from primum.core.engine.decide import Observations, decide
from primum.core.engine.planner import plan
from primum.core.engine.strategies import compile_steps
from primum.core.model.actions import RouteObservation, ServiceObservation, VersionObservation
from primum.core.model.errors import InputError
from primum.core.model.release import ArtifactPin, Release, canonical_digest
from primum.core.model.rollout import Analyze, Command, Gate, ItemPhase, RolloutPhase, Route, Scale
from primum.core.model.validate import estate_from_document
from primum.core.model.yamlfile import parse_yaml

from .world import ref

ESTATE = """
apiVersion: primum/v1
kind: Estate
name: apply-hospital
environments: [{name: staging, class: nonprod}]
services:
  legacy:
    owner: integration
    tier: business
    data_class: none
    strategy: STRATEGY
    target:
      type: ssh
      host: 127.0.0.1
      user: deploy
      key: {from_env: SYNTHETIC_KEY}
      known_hosts: /nonexistent/known_hosts
      deploy: {run: "install {artifact}"}
REVERT"""


def _estate(strategy: str = "{type: apply}", revert: bool = True):
    text = ESTATE.replace("STRATEGY", strategy).replace(
        "REVERT", "      revert: {run: 'install-previous {artifact}'}\n" if revert else "")
    return estate_from_document(parse_yaml(text, "estate.yaml"))


def test_apply_compiles_to_scale_route_and_an_optional_analysis() -> None:
    assert compile_steps({"type": "apply"}, 2, has_stable=True) == [Scale(new=2, stable=0), Route(weight=100)]
    steps = compile_steps({"type": "apply", "post_analysis": 20}, 1, has_stable=True)
    assert steps == [Scale(new=1, stable=0), Route(weight=100), Analyze(duration=20, baseline="before")]


def test_a_traffic_strategy_on_an_apply_only_target_is_an_estate_error() -> None:
    with pytest.raises(InputError) as caught:
        _estate("{type: canary}")
    text = caught.value.problems[0].render()
    assert "estate.yaml" in text and "strategy.type" in text


def _observation(stable, new=None, failed: str | None = None) -> ServiceObservation:
    versions = {stable.key: VersionObservation(version=stable, desired=1, ready=1)}
    if new is not None:
        versions[new.key] = VersionObservation(version=new, desired=1, failed=1 if failed else 0,
                                               starting=0 if failed else 1, error=failed)
    return ServiceObservation(env="staging", service="legacy", versions=versions,
                              route=RouteObservation(weights={stable.key: 100}))


def _run_to_failure(revert: bool):
    estate = _estate(revert=revert)
    stable, new = ref("legacy", "1.0"), ref("legacy", "2.0")
    release = Release.model_validate({"apiVersion": "primum/v1", "kind": "Release", "id": "rel-1", "services": {
        "legacy": ArtifactPin(artifact=new.artifact, digest=new.digest, version=new.label).model_dump()}})
    status = plan(estate, release, canonical_digest(release), {"legacy": new}, ["staging"], 100.0)
    assert status.items[0].forward_only is (not revert)
    gates = {"staging": Gate(allowed=True, reason="test")}
    status = decide(status, Observations(now=101.0, services={"staging/legacy": _observation(stable)},
                                         gates=gates)).status
    assert status.items[0].current_step() == Scale(new=1, stable=0)
    failed = _observation(stable, new, failed="verify command exited 1 on ssh deploy@127.0.0.1:22")
    return decide(status, Observations(now=102.0, services={"staging/legacy": failed}, gates=gates))


def test_a_failed_apply_reverts_in_one_step() -> None:
    decision = _run_to_failure(revert=True)
    item = decision.status.items[0]
    assert item.phase is ItemPhase.rolling_back
    assert item.steps[0] == Scale(new=0, stable=1)  # revert to the stable version; nothing to drain
    assert "verify command exited 1" in (decision.status.reason or "")


def test_a_forward_only_target_holds_for_a_person_with_the_reason() -> None:
    decision = _run_to_failure(revert=False)
    status = decision.status
    assert status.phase is RolloutPhase.paused and status.items[0].phase is ItemPhase.paused
    assert "forward-only" in (status.pause_reason or "") and "verify command exited 1" in (status.pause_reason or "")
    assert not status.rollback_queue


def test_aborting_a_forward_only_hold_tries_the_revert_and_fails_for_a_person() -> None:
    decision = _run_to_failure(revert=False)
    stable, new = ref("legacy", "1.0"), ref("legacy", "2.0")
    gates = {"staging": Gate(allowed=True, reason="test")}
    no_revert = _observation(stable, new, failed="verify command exited 1")
    no_revert = no_revert.model_copy(update={"versions": {
        **no_revert.versions,
        stable.key: VersionObservation(version=stable, desired=1, failed=1, error="no revert command")}})
    status = decide(decision.status, Observations(now=103.0, services={"staging/legacy": no_revert}, gates=gates,
                                                  commands=[Command(id=1, kind="abort", actor="ops")])).status
    assert status.items[0].phase is ItemPhase.failed  # the revert was asked for, and the target cannot run it
    assert status.phase is RolloutPhase.failed and "no revert command" in (status.reason or "")
