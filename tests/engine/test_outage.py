"""Metrics outages and dead-on-arrival versions (issue 12, items 4 and 5), through the simulated world.

An outage: the metrics providers fail mid-analysis. The new version's traffic goes to 0 at once, the
providers are retried on a short backoff, and the item rolls back beyond ``consecutive_error_limit``
or, when data returns, goes back to its step's weight and restarts its window. Never a promotion on
missing data.

Dead on arrival: a version whose instances never pass their health check ends ``rolled_back`` with
"never became healthy", stopped, and the rollback never waits for it.
"""

from __future__ import annotations

import pytest

from primum.core.engine.outage import RETRY_CAP_S, attempts_allowed, retry_delay
from primum.core.model.analysis import AnalysisSettings
from primum.core.model.rollout import Analyze, ItemPhase, RolloutPhase, RolloutStatus, Scale

from .estate_fixture import estate
from .test_decide import ENVS, status_for
from .world import World, ref


@pytest.fixture
def w() -> World:
    world = World(estate())
    for env in ENVS:
        world.deploy(env, "sched", ref("sched", "1.0"))
        world.deploy(env, "fhir", ref("fhir", "1.0"))
        world.deploy(env, "portal", ref("portal", "1.0"), replicas=2)
        world.deploy(env, "hl7", ref("hl7", "1.0"), replicas=3)
    return world


def held(status: RolloutStatus) -> bool:
    item = status.active_item()
    return item is not None and item.outage is not None


def analysing(status: RolloutStatus, baseline: str = "concurrent") -> bool:
    """The active item is inside an analysis window (past its initial delay)."""
    item = status.active_item()
    step = item.current_step() if item else None
    return (item is not None and isinstance(step, Analyze) and step.baseline == baseline
            and item.interval_start is not None and item.outage is None)


def messages(world: World, kind: str) -> list[str]:
    return [e.message for d in world.history for e in d.events if e.kind == kind]


# ------------------------------------------------------------------ backoff


def test_the_backoff_is_seconds_growing_and_capped_never_a_window() -> None:
    assert [retry_delay(n, 45.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, RETRY_CAP_S, RETRY_CAP_S]
    assert retry_delay(5, 3.0) == 3.0  # never longer than the step's own interval
    assert attempts_allowed(4) == 5


# ------------------------------------------------------------------ outage


def test_an_outage_moves_all_traffic_to_the_stable_version_at_once_and_rolls_back_within_seconds(w: World) -> None:
    old, new = ref("sched", "1.0"), ref("sched", "2.0")
    status = w.run(status_for(w, {"sched": new}), until=analysing)
    w.metrics = False
    status = w.run(status, until=held)
    first_error = w.now
    # the hold's desired state was applied in the same tick: no traffic on the new version
    assert w.route("staging", "sched") == {old.key: 100}
    assert status.phase is RolloutPhase.running
    assert "metrics unavailable" in (status.pause_reason or "")
    [outage] = messages(w, "metrics_outage")
    assert "25% -> 0%" in outage and "retrying the providers in 1s" in outage
    while held(status):
        assert w.route("staging", "sched") == {old.key: 100}  # held there on every tick
        status = w.tick(status).status
    final = w.run(status)
    assert final.phase is RolloutPhase.rolled_back
    assert "errored 5 time(s) in a row (limit 4)" in final.reason
    assert w.now - first_error < 25  # 1 + 2 + 4 + 8 s of backoff (plus the rollback), not four more windows
    analysis = [e for d in w.history for e in d.events if e.kind == "analysis"]
    assert [(e.data["measurement"], e.data["attempt"]) for e in analysis] == [(1, n) for n in range(1, 6)]
    assert "measurement 1/1, attempt 3 of 5 errored (provider error: " in analysis[2].message
    finished = [e.data["step"]["kind"] for d in w.history for e in d.events if e.kind == "step_finished"]
    assert "promoted" not in w.events() and "analyze" not in finished  # never passed on missing data
    staging, prod = final.items
    assert [(m.index, m.attempt, m.outcome) for m in staging.verdicts[-1].measurements] == \
        [(1, n, "Error") for n in range(1, 6)]
    assert prod.phase is ItemPhase.not_started
    assert w.running("staging", "sched") == {old.key: 1}


def test_when_metrics_return_the_canary_goes_back_to_its_weight_and_the_window_restarts(w: World) -> None:
    new = ref("sched", "2.0")
    status = w.run(status_for(w, {"sched": new}, envs=["staging"]), until=analysing)
    w.metrics = False
    status = w.run(status, until=lambda s: held(s) and s.items[0].consecutive_errors == 3)
    w.metrics = True
    status = w.run(status, until=lambda s: not held(s))
    restored_at = w.now
    [restored] = messages(w, "metrics_restored")
    assert "back to 25%" in restored and "restarts its window" in restored
    assert w.route("staging", "sched")[new.key] == 25
    assert status.pause_reason is None and status.items[0].pause_reason is None
    final = w.run(status)
    assert final.phase is RolloutPhase.promoted
    first = final.items[0].verdicts[0]
    assert [(m.index, m.attempt, m.outcome) for m in first.measurements] == \
        [(1, 1, "Error"), (1, 2, "Error"), (1, 3, "Error"), (1, 1, "Successful")]
    # the passing measurement is a fresh, full window after the hold (and the initial delay)
    window = first.measurements[-1]
    assert window.start >= restored_at - 1.0 and window.end - window.start >= 10.0 - 1e-6
    weights = [a.weights.get(new.key) for d in w.history for a in d.actions if a.kind == "set_route"]
    assert weights.index(0) < len(weights) - weights[::-1].index(25) - 1  # 25 -> 0 -> 25 again


def test_a_flapping_metrics_source_rolls_back_instead_of_restarting_the_window_for_ever(w: World) -> None:
    """The providers answer for a few seconds, then fail again, over and over: every window restarts and
    none is ever watched through. Beyond ``outage_limit`` outages in one step the item rolls back."""
    old, new = ref("sched", "1.0"), ref("sched", "2.0")
    status = w.run(status_for(w, {"sched": new}, envs=["staging"]), until=analysing)
    for _ in range(10):
        if status.phase in (RolloutPhase.rolled_back, RolloutPhase.promoted):
            break
        w.metrics = False
        status = w.run(status, until=lambda s: held(s) or s.phase is RolloutPhase.rolled_back)
        if status.phase is RolloutPhase.rolled_back:
            break
        w.metrics = True
        status = w.run(status, until=lambda s: not held(s))
        status = w.run(status, until=lambda s: analysing(s) or s.phase is RolloutPhase.rolled_back)
    final = w.run(status)
    assert final.phase is RolloutPhase.rolled_back
    assert "metrics flapping: the providers failed 4 time(s) during this analysis step (limit 3)" in final.reason
    assert len(messages(w, "metrics_outage")) == 3 and len(messages(w, "metrics_restored")) == 3
    assert "promoted" not in w.events()
    assert w.route("staging", "sched") == {old.key: 100}


def test_an_outage_limit_of_zero_rolls_back_at_the_first_outage(w: World) -> None:
    new = ref("sched", "2.0")
    status = status_for(w, {"sched": new}, envs=["staging"])
    status.items[0].analysis = status.items[0].analysis.model_copy(update={"outage_limit": 0})
    status = w.run(status, until=analysing)
    w.metrics = False
    final = w.run(status)
    assert final.phase is RolloutPhase.rolled_back
    assert "metrics flapping: the providers failed 1 time(s) during this analysis step (limit 0)" in final.reason
    assert not messages(w, "metrics_outage")  # rolled back at once, no hold and retries first
    with pytest.raises(ValueError):
        AnalysisSettings(outage_limit=-1)


def test_no_error_budget_rolls_back_at_the_first_error(w: World) -> None:
    status = status_for(w, {"sched": ref("sched", "2.0")}, envs=["staging"])
    status.items[0].analysis = AnalysisSettings(consecutive_error_limit=0, initial_delay=0.5)
    w.metrics = False
    final = w.run(status)
    assert final.phase is RolloutPhase.rolled_back and "errored 1 time(s) in a row (limit 0)" in final.reason
    assert messages(w, "metrics_outage") == []


def test_blue_green_goes_back_to_the_old_side_during_an_outage_after_the_switch(w: World) -> None:
    old, new = ref("portal", "1.0"), ref("portal", "2.0")
    status = w.run(status_for(w, {"portal": new}, envs=["staging"]), until=lambda s: analysing(s, "before"))
    assert w.route("staging", "portal") == {new.key: 100}
    w.metrics = False
    status = w.run(status, until=held)
    assert w.route("staging", "portal") == {old.key: 100}
    assert w.running("staging", "portal") == {old.key: 2, new.key: 2}  # the old side is still warm
    w.metrics = True
    status = w.run(status, until=lambda s: not held(s))
    assert w.route("staging", "portal") == {new.key: 100}
    final = w.run(status)
    assert final.phase is RolloutPhase.promoted
    assert w.running("staging", "portal") == {new.key: 2}


def test_rolling_puts_every_old_instance_back_under_all_traffic_during_an_outage(w: World) -> None:
    old, new = ref("hl7", "1.0"), ref("hl7", "2.0")
    status = w.run(status_for(w, {"hl7": new}, envs=["staging"]), until=analysing)
    assert w.running("staging", "hl7") == {old.key: 2, new.key: 1}
    w.metrics = False
    status = w.run(status, until=held)
    assert w.route("staging", "hl7") == {old.key: 100}
    assert w.running("staging", "hl7") == {old.key: 3, new.key: 1}  # full old capacity; new kept, idle
    w.metrics = True
    status = w.run(status, until=lambda s: not held(s))
    assert w.running("staging", "hl7") == {old.key: 2, new.key: 1}
    assert w.route("staging", "hl7") == {old.key: 67, new.key: 33}
    final = w.run(status)
    assert final.phase is RolloutPhase.promoted and w.running("staging", "hl7") == {new.key: 3}


def test_an_abort_during_an_outage_rolls_back_and_ends_the_hold(w: World) -> None:
    from primum.core.model.rollout import Command
    old = ref("sched", "1.0")
    status = w.run(status_for(w, {"sched": ref("sched", "2.0")}, envs=["staging"]), until=analysing)
    w.metrics = False
    status = w.run(status, until=held)
    w.commands = [Command(id=1, kind="abort", actor="dr-ops")]
    final = w.run(status)
    assert final.phase is RolloutPhase.rolled_back and "aborted by dr-ops" in final.reason
    assert final.items[0].outage is None and final.pause_reason is None
    assert w.route("staging", "sched") == {old.key: 100} and w.running("staging", "sched") == {old.key: 1}


# ------------------------------------------------------------ dead on arrival

HEALTH = "instance 0 of 2.0 (pid 4242) not healthy within 20s on /healthz (last: HTTP 500)"


@pytest.mark.parametrize("service, replicas", [("sched", 1), ("portal", 2), ("hl7", 3)])
def test_a_version_that_never_becomes_healthy_is_a_clean_rollback(w: World, service: str, replicas: int) -> None:
    """Canary, blue-green and rolling: the stable version was fine all along."""
    old, new = ref(service, "1.0"), ref(service, "2.0")
    w.unhealthy[new.key] = HEALTH
    final = w.run(status_for(w, {service: new}))
    assert final.phase is RolloutPhase.rolled_back, final.reason
    assert "never became healthy" in final.reason and HEALTH in final.reason
    staging, prod = final.items
    assert staging.phase is ItemPhase.rolled_back and prod.phase is ItemPhase.not_started
    assert "rollback_failed" not in w.events()
    assert w.running("staging", service) == {old.key: replicas}  # the dead version is stopped
    assert w.route("staging", service) == {old.key: 100}
    routed = {a.weights.get(new.key, 0) for d in w.history for a in d.actions if a.kind == "set_route"}
    assert routed == {0} and not any(a.preview for d in w.history for a in d.actions if a.kind == "set_route")
    # the rollback stops the dead version first and never waits for it to become healthy
    assert staging.steps[0] == Scale(new=0, stable=replicas)


def test_a_first_deployment_that_never_becomes_healthy_rolls_back_to_nothing() -> None:
    w = World(estate())
    new = ref("fhir", "1.0")
    w.unhealthy[new.key] = HEALTH
    final = w.run(status_for(w, {"fhir": new}, envs=["staging"]))
    assert final.phase is RolloutPhase.rolled_back and "never became healthy" in final.reason
    assert w.running("staging", "fhir") == {}


def test_a_version_that_times_out_starting_never_became_healthy(w: World) -> None:
    from primum.core.engine.decide import Observations, decide
    new = ref("sched", "2.0")
    status = w.tick(status_for(w, {"sched": new}, envs=["staging"])).status
    o = w.target.observe(w.spec("staging", "sched"))
    starting = o.model_copy(update={"versions": {**o.versions, new.key: o.versions[new.key].model_copy(
        update={"ready": 0, "starting": 1})}})
    d = decide(status, Observations(now=w.now + 500, services={"staging/sched": starting}))
    assert "2.0 (" in d.status.reason and "never became healthy: timed out after" in d.status.reason
    assert d.status.items[0].phase is ItemPhase.rolling_back


def test_a_rollback_after_traffic_does_not_wait_for_the_failed_version(w: World) -> None:
    """The new version took traffic, then crashed: its failure never blocks the stable version's return."""
    old, new = ref("sched", "1.0"), ref("sched", "2.0")
    status = w.run(status_for(w, {"sched": new}, envs=["staging"]), until=analysing)
    w.unhealthy[new.key] = "instance 0 of 2.0 died 3 times in 300s (exit 1)"
    final = w.run(status)
    assert final.phase is RolloutPhase.rolled_back, final.reason
    # the runtime's word that it stopped restarting the version is the reason, before any error rate
    assert "2.0 (" in final.reason and "failed: instance 0 of 2.0 died 3 times" in final.reason
    assert "never became healthy" not in final.reason  # it took traffic
    assert "rollback_failed" not in w.events()
    assert w.running("staging", "sched") == {old.key: 1} and w.route("staging", "sched") == {old.key: 100}


@pytest.mark.parametrize("service", ["sched", "portal", "hl7"])
def test_a_crash_loop_in_any_step_after_the_first_traffic_rolls_back_without_waiting_for_errors(
        w: World, service: str) -> None:
    """The router fails a dead version over, so no error rate may ever show: the crash loop alone
    must roll back (issue 13), and the rollback must not need the crashed version."""
    old, new = ref(service, "1.0"), ref(service, "2.0")
    status = w.run(status_for(w, {service: new}, envs=["staging"]),
                   until=lambda s: (s.active_item() is not None and s.active_item().weight > 0)
                   or s.phase in (RolloutPhase.rolled_back, RolloutPhase.promoted))
    assert status.phase is RolloutPhase.running
    w.unhealthy[new.key] = "crash loop: 3 instance deaths within 300s, not restarting"
    w.metrics = False  # no metric could tell: only the runtime knows
    final = w.run(status)
    assert final.phase is RolloutPhase.rolled_back, final.reason
    assert "failed: crash loop: 3 instance deaths" in final.reason
    assert "rollback_failed" not in w.events()
    replicas = {"sched": 1, "portal": 2, "hl7": 3}[service]
    assert w.running("staging", service) == {old.key: replicas} and w.route("staging", service) == {old.key: 100}
