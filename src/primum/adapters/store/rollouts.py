"""Rollouts, their leases with fencing tokens, and the operator commands queued for them.

A controller owns a rollout through a lease: ``claim_due`` hands out leases
carrying a fencing token drawn from one global counter, and ``persist`` writes
only while the lease is still held with that token. Two controller processes
therefore never both act on one rollout, on SQLite (``BEGIN IMMEDIATE``
serializes writers) and on PostgreSQL (``FOR UPDATE SKIP LOCKED`` plus fenced
``UPDATE ... WHERE``). Commands live here too: ``persist`` consumes them in the
same transaction, and a command arriving makes its rollout due at once.

This part derives from the events part because ``persist`` and ``reset`` write
their events in their own transaction, through its one write path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from primum.adapters.store.base import ReleaseConflict, RolloutLeased, RolloutNotFound
from primum.adapters.store.base import bind as _b
from primum.adapters.store.events import EventsPart
from primum.adapters.store.records import (
    ACTIVE_PHASES,
    TERMINAL_PHASES,
    CommandRecord,
    Lease,
    NewEvent,
    NewRollout,
    RolloutRecord,
)
from primum.adapters.store.tables import fence_sequence, rollout_commands, rollouts

_R = rollouts.c
_C = rollout_commands.c
_ROLLOUT_COLUMNS = tuple(rollouts.c)


def _phase_names(phases: Sequence[str]) -> list[ColumnElement[str]]:
    # The constant phase names are rendered into the SQL: an IN over bound values would
    # be re-expanded into the statement text on every execution.
    if not all(phase.isidentifier() for phase in phases):
        raise ValueError(f"phase names must be plain identifiers: {phases}")
    return [literal_column(f"'{phase}'") for phase in phases]


def _lease_free(now: ColumnElement[Any]) -> ColumnElement[bool]:
    return or_(_R.lease_owner.is_(None), _R.lease_expires_at.is_(None), _R.lease_expires_at < now)


def _lease_held_by(owner: ColumnElement[Any], now: ColumnElement[Any]) -> ColumnElement[bool]:
    return and_(_R.lease_owner == owner, _R.lease_expires_at >= now)


_ACTIVE = _R.phase.in_(_phase_names(ACTIVE_PHASES))

_GET_ROLLOUT = select(*_ROLLOUT_COLUMNS).where(_R.id == _b("id"))

# Parameters: b_limit, and b_phases (a list) for _LIST_ROLLOUTS_IN.
_LIST_ROLLOUTS = select(*_ROLLOUT_COLUMNS).order_by(_R.created_at.desc(), _R.id.desc()).limit(_b("limit", Integer()))
_LIST_ROLLOUTS_IN = _LIST_ROLLOUTS.where(_R.phase.in_(bindparam("b_phases", expanding=True)))

_EARLIER_ACTIVE = (
    select(*_ROLLOUT_COLUMNS)
    .where(
        _R.estate_name == _b("estate_name"),
        _R.phase.not_in(_phase_names(TERMINAL_PHASES)),
        _R.id != _b("id"),
        or_(
            _R.created_at < _b("created_at"),
            and_(_R.created_at == _b("created_at"), _R.id < _b("id")),
        ),
    )
    .order_by(_R.created_at, _R.id)
)

# Parameters: b_owner, b_now, b_limit.
_CLAIM_CANDIDATES = (
    select(_R.id, _R.lease_owner, _R.lease_expires_at, _R.fencing_token, _R.lease_renewed_at)
    .where(
        _ACTIVE,
        _R.next_due_at <= _b("now"),
        or_(_lease_free(_b("now")), _lease_held_by(_b("owner"), _b("now"))),
    )
    .order_by(_R.next_due_at, _R.id)
    .limit(_b("limit", Integer()))
)
_CLAIM_CANDIDATES_SKIP_LOCKED = _CLAIM_CANDIDATES.with_for_update(skip_locked=True)

# Parameters: b_id, b_owner, b_now, b_token, b_expires_at.
_RENEW_LEASE = (
    update(rollouts)
    .where(_R.id == _b("id"), _lease_held_by(_b("owner"), _b("now")), _R.fencing_token == _b("token"))
    .values(lease_expires_at=_b("expires_at"), lease_renewed_at=_b("now"))
    .returning(*_ROLLOUT_COLUMNS)
)

# Parameters: b_id, b_owner, b_now, b_token, b_expires_at. Re-checks every condition
# of the candidate SELECT: the row may have changed since.
_ACQUIRE_LEASE = (
    update(rollouts)
    .where(_R.id == _b("id"), _ACTIVE, _R.next_due_at <= _b("now"), _lease_free(_b("now")))
    .values(lease_owner=_b("owner"), lease_expires_at=_b("expires_at"), fencing_token=_b("token"),
            lease_renewed_at=_b("now"))
    .returning(*_ROLLOUT_COLUMNS)
)

_ISSUE_TOKENS = (
    update(fence_sequence)
    .where(fence_sequence.c.id == 1)
    .values(value=fence_sequence.c.value + _b("count"))
    .returning(fence_sequence.c.value)
)

# Parameters: b_id, b_owner, b_token, b_now, b_status, b_phase, b_next_due_at, b_expires_at.
_PERSIST = (
    update(rollouts)
    .where(
        _R.id == _b("id"),
        _R.lease_owner == _b("owner"),
        _R.fencing_token == _b("token"),
        _R.lease_expires_at >= _b("now"),
    )
    .values(
        status=_b("status"),
        phase=_b("phase"),
        next_due_at=_b("next_due_at"),
        updated_at=_b("now"),
        revision=_R.revision + 1,
        lease_expires_at=_b("expires_at"),
        lease_renewed_at=_b("now"),
    )
    .returning(_R.revision)
)

_COMMAND_SINCE = exists().where(_C.rollout_id == _b("id"), _C.consumed_at.is_(None), _C.created_at >= _b("since"))

# _PERSIST that also applies the command-arrived rule (see ``persist``), for SQLite
# only: a PostgreSQL UPDATE that waited for a row lock evaluates such a subquery with
# its old snapshot, blind to a command committed by the transaction it waited for.
# Parameters: those of _PERSIST and b_since; b_next_due_at must be later than b_now.
# Returns the revision and whether a command arrived (and made the rollout due now).
_PERSIST_WAKING = _PERSIST.values(
    next_due_at=case((_COMMAND_SINCE, _b("now")), else_=_b("next_due_at"))
).returning(_COMMAND_SINCE.label("arrived"))

_CONSUME_COMMANDS = (
    update(rollout_commands)
    .where(
        _C.rollout_id == _b("id"),
        _C.id.in_(bindparam("b_ids", expanding=True)),
        _C.consumed_at.is_(None),
    )
    .values(consumed_at=_b("now"))
)

_COMMAND_ARRIVED = select(_COMMAND_SINCE)

_DUE_NOW = update(rollouts).where(_R.id == _b("id")).values(next_due_at=_b("now"))

_RELEASE = (
    update(rollouts)
    .where(_R.id == _b("id"), _R.lease_owner == _b("owner"), _R.fencing_token == _b("token"))
    .values(lease_owner=None, lease_expires_at=None)
)

_PENDING_COMMANDS = (
    select(rollout_commands).where(_C.rollout_id == _b("id"), _C.consumed_at.is_(None)).order_by(_C.id)
)

_NEXT_DUE_AT = select(func.min(_R.next_due_at)).where(_ACTIVE)


def _rollout(row: Row[Any]) -> RolloutRecord:
    return RolloutRecord(
        id=row.id,
        digest=row.digest,
        estate_name=row.estate_name,
        estate_digest=row.estate_digest,
        services=tuple(row.services),
        estate=row.estate,
        release=row.release,
        status=row.status,
        phase=row.phase,
        created_at=row.created_at,
        updated_at=row.updated_at,
        next_due_at=row.next_due_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        fencing_token=row.fencing_token,
        revision=row.revision,
    )


def takeover_events(previous: Any, record: RolloutRecord, now: float) -> list[NewEvent]:
    """The evidence of a lease that expired in its holder's hands and was claimed by another controller.

    (A controller re-claiming its own expired lease is no takeover: its next tick simply came after the
    lease ran out, as a paused rollout's does when the lease is as short as the pause interval.)

    ``lease_lost``: whose lease expired, when it was last renewed and when it expired; ``lease_taken_over``:
    who holds it now and the takeover's duration, from the old holder's last renewal to this claim (the
    new holder's first tick). Recorded in the claim's transaction, so a takeover never goes unrecorded,
    even when the old holder was killed and can say nothing. (The data says "fence", not "token": the
    store redacts values under keys named like credentials.)
    """
    old, new = previous.lease_owner, record.lease_owner
    renewed = None if previous.lease_renewed_at is None else float(previous.lease_renewed_at)
    expired = None if previous.lease_expires_at is None else float(previous.lease_expires_at)
    took = None if renewed is None else round(now - renewed, 3)
    last = "an unknown time" if renewed is None else f"{took:.1f} s"
    return [
        NewEvent(kind="lease_lost", message=f"controller {old} lost its lease (fence {previous.fencing_token}): it "
                 f"expired {now - (expired or now):.1f} s ago without renewal, {last} after its last renewal",
                 data={"owner": old, "fence": int(previous.fencing_token), "last_renewed_at": renewed,
                       "expired_at": expired, "noticed_by": new, "noticed_at": now}),
        NewEvent(kind="lease_taken_over", message=f"lease taken over by controller {new} (fence "
                 f"{record.fencing_token}) from {old}: {last} without a holder since its last renewal",
                 data={"owner": new, "fence": int(record.fencing_token), "previous_owner": old,
                       "previous_fence": int(previous.fencing_token), "last_renewed_at": renewed,
                       "previous_expired_at": expired, "taken_at": now, "takeover_s": took}),
    ]


def _command(row: Row[Any]) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        rollout_id=row.rollout_id,
        kind=row.kind,
        actor=row.actor,
        created_at=row.created_at,
        payload=row.payload or {},
    )


class RolloutsPart(EventsPart):
    """Create, read, lease, persist, release and reset rollouts; queue and read their commands."""

    def create_rollout(self, new: NewRollout, now: float) -> tuple[RolloutRecord, bool]:
        """Store a new rollout, due at once; resubmitting the same release is a no-op."""
        try:
            return self._create_rollout(new, now)
        except IntegrityError:
            # Another process inserted the same id between our read and our insert.
            return self._create_rollout(new, now)

    def _create_rollout(self, new: NewRollout, now: float) -> tuple[RolloutRecord, bool]:
        with self._engine.begin() as conn:
            existing = conn.execute(_GET_ROLLOUT, {"b_id": new.id}).first()
            if existing is not None:
                if existing.digest != new.digest:
                    raise ReleaseConflict(new.id, existing.digest, new.digest)
                return _rollout(existing), False
            row = conn.execute(
                insert(rollouts)
                .values(
                    id=new.id,
                    digest=new.digest,
                    estate_name=new.estate_name,
                    estate_digest=new.estate_digest,
                    services=list(new.services),
                    estate=new.estate,
                    release=new.release,
                    status=new.status,
                    phase=new.phase,
                    created_at=now,
                    updated_at=now,
                    next_due_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    fencing_token=0,
                    revision=0,
                )
                .returning(*_ROLLOUT_COLUMNS)
            ).one()
            return _rollout(row), True

    def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        with self._reader.connect() as conn:
            row = conn.execute(_GET_ROLLOUT, {"b_id": rollout_id}).first()
        return None if row is None else _rollout(row)

    def list_rollouts(self, limit: int = 100, phases: Sequence[str] | None = None) -> list[RolloutRecord]:
        """Rollouts, newest first, optionally only those in ``phases``."""
        query = _LIST_ROLLOUTS
        params: dict[str, Any] = {"b_limit": limit}
        if phases is not None:
            query = _LIST_ROLLOUTS_IN
            params["b_phases"] = list(phases)
        with self._reader.connect() as conn:
            return [_rollout(row) for row in conn.execute(query, params)]

    def earlier_active(self, rollout: RolloutRecord) -> list[RolloutRecord]:
        """Unfinished rollouts of the same estate, created before ``rollout``, sharing a service."""
        params = {"b_estate_name": rollout.estate_name, "b_id": rollout.id, "b_created_at": rollout.created_at}
        services = set(rollout.services)
        with self._reader.connect() as conn:
            candidates = [_rollout(row) for row in conn.execute(_EARLIER_ACTIVE, params)]
        return [other for other in candidates if services.intersection(other.services)]

    # leases

    def claim_due(self, owner: str, now: float, ttl: float, limit: int = 50) -> list[Lease]:
        """Lease active rollouts that are due and free (or already ours), soonest first.

        A newly acquired lease gets a fresh fencing token, greater than any issued
        before; renewing a lease we still hold keeps its token. ``owner`` must be
        unique per controller process. Claiming a lease that expired in another
        holder's hands records ``lease_lost`` and ``lease_taken_over`` events (with
        the takeover's duration) in the same transaction: :func:`takeover_events`.
        """
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        if limit <= 0:
            return []
        query = _CLAIM_CANDIDATES_SKIP_LOCKED if self._postgres else _CLAIM_CANDIDATES
        expires_at = now + ttl
        leases: list[Lease] = []
        with self._write() as conn:
            candidates = conn.execute(query, {"b_owner": owner, "b_now": now, "b_limit": limit}).all()
            renewing = {
                row.id
                for row in candidates
                if row.lease_owner == owner and row.lease_expires_at is not None and row.lease_expires_at >= now
            }
            tokens = self._issue_tokens(conn, len(candidates) - len(renewing))
            for row in candidates:
                params = {"b_id": row.id, "b_owner": owner, "b_now": now, "b_expires_at": expires_at}
                if row.id in renewing:
                    params["b_token"] = row.fencing_token
                    claimed = conn.execute(_RENEW_LEASE, params).first()
                else:
                    params["b_token"] = next(tokens)
                    claimed = conn.execute(_ACQUIRE_LEASE, params).first()
                if claimed is not None:
                    record = _rollout(claimed)
                    leases.append(Lease(record, owner, record.fencing_token, expires_at))
                    if row.id not in renewing and row.lease_owner not in (None, owner):
                        self._insert_events(conn, record.id, takeover_events(row, record, now), now, record)
        return leases

    @staticmethod
    def _issue_tokens(conn: Connection, count: int) -> Iterator[int]:
        """Reserve ``count`` consecutive fencing tokens from the global counter."""
        if count == 0:
            return iter(())
        top = conn.execute(_ISSUE_TOKENS, {"b_count": count}).scalar_one()
        return iter(range(top - count + 1, top + 1))

    def persist(
        self,
        lease: Lease,
        *,
        status: dict[str, Any],
        phase: str,
        next_due_at: float,
        now: float,
        ttl: float,
        events: Sequence[NewEvent] = (),
        consumed_commands: Sequence[int] = (),
    ) -> Lease | None:
        """Write the new state, events and consumed commands in one transaction.

        Only while ``lease`` is still held with its token and unexpired; otherwise
        writes nothing and returns None. On success returns the extended lease.
        """
        rollout_id = lease.rollout.id
        expires_at = now + ttl
        params = {
            "b_id": rollout_id,
            "b_owner": lease.owner,
            "b_token": lease.token,
            "b_now": now,
            "b_status": status,
            "b_phase": phase,
            "b_next_due_at": next_due_at,
            "b_expires_at": expires_at,
        }
        # A command added while we held the lease must not wait for next_due_at: that is
        # checked after consuming commands, or (SQLite, the usual tick consuming none) in
        # the UPDATE itself, as BEGIN IMMEDIATE keeps every other writer out until COMMIT.
        check_arrived = next_due_at > now
        one_statement = check_arrived and not consumed_commands and not self._postgres
        with self._write() as conn:
            # Only the revision comes back: everything else written here is known, and
            # re-reading the estate and release JSON on every tick would dominate its cost.
            if one_statement:
                params["b_since"] = lease.rollout.updated_at
                row = conn.execute(_PERSIST_WAKING, params).first()
                if row is None:
                    return None
                revision = row.revision
                if row.arrived:
                    next_due_at = now
                check_arrived = False
            else:
                revision = conn.execute(_PERSIST, params).scalar()
                if revision is None:
                    return None
            self._insert_events(conn, rollout_id, events, now, lease.rollout)
            if consumed_commands:
                conn.execute(_CONSUME_COMMANDS, {"b_id": rollout_id, "b_ids": list(consumed_commands), "b_now": now})
            if check_arrived and self._command_arrived(conn, rollout_id, lease):
                conn.execute(_DUE_NOW, {"b_id": rollout_id, "b_now": now})
                next_due_at = now
        record = dataclasses.replace(
            lease.rollout,
            status=status,
            phase=phase,
            next_due_at=next_due_at,
            updated_at=now,
            revision=int(revision),
            lease_expires_at=expires_at,
        )
        return Lease(record, lease.owner, lease.token, expires_at)

    @staticmethod
    def _command_arrived(conn: Connection, rollout_id: str, lease: Lease) -> bool:
        """Is a command pending that arrived since the state this lease last read?"""
        params = {"b_id": rollout_id, "b_since": lease.rollout.updated_at}
        return bool(conn.execute(_COMMAND_ARRIVED, params).scalar())

    def release(self, lease: Lease) -> None:
        """Give up the lease, if it is still ours with this token."""
        with self._engine.begin() as conn:
            conn.execute(_RELEASE, {"b_id": lease.rollout.id, "b_owner": lease.owner, "b_token": lease.token})

    def reset(
        self, rollout_id: str, *, status: dict[str, Any], phase: str, now: float, event: NewEvent
    ) -> RolloutRecord:
        """Replace a rollout's state (``retry``) and make it due now.

        Refused with RolloutLeased while an active rollout is leased by a live
        controller. Any lease left is cleared, so its holder can no longer persist.
        """
        query = select(_R.phase, _R.lease_owner, _R.lease_expires_at).where(_R.id == rollout_id)
        if self._postgres:
            query = query.with_for_update()
        with self._write() as conn:
            current = conn.execute(query).first()
            if current is None:
                raise RolloutNotFound(rollout_id)
            live = (
                current.lease_owner is not None
                and current.lease_expires_at is not None
                and current.lease_expires_at >= now
            )
            if live and current.phase not in TERMINAL_PHASES:
                raise RolloutLeased(rollout_id, current.lease_owner, current.lease_expires_at)
            row = conn.execute(
                update(rollouts)
                .where(_R.id == rollout_id)
                .values(
                    status=status,
                    phase=phase,
                    next_due_at=now,
                    updated_at=now,
                    revision=_R.revision + 1,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                .returning(*_ROLLOUT_COLUMNS)
            ).one()
            self._insert_events(conn, rollout_id, [event], now)
        return _rollout(row)

    # commands

    def add_command(
        self,
        rollout_id: str,
        kind: str,
        actor: str,
        now: float,
        payload: dict[str, Any] | None = None,
        event: NewEvent | None = None,
    ) -> CommandRecord:
        """Queue an operator command and make the rollout due at once; ``event`` (the signed request) is
        recorded in the same transaction."""
        payload = dict(payload or {})
        with self._engine.begin() as conn:
            found = conn.execute(
                update(rollouts)
                .where(_R.id == rollout_id)
                .values(next_due_at=case((_R.next_due_at > now, now), else_=_R.next_due_at))
                .returning(_R.id)
            ).first()
            if found is None:
                raise RolloutNotFound(rollout_id)
            command_id = conn.execute(
                insert(rollout_commands)
                .values(
                    rollout_id=rollout_id,
                    kind=kind,
                    actor=actor,
                    payload=payload,
                    created_at=now,
                    consumed_at=None,
                )
                .returning(rollout_commands.c.id)
            ).scalar_one()
            if event is not None:
                self._insert_events(conn, rollout_id, [event], now)
        return CommandRecord(command_id, rollout_id, kind, actor, now, payload)

    def pending_commands(self, rollout_id: str) -> list[CommandRecord]:
        """Commands not consumed yet, oldest first."""
        with self._reader.connect() as conn:
            return [_command(row) for row in conn.execute(_PENDING_COMMANDS, {"b_id": rollout_id})]

    def next_due_at(self) -> float | None:
        """The earliest next_due_at of any active rollout, None when none is active."""
        with self._reader.connect() as conn:
            value = conn.execute(_NEXT_DUE_AT).scalar()
        return None if value is None else float(value)
