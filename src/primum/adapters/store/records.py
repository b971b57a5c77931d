"""Plain records returned by the store. JSON columns come back as dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACTIVE_PHASES = ("pending", "running", "paused")


def pinned_artifacts(release: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Service -> ``{"digest", "version"}`` of a stored release document (``RolloutRecord.release``)."""
    services = release.get("release", {}).get("services", {})
    return {name: {"digest": pin.get("digest", ""), "version": pin.get("version", "")}
            for name, pin in services.items()}
TERMINAL_PHASES = ("promoted", "rolled_back", "failed", "denied")


@dataclass(frozen=True)
class NewRollout:
    id: str  # the release id
    digest: str  # canonical release digest "sha256:..."
    estate_name: str
    estate_digest: str
    services: tuple[str, ...]  # services the release changes (for conflict checks)
    estate: dict[str, Any]
    release: dict[str, Any]
    status: dict[str, Any]  # engine.RolloutStatus dumped to JSON
    phase: str = "pending"


@dataclass(frozen=True)
class RolloutRecord:
    id: str
    digest: str
    estate_name: str
    estate_digest: str
    services: tuple[str, ...]
    estate: dict[str, Any]
    release: dict[str, Any]
    status: dict[str, Any]
    phase: str
    created_at: float
    updated_at: float
    next_due_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    fencing_token: int
    revision: int

    @property
    def artifacts(self) -> dict[str, dict[str, str]]:
        """Service -> ``{"digest", "version"}`` pinned by this release."""
        return pinned_artifacts(self.release)


@dataclass(frozen=True)
class Lease:
    """A controller's ownership of one rollout. ``token`` is the fencing token."""

    rollout: RolloutRecord
    owner: str
    token: int
    expires_at: float


@dataclass(frozen=True)
class EventRecord:
    id: int
    rollout_id: str
    at: float
    kind: str
    env: str | None
    service: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewEvent:
    kind: str
    message: str
    env: str | None = None
    service: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandRecord:
    id: int
    rollout_id: str
    kind: str  # "promote" | "abort" | "retry"
    actor: str
    created_at: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalRecord:
    id: int
    rollout_id: str
    env: str
    digest: str
    actor: str
    decision: str  # "approve" | "reject"
    comment: str
    roles: tuple[str, ...]
    owned_services: tuple[str, ...]
    at: float
    expires_at: float | None
    envelope: dict[str, Any] | None = None  # the approver's signed DSSE envelope
    event_id: int | None = None  # the event that logged it


@dataclass(frozen=True)
class BreakGlassRecord:
    id: int
    rollout_id: str
    digest: str
    actor: str
    justification: str
    at: float
    review_due_at: float
    notified: str
    reviewed_at: float | None
    reviewed_by: str | None
    review_notes: str | None
    envelope: dict[str, Any] | None = None
    event_id: int | None = None
