"""Early decisions in the engine: a gross failure rolls back within seconds of the canary taking traffic;
anything else, and missing data, waits for the window, which alone can pass a version."""

from __future__ import annotations

import pytest

from primum.core.engine.decide import wanted_observations
from primum.core.model.analysis import AnalysisSettings, EarlySettings, JudgeMode
from primum.core.model.rollout import Analyze, ItemPhase, RolloutPhase, RolloutStatus, VerdictResult

from .estate_fixture import ESTATE, estate
from .test_decide import status_for
from .world import Behaviour, World, ref

# the setting for a clinical-critical service: 25% -> 45 s analysis -> 50% -> 45 s analysis
CLINICAL = ESTATE.replace("strategy: {type: canary, steps: [{set_weight: 25}, {analysis: {duration: 10s}}]}",
                          "strategy: {type: canary, steps: [{set_weight: 25}, {analysis: {duration: 45s}}, "
                          "{set_weight: 50}, {analysis: {duration: 45s}}]}")
OLD, NEW = ref("sched", "1.0"), ref("sched", "2.0")


@pytest.fixture
def world() -> World:
    w = World(estate(CLINICAL), rate=40.0)  # the demo's scheduling service: 40 requests/s
    for env in ("staging", "prod"):
        w.deploy(env, "sched", OLD)
    return w


def run_timed(world: World, status: RolloutStatus) -> tuple[RolloutStatus, float | None, float | None]:
    """Run to the end; return the final status, when the canary first took traffic and when the rollback
    began (the world's clock)."""
    took = began = None
    for _ in range(5000):
        decision = world.tick(status)
        status = decision.status
        if took is None and world.route("staging", "sched").get(NEW.key):
            took = world.now
        if began is None and any(e.kind == "rollback_started" for e in decision.events):
            began = world.now
        if status.phase.value in ("promoted", "rolled_back", "failed", "denied"):
            return status, took, began
    raise AssertionError("the rollout did not finish")


def early_events(world: World) -> list:
    return [e for d in world.history for e in d.events if e.kind == "analysis" and e.data.get("early")]


@pytest.mark.parametrize("behaviour, words", [
    (Behaviour(error_rate=0.6), "early rollback: error-rate "),
    (Behaviour(latency_s=0.1), "early rollback: latency median"),  # 5x the stable version's 20 ms
])
def test_a_gross_failure_rolls_back_within_seconds_of_taking_traffic(world, behaviour, words):
    world.behaviour[NEW.key] = behaviour
    final, took, began = run_timed(world, status_for(world, {"sched": NEW}))
    assert final.phase is RolloutPhase.rolled_back
    assert took is not None and began is not None
    assert began - took <= 10.0, f"rolled back {began - took:.1f}s after taking traffic"
    assert final.reason.startswith(f"sched in staging: analysis failed: {words}")
    assert "mSPRT, always-valid p < 0.001) after " in final.reason
    staging = final.items[0]
    assert staging.phase is ItemPhase.rolled_back and final.items[1].phase is ItemPhase.not_started
    verdict = staging.verdicts[-1]
    assert verdict.result is VerdictResult.failed and verdict.reason.startswith("early rollback: ")
    assert [m.outcome for m in verdict.measurements] == ["Failed"]
    assert verdict.window_end - verdict.window_start < 45.0  # the window had not ended
    (event,) = early_events(world)
    assert "ended early: early rollback" in event.message
    report = event.data["report"]
    assert report["outcome"] == "Failed" and any(r["classification"] == "High" for r in report["results"])
    assert world.route("staging", "sched") == {OLD.key: 100}


def test_a_healthy_version_is_looked_at_every_tick_and_promoted_by_its_windows(world):
    status = status_for(world, {"sched": NEW}, envs=["staging"])
    looks = 0
    while status.phase.value not in ("promoted", "rolled_back"):
        looks += sum(1 for w in wanted_observations(status, world.now) if w.early_from is not None)
        status = world.tick(status).status
    assert status.phase is RolloutPhase.promoted
    assert looks >= 60  # about one look a second through two 45 s windows
    assert not early_events(world)
    verdicts = status.items[0].verdicts
    assert [v.result for v in verdicts] == [VerdictResult.passed, VerdictResult.passed]


def test_a_moderate_regression_is_left_to_the_window(world):
    world.behaviour[NEW.key] = Behaviour(error_rate=0.03, latency_s=0.03)  # above the SLO, far from gross
    final, took, began = run_timed(world, status_for(world, {"sched": NEW}, envs=["staging"]))
    assert final.phase is RolloutPhase.rolled_back
    assert not early_events(world)
    assert took is not None and began is not None and began - took >= 45.0
    assert "early rollback" not in final.reason


def test_missing_data_never_rolls_back_early_the_error_limit_does(world):
    world.metrics = False
    world.behaviour[NEW.key] = Behaviour(error_rate=0.6)
    final, _, _ = run_timed(world, status_for(world, {"sched": NEW}, envs=["staging"]))
    assert final.phase is RolloutPhase.rolled_back
    assert not early_events(world)
    assert "errored 5 time(s) in a row" in final.reason


@pytest.mark.parametrize("settings", [
    AnalysisSettings(early=EarlySettings(enabled=False)),
    AnalysisSettings(mode=JudgeMode.kayenta),
])
def test_early_off_and_kayenta_mode_wait_for_the_window(world, settings):
    world.behaviour[NEW.key] = Behaviour(error_rate=0.6)
    status = status_for(world, {"sched": NEW}, envs=["staging"])
    status.items[0].analysis = settings
    asked = []
    for _ in range(200):
        asked += [w.early_from for w in wanted_observations(status, world.now) if w.early_from is not None]
        status = world.tick(status).status
        if status.phase is RolloutPhase.rolled_back:
            break
    assert status.phase is RolloutPhase.rolled_back
    assert not asked and not early_events(world)
    assert "early rollback" not in status.reason


def test_too_few_canary_samples_never_decide_early(world):
    world.rate = 8.0  # 2 canary requests a second
    world.behaviour[NEW.key] = Behaviour(error_rate=1.0)
    status = status_for(world, {"sched": NEW}, envs=["staging"])
    status.items[0].analysis = AnalysisSettings(early=EarlySettings(min_samples=200))
    final, took, began = run_timed(world, status)
    assert final.phase is RolloutPhase.rolled_back
    assert not early_events(world)  # 90 canary requests in the window: never the 200 asked for
    assert took is not None and began is not None and began - took >= 45.0


def test_the_early_look_measures_the_current_interval_until_it_is_due(world):
    status = status_for(world, {"sched": NEW}, envs=["staging"])
    status.items[0].analysis = AnalysisSettings(count=3)
    for _ in range(400):
        item = status.active_item()
        step = item.current_step() if item else None
        wanted = wanted_observations(status, world.now)
        if isinstance(step, Analyze) and item.interval_start is not None:
            (w,) = wanted
            due = world.now >= item.interval_start + step.interval
            assert (w.measure_from, w.early_from) == ((item.interval_start, None) if due
                                                      else (None, item.interval_start))
        status = world.tick(status).status
        if status.phase is RolloutPhase.promoted:
            return
    raise AssertionError("not promoted")
