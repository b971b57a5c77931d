"""What every part of the store shares: its connections, the errors it raises, its bind parameters.

``Store`` (``repository.py``) is one class assembled from one part per aggregate (``rollouts.py``,
``events.py``, ``approvals.py``, ``audit.py``). Each part derives from :class:`StorePart`, which
declares the attributes ``Store.__init__`` sets, so every part type-checks on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, Engine, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from primum.adapters.store.tables import rollouts
from primum.core.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from primum.adapters.evidence.keys import Keyring
    from primum.adapters.evidence.witness import WitnessMirror
    from primum.adapters.store.evidence import EvidenceLog


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


def bind(name: str, type_: TypeEngine[Any] | None = None) -> BindParameter[Any]:
    """The named bind parameter ``b_<name>`` of a prebuilt statement."""
    return bindparam(f"b_{name}", type_=type_)


_ROLLOUT_EXISTS = select(rollouts.c.id).where(rollouts.c.id == bind("id"))


class StorePart:
    """The attributes ``Store.__init__`` sets, which every part of the store uses."""

    url: str
    _engine: Engine  # writes: one transaction each (BEGIN IMMEDIATE on SQLite)
    _reader: Engine  # one-statement reads (deferred BEGIN on SQLite, autocommit on PostgreSQL)
    _postgres: bool
    _evidence_keys: Keyring | Path  # a keyring, or the directory the signing keys are read from
    _evidence_log: EvidenceLog | None
    _witness: WitnessMirror | None  # the append-time copy of each checkpoint outside the database

    @property
    def evidence(self) -> EvidenceLog:
        """The evidence log, built on first use: a command that only reads rollouts (`primum history`)
        does not import the signing and statement code."""
        if self._evidence_log is None:
            from primum.adapters.evidence.keys import Keyring
            from primum.adapters.store.evidence import EvidenceKeys, EvidenceLog

            keys = self._evidence_keys
            evidence_keys = EvidenceKeys(keyring=keys) if isinstance(keys, Keyring) else EvidenceKeys(directory=keys)
            self._evidence_log = EvidenceLog(evidence_keys, self._postgres)
        return self._evidence_log

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (``engine.begin()``) whose evidence appends reach the witness after COMMIT.

        Every write that may append to the log uses it; one that does not only leaves the witness a
        batch behind until the next append (the witness catches up and checks the gap then).
        """
        from primum.adapters.store.evidence import WITNESS_BATCHES

        batches: list[Any] = []
        with self._engine.begin() as conn:
            conn.info[WITNESS_BATCHES] = batches
            try:
                yield conn
            finally:
                conn.info.pop(WITNESS_BATCHES, None)
        if batches and self._witness is not None:
            self._witness.after_commit(batches, self._root_at)

    def _root_at(self, size: int) -> bytes | None:
        """The stored log's tree hash at ``size`` entries (None if it is smaller): the root of its checkpoint at
        that size when it has one (one row: replicas on several hosts each lag behind the others' appends),
        else recomputed from the recorded leaf hashes. Either is the database's word; ``evidence verify``
        checks both against the entries."""
        from primum.adapters.store.evidence import EvidenceLog
        from primum.adapters.store.tables import evidence_checkpoints
        from primum.core.evidence.tlog import root

        c = evidence_checkpoints.c
        with self._reader.connect() as conn:
            stored = conn.execute(select(c.root_hash).where(c.size == size)).scalar()
            if stored is not None:
                return bytes(stored)
            hashes = EvidenceLog.leaf_hashes(conn, size)
        return root(hashes) if len(hashes) == size else None

    @contextmanager
    def _rollout_must_exist(self, rollout_id: str) -> Iterator[None]:
        """A write naming a rollout that does not exist fails its foreign key: say RolloutNotFound instead."""
        try:
            yield
        except IntegrityError as exc:
            with self._reader.connect() as conn:
                missing = conn.execute(_ROLLOUT_EXISTS, {"b_id": rollout_id}).first() is None
            if missing:
                raise RolloutNotFound(rollout_id) from exc
            raise
