"""The light read model of `primum history` against the status models it stands in for."""

from __future__ import annotations

from typing import Any

import pytest

from primum.core.model.rollout import RolloutStatus
from primum.core.model.summary import release_summary
from tests.engine.estate_fixture import estate
from tests.engine.test_decide import status_for
from tests.engine.world import Behaviour, World, ref


def summary_through_the_models(status: RolloutStatus, *, phase: str) -> dict[str, Any]:
    """What `primum history --output json` printed before the light read model: built from the models."""
    environments: dict[str, dict[str, Any]] = {}
    for item in status.items:
        environments.setdefault(item.env, {})[item.service] = {
            "state": item.phase.value, "version": item.new.label, "digest": item.new.digest,
            "previous": item.stable.digest if item.stable else None, "message": item.failure or item.message,
            "verdicts": [{"result": v.result.value, "reason": v.reason} for v in item.verdicts],
        }
    return {"id": status.release_id, "digest": status.digest, "state": phase,
            "reason": status.reason or status.pause_reason, "estate": "hospital", "environments": environments,
            "created_at": status.created_at, "finished_at": status.finished_at}


def world() -> World:
    w = World(estate())
    for env in ("staging", "prod"):
        w.deploy(env, "sched", ref("sched", "1.0"))
        w.deploy(env, "fhir", ref("fhir", "1.0"))
    return w


@pytest.mark.parametrize("case", ["planned", "promoted", "rolled_back", "paused_midway"])
def test_the_summary_reads_the_persisted_document_as_the_models_do(case: str) -> None:
    w = world()
    new = ref("sched", "2.0")
    versions = {"sched": new} if case == "rolled_back" else {"sched": new, "fhir": ref("fhir", "2.0")}
    status = status_for(w, versions)
    if case == "rolled_back":
        w.behaviour[new.key] = Behaviour(error_rate=0.3)
    if case == "paused_midway":
        status = w.run(status, until=lambda s: s.ticks >= 40)
    elif case != "planned":
        status = w.run(status)
    document = status.model_dump(mode="json")  # what the store persists
    got = release_summary(release_id=status.release_id, digest=status.digest, phase=status.phase.value,
                          estate_name="hospital", created_at=status.created_at, status=document)
    assert got == summary_through_the_models(status, phase=status.phase.value)
    if case == "rolled_back":
        assert got["state"] == "rolled_back" and "error-rate" in got["reason"]
        assert got["environments"]["staging"]["sched"]["verdicts"][-1]["result"] == "fail"
    if case == "promoted":
        assert got["environments"]["prod"]["sched"]["previous"] == ref("sched", "1.0").digest
