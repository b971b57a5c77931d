"""Release summaries for `primum history` and `primum status` without building the store when it can be
avoided (see :mod:`primum.adapters.store.listing`): the same rows either way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from primum.core.model.summary import release_summary

if TYPE_CHECKING:
    from primum.app.bootstrap import Primum

ACTIVE_PHASES = ("pending", "running", "paused")


def release_summaries(primum: Primum, *, limit: int = 50, phases: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Releases newest first (only those in ``phases`` if given), as `primum history --output json` prints them."""
    rows = None
    if "store" not in primum.__dict__:  # a store already open answers directly
        from primum.adapters.store.listing import list_rollout_rows

        rows = list_rollout_rows(primum.settings.database_url, limit=limit, phases=phases)
    if rows is None:
        return [release_summary(release_id=r.id, digest=r.digest, phase=r.phase, estate_name=r.estate_name,
                                created_at=r.created_at, status=r.status)
                for r in primum.store.list_rollouts(limit=limit, phases=phases)]
    return [release_summary(release_id=r["id"], digest=r["digest"], phase=r["phase"], estate_name=r["estate_name"],
                            created_at=r["created_at"], status=r["status"]) for r in rows]
