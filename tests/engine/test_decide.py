"""Table-driven and scenario tests of the pure decision function."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from primum.core.engine.decide import Observations, decide
from primum.core.engine.planner import plan
from primum.core.model.release import ArtifactPin, Release, canonical_digest
from primum.core.model.rollout import Command, ItemPhase, RolloutPhase, VerdictResult

from .estate_fixture import estate
from .world import Behaviour, World, ref

ENVS = ["staging", "prod"]


def status_for(world: World, versions: dict, envs=ENVS, rid="rel-1"):
    release = Release.model_validate({
        "apiVersion": "primum/v1", "kind": "Release", "id": rid,
        "services": {name: ArtifactPin(artifact=v.artifact, digest=v.digest, version=v.label).model_dump()
                     for name, v in versions.items()},
    })
    return plan(world.estate, release, canonical_digest(release), versions, envs, world.now)


@pytest.fixture
def world():
    w = World(estate())
    for env in ENVS:
        w.deploy(env, "fhir", ref("fhir", "1.0"))
        w.deploy(env, "sched", ref("sched", "1.0"))
        w.deploy(env, "portal", ref("portal", "1.0"), replicas=2)
        w.deploy(env, "hl7", ref("hl7", "1.0"), replicas=3)
        w.deploy(env, "manual", ref("manual", "1.0"))
    return w


def test_healthy_canary_is_promoted_through_every_environment(world):
    new = ref("sched", "2.0")
    final = world.run(status_for(world, {"sched": new}))
    assert final.phase is RolloutPhase.promoted
    for env in ENVS:
        assert world.route(env, "sched") == {new.key: 100}
        assert world.running(env, "sched") == {new.key: 1}  # the old version was stopped
    weights_seen = [a.weights.get(new.key) for d in world.history for a in d.actions if a.kind == "set_route"]
    assert {25, 100} <= set(weights_seen)
    assert all(v.result is VerdictResult.passed for i in final.items for v in i.verdicts)


@pytest.mark.parametrize("behaviour, words", [
    (Behaviour(error_rate=0.3), "error-rate"),
    (Behaviour(latency_s=0.6), "latency"),
])
def test_regressed_canary_is_rolled_back_in_staging_and_never_reaches_prod(world, behaviour, words):
    old, new = ref("sched", "1.0"), ref("sched", "2.0")
    world.behaviour[new.key] = behaviour
    final = world.run(status_for(world, {"sched": new}))
    assert final.phase is RolloutPhase.rolled_back
    assert words in final.reason
    staging, prod = final.items
    assert staging.phase is ItemPhase.rolled_back and prod.phase is ItemPhase.not_started
    assert staging.verdicts[-1].result is VerdictResult.failed
    assert world.route("staging", "sched") == {old.key: 100}
    assert world.running("staging", "sched") == {old.key: 1}
    assert world.running("prod", "sched") == {old.key: 1}


def test_unreadable_metrics_are_errors_and_roll_back_after_the_consecutive_error_limit(world):
    world.metrics = False
    new = ref("sched", "2.0")
    final = world.run(status_for(world, {"sched": new}))
    assert final.phase is RolloutPhase.rolled_back
    assert "errored 5 time(s) in a row (limit 4)" in final.reason
    assert "simulated: no metrics" in final.reason
    staging = final.items[0]
    assert staging.verdicts[-1].result is VerdictResult.failed
    assert [m.outcome for m in staging.verdicts[-1].measurements] == ["Error"] * 5
    assert world.route("staging", "sched") == {ref("sched", "1.0").key: 100}


def test_too_little_data_is_inconclusive_and_pauses_for_a_person(world):
    world.rate = 1.0  # 25% of 1 rps for 10 s: about 2 requests
    new = ref("sched", "2.0")
    status = world.run(status_for(world, {"sched": new}), until=lambda s: s.phase is RolloutPhase.paused)
    assert "inconclusive" in status.pause_reason
    assert status.items[0].verdicts[-1].result is VerdictResult.inconclusive
    # it stays paused, holding the canary weight, until a person decides
    for _ in range(5):
        status = world.tick(status).status
    assert status.phase is RolloutPhase.paused
    assert world.route("staging", "sched")[new.key] == 25
    world.commands = [Command(id=1, kind="abort", actor="dr-ops")]
    final = world.run(status)
    assert final.phase is RolloutPhase.rolled_back and "aborted by dr-ops" in final.reason


def test_measurement_semantics_count_and_failure_limit(world):
    """count 3 with failure_limit 1: one failed measurement is tolerated, the second rolls back."""
    from primum.core.model.analysis import AnalysisSettings, EarlySettings
    new = ref("sched", "2.0")
    world.behaviour[new.key] = Behaviour(error_rate=0.3)
    status = status_for(world, {"sched": new}, envs=["staging"])
    item = status.items[0]
    # the window's semantics: no early look (30% errors would be a gross failure; see test_early.py)
    item.analysis = AnalysisSettings(count=3, failure_limit=1, initial_delay=0.5, early=EarlySettings(enabled=False))
    final = world.run(status)
    assert final.phase is RolloutPhase.rolled_back
    verdict = final.items[0].verdicts[-1]
    assert [m.outcome for m in verdict.measurements] == ["Failed", "Failed"]
    assert "2 measurements failed (limit 1)" in final.reason
    analysis_events = [e for d in world.history for e in d.events if e.kind == "analysis"]
    assert [e.data["measurement"] for e in analysis_events] == [1, 2]
    assert all(e.data["count"] == 3 and e.data["report"]["outcome"] == "Failed" for e in analysis_events)


def test_each_measurement_judges_its_own_interval(world):
    from primum.core.model.analysis import AnalysisSettings
    new = ref("sched", "2.0")
    status = status_for(world, {"sched": new}, envs=["staging"])
    status.items[0].analysis = AnalysisSettings(count=2, initial_delay=1.0)
    final = world.run(status)
    assert final.phase is RolloutPhase.promoted
    first, second = final.items[0].verdicts[0].measurements
    assert second.start >= first.end - 1e-9  # consecutive, not overlapping
    assert abs((first.end - first.start) - 5.0) < 1.01  # 10 s step / 2 measurements


def test_promote_ends_a_manual_pause(world):
    new = ref("manual", "2.0")
    status = world.run(status_for(world, {"manual": new}, envs=["staging"]),
                       until=lambda s: s.phase is RolloutPhase.paused)
    assert "manual pause" in status.pause_reason
    world.commands = [Command(id=7, kind="promote", actor="alice")]
    decision = world.tick(status)
    assert 7 in decision.consumed
    final = world.run(decision.status)
    assert final.phase is RolloutPhase.promoted
    assert world.route("staging", "manual") == {new.key: 100}


def test_failure_rolls_back_earlier_services_of_the_environment_in_reverse_order(world):
    fhir, sched, portal = ref("fhir", "2.0"), ref("sched", "2.0"), ref("portal", "2.0")
    world.behaviour[portal.key] = Behaviour(error_rate=0.5)
    final = world.run(status_for(world, {"portal": portal, "sched": sched, "fhir": fhir}))
    assert [(i.env, i.service) for i in final.items[:3]] == [("staging", "fhir"), ("staging", "sched"),
                                                             ("staging", "portal")]
    assert final.phase is RolloutPhase.rolled_back
    assert [i.phase for i in final.items] == [ItemPhase.rolled_back] * 3 + [ItemPhase.not_started] * 3
    rollbacks = [e.service for d in world.history for e in d.events if e.kind == "rollback_started"]
    assert rollbacks == ["portal", "sched", "fhir"]
    for svc, v in (("fhir", "1.0"), ("sched", "1.0"), ("portal", "1.0")):
        assert world.route("staging", svc) == {ref(svc, v).key: 100}


def test_blue_green_switches_back_at_once_when_post_switch_analysis_fails(world):
    old, new = ref("portal", "1.0"), ref("portal", "2.0")
    # healthy on preview traffic, then the regression shows under full load
    status = world.run(status_for(world, {"portal": new}, envs=["staging"]),
                       until=lambda s: s.items[0].weight == 100 and s.items[0].step_index >= 5)
    assert world.running("staging", "portal") == {old.key: 2, new.key: 2}  # old kept warm
    world.behaviour[new.key] = Behaviour(error_rate=0.4)
    final = world.run(status)
    assert final.phase is RolloutPhase.rolled_back
    assert world.route("staging", "portal") == {old.key: 100}


def test_blue_green_healthy_keeps_old_version_for_the_scale_down_delay(world):
    new = ref("portal", "2.0")
    final = world.run(status_for(world, {"portal": new}, envs=["staging"]))
    assert final.phase is RolloutPhase.promoted
    assert world.running("staging", "portal") == {new.key: 2}
    preview_routes = [a.preview for d in world.history for a in d.actions if a.kind == "set_route"]
    assert new.key in preview_routes
    kinds = [e.data.get("step", {}).get("kind") for d in world.history for e in d.events if e.kind == "step"]
    assert kinds.index("wait") < len(kinds) - 1  # the delay precedes the final scale-down


def test_rolling_never_drops_below_replicas_minus_max_unavailable(world):
    new = ref("hl7", "2.0")
    status = status_for(world, {"hl7": new}, envs=["staging"])
    lowest = 3
    while status.phase not in (RolloutPhase.promoted, RolloutPhase.rolled_back):
        status = world.tick(status).status
        running = world.running("staging", "hl7")
        lowest = min(lowest, sum(running.values()))
        routed = world.route("staging", "hl7")
        assert all(running.get(k, 0) > 0 for k in routed), "traffic routed to a version with no instance"
    assert status.phase is RolloutPhase.promoted
    assert lowest >= 2
    assert world.running("staging", "hl7") == {new.key: 3}


def test_first_deployment_has_no_stable_version():
    w = World(estate())
    new = ref("fhir", "1.0")
    final = w.run(status_for(w, {"fhir": new}, envs=["staging"]))
    assert final.phase is RolloutPhase.promoted
    assert final.items[0].stable is None
    assert w.route("staging", "fhir") == {new.key: 100}


def test_a_version_already_running_is_skipped(world):
    final = world.run(status_for(world, {"fhir": ref("fhir", "1.0")}))
    assert final.phase is RolloutPhase.promoted
    assert all(i.phase is ItemPhase.skipped for i in final.items)


def test_a_version_that_cannot_start_rolls_back_with_the_reason(world):
    new = ref("sched", "2.0")
    status = status_for(world, {"sched": new}, envs=["staging"])
    status = world.tick(status).status  # begins: scale new=1
    obs = world.target.observe(world.spec("staging", "sched"))
    failed = obs.model_copy(update={"versions": {
        **obs.versions,
        new.key: obs.versions[new.key].model_copy(update={"ready": 0, "failed": 1,
                                                          "error": "digest mismatch for x"}),
    }})
    decision = decide(status, Observations(now=world.now + 1, services={"staging/sched": failed}))
    assert decision.status.items[0].phase is ItemPhase.rolling_back
    assert "digest mismatch" in decision.status.reason


def test_a_stuck_scale_times_out_and_rolls_back(world):
    new = ref("sched", "2.0")
    status = status_for(world, {"sched": new}, envs=["staging"])
    status = world.tick(status).status
    obs = world.target.observe(world.spec("staging", "sched"))
    stuck = obs.model_copy(update={"versions": {k: v for k, v in obs.versions.items() if k != new.key}})
    decision = decide(status, Observations(now=world.now + 500, services={"staging/sched": stuck}))
    assert "timed out" in decision.status.reason


def test_blocked_release_waits_for_the_earlier_one(world):
    status = status_for(world, {"sched": ref("sched", "2.0")})
    world.blocked_by = ["rel-0"]
    for _ in range(3):
        status = world.tick(status).status
    assert status.phase is RolloutPhase.pending and "rel-0" in status.pause_reason
    world.blocked_by = []
    assert world.run(status).phase is RolloutPhase.promoted


def test_decide_does_not_mutate_its_input(world):
    status = status_for(world, {"sched": ref("sched", "2.0")})
    before = status.model_dump_json()
    obs = Observations(now=world.now, services={"staging/sched": world.target.observe(world.spec("staging", "sched"))})
    decide(status, obs)
    assert status.model_dump_json() == before


def test_commands_after_the_end_are_consumed_and_ignored(world):
    final = world.run(status_for(world, {"sched": ref("sched", "2.0")}, envs=["staging"]))
    d = decide(final, Observations(now=world.now, commands=[Command(id=3, kind="abort", actor="x")]))
    assert d.consumed == [3] and d.status.phase is RolloutPhase.promoted and d.actions == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lost=st.sets(st.integers(min_value=1, max_value=120), max_size=40), bad=st.booleans())
def test_lost_actions_never_leave_traffic_split(lost, bad):
    """A crash between persisting and acting loses that tick's actions; the next tick repairs it."""
    w = World(estate())
    for env in ENVS:
        w.deploy(env, "sched", ref("sched", "1.0"))
        w.deploy(env, "fhir", ref("fhir", "1.0"))
    new = ref("sched", "2.0")
    if bad:
        w.behaviour[new.key] = Behaviour(error_rate=0.5)
    w.drop_actions = set(lost)
    final = w.run(status_for(w, {"sched": new, "fhir": ref("fhir", "2.0")}))
    assert final.phase is (RolloutPhase.rolled_back if bad else RolloutPhase.promoted)
    for env in ENVS:
        route = w.route(env, "sched")
        assert len(route) == 1 and next(iter(route.values())) == 100  # never left split
        assert w.running(env, "sched").keys() == route.keys()


def gated(world: World, when: list[str], attempts: int = 2):
    from primum.core.model.analysis import HttpProbe, ProbeGate
    new = ref("sched", "2.0")
    status = status_for(world, {"sched": new}, envs=["staging"])
    status.items[0].probes = [ProbeGate(name="slots", probe=HttpProbe(path="/slots"), when=when, attempts=attempts,
                                        interval=0.5)]
    return new, status


def test_a_before_gate_probes_the_preview_before_any_traffic_moves(world):
    new, status = gated(world, ["before"])
    final = world.run(status)
    assert final.phase is RolloutPhase.promoted
    [(_, gate, weights, preview)] = world.probes_run
    assert gate == "slots" and preview == new.key and not weights.get(new.key)  # preview only, no weight yet
    assert any(v.kind == "probe" and v.result is VerdictResult.passed for v in final.items[0].verdicts)


def test_a_failing_before_gate_retries_then_rolls_back_without_the_canary_taking_traffic(world):
    new, status = gated(world, ["before"], attempts=2)
    world.probe_ok["slots"] = [False, False]
    final = world.run(status)
    assert final.phase is RolloutPhase.rolled_back
    assert "probe gate slots failed: simulated failure of slots (after 2 attempt(s))" in final.reason
    assert len(world.probes_run) == 2
    weights_seen = [a.weights.get(new.key, 0) for d in world.history for a in d.actions if a.kind == "set_route"]
    assert max(weights_seen) == 0
    assert world.route("staging", "sched") == {ref("sched", "1.0").key: 100}


def test_an_after_gate_runs_with_all_traffic_on_the_new_version_and_passes_on_a_retry(world):
    new, status = gated(world, ["after"], attempts=3)
    world.probe_ok["slots"] = [False, True]
    final = world.run(status)
    assert final.phase is RolloutPhase.promoted
    assert [w.get(new.key) for _, _, w, _ in world.probes_run] == [100, 100]
    # the old version was still running while the gate ran, and only stopped afterwards
    assert world.running("staging", "sched") == {new.key: 1}


def test_inconclusive_limit_tolerates_inconclusive_measurements():
    """inconclusive_limit 1 with count 2: one inconclusive measurement does not pause."""
    from primum.core.model.analysis import AnalysisSettings
    w = World(estate())
    w.deploy("staging", "sched", ref("sched", "1.0"))
    w.rate = 1.0  # too few samples: every measurement is inconclusive
    status = status_for(w, {"sched": ref("sched", "2.0")}, envs=["staging"])
    status.items[0].analysis = AnalysisSettings(count=2, inconclusive_limit=1, initial_delay=0.5)
    paused = w.run(status, until=lambda s: s.phase is RolloutPhase.paused)
    outcomes = [m.outcome for m in paused.items[0].verdicts[-1].measurements]
    assert outcomes == ["Inconclusive", "Inconclusive"]  # the first was tolerated; the second exceeded the limit


def test_governance_blocks_prod_until_the_gate_opens(world):
    from primum.core.model.rollout import Gate
    new = ref("sched", "2.0")
    world.gates["prod"] = Gate(allowed=False, reason="waiting for approval in prod: needs 2 approval(s)",
                               blocked_by="approvals", change_class="high-impact")
    status = world.run(status_for(world, {"sched": new}),
                       until=lambda s: s.items[0].phase is ItemPhase.succeeded and s.pause_reason is not None)
    for _ in range(20):
        status = world.tick(status).status
    assert status.phase is RolloutPhase.running
    assert status.pause_reason == "prod: waiting for approval in prod: needs 2 approval(s)"
    assert status.items[1].phase is ItemPhase.pending
    assert world.route("prod", "sched") == {ref("sched", "1.0").key: 100}  # prod untouched
    assert world.events().count("blocked") == 1  # said once, not every tick
    world.gates["prod"] = Gate(allowed=True, reason="2 of 2 approval(s)")
    final = world.run(status)
    assert final.phase is RolloutPhase.promoted and final.pause_reason is None
    assert ("prod", True) in world.gate_asks


def test_a_policy_denial_ends_the_release_and_keeps_what_passed(world):
    from primum.core.model.rollout import Gate
    new = ref("sched", "2.0")
    world.gates["prod"] = Gate(allowed=False, reason="release has no ticket", blocked_by="policy",
                               change_class="high-impact")
    final = world.run(status_for(world, {"sched": new}))
    assert final.phase is RolloutPhase.denied
    assert final.reason == "policy denies prod: release has no ticket"
    assert [i.phase for i in final.items] == [ItemPhase.succeeded, ItemPhase.not_started]
    assert world.route("staging", "sched") == {new.key: 100}
    assert world.route("prod", "sched") == {ref("sched", "1.0").key: 100}


def test_a_closing_window_holds_an_in_flight_rollout_and_a_rollback_is_never_gated(world):
    from primum.core.model.rollout import Gate
    new = ref("sched", "2.0")
    status = world.run(status_for(world, {"sched": new}, envs=["staging"]),
                       until=lambda s: s.items[0].weight == 25)
    world.gates["staging"] = Gate(allowed=False, reason="the year-end freeze started", blocked_by="window")
    for _ in range(30):
        status = world.tick(status).status
    assert status.pause_reason == "staging: held in flight: the year-end freeze started"
    assert world.route("staging", "sched")[new.key] == 25  # desired state kept while held
    # a person aborts during the hold: the rollback runs although the window is still closed
    world.commands = [Command(id=3, kind="abort", actor="dr-ops")]
    asked = len(world.gate_asks)
    ticks = len(world.history)
    final = world.run(status)
    assert final.phase is RolloutPhase.rolled_back
    assert world.route("staging", "sched") == {ref("sched", "1.0").key: 100}
    assert len(world.history) - ticks > 3
    assert len(world.gate_asks) - asked == 1  # only the tick that took the abort; none while rolling back
