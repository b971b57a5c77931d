"""The decision log, end to end: a policy decision is recorded once per change of its result or input.

Issue 12: while a release waited for approval, the same decision was logged and signed on every tick
(about 30 in 8 s). Through the real controller, store and baseline policy (``test_flow``'s World, no-op
target): a release waiting ~8 s for approval with the controller ticking every 0.25 s records ONE
``policy_decision`` for its environment; an approval is no policy input, so it starts the rollout without
a new decision; new CI evidence for the artifact is a new input, so it records one more, once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from primum.app.evidence import EvidenceService
from primum.core.model.rollout import RolloutStatus
from tests.governance.test_flow import Clock, World, at, waiting

JUNIT_PASS = Path(__file__).parent.parent / "evidence" / "fixtures" / "ingest" / "junit-pass.xml"
TICK_S = 0.25  # the controller ticked about 4 times a second


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path, Clock(at("2026-11-24T15:00:00")))  # a Tuesday afternoon: the change window is open
    yield w
    w.store.close()


def decisions(world: World, rid: str, env: str = "staging") -> list[dict[str, Any]]:
    return [e.data for e in world.store.events(rid) if e.kind == "policy_decision" and e.env == env]


def count_gates(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The environments of every gate the controller evaluated (so the test knows it ticked for real)."""
    seen: list[str] = []
    real: Callable[..., Any] = world.controller.gatekeeper.gate

    def spy(estate: Any, record: Any, env: str, **kw: Any) -> Any:
        if kw.get("starting"):
            seen.append(env)
        return real(estate, record, env, **kw)

    monkeypatch.setattr(world.controller.gatekeeper, "gate", spy)
    return seen


def tick_for(world: World, rid: str, seconds: float) -> RolloutStatus:
    """Tick every TICK_S for ``seconds`` of the clock, whether or not the rollout is due."""
    end = world.clock.now + seconds
    while world.clock.now < end:
        world.controller.tick()
        world.clock.now += TICK_S
    return world.status(rid)


def test_a_release_waiting_8s_for_approval_records_one_decision(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    gates = count_gates(world, monkeypatch)
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    recorded = len(world.store.events(rid))
    status = tick_for(world, rid, 8.0)
    assert waiting("staging")(status), status.pause_reason
    assert gates.count("staging") >= 30, f"the gate was evaluated {gates.count('staging')} times: not a real wait"
    assert [e.kind for e in world.store.events(rid)[recorded:]] == []  # nothing at all is signed on every tick
    [logged] = decisions(world, rid)
    assert logged["decision"]["allowed"] is True
    assert logged["fingerprint"].startswith("sha256:")
    assert world.store.verify_evidence().ok


def test_an_approval_starts_the_rollout_without_a_new_decision(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    tick_for(world, rid, 8.0)
    [logged] = decisions(world, rid)
    world.gov.record_decision(rid, "approve", caller=world.people("owen"))  # approvals are not a policy input
    status = world.run(rid, until=waiting("prod"))
    assert waiting("prod")(status), status.pause_reason
    assert decisions(world, rid) == [logged]
    assert len(decisions(world, rid, "prod")) == 1  # prod is another environment: its own decision


def test_new_ci_evidence_records_one_new_decision(world: World) -> None:
    rid = world.submit()
    world.run(rid, until=waiting("staging"))
    tick_for(world, rid, 4.0)
    [before] = decisions(world, rid)
    digest = world.store.get_rollout(rid).release["release"]["services"]["api"]["digest"]  # type: ignore[union-attr]
    EvidenceService(world.store, clock=world.clock).add(f"api@{digest}", JUNIT_PASS)  # a new input
    tick_for(world, rid, 4.0)
    after = decisions(world, rid)
    assert len(after) == 2 and after[0] == before
    assert after[1]["fingerprint"] != before["fingerprint"]
    assert after[1]["decision"]["allowed"] is True  # the same result on another input: recorded once more
    tick_for(world, rid, 4.0)
    assert len(decisions(world, rid)) == 2
