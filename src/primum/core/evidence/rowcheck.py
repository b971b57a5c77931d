"""Does every store row that must be evidenced have its entry in the log? The matching, pure.

The log is what a signature and the signed checkpoints vouch for; the store's tables (events,
approvals, break-glass uses and their reviews) are what the gate and the reports read. A row
inserted by hand has no signed statement behind it, so ``evidence verify`` matches every such row
with the statement recorded when it was written, by content, never by an unsigned column alone:

- an event row is recorded by the entry whose ``event_id`` column names it, and that entry's signed
  statement must be the one the row's content makes (:func:`event_fingerprint`) about its release;
- an approval, rejection, break-glass use or completed review is recorded by an ``approval``,
  ``rejection``, ``break_glass`` or ``review`` event statement of the same release, person, digest
  and time (:func:`claim_of_statement` and the ``*_claim`` functions build the same key from both
  sides). Each statement vouches for one row only.

An entry whose envelope was purged under retention keeps only its unsigned columns (release, kind,
time): a row whose statement was purged is matched by those, and counted apart.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from primum.core.evidence.events import event_to_statement
from primum.core.evidence.statements import PRIMUM_EVENT_V1, rfc3339

# Any subject will do: the fingerprint covers the predicate; the release is compared apart.
_ANY_SUBJECT = [{"name": "release:-", "digest": {"sha256": "0" * 64}}]
GOVERNANCE_KINDS = ("approval", "rejection", "break_glass", "review")

Claim = tuple[Any, ...]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def statement_fingerprint(stmt: Mapping[str, Any]) -> bytes:
    """SHA-256 of the statement's predicate type and predicate (its subjects are compared apart)."""
    return hashlib.sha256(_canonical([stmt.get("predicateType"), stmt.get("predicate")])).digest()


def event_fingerprint(*, kind: str, message: str, at: float, env: str | None, service: str | None,
                      data: Mapping[str, Any] | None) -> bytes:
    """The fingerprint of the statement an event row with this content was recorded as."""
    return statement_fingerprint(event_to_statement(_ANY_SUBJECT, kind=kind, message=message, at=at, env=env,
                                                    service=service, data=data))


def release_of(stmt: Mapping[str, Any]) -> str | None:
    """The release a statement is about (its ``release:<id>`` subject), or None."""
    for subject in stmt.get("subject") or ():
        name = subject.get("name") if isinstance(subject, Mapping) else None
        if isinstance(name, str) and name.startswith("release:"):
            return name.removeprefix("release:")
    return None


def logged_envelope_digest(stmt: Mapping[str, Any]) -> str | None:
    """The digest of the person's signed envelope an event statement logged (``data.envelope_digest``)."""
    predicate = stmt.get("predicate")
    data = predicate.get("data") if isinstance(predicate, Mapping) else None
    found = data.get("envelope_digest") if isinstance(data, Mapping) else None
    return found if isinstance(found, str) else None


def _roles(value: Any) -> tuple[str, ...]:
    return tuple(sorted(str(r) for r in value)) if isinstance(value, list | tuple) else ()


def approval_claim(*, rollout_id: str, decision: str, env: str, actor: str, digest: str, at: float,
                   roles: Sequence[str], expires_at: float | None) -> Claim:
    """The key an approvals row and its event statement share (the comment is not in it: the event's
    copy is redacted, the row's may not be)."""
    kind = "approval" if decision == "approve" else "rejection"
    return (kind, rollout_id, env, actor, digest, rfc3339(at), _roles(roles),
            None if expires_at is None else float(expires_at))


def break_glass_claim(*, rollout_id: str, use_id: int, actor: str, digest: str, at: float) -> Claim:
    return ("break_glass", rollout_id, int(use_id), actor, digest, rfc3339(at))


def review_claim(*, rollout_id: str, use_id: int, actor: str, at: float) -> Claim:
    return ("review", rollout_id, int(use_id), actor, rfc3339(at))


def purged_claim(kind: str, rollout_id: str | None, at: float) -> Claim:
    """What is left to match of a purged governance entry: its unsigned kind, release and time."""
    return ("purged", kind, rollout_id, rfc3339(at))


def claim_of_statement(stmt: Mapping[str, Any]) -> Claim | None:
    """The governance claim a signed event statement records, or None when it records none."""
    if stmt.get("predicateType") != PRIMUM_EVENT_V1:
        return None
    p = stmt.get("predicate")
    if not isinstance(p, Mapping) or p.get("kind") not in GOVERNANCE_KINDS:
        return None
    raw = p.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    release = release_of(stmt)
    kind, at, actor = p["kind"], p.get("at"), p.get("actor") or data.get("actor")
    try:
        if kind in ("approval", "rejection"):
            expires = data.get("expires_at")
            return (kind, release, p.get("env") or "", actor, data.get("digest"), at, _roles(data.get("roles")),
                    None if expires is None else float(expires))
        if kind == "break_glass":
            return (kind, release, int(data["review"]), actor, data.get("digest"), at)
        return (kind, release, int(data["review"]), actor, at)
    except (KeyError, TypeError, ValueError):
        return None  # not a statement of a governance row: it vouches for none


@dataclass(frozen=True)
class Unmatched:
    """A store row with no statement in the log; ``what`` names it for a person."""

    what: str
    claim: Claim


@dataclass
class ClaimLedger:
    """The governance claims the log's statements make, each usable once."""

    signed: Counter[Claim]
    purged: Counter[Claim]

    @classmethod
    def empty(cls) -> ClaimLedger:
        return cls(Counter(), Counter())

    def add(self, claim: Claim) -> None:
        self.signed[claim] += 1

    def add_purged(self, kind: str, rollout_id: str | None, at: float) -> None:
        if kind in GOVERNANCE_KINDS:
            self.purged[purged_claim(kind, rollout_id, at)] += 1

    def take(self, claim: Claim, *, at: float) -> str | None:
        """Use the statement making ``claim``: "signed", "purged" (its entry was purged), or None."""
        if self.signed[claim] > 0:
            self.signed[claim] -= 1
            return "signed"
        fallback = purged_claim(claim[0], claim[1], at)
        if self.purged[fallback] > 0:
            self.purged[fallback] -= 1
            return "purged"
        return None


def unmatched_rows(rows: Iterable[tuple[str, Claim, float]], ledger: ClaimLedger) -> tuple[list[Unmatched], int]:
    """The rows (name, claim, time) no statement vouches for, and how many matched a purged entry."""
    missing: list[Unmatched] = []
    purged = 0
    for what, claim, at in rows:
        found = ledger.take(claim, at=at)
        if found is None:
            missing.append(Unmatched(what, claim))
        elif found == "purged":
            purged += 1
    return missing, purged


def gaps(indices: Iterable[int], size: int) -> list[tuple[int, int]]:
    """The missing index ranges ``[lo, hi)`` of a log of ``size`` entries, given the indices present (sorted)."""
    out: list[tuple[int, int]] = []
    expected = 0
    for i in indices:
        if i > expected:
            out.append((expected, min(i, size)))
        expected = max(expected, i + 1)
    if expected < size:
        out.append((expected, size))
    return [g for g in out if g[0] < g[1]]


def describe_gaps(missing: Sequence[tuple[int, int]], size: int, limit: int = 3) -> str:
    """'entry 17 is missing (entries 16 and 18 are present)', and the like, for the first few gaps."""
    parts = []
    for lo, hi in missing[:limit]:
        what = f"entry {lo} is missing" if hi - lo == 1 else f"entries {lo} to {hi - 1} are missing"
        around = [f"entry {lo - 1}" if lo > 0 else "", f"entry {hi}" if hi < size else ""]
        present = [a for a in around if a]
        if len(present) == 2:
            where = f"entries {lo - 1} and {hi} are present"
        elif present:
            where = f"{present[0]} is present" + (f"; the log head says {size} entries" if hi == size else "")
        else:
            where = f"none of the {size} entries the log head counts is present"
        parts.append(f"{what} ({where})")
    more = len(missing) - limit
    return "; ".join(parts) + (f"; and {more} more gap(s)" if more > 0 else "")

