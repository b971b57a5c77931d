"""Verifying the stored log: signatures, the Merkle tree, every checkpoint, the store's rows, the witness.

One pass over the log checks each envelope's signature and feeds the tree (``core.evidence.tlog``);
the same pass collects what each signed statement vouches for, so the store's event, approval and
break-glass rows are then matched with the log (``core.evidence.rowcheck``): a row inserted by hand
has no statement and fails. A missing entry is named by its index, not as a root mismatch over a
range. Finally the store's head is compared with the checkpoint a witness keeps outside the
database (``core.evidence.witness``), which is what exposes a wipe or a rollback of the whole log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from primum.adapters.evidence import keys as keys_mod
from primum.adapters.store.evidence import EvidenceLog, StoredEntry, verifier_keys
from primum.adapters.store.tables import approvals, break_glass, evidence_head, rollout_events, rollouts
from primum.core.evidence import rowcheck as rc
from primum.core.governance.identities import Identities, identities_from_record
from primum.core.governance.signatures import Claim, recorded_and_logged, verify_signed

MAX_ROW_PROBLEMS = 5  # the rest are counted


@dataclass(frozen=True)
class LogReport:
    """The outcome of verifying the whole stored log; ``problem`` is the first of ``problems``."""

    origin: str
    size: int
    entries: int
    purged: int
    checkpoints: int
    root_hash: bytes
    problem: str | None
    bad_index: int | None = None
    problems: tuple[str, ...] = ()
    rows_checked: int = 0
    witnesses: tuple[str, ...] = field(default=())  # "DIR: size N" for each witness that agreed

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Vouched:
    """What the log's signed statements vouch for, collected while the log is read."""

    def __init__(self) -> None:
        self.by_event: dict[int, tuple[int, str | None, bytes | None]] = {}  # event id: (index, release, print)
        self.envelope_by_event: dict[int, str | None] = {}  # event id: the signed envelope's digest it logged
        self.ledger = rc.ClaimLedger.empty()

    def observe(self, entry: StoredEntry, statement: dict[str, Any] | None) -> None:
        if statement is None:  # purged, or unreadable (reported by the log check)
            if entry.event_id is not None:
                self.by_event[entry.event_id] = (entry.index, entry.rollout_id, None)
            self.ledger.add_purged(entry.kind, entry.rollout_id, entry.at)
            return
        if entry.event_id is not None:
            self.by_event[entry.event_id] = (entry.index, rc.release_of(statement),
                                             rc.statement_fingerprint(statement))
            self.envelope_by_event[entry.event_id] = rc.logged_envelope_digest(statement)
        claim = rc.claim_of_statement(statement)
        if claim is not None:
            self.ledger.add(claim)


def _when(at: float) -> str:
    from primum.core.evidence.statements import rfc3339

    return rfc3339(at)


def _row_problems(conn: Connection, vouched: _Vouched) -> tuple[list[str], int]:
    """Every store row that must be evidenced and is not; and how many rows were checked."""
    problems: list[str] = []
    checked = 0
    e = rollout_events.c
    for r in conn.execute(select(rollout_events).order_by(e.id)):
        checked += 1
        what = f"event row {r.id} ({r.kind} of release {r.rollout_id} at {_when(r.at)})"
        link = vouched.by_event.get(int(r.id))
        if link is None:
            problems.append(f"{what} has no entry in the log: it was not recorded by primum, or its entry was "
                            "deleted")
            continue
        index, release, printed = link
        if printed is None:
            continue  # its statement was purged under retention: nothing left to compare
        fingerprint = rc.event_fingerprint(kind=r.kind, message=r.message, at=r.at, env=r.env, service=r.service,
                                           data=r.data or {})
        if release != r.rollout_id or fingerprint != printed:
            problems.append(f"{what} differs from its log entry {index}: the row was changed after it was "
                            "recorded, or the entry's event_id was")
    rows: list[tuple[str, rc.Claim, float]] = []
    signatures = _Signatures(conn, vouched)
    for r in conn.execute(select(approvals).order_by(approvals.c.id)):
        what = f"approvals row {r.id} ({r.actor} {r.decision} of release {r.rollout_id} for {r.env} at {_when(r.at)})"
        rows.append((what, rc.approval_claim(rollout_id=r.rollout_id, decision=r.decision, env=r.env, actor=r.actor,
                                             digest=r.digest, at=r.at, roles=r.roles or (), expires_at=r.expires_at),
                     r.at))
        signatures.check(what, Claim(r.rollout_id, r.decision, r.actor, r.digest, r.at, env=r.env), r.envelope,
                         r.event_id)
    for r in conn.execute(select(break_glass).order_by(break_glass.c.id)):
        what = f"break_glass row {r.id} ({r.actor} on release {r.rollout_id} at {_when(r.at)})"
        rows.append((what, rc.break_glass_claim(rollout_id=r.rollout_id, use_id=r.id, actor=r.actor, digest=r.digest,
                                                at=r.at), r.at))
        signatures.check(what, Claim(r.rollout_id, "break_glass", r.actor, r.digest, r.at), r.envelope, r.event_id)
        if r.reviewed_at is not None:
            rows.append((f"the review of break_glass row {r.id} (by {r.reviewed_by} at {_when(r.reviewed_at)})",
                         rc.review_claim(rollout_id=r.rollout_id, use_id=r.id, actor=r.reviewed_by or "",
                                         at=r.reviewed_at), r.reviewed_at))
    checked += len(rows)
    missing, _purged = rc.unmatched_rows(rows, vouched.ledger)
    problems += [f"{m.what} has no signed statement in the log: it was not recorded by primum (inserted or "
                 "changed by hand), so it counts for nothing" for m in missing]
    unmatched = {m.what for m in missing}  # already reported: one problem per row
    problems += [problem for what, problem in signatures.problems if what not in unmatched]
    return problems, checked


class _Signatures:
    """The signature check of approval and break-glass rows: the gate's check (``verify_signed`` against the
    identities recorded with the release at submit, and the envelope is the one its evidence entry logged),
    so a row whose envelope was swapped, or whose signed fields differ from the row, fails verify, named."""

    def __init__(self, conn: Connection, vouched: _Vouched) -> None:
        self.conn = conn
        self.vouched = vouched
        self.identities: dict[str, Identities | str] = {}
        self.problems: list[tuple[str, str]] = []

    def identities_of(self, rollout_id: str) -> Identities | str:
        if rollout_id not in self.identities:
            release = self.conn.execute(select(rollouts.c.release).where(rollouts.c.id == rollout_id)).scalar()
            recorded = release.get("identities") if isinstance(release, dict) else None
            self.identities[rollout_id] = identities_from_record(recorded) if release is not None else \
                f"release {rollout_id} is not in the store"
        return self.identities[rollout_id]

    def check(self, what: str, claim: Claim, envelope: Any, event_id: int | None) -> None:
        verdict = verify_signed(claim, envelope, self.identities_of(claim.rollout_id))
        if not verdict.valid:
            self.problems.append((what, f"{what}: its signature does not verify: {verdict.reason}; it counts for "
                                        "nothing"))
            return
        link = self.vouched.by_event.get(event_id) if event_id is not None else None
        if link is not None and link[2] is None:
            return  # its evidence entry was purged under retention: nothing left to compare the envelope with
        logged = self.vouched.envelope_by_event.get(event_id) if event_id is not None else None
        why = recorded_and_logged(envelope, logged)
        if why is not None:
            self.problems.append((what, f"{what}: {why}"))


def _witness_problems(witness_dirs: Sequence[Path], *, origin: str, vkeys: Sequence[Any], store_size: int,
                      hashes: Sequence[bytes]) -> tuple[list[str], list[str]]:
    """Compare the store's head with each witness directory's checkpoint: (problems, agreements)."""
    from primum.adapters.evidence.witness import WitnessError, read_note
    from primum.core.evidence.checkpoint import CheckpointError, open_checkpoint
    from primum.core.evidence.tlog import root
    from primum.core.evidence.witness import compare_with_witness

    problems: list[str] = []
    agreed: list[str] = []
    for directory in witness_dirs:
        where = str(directory)
        try:
            note = read_note(directory)
        except WitnessError as exc:
            problems.append(f"witness {where}: {exc.lines()[0] if exc.lines() else exc}")
            continue
        if note is None:
            if store_size > 0:
                problems.append(f"the witness {where} holds no checkpoint while the log has {store_size} entries: "
                                "it was wiped, or it was set up after the log began (then run `primum evidence "
                                f"witness --dir {where}` once to start it from the current checkpoint)")
            continue
        try:
            held = open_checkpoint(note, vkeys, origin=origin)
        except CheckpointError as exc:
            problems.append(f"the checkpoint the witness {where} holds does not verify with the log's keys: {exc}")
            continue
        at = root(hashes[: held.size]) if len(hashes) >= held.size else None
        problem = compare_with_witness(held, store_size=store_size, store_root_at=at, where=where)
        cosigned, bad = _cosignature(directory, note, vkeys)
        if bad:
            problems.append(bad)
        elif problem is None:
            agreed.append(f"{where}: size {held.size}{cosigned}")
        if problem is not None:
            problems.append(problem)
    return problems, agreed


def _cosignature(directory: Path, note: str, vkeys: Sequence[Any]) -> tuple[str, str | None]:
    """(", cosigned by NAME at TIME" or "", a problem or None) for a cosigning witness's directory.

    A directory with a witness key (``witness.vkey``) whose note carries a line of that key that does not
    verify was tampered with; a note without such a line is the store's own copy (no problem).
    """
    from primum.adapters.evidence.witness import VKEY_FILE
    from primum.core.evidence.checkpoint import CheckpointError
    from primum.core.evidence.statements import rfc3339
    from primum.core.evidence.witness import WitnessKey, cosignature_time, split_note

    path = directory / VKEY_FILE
    if not path.is_file():
        return "", None
    try:
        key = WitnessKey.parse(path.read_text())
        at = cosignature_time(note, vkeys, key)
        signed_lines = [line for line in split_note(note)[1] if line.startswith(f"\u2014 {key.name} ")]
    except (OSError, ValueError, CheckpointError) as exc:
        return "", f"witness {directory}: its key or cosignature cannot be read ({exc})"
    if at is not None:
        return f", cosigned by {key.name} at {rfc3339(at)}", None
    if signed_lines:
        return "", (f"the checkpoint the witness {directory} holds carries a cosignature of {key.name} that does "
                    "not verify: the file was replaced")
    return "", None


def verify_stored_log(conn: Connection, keyring: keys_mod.Keyring, *,
                      witness_dirs: Sequence[Path] = ()) -> LogReport:
    """Verify every checkpoint signature, every envelope signature and the Merkle tree, in one pass; then
    the store's rows against the log, and the log against its witnesses.

    Fail closed: no checkpoint for a non-empty log, an unknown key, or anything unreadable is a problem.
    """
    from primum.core.evidence import dsse
    from primum.core.evidence.checkpoint import CheckpointError, open_checkpoint
    from primum.core.evidence.tlog import EMPTY_ROOT, Purged, verify_log

    origin = EvidenceLog.origin(conn)
    head_size = int(conn.execute(select(evidence_head.c.size).where(evidence_head.c.id == 1)).scalar_one())
    stored = EvidenceLog.checkpoints(conn)
    vkeys = verifier_keys(origin, keyring)
    public = keyring.public_keys()
    hashes = EvidenceLog.leaf_hashes(conn)
    vouched = _Vouched()

    def report(log_problem: str | None, *, entries: int = 0, purged: int = 0, root: bytes = EMPTY_ROOT,
               bad: int | None = None, rows: bool = True) -> LogReport:
        found = [log_problem] if log_problem else []
        checked = 0
        if rows:
            row_problems, checked = _row_problems(conn, vouched)
            found += row_problems[:MAX_ROW_PROBLEMS]
            if len(row_problems) > MAX_ROW_PROBLEMS:
                found.append(f"and {len(row_problems) - MAX_ROW_PROBLEMS} more store rows with no matching entry")
        size = stored[-1].size if stored else 0
        witness_found, agreed = _witness_problems(witness_dirs, origin=origin, vkeys=vkeys, store_size=size,
                                                  hashes=hashes)
        found = witness_found + found if not log_problem else found + witness_found
        return LogReport(origin, head_size, entries, purged, len(stored), root, found[0] if found else None, bad,
                         tuple(found), checked, tuple(agreed))

    if not stored:
        if head_size == 0 and not hashes:
            return report(None)
        return report("the log has entries but no signed checkpoint vouches for them", bad=0, rows=False)
    opened = []
    for cp in stored:
        try:
            head = open_checkpoint(cp.note, vkeys, origin=origin)
        except CheckpointError as exc:
            return report(f"checkpoint at size {cp.size} does not verify: {exc}", rows=False)
        if head.size != cp.size or head.root_hash != cp.root_hash:
            return report(f"checkpoint at size {cp.size}: its stored size or root differs from the signed note",
                          rows=False)
        opened.append(head)
    latest = opened[-1]
    if latest.size != head_size:
        return report(f"the log head says {head_size} entries but the newest signed checkpoint covers "
                      f"{latest.size}", rows=False)

    first_bad_signature: list[tuple[int, str]] = []
    present: list[int] = []
    purged = 0

    def stream() -> Iterator[bytes | Purged]:
        nonlocal purged
        for entry in EvidenceLog.entries(conn):
            present.append(entry.index)
            if entry.envelope is None:
                purged += 1
                vouched.observe(entry, None)
                yield Purged(entry.leaf_hash)
                continue
            statement = None
            try:
                statement = json.loads(dsse.verify(entry.envelope, public))
            except dsse.VerificationError as exc:
                if not first_bad_signature:
                    first_bad_signature.append((entry.index, f"entry {entry.index}: signature: {exc}"))
            except ValueError:
                if not first_bad_signature:
                    first_bad_signature.append((entry.index, f"entry {entry.index}: its payload is not JSON"))
            vouched.observe(entry, statement if isinstance(statement, dict) else None)
            yield entry.envelope

    # verify_log needs the recorded leaf hashes up front to name the first bad entry exactly.
    entries = stream()
    result = verify_log(entries, hashes, latest, earlier=opened[:-1])
    for _ in entries:  # verify_log stops at the first fault: read on, for the gaps and the rows
        pass
    missing = rc.gaps(present, max(latest.size, (present[-1] + 1) if present else 0))
    # The earliest fault wins. A missing index is named exactly: the root mismatch, truncation or
    # uncovered tail it causes only bounds a range, so those give way to it. On a tie, a
    # recorded-hash mismatch (modified, deleted, ...) says the most, then a bad signature.
    candidates = [(i, 1, problem) for i, problem in first_bad_signature]
    if missing:
        candidates.append((missing[0][0], 0, rc.describe_gaps(missing, latest.size)))
    if result.fault is not None:
        vague = result.fault.kind.value in ("root_mismatch", "truncated", "uncovered")
        if not (vague and missing):
            candidates.append((result.fault.index, 2 if vague else 0,
                               f"entry {result.fault.index}: {result.fault.kind.value}: {result.fault.reason}"))
    if candidates:
        index, _, problem = min(candidates)
        return report(problem, entries=result.entries, purged=purged, root=result.root_hash, bad=index)
    return report(None, entries=result.entries, purged=purged, root=result.root_hash)

