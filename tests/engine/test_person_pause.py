"""`primum pause` in the engine (issue 13 point 2): a person holds a running release at its current step,
keeping its traffic split; `primum promote` resumes it at that step (which starts again, nothing skipped);
a rollback is never held, and a crashed new version is rolled back even while paused."""

from __future__ import annotations

from primum.core.model.rollout import Analyze, Command, Gate, ItemPhase, RolloutPhase, RolloutStatus

from .test_decide import status_for
from .test_decide import world as world  # the fixture
from .world import World, ref


def _at_analysis(world: World) -> tuple[RolloutStatus, int]:
    new = ref("sched", "2.0")
    status = world.run(status_for(world, {"sched": new}, envs=["staging"]),
                       until=lambda s: s.items[0].phase is ItemPhase.progressing
                       and isinstance(s.items[0].current_step(), Analyze) and s.items[0].weight > 0)
    return status, status.items[0].step_index


def test_a_person_pauses_at_the_current_step_and_promote_resumes_it_there(world: World) -> None:
    status, index = _at_analysis(world)
    weight = status.items[0].weight
    world.commands = [Command(id=1, kind="pause", actor="kim")]
    decision = world.tick(status)
    paused = decision.status
    assert 1 in decision.consumed
    assert paused.phase is RolloutPhase.paused and paused.items[0].phase is ItemPhase.paused
    assert paused.items[0].paused_by == "kim" and paused.items[0].step_index == index
    assert "paused by kim at step" in (paused.pause_reason or "")
    assert "`primum promote` resumes it" in (paused.pause_reason or "")
    [event] = [e for e in decision.events if e.kind == "paused"]
    assert event.data["actor"] == "kim" and event.data["by_person"] is True
    for _ in range(40):  # minutes go by: the step does not advance, the split is kept
        paused = world.tick(paused).status
    assert paused.phase is RolloutPhase.paused and paused.items[0].step_index == index
    assert world.route("staging", "sched") == {ref("sched", "1.0").key: 100 - weight, ref("sched", "2.0").key: weight}

    world.commands = [Command(id=2, kind="promote", actor="rita")]
    decision = world.tick(paused)
    resumed = decision.status
    assert resumed.phase is RolloutPhase.running and resumed.items[0].phase is ItemPhase.progressing
    assert resumed.items[0].step_index == index, "promote resumes a person's pause; it never skips the step"
    assert resumed.items[0].paused_by is None and resumed.items[0].measurements == []  # the analysis starts again
    assert [e.message for e in decision.events if e.kind == "resumed"] == [
        "sched in staging: resumed by rita (paused by kim)"]
    assert not [e for e in decision.events if e.kind == "promoted_by_person"]
    assert world.run(resumed).phase is RolloutPhase.promoted


def test_a_pause_before_an_item_starts_holds_it_until_promote(world: World) -> None:
    new = ref("sched", "2.0")
    world.gates["staging"] = Gate(allowed=False, reason="waiting for approval", blocked_by="approvals")
    status = status_for(world, {"sched": new}, envs=["staging"])
    status = world.tick(status).status  # started; the item waits for its approvals
    assert status.phase is RolloutPhase.running and status.items[0].phase is ItemPhase.pending
    world.commands = [Command(id=1, kind="pause", actor="kim")]
    status = world.tick(status).status
    world.gates["staging"] = Gate(allowed=True, reason="approved")  # approved meanwhile: still held
    for _ in range(10):
        status = world.tick(status).status
    assert status.phase is RolloutPhase.paused and status.items[0].phase is ItemPhase.pending
    assert "paused by kim before it starts" in (status.pause_reason or "")
    assert world.route("staging", "sched") == {ref("sched", "1.0").key: 100}  # nothing was started
    world.commands = [Command(id=2, kind="promote", actor="kim")]
    assert world.run(status).phase is RolloutPhase.promoted


def test_a_pause_is_ignored_while_rolling_back_or_already_paused(world: World) -> None:
    status, _ = _at_analysis(world)
    world.commands = [Command(id=1, kind="abort", actor="kim"), Command(id=2, kind="pause", actor="otto")]
    decision = world.tick(status)
    assert [e.message for e in decision.events if e.kind == "command_ignored"] == [
        "pause by otto: the release is rolling back (a rollback is never held)"]
    assert world.run(decision.status).phase is RolloutPhase.rolled_back

    manual = ref("manual", "2.0")
    held = world.run(status_for(world, {"manual": manual}, envs=["staging"], rid="rel-2"),
                     until=lambda s: s.phase is RolloutPhase.paused)
    world.commands = [Command(id=3, kind="pause", actor="kim")]
    decision = world.tick(held)
    assert [e.message for e in decision.events if e.kind == "command_ignored"] == [
        "pause by kim: the release is already paused; nothing to pause"]
    assert decision.status.items[0].paused_by is None  # still the step's own pause: promote ends it


def test_a_crashed_canary_is_rolled_back_even_while_a_person_holds_it(world: World) -> None:
    status, _ = _at_analysis(world)
    world.commands = [Command(id=1, kind="pause", actor="kim")]
    status = world.tick(status).status
    assert status.phase is RolloutPhase.paused
    world.unhealthy[ref("sched", "2.0").key] = "crash loop (simulated)"
    final = world.run(status)
    assert final.phase is RolloutPhase.rolled_back and "crash loop" in (final.reason or "")
    assert world.route("staging", "sched") == {ref("sched", "1.0").key: 100}
