"""The durable evidence log: signed statements appended to an RFC 9162 Merkle log in the store.

Every event the store records is turned into an in-toto statement, signed (DSSE, Ed25519), and
appended to the log **in the same transaction** as the event, so an event never exists without
its evidence and a rolled-back transaction leaves no evidence either. Each append batch ends
with a signed C2SP checkpoint of the new tree head.

Ordering across controller replicas: the single ``evidence_head`` row holds the log size and its
compact Merkle range. An append reads it ``FOR UPDATE`` on PostgreSQL (SQLite's ``BEGIN
IMMEDIATE`` already serialises writers), so concurrent appends queue on that row and the log is
one total order; the lock is held only until the appending transaction commits.

Witness: when the store has a witness directory, the batches a transaction appended are handed to it
after the transaction commits (``StorePart._write``), never before: a rolled-back append must not reach
a witness, which never goes backwards.

Keys: the current signing key of the keyring signs; a rotation by another process
(``primum keys rotate``) is picked up at the next append (the key file's mtime is checked).
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from primum.adapters.evidence import keys as keys_mod
from primum.adapters.store.records import pinned_artifacts
from primum.adapters.store.tables import evidence_checkpoints, evidence_entries, evidence_head
from primum.core.evidence.checkpoint import Checkpoint, NoteSigner, VerifierKey, sign_checkpoint
from primum.core.evidence.statements import Statement, Subject, release_subjects, sign_statement
from primum.core.evidence.tlog import CompactRange

log = logging.getLogger("primum.core.evidence")

# The ``Connection.info`` key under which a write transaction collects its append batches for the witness.
WITNESS_BATCHES = "primum.witness_batches"


# Built once: an append runs inside the controller's hot path (every persisted event).
_INSERT_ENTRIES = insert(evidence_entries)
_INSERT_CHECKPOINT = insert(evidence_checkpoints)
_UPDATE_HEAD = update(evidence_head).where(evidence_head.c.id == 1).values(
    size=bindparam("b_size"), nodes=bindparam("b_nodes"), updated_at=bindparam("b_at"))


@dataclass(frozen=True)
class PendingEntry:
    """A statement to append, with the columns that index it."""

    statement: Statement
    kind: str
    rollout_id: str | None = None
    artifact: str | None = None  # "sha256:..." for CI evidence about one artifact
    event_id: int | None = None
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredEntry:
    index: int
    rollout_id: str | None
    artifact: str | None
    kind: str
    predicate_type: str
    at: float
    event_id: int | None
    summary: dict[str, Any] | None
    envelope: bytes | None
    leaf_hash: bytes
    purged_at: float | None


class ConsistencyError(ValueError):
    """The stored log cannot extend a tree of the asked size (it is smaller, or entries are missing)."""


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root_hash: bytes
    note: str
    key_id: str
    at: float


class EvidenceKeys:
    """The signing keyring of the evidence log, loaded from a key directory and reloaded after a rotation.

    A directory without a signing key is initialised on first use (under a file lock, so two
    processes starting together create one key, not two).
    """

    def __init__(self, directory: Path | None = None, keyring: keys_mod.Keyring | None = None) -> None:
        if (directory is None) == (keyring is None):
            raise ValueError("give a key directory or a keyring")
        self.directory = directory
        self._keyring = keyring
        self._mtime: float | None = None

    def _signing_file(self) -> Path:
        assert self.directory is not None
        return self.directory / keys_mod.SIGNING_KEY_FILE

    def keyring(self) -> keys_mod.Keyring:
        if self.directory is None:
            assert self._keyring is not None
            return self._keyring
        path = self._signing_file()
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            self._initialise()
            mtime = path.stat().st_mtime_ns
        if self._keyring is None or mtime != self._mtime:
            self._keyring = keys_mod.load_keyring(self.directory)
            self._mtime = mtime
        return self._keyring

    def _initialise(self) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory.parent / f".{self.directory.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self._signing_file().exists():
                keys_mod.init_keyring(self.directory)
                log.warning("created the evidence signing key in %s (back it up; `primum keys list`)",
                            self.directory)


class EvidenceLog:
    """Appends signed statements to the log inside a caller's transaction; reads entries and checkpoints."""

    def __init__(self, keys: EvidenceKeys, postgres: bool) -> None:
        self.keys = keys
        self._postgres = postgres
        self._subjects: dict[str, list[Subject]] = {}
        head = select(evidence_head.c.origin, evidence_head.c.size, evidence_head.c.nodes).where(
            evidence_head.c.id == 1)
        self._head = head.with_for_update() if postgres else head

    # ------------------------------------------------------------------ writing

    def cached_subjects(self, rollout_id: str) -> list[Subject] | None:
        return self._subjects.get(rollout_id)

    def subjects(self, rollout_id: str, digest: str, release: dict[str, Any]) -> list[Subject]:
        """The release and its artifacts (cached: a release id names exactly one content)."""
        cached = self._subjects.get(rollout_id)
        if cached is None:
            cached = release_subjects(rollout_id, digest, pinned_artifacts(release))
            self._subjects[rollout_id] = cached
        return cached

    def append(self, conn: Connection, entries: Sequence[PendingEntry], now: float) -> list[int]:
        """Sign and append ``entries`` in order, then sign a checkpoint; returns their log indices."""
        if not entries:
            return []
        keyring = self.keys.keyring()
        signer = keyring.current
        row = conn.execute(self._head).one()
        nodes = [bytes.fromhex(h) for h in row.nodes.split()]
        tree = CompactRange.restore(int(row.size), nodes)
        first, first_root = tree.size, tree.root()
        rows = []
        for entry in entries:
            envelope = sign_statement(entry.statement, signer).to_json()
            leaf = tree.append_entry(envelope)
            rows.append({
                "idx": tree.size - 1, "rollout_id": entry.rollout_id, "artifact": entry.artifact,
                "kind": entry.kind, "predicate_type": entry.statement["predicateType"], "at": now,
                "event_id": entry.event_id,
                "summary": None if entry.summary is None else json.dumps(entry.summary, sort_keys=True),
                "envelope": envelope, "leaf_hash": leaf, "purged_at": None})
        conn.execute(_INSERT_ENTRIES, rows)
        conn.execute(_UPDATE_HEAD, {"b_size": tree.size, "b_nodes": " ".join(n.hex() for n in tree.nodes),
                                    "b_at": now})
        root = tree.root()
        note = sign_checkpoint(Checkpoint(row.origin, tree.size, root), [note_signer(row.origin, signer)])
        conn.execute(_INSERT_CHECKPOINT, {"size": tree.size, "root_hash": root, "note": note,
                                          "key_id": signer.keyid, "at": now})
        batches = conn.info.get(WITNESS_BATCHES)
        if batches is not None:  # the store's write transaction hands them to its witness after COMMIT
            from primum.adapters.evidence.witness import Appended

            batches.append(Appended(first, first_root, tree.size, root, note))
        return list(range(first, tree.size))

    # ------------------------------------------------------------------ reading

    @staticmethod
    def origin(conn: Connection) -> str:
        return str(conn.execute(select(evidence_head.c.origin).where(evidence_head.c.id == 1)).scalar_one())

    @staticmethod
    def entries(conn: Connection, *, rollout_id: str | None = None, artifacts: Sequence[str] = (),
                start: int = 0, batch: int = 5000) -> Iterator[StoredEntry]:
        """Entries in log order: all, those of one release (and of its ``artifacts``), or of ``artifacts``."""
        c = evidence_entries.c
        query = select(evidence_entries).order_by(c.idx)
        if rollout_id is not None:
            cond = c.rollout_id == rollout_id
            if artifacts:
                cond = cond | c.artifact.in_(list(artifacts))
            query = query.where(cond)
        elif artifacts:
            query = query.where(c.artifact.in_(list(artifacts)))
        after = start
        while True:
            rows = conn.execute(query.where(c.idx >= after).limit(batch)).all()
            for r in rows:
                yield StoredEntry(index=int(r.idx), rollout_id=r.rollout_id, artifact=r.artifact, kind=r.kind,
                                  predicate_type=r.predicate_type, at=r.at, event_id=r.event_id,
                                  summary=json.loads(r.summary) if r.summary else None,
                                  envelope=bytes(r.envelope) if r.envelope is not None else None,
                                  leaf_hash=bytes(r.leaf_hash), purged_at=r.purged_at)
            if len(rows) < batch:
                return
            after = int(rows[-1].idx) + 1

    @staticmethod
    def leaf_hashes(conn: Connection, size: int | None = None) -> list[bytes]:
        c = evidence_entries.c
        query = select(c.leaf_hash).order_by(c.idx)
        if size is not None:
            query = query.where(c.idx < size)
        return [bytes(h) for (h,) in conn.execute(query)]

    @staticmethod
    def checkpoints(conn: Connection) -> list[StoredCheckpoint]:
        c = evidence_checkpoints.c
        return [StoredCheckpoint(int(r.size), bytes(r.root_hash), r.note, r.key_id, r.at)
                for r in conn.execute(select(evidence_checkpoints).order_by(c.size))]

    @staticmethod
    def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
        c = evidence_checkpoints.c
        r = conn.execute(select(evidence_checkpoints).order_by(c.size.desc()).limit(1)).first()
        return None if r is None else StoredCheckpoint(int(r.size), bytes(r.root_hash), r.note, r.key_id, r.at)


def note_signer(origin: str, signer: keys_mod.SigningKey) -> NoteSigner:
    """The checkpoint signer: the evidence key, named by the log's origin (C2SP signed note)."""
    return NoteSigner(origin, keys_mod.public_key_bytes(signer.public_key), signer.sign)


def verifier_keys(origin: str, keyring: keys_mod.Keyring) -> list[VerifierKey]:
    """The checkpoint verifier keys of every key in the keyring, current and retired."""
    return [VerifierKey(origin, keys_mod.public_key_bytes(k)) for k in keyring.public_keys().values()]
