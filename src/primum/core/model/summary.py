"""A release as `primum history` and `primum status` list it, read from its persisted status document.

This reads the JSON that the controller persists (``RolloutStatus.model_dump(mode="json")``, every field
present) as plain data instead of validating it into the pydantic models: listing releases is the most
frequent command, and building the status models costs more than a tenth of a second of its start-up
(``bench/cli_startup.py``). ``tests/model/test_summary.py`` checks it against the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def release_summary(*, release_id: str, digest: str, phase: str, estate_name: str, created_at: float,
                    status: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of one release: its state, reason and, per environment and service, what happened."""
    environments: dict[str, dict[str, Any]] = {}
    for item in status.get("items", ()):
        stable = item.get("stable")
        environments.setdefault(item["env"], {})[item["service"]] = {
            "state": item["phase"],
            "version": item["new"].get("label", ""),
            "digest": item["new"]["digest"],
            "previous": stable["digest"] if stable else None,
            "message": item.get("failure") or item.get("message", ""),
            "verdicts": [{"result": v["result"], "reason": v["reason"]} for v in item.get("verdicts", ())],
        }
    return {
        "id": release_id,
        "digest": digest,
        "state": phase,
        "reason": status.get("reason") or status.get("pause_reason"),
        "estate": estate_name,
        "environments": environments,
        "created_at": created_at,
        "finished_at": status.get("finished_at"),
    }
