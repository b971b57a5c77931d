"""The store: rollouts, leases with fencing tokens, commands and events.

A controller owns a rollout through a lease: ``claim_due`` hands out leases
carrying a fencing token drawn from one global counter, and ``persist`` writes
only while the lease is still held with that token. Two controller processes
therefore never both act on one rollout, on SQLite (``BEGIN IMMEDIATE``
serializes writers) and on PostgreSQL (``FOR UPDATE SKIP LOCKED`` plus fenced
``UPDATE ... WHERE``). All times are float epoch seconds given by the caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BindParameter,
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
from sqlalchemy.types import TypeEngine

from primum.adapters.evidence.keys import Keyring, keys_dir
from primum.adapters.store import db
from primum.adapters.store.evidence import (
    ConsistencyError,
    EvidenceKeys,
    EvidenceLog,
    LogReport,
    PendingEntry,
    StoredCheckpoint,
    StoredEntry,
    verify_stored_log,
)
from primum.adapters.store.records import (
    ACTIVE_PHASES,
    TERMINAL_PHASES,
    ApprovalRecord,
    BreakGlassRecord,
    CommandRecord,
    EventRecord,
    Lease,
    NewEvent,
    NewRollout,
    RolloutRecord,
    pinned_artifacts,
)
from primum.adapters.store.tables import (
    approvals,
    artifact_promotions,
    break_glass,
    evidence_entries,
    fence_sequence,
    legal_holds,
    rollout_commands,
    rollout_events,
    rollouts,
)
from primum.core.errors import UserError
from primum.core.evidence.events import event_to_statement, plain
from primum.core.evidence.tlog import consistency_proof

_R = rollouts.c
_C = rollout_commands.c
_ROLLOUT_COLUMNS = tuple(rollouts.c)


class ReleaseConflict(UserError):
    """A release id was submitted again with different content."""

    def __init__(self, release_id: str, stored_digest: str, new_digest: str) -> None:
        self.release_id = release_id
        self.stored_digest = stored_digest
        self.new_digest = new_digest
        super().__init__(
            f"release {release_id!r} already exists with digest {stored_digest}, "
            f"but this one has digest {new_digest}: a release id names exactly one "
            "content; give the changed release a new id"
        )


class RolloutNotFound(UserError, LookupError):
    """No rollout has this id."""

    def __init__(self, rollout_id: str) -> None:
        self.rollout_id = rollout_id
        super().__init__(f"no rollout with id {rollout_id!r}; check the release id")


class RolloutLeased(UserError):
    """An active rollout is still leased by a controller, so it cannot be reset."""

    def __init__(self, rollout_id: str, owner: str, expires_at: float) -> None:
        self.rollout_id = rollout_id
        self.owner = owner
        self.expires_at = expires_at
        super().__init__(
            f"rollout {rollout_id!r} is active and leased by controller {owner!r} "
            f"until {expires_at:.3f}; abort it first or wait for the lease to expire"
        )


# The statements of the controller's hot path are built once, with named bind
# parameters, and executed with a parameter dict: building a statement (and its
# cache key) per call used to cost more than running it. The ``b_`` prefix keeps
# parameter names apart from column names, which SQLAlchemy reserves in UPDATEs.


def _b(name: str, type_: TypeEngine[Any] | None = None) -> BindParameter[Any]:
    return bindparam(f"b_{name}", type_=type_)


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
    select(_R.id, _R.lease_owner, _R.lease_expires_at, _R.fencing_token)
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
    .values(lease_expires_at=_b("expires_at"))
    .returning(*_ROLLOUT_COLUMNS)
)

# Parameters: b_id, b_owner, b_now, b_token, b_expires_at. Re-checks every condition
# of the candidate SELECT: the row may have changed since.
_ACQUIRE_LEASE = (
    update(rollouts)
    .where(_R.id == _b("id"), _ACTIVE, _R.next_due_at <= _b("now"), _lease_free(_b("now")))
    .values(lease_owner=_b("owner"), lease_expires_at=_b("expires_at"), fencing_token=_b("token"))
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

# Events after which an artifact digest counts as having passed an environment.
PASSING_KINDS = ("item_succeeded", "item_skipped")

_INSERT_EVENTS_RETURNING = insert(rollout_events).returning(rollout_events.c.id, sort_by_parameter_order=True)
_SUBJECT_COLUMNS = select(_R.digest, _R.release).where(_R.id == _b("id"))

_EVENTS = (
    select(rollout_events)
    .where(rollout_events.c.rollout_id == _b("id"), rollout_events.c.id > _b("after_id"))
    .order_by(rollout_events.c.id)
)

_EVENT = select(rollout_events).where(rollout_events.c.id == _b("event_id"))
_EVENTS_OF_KIND = (
    select(rollout_events)
    .where(rollout_events.c.rollout_id == _b("id"), rollout_events.c.kind == _b("kind"))
    .order_by(rollout_events.c.id)
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


def _command(row: Row[Any]) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        rollout_id=row.rollout_id,
        kind=row.kind,
        actor=row.actor,
        created_at=row.created_at,
        payload=row.payload or {},
    )


def _event(row: Row[Any]) -> EventRecord:
    return EventRecord(
        id=row.id,
        rollout_id=row.rollout_id,
        at=row.at,
        kind=row.kind,
        env=row.env,
        service=row.service,
        message=row.message,
        data=row.data or {},
    )


class Store:
    """Persistence of rollouts for the service layer and the controllers."""

    def __init__(self, url: str | None = None, *, migrate: bool = True,
                 keys: Keyring | Path | None = None) -> None:
        """``keys``: the evidence signing keyring, or its directory (default: ``$PRIMUM_KEYS_DIR``, else
        ``$PRIMUM_HOME/keys``, as for ``primum keys``); a directory without a key gets one on first use."""
        parsed = db.normalize_url(url or db.default_database_url())
        self.url: str = parsed.render_as_string(hide_password=False)
        self._engine = db.make_engine(parsed)
        self._postgres = self._engine.dialect.name == "postgresql"
        in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
        if isinstance(keys, Keyring):
            evidence_keys = EvidenceKeys(keyring=keys)
        elif keys is None and in_memory:
            evidence_keys = EvidenceKeys(keyring=Keyring.generate())  # a throwaway store: a throwaway key
        else:
            evidence_keys = EvidenceKeys(directory=keys or keys_dir())
        self.evidence = EvidenceLog(evidence_keys, self._postgres)
        # Pure reads use a deferred BEGIN on SQLite so they never queue behind writers.
        # Each is one statement: on PostgreSQL it runs in autocommit mode, which reads
        # the same snapshot without the BEGIN and ROLLBACK round trips.
        reader_options: dict[str, Any] = {db.SQLITE_BEGIN_OPTION: "DEFERRED"}
        if self._postgres:
            reader_options["isolation_level"] = "AUTOCOMMIT"
        self._reader = self._engine.execution_options(**reader_options)
        if migrate:
            db.migrate(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    # rollouts

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
        unique per controller process.
        """
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        if limit <= 0:
            return []
        query = _CLAIM_CANDIDATES_SKIP_LOCKED if self._postgres else _CLAIM_CANDIDATES
        expires_at = now + ttl
        leases: list[Lease] = []
        with self._engine.begin() as conn:
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
        with self._engine.begin() as conn:
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
        with self._engine.begin() as conn:
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

    # commands and events

    def add_command(
        self,
        rollout_id: str,
        kind: str,
        actor: str,
        now: float,
        payload: dict[str, Any] | None = None,
    ) -> CommandRecord:
        """Queue an operator command and make the rollout due at once."""
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
        return CommandRecord(command_id, rollout_id, kind, actor, now, payload)

    def pending_commands(self, rollout_id: str) -> list[CommandRecord]:
        """Commands not consumed yet, oldest first."""
        with self._reader.connect() as conn:
            return [_command(row) for row in conn.execute(_PENDING_COMMANDS, {"b_id": rollout_id})]

    def add_events(self, rollout_id: str, events: Sequence[NewEvent], now: float) -> None:
        try:
            with self._engine.begin() as conn:
                self._insert_events(conn, rollout_id, events, now)
        except IntegrityError as exc:
            if self.get_rollout(rollout_id) is None:
                raise RolloutNotFound(rollout_id) from exc
            raise

    def _insert_events(self, conn: Connection, rollout_id: str, events: Sequence[NewEvent], now: float,
                       record: RolloutRecord | None = None) -> None:
        """Insert the events and, in the same transaction, their signed statements in the evidence log.

        An ``item_succeeded`` event (or ``item_skipped``: the target confirmed the environment
        already runs that exact digest) also records that the item's artifact digest passed its
        environment (promotion by digest).
        """
        if not events:
            return
        subjects = self.evidence.cached_subjects(rollout_id)
        release: dict[str, Any] = {}
        if record is not None:
            release = record.release
            subjects = subjects or self.evidence.subjects(rollout_id, record.digest, release)
        elif subjects is None or any(e.kind in PASSING_KINDS for e in events):
            row = conn.execute(_SUBJECT_COLUMNS, {"b_id": rollout_id}).first()
            if row is None:
                raise RolloutNotFound(rollout_id)
            release = row.release
            subjects = self.evidence.subjects(rollout_id, row.digest, release)
        ids = conn.execute(
            _INSERT_EVENTS_RETURNING,
            [
                {
                    "rollout_id": rollout_id,
                    "at": now,
                    "kind": event.kind,
                    "env": event.env,
                    "service": event.service,
                    "message": event.message,
                    "data": plain(event.data),  # no NaN: PostgreSQL's JSON and canonical JSON have none
                }
                for event in events
            ],
        ).scalars().all()
        pending = [
            PendingEntry(statement=event_to_statement(subjects, kind=event.kind, message=event.message, at=now,
                                                      env=event.env, service=event.service, data=event.data),
                         kind=event.kind, rollout_id=rollout_id, event_id=int(event_id))
            for event, event_id in zip(events, ids, strict=True)
        ]
        self.evidence.append(conn, pending, now)
        pins = pinned_artifacts(release)
        passed = [{"service": e.service, "digest": pins[e.service]["digest"], "env": e.env,
                   "rollout_id": rollout_id, "at": now}
                  for e in events if e.kind in PASSING_KINDS and e.env and e.service in pins]
        if passed:
            conn.execute(insert(artifact_promotions), passed)

    def events(self, rollout_id: str, after_id: int = 0) -> list[EventRecord]:
        """Events of a rollout with id greater than ``after_id``, in order."""
        with self._reader.connect() as conn:
            return [_event(row) for row in conn.execute(_EVENTS, {"b_id": rollout_id, "b_after_id": after_id})]

    def event(self, event_id: int) -> EventRecord | None:
        """One event by its id (analysis reports are shown by event id)."""
        with self._reader.connect() as conn:
            row = conn.execute(_EVENT, {"b_event_id": event_id}).first()
        return None if row is None else _event(row)

    def events_of_kind(self, rollout_id: str, kind: str) -> list[EventRecord]:
        with self._reader.connect() as conn:
            return [_event(row) for row in conn.execute(_EVENTS_OF_KIND, {"b_id": rollout_id, "b_kind": kind})]

    def add_approval(self, rollout_id: str, *, env: str, digest: str, actor: str, decision: str, comment: str,
                     roles: Sequence[str], owned_services: Sequence[str], at: float,
                     expires_at: float | None) -> int:
        """Record an approve or reject decision; returns its id."""
        try:
            with self._engine.begin() as conn:
                result = conn.execute(insert(approvals).returning(approvals.c.id), {
                    "rollout_id": rollout_id, "env": env, "digest": digest, "actor": actor, "decision": decision,
                    "comment": comment, "roles": list(roles), "owned_services": list(owned_services), "at": at,
                    "expires_at": expires_at})
                return int(result.scalar_one())
        except IntegrityError as exc:
            if self.get_rollout(rollout_id) is None:
                raise RolloutNotFound(rollout_id) from exc
            raise

    def approvals(self, rollout_id: str) -> list[ApprovalRecord]:
        """Every approve or reject decision on a rollout, oldest first."""
        with self._reader.connect() as conn:
            rows = conn.execute(select(approvals).where(approvals.c.rollout_id == rollout_id)
                                .order_by(approvals.c.id))
            return [ApprovalRecord(id=r.id, rollout_id=r.rollout_id, env=r.env, digest=r.digest, actor=r.actor,
                                   decision=r.decision, comment=r.comment, roles=tuple(r.roles or ()),
                                   owned_services=tuple(r.owned_services or ()), at=r.at, expires_at=r.expires_at)
                    for r in rows]

    def add_break_glass(self, rollout_id: str, *, digest: str, actor: str, justification: str, at: float,
                        review_due_at: float, notified: str) -> int:
        try:
            with self._engine.begin() as conn:
                result = conn.execute(insert(break_glass).returning(break_glass.c.id), {
                    "rollout_id": rollout_id, "digest": digest, "actor": actor, "justification": justification,
                    "at": at, "review_due_at": review_due_at, "notified": notified})
                return int(result.scalar_one())
        except IntegrityError as exc:
            if self.get_rollout(rollout_id) is None:
                raise RolloutNotFound(rollout_id) from exc
            raise

    def break_glass_uses(self, rollout_id: str | None = None, *, open_only: bool = False) -> list[BreakGlassRecord]:
        """Break-glass uses (of one rollout, or all), oldest first; ``open_only``: not yet reviewed."""
        query = select(break_glass).order_by(break_glass.c.id)
        if rollout_id is not None:
            query = query.where(break_glass.c.rollout_id == rollout_id)
        if open_only:
            query = query.where(break_glass.c.reviewed_at.is_(None))
        with self._reader.connect() as conn:
            return [BreakGlassRecord(**row._asdict()) for row in conn.execute(query)]

    def complete_review(self, use_id: int, *, by: str, notes: str, at: float) -> bool:
        """Record the retrospective review of a break-glass use; False if it was already reviewed."""
        with self._engine.begin() as conn:
            result = conn.execute(update(break_glass)
                                  .where(break_glass.c.id == use_id, break_glass.c.reviewed_at.is_(None))
                                  .values(reviewed_at=at, reviewed_by=by, review_notes=notes))
            return result.rowcount == 1

    # evidence

    def append_evidence(self, entries: Sequence[PendingEntry], now: float) -> list[int]:
        """Append statements that are not events (CI evidence, purges) to the log; returns their indices."""
        with self._engine.begin() as conn:
            return self.evidence.append(conn, entries, now)

    def evidence_entries(self, rollout_id: str | None = None, artifacts: Sequence[str] = ()) -> list[StoredEntry]:
        """Log entries in order: all, or a release's and those about its artifact digests."""
        with self._reader.connect() as conn:
            return list(self.evidence.entries(conn, rollout_id=rollout_id, artifacts=artifacts))

    def artifact_evidence(self, artifacts: Sequence[str]) -> list[StoredEntry]:
        """CI evidence entries about these artifact digests, oldest first."""
        if not artifacts:
            return []
        with self._reader.connect() as conn:
            return list(self.evidence.entries(conn, artifacts=artifacts))

    def evidence_snapshot(self) -> tuple[str, StoredCheckpoint | None, list[bytes]]:
        """The log's origin, newest checkpoint and the leaf hashes it covers, read consistently."""
        with self._engine.begin() as conn:
            origin = self.evidence.origin(conn)
            latest = self.evidence.latest_checkpoint(conn)
            hashes = self.evidence.leaf_hashes(conn, latest.size if latest else 0)
        return origin, latest, hashes

    def evidence_checkpoint(self) -> tuple[str, StoredCheckpoint | None]:
        """The log's origin and its newest signed checkpoint (None while the log is empty)."""
        with self._reader.connect() as conn:
            return self.evidence.origin(conn), self.evidence.latest_checkpoint(conn)

    def consistency(self, old_size: int) -> tuple[StoredCheckpoint, list[bytes]]:
        """The newest checkpoint and the RFC 9162 consistency proof from ``old_size`` to its size.

        The checkpoint and the leaf hashes the proof is computed from are read in one transaction, like
        :meth:`evidence_snapshot`. Verify the proof against the *signed* roots
        (``tlog.verify_consistency``): the store only computes it. Raises :class:`ConsistencyError` when
        the log cannot extend a tree of ``old_size`` entries: it is smaller, or entries below its newest
        checkpoint are missing.
        """
        if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
            raise ValueError(f"old_size must be a tree size (an int >= 0), not {old_size!r}")
        with self._engine.begin() as conn:
            latest = self.evidence.latest_checkpoint(conn)
            if latest is None:
                raise ConsistencyError(f"the evidence log is empty: it has no checkpoint to extend a tree of "
                                       f"size {old_size}")
            if old_size > latest.size:
                raise ConsistencyError(f"the log's newest checkpoint covers {latest.size} entries, fewer than the "
                                       f"{old_size} of the tree asked about")
            hashes = self.evidence.leaf_hashes(conn, latest.size)
        if len(hashes) != latest.size:
            raise ConsistencyError(f"the store holds {len(hashes)} leaf hashes below the newest checkpoint's size "
                                   f"{latest.size}: entries were deleted (`primum evidence verify` names the first)")
        return latest, consistency_proof(hashes, old_size, latest.size)

    def verify_evidence(self, keyring: Keyring | None = None) -> LogReport:
        """Verify the whole evidence log (signatures, checkpoints, Merkle tree); names the first bad entry."""
        with self._reader.connect() as conn:
            return verify_stored_log(conn, keyring or self.evidence.keys.keyring())

    def passed_environments(self, service: str, digest: str) -> set[str]:
        """The environments in which this artifact digest of ``service`` passed (its item succeeded)."""
        return self.passed_environments_of([(service, digest)]).get((service, digest), set())

    def passed_environments_of(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
        """For each ``(service, digest)``: the environments it passed; one query for all of them."""
        if not pairs:
            return {}
        c = artifact_promotions.c
        wanted = set(pairs)
        out: dict[tuple[str, str], set[str]] = {pair: set() for pair in wanted}
        with self._reader.connect() as conn:
            rows = conn.execute(select(c.service, c.digest, c.env).where(c.digest.in_(sorted({d for _, d in wanted}))))
            for service, digest, env in rows:
                if (service, digest) in wanted:
                    out[(service, digest)].add(env)
        return out

    def add_legal_hold(self, rollout_id: str, *, reason: str, actor: str, at: float) -> int:
        with self._engine.begin() as conn:
            return int(conn.execute(insert(legal_holds).returning(legal_holds.c.id), {
                "rollout_id": rollout_id, "reason": reason, "actor": actor, "at": at}).scalar_one())

    def release_legal_hold(self, rollout_id: str, *, actor: str, at: float) -> int:
        """Release every open hold on a release; returns how many were open."""
        c = legal_holds.c
        with self._engine.begin() as conn:
            result = conn.execute(update(legal_holds).where(c.rollout_id == rollout_id, c.released_at.is_(None))
                                  .values(released_at=at, released_by=actor))
            return int(result.rowcount)

    def legal_holds(self, rollout_id: str | None = None, *, open_only: bool = True) -> list[dict[str, Any]]:
        c = legal_holds.c
        query = select(legal_holds).order_by(c.id)
        if rollout_id is not None:
            query = query.where(c.rollout_id == rollout_id)
        if open_only:
            query = query.where(c.released_at.is_(None))
        with self._reader.connect() as conn:
            return [dict(row._asdict()) for row in conn.execute(query)]

    def purge_evidence(self, *, before: float, now: float, dry_run: bool = False) -> list[int]:
        """Drop the envelopes of entries recorded before ``before`` whose release has no open legal hold.

        Only the envelope bytes go: the leaf hash stays, so every checkpoint still verifies and the
        entries around a purged one keep their inclusion proofs. The event rows those envelopes
        recorded go too (the same content must not outlive its retention elsewhere), and so does
        the summary of purged CI evidence. CI evidence about an artifact is kept while any release
        that pins that artifact is held. Returns the purged indices.
        """
        c = evidence_entries.c
        with self._engine.begin() as conn:
            held = {r for (r,) in conn.execute(select(legal_holds.c.rollout_id)
                                               .where(legal_holds.c.released_at.is_(None)))}
            held_artifacts: set[str] = set()
            for (release,) in conn.execute(select(_R.release).where(_R.id.in_(list(held)))):
                held_artifacts.update(pin["digest"] for pin in pinned_artifacts(release).values())
            rows = conn.execute(select(c.idx, c.rollout_id, c.artifact, c.event_id).where(
                c.at < before, c.envelope.is_not(None)).order_by(c.idx)).all()
            chosen = [r for r in rows if r.rollout_id not in held and r.artifact not in held_artifacts]
            purge = [int(r.idx) for r in chosen]
            events = [int(r.event_id) for r in chosen if r.event_id is not None]
            if purge and not dry_run:
                for i in range(0, len(purge), 500):
                    conn.execute(update(evidence_entries).where(c.idx.in_(purge[i:i + 500]))
                                 .values(envelope=None, summary=None, purged_at=now))
                for i in range(0, len(events), 500):
                    conn.execute(rollout_events.delete().where(rollout_events.c.id.in_(events[i:i + 500])))
        return purge

    def next_due_at(self) -> float | None:
        """The earliest next_due_at of any active rollout, None when none is active."""
        with self._reader.connect() as conn:
            value = conn.execute(_NEXT_DUE_AT).scalar()
        return None if value is None else float(value)
