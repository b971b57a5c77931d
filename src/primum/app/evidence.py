"""Evidence use cases shared by every front end: CI evidence ingest, verifying the log, audit bundles,
legal holds and retention purges. Thin over ``primum.core.evidence`` (pure formats) and the store's log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from primum.adapters.store.evidence import ConsistencyError, PendingEntry, StoredCheckpoint
from primum.adapters.store.records import NewEvent, RolloutRecord
from primum.adapters.store.repository import Store
from primum.app.identity import Caller, administrator, sign
from primum.core.errors import NotAllowed, NotFound
from primum.core.evidence import checkpoint as cp
from primum.core.evidence.events import event_to_statement
from primum.core.evidence.statements import sha256_hex
from primum.core.evidence.tlog import EMPTY_ROOT, consistency_proof, verify_consistency
from primum.core.governance.signatures import Claim, signed_data
from primum.core.model.errors import InputError

# HIPAA keeps required documentation six years from its creation (45 CFR 164.316(b)(2)(i)).
DEFAULT_RETENTION_YEARS = 6
_RETENTION = re.compile(r"^(\d+)([yd])$")
MAX_CHECKPOINT_BYTES = 64 * 1024  # a checkpoint is a few hundred bytes; 100 signatures stay far below this
KEEP_CHECKPOINT = "`primum evidence checkpoint -o FILE`"


def retention_cutoff(retention: str, now: float, *, allow_short: bool = False) -> float:
    """The time before which evidence may be purged: ``6y`` (calendar years) or ``2190d``."""
    match = _RETENTION.match(retention.strip())
    if not match:
        raise InputError.single("--retention", f"{retention!r} is not a duration", "write years as 6y or days as 2190d")
    amount, unit = int(match.group(1)), match.group(2)
    moment = datetime.fromtimestamp(now, UTC)
    if unit == "y":
        try:
            cutoff = moment.replace(year=moment.year - amount)
        except ValueError:  # 29 February
            cutoff = moment.replace(year=moment.year - amount, day=28)
    else:
        cutoff = datetime.fromtimestamp(now - amount * 86400, UTC)
    six_years = moment.replace(year=moment.year - DEFAULT_RETENTION_YEARS, day=min(moment.day, 28))
    if cutoff > six_years and not allow_short:
        raise InputError.single("--retention", f"{retention} is shorter than the {DEFAULT_RETENTION_YEARS} years "
                                "healthcare audit evidence is kept (HIPAA 45 CFR 164.316(b)(2))",
                                "keep the default 6y, or pass --allow-short-retention for a test installation")
    return cutoff.timestamp()


def parse_artifact(ref: str) -> tuple[str, str]:
    """``sha256:<hex>`` or ``NAME@sha256:<hex>`` -> (subject name, ``sha256:<hex>``)."""
    name, _, digest = ref.rpartition("@") if "@sha256:" in ref else ("", "", ref)
    try:
        hexdigest = sha256_hex(digest, "ARTIFACT")
    except ValueError as exc:
        raise InputError.single("ARTIFACT", str(exc), "give the artifact digest as sha256:<64 hex> "
                                "(or NAME@sha256:<64 hex>), e.g. from `sha256sum` of the artifact") from None
    return name or f"sha256:{hexdigest}", f"sha256:{hexdigest}"


@dataclass(frozen=True)
class Consistency:
    """Does the current log extend a checkpoint kept earlier? ``problem`` says why not."""

    origin: str
    old_size: int
    old_root: bytes
    new_size: int | None = None
    new_root: bytes | None = None
    proof: tuple[bytes, ...] = ()
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.new_size is not None


def open_kept_checkpoint(path: str | Path, origin: str, verifiers: Sequence[cp.VerifierKey], *,
                         keys_hint: str) -> tuple[str, cp.Checkpoint]:
    """The note text and opened checkpoint of a checkpoint file kept earlier; ``InputError`` naming the file.

    The note must be a checkpoint of the log ``origin`` with a valid signature from one of ``verifiers``.
    ``keys_hint`` is the fix to give when no signature is from a known key.
    """
    file = Path(path)
    where = str(path)
    keep = f"pass the checkpoint file you saved earlier with {KEEP_CHECKPOINT}"
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_CHECKPOINT_BYTES + 1)
    except FileNotFoundError:
        raise InputError.single(where, "checkpoint file not found", keep) from None
    except OSError as exc:
        raise InputError.single(where, f"cannot read the checkpoint file ({exc.strerror or exc})", keep) from None
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise InputError.single(where, f"larger than {MAX_CHECKPOINT_BYTES} bytes: not a checkpoint", keep)
    try:
        note = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError.single(where, "not a checkpoint: not UTF-8 text", keep) from None
    claimed = note.split("\n", 1)[0]
    try:
        return note, cp.open_checkpoint(note, verifiers, origin=origin)
    except cp.MalformedNoteError as exc:
        raise InputError.single(where, f"not a signed checkpoint note ({exc})", keep) from None
    except cp.CheckpointError as exc:
        if claimed != origin:
            raise InputError.single(where, f"a checkpoint of the log {claimed!r}, not of this log {origin!r}",
                                    "pass a checkpoint saved from this log (its first line is the log's origin)"
                                    ) from None
        if isinstance(exc, cp.InvalidSignatureError):
            raise InputError.single(where, f"its signature does not verify ({exc}): the file was changed after "
                                    "it was signed", keep) from None
        raise InputError.single(where, f"not signed by a key you trust ({exc})", keys_hint) from None


@dataclass(frozen=True)
class Added:
    index: int
    kind: str
    artifact: str
    summary: dict[str, Any]


class EvidenceService:
    def __init__(self, store: Store, clock: Any = time.time):
        self.store = store
        self.clock = clock

    def _record(self, rollout_id: str) -> RolloutRecord:
        record = self.store.get_rollout(rollout_id)
        if record is None:
            raise NotFound(f"no release with id {rollout_id!r}; `primum history` lists them")
        return record

    # ------------------------------------------------------------------ CI evidence

    def add(self, artifact: str, path: str | Path, *, fmt: str | None = None,
            trusted_keys: list[Any] | None = None) -> Added:
        """Ingest a CI file (SLSA provenance, JUnit, SARIF, Trivy/Grype JSON, CycloneDX) about an artifact."""
        from primum.adapters.evidence.ingest import ingest_file

        name, digest = parse_artifact(artifact)
        subject = {"name": name, "digest": {"sha256": digest.removeprefix("sha256:")}}
        kwargs: dict[str, Any] = {"subject": subject, "fmt": fmt, "now": self.clock()}
        if trusted_keys:
            kwargs["trusted_keys"] = trusted_keys
        ingested = ingest_file(path, **kwargs)
        [index] = self.store.append_evidence([PendingEntry(
            statement=ingested.statement, kind=ingested.kind, artifact=digest, summary=ingested.summary)],
            self.clock())
        return Added(index, ingested.kind, digest, ingested.summary)

    # ------------------------------------------------------------------ checkpoints and consistency

    def checkpoint(self) -> tuple[str, StoredCheckpoint]:
        """The log's origin and its newest signed checkpoint, as stored."""
        origin, latest = self.store.evidence_checkpoint()
        if latest is None:
            raise NotAllowed("the evidence log is empty: it has no checkpoint yet")
        return origin, latest

    def _verifiers(self, origin: str, public_keys: Sequence[Any] | None) -> tuple[list[cp.VerifierKey], str]:
        """Checkpoint verifier keys (the given keys, else the local keyring's), and the fix when none fits."""
        from primum.adapters.evidence.bundle import verifier_key

        if public_keys:
            return ([verifier_key(origin, k) for k in public_keys],
                    "pass --key with every public key of the log (`primum keys export --all`), rotated ones included")
        keys = self.store.evidence.keys.keyring().public_keys().values()
        return ([verifier_key(origin, k) for k in keys],
                "the local keyring holds no key that signed it; pass --key PUB.pem with the log's public key(s)")

    def consistency(self, since: str | Path, public_keys: Sequence[Any] | None = None) -> Consistency:
        """Check that the current log extends the checkpoint kept in the file ``since`` (RFC 9162 §2.1.4).

        The kept checkpoint and the current one are opened with ``public_keys`` (Ed25519 public keys;
        default: the local keyring's, retired ones included). A kept checkpoint that cannot be read, is not
        signed by those keys or is of another log is bad input (``InputError``); a log that does not extend
        it is a ``Consistency`` with a ``problem``.
        """
        origin, _ = self.store.evidence_checkpoint()
        verifiers, hint = self._verifiers(origin, public_keys)
        _, old = open_kept_checkpoint(since, origin, verifiers, keys_hint=hint)
        rewritten = f"the log was rewritten: the current log does not extend the checkpoint at size {old.size}"
        try:
            stored, proof = self.store.consistency(old.size)
        except ConsistencyError as exc:
            return Consistency(origin, old.size, old.root_hash, problem=f"{rewritten} ({exc})")
        try:
            new = cp.open_checkpoint(stored.note, verifiers, origin=origin)
        except cp.CheckpointError as exc:
            return Consistency(origin, old.size, old.root_hash, problem=f"the log's current checkpoint at size "
                               f"{stored.size} does not verify with the given keys: {exc}")
        problem = None
        if not verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof):
            problem = (f"{rewritten}: the RFC 9162 consistency proof from size {old.size} to {new.size} does not "
                       "verify against the root you kept (`primum evidence verify` names the first bad entry)")
        return Consistency(origin, old.size, old.root_hash, new.size, new.root_hash, tuple(proof), problem)

    # ------------------------------------------------------------------ bundles

    def export(self, rollout_id: str, out: str | Path, since: str | Path | None = None) -> Any:
        """Write the release's audit bundle (envelopes, proofs, checkpoint, public keys, report).

        ``since``: a file holding an earlier signed checkpoint of this log (one an auditor kept); the bundle
        then also carries it and the consistency proof from it to the bundle's checkpoint.
        """
        from primum.adapters.evidence.bundle import LogEntry, write_bundle

        record = self._record(rollout_id)
        artifacts = record.artifacts
        origin, checkpoint, hashes = self.store.evidence_snapshot()
        if checkpoint is None:
            raise NotAllowed("the evidence log is empty: nothing to export")
        keyring = self.store.evidence.keys.keyring()
        previous_note: str | None = None
        proof: list[bytes] | None = None
        if since is not None:
            verifiers, hint = self._verifiers(origin, None)
            previous_note, previous = open_kept_checkpoint(since, origin, verifiers, keys_hint=hint)
            if previous.size > checkpoint.size:
                raise NotAllowed(f"{since}: the checkpoint covers {previous.size} entries but the log has "
                                 f"{checkpoint.size}: the log was rewritten (truncated) since, so it cannot be "
                                 "proved to extend it; `primum evidence verify` checks the log")
            if len(hashes) != checkpoint.size:
                raise NotAllowed(f"the log has {len(hashes)} leaf hashes below its checkpoint's size "
                                 f"{checkpoint.size}: entries were deleted; `primum evidence verify` names the first")
            try:
                current = cp.open_checkpoint(checkpoint.note, verifiers, origin=origin)
            except cp.CheckpointError as exc:
                raise NotAllowed(f"the log's newest checkpoint (size {checkpoint.size}) does not verify with the "
                                 f"local keyring: {exc}; `primum evidence verify` checks the log") from None
            proof = consistency_proof(hashes, previous.size, checkpoint.size)
            if not verify_consistency(previous.size, current.size, previous.root_hash, current.root_hash, proof):
                raise NotAllowed(f"{since}: the log was rewritten: the current log does not extend the checkpoint "
                                 f"at size {previous.size}; `primum evidence verify` names the first bad entry")
        entries = [LogEntry(index=e.index, leaf_hash=e.leaf_hash, envelope=e.envelope, purged_at=e.purged_at)
                   for e in self.store.evidence_entries(rollout_id, [a["digest"] for a in artifacts.values()])
                   if e.index < checkpoint.size]
        return write_bundle(Path(out), release_id=record.id, release_digest=record.digest, origin=origin,
                            entries=entries, leaf_hashes=hashes, checkpoint_note=checkpoint.note,
                            public_keys=keyring.public_keys(), signer=keyring.current, generated_at=self.clock(),
                            artifacts=artifacts, previous_checkpoint=previous_note, consistency=proof)

    # ------------------------------------------------------------------ retention

    def hold(self, rollout_id: str, reason: str, *, caller: Caller | None = None,
             identities: str | None = None) -> int:
        """Place a legal hold, signed by a release manager or platform admin enrolled in ``identities`` (the
        identities file in force now); the signed statement and the file's digest go into the evidence."""
        if len(reason.strip()) < 5:
            raise NotAllowed("a legal hold needs a reason (the matter or ticket), e.g. --reason 'LIT-2026-014'")
        record = self._record(rollout_id)
        who, recorded = administrator(caller, identities, "hold")
        assert caller is not None  # administrator refused a missing caller
        now = self.clock()
        envelope = sign(caller, Claim(record.id, "hold", who, record.digest, now))
        hold_id = self.store.add_legal_hold(rollout_id, reason=reason, actor=who, at=now)
        self.store.add_events(rollout_id, [NewEvent(kind="legal_hold", message=f"legal hold by {who}: {reason}",
                                                    data={"actor": who, "reason": reason, "hold": hold_id,
                                                          "identities_digest": recorded["digest"],
                                                          **signed_data(envelope)})], now)
        return hold_id

    def unhold(self, rollout_id: str, *, caller: Caller | None = None, identities: str | None = None) -> int:
        """Release a release's legal holds, signed by a platform admin (its evidence may then be purged)."""
        record = self._record(rollout_id)
        who, recorded = administrator(caller, identities, "unhold")
        assert caller is not None
        now = self.clock()
        envelope = sign(caller, Claim(record.id, "unhold", who, record.digest, now))
        released = self.store.release_legal_hold(rollout_id, actor=who, at=now)
        if released == 0:
            raise NotAllowed(f"release {rollout_id} has no open legal hold")
        self.store.add_events(rollout_id, [NewEvent(kind="legal_hold_released",
                                                    message=f"legal hold released by {who}",
                                                    data={"actor": who, "identities_digest": recorded["digest"],
                                                          **signed_data(envelope)})], now)
        return released

    def purge(self, retention: str = f"{DEFAULT_RETENTION_YEARS}y", *, dry_run: bool = False,
              allow_short: bool = False, caller: Caller | None = None, identities: str | None = None) -> list[int]:
        """Purge the envelopes of entries older than the retention, except under legal hold.

        Signed by a platform admin (a dry run changes nothing and needs no key). The purge itself is
        recorded in the log (subject: the log at its current tree head) with the admin's signed statement
        over that tree head, so an auditor sees when and by whom evidence was removed, and which entries.
        """
        now = self.clock()
        before = retention_cutoff(retention, now, allow_short=allow_short)
        if dry_run:
            return self.store.purge_evidence(before=before, now=now, dry_run=True)
        who, recorded = administrator(caller, identities, "purge")
        assert caller is not None
        origin, checkpoint, _ = self.store.evidence_snapshot()  # signed before anything is removed
        root = (checkpoint.root_hash if checkpoint else EMPTY_ROOT).hex()
        envelope = sign(caller, Claim("", "purge", who, f"sha256:{root}", now, subject=f"log:{origin}"))
        purged = self.store.purge_evidence(before=before, now=now, dry_run=False)
        if purged:
            statement = event_to_statement(
                [{"name": f"log:{origin}", "digest": {"sha256": root}}], kind="purge",
                message=f"{len(purged)} evidence entries older than {retention} purged by {who}", at=now,
                data={"actor": who, "retention": retention, "before": before, "count": len(purged),
                      "indices": _ranges(purged), "identities_digest": recorded["digest"], **signed_data(envelope)})
            self.store.append_evidence([PendingEntry(statement=statement, kind="purge")], now)
        return purged

    # ------------------------------------------------------------------ reading the log

    def verify_log(self, public_keys: Sequence[Any] | None = None, witness_dirs: Sequence[Path] = ()) -> Any:
        """Verify the whole log (signatures, the tree, every checkpoint) and that every event, approval and
        break-glass row has its entry, with ``public_keys`` if given, else the local keyring; then the log
        against the store's witness directory and ``witness_dirs``. The report names the first bad entry."""
        keyring = None
        if public_keys:
            from primum.adapters.evidence.keys import Keyring

            keyring = Keyring(None, list(public_keys))
        own = [] if self.store.witness_dir is None else [self.store.witness_dir]
        dirs = list(dict.fromkeys([*own, *(Path(d).resolve() for d in witness_dirs)]))
        return self.store.verify_evidence(keyring, dirs)

    def witness(self, directory: Path | None, public_keys: Sequence[Any] | None = None) -> Any:
        """Witness the log's newest checkpoint in ``directory`` (default: the store's witness directory):
        check it extends the checkpoint held there, refuse a rollback, cosign and keep it."""
        from primum.adapters.evidence.witness import witness_once

        where = directory or self.store.witness_dir
        if where is None:
            raise InputError.single("--dir", "no witness directory", "pass --dir DIR (a directory elsewhere: "
                                    "another disk, host or user), or set PRIMUM_WITNESS_DIR")
        origin, latest = self.store.evidence_checkpoint()
        if latest is None:
            raise NotAllowed("the evidence log is empty: it has no checkpoint to witness yet")
        verifiers, _ = self._verifiers(origin, public_keys)

        def proof_from(size: int) -> list[bytes]:
            stored, proof = self.store.consistency(size)
            if stored.size != latest.size:  # the log grew meanwhile: prove to the checkpoint being witnessed
                raise ConsistencyError(f"the log moved from size {latest.size} to {stored.size} while it was "
                                       "witnessed; run the witness again")
            return proof

        return witness_once(Path(where), origin=origin, note=latest.note, verifiers=verifiers, proof_from=proof_from,
                            now=int(self.clock()))

    def entries(self, rollout_id: str | None = None) -> list[dict[str, Any]]:
        """The log's entries: of one release and its artifacts' CI evidence, or all."""
        artifacts: list[str] = []
        if rollout_id is not None:
            artifacts = [pin["digest"] for pin in self._record(rollout_id).artifacts.values()]
        return [{"index": e.index, "kind": e.kind, "predicate_type": e.predicate_type, "release": e.rollout_id,
                 "artifact": e.artifact, "at": e.at, "purged": e.purged_at is not None}
                for e in self.store.evidence_entries(rollout_id, artifacts)]


def verify_audit_bundle(bundle: Path, public_keys: Sequence[Any]) -> Any:
    """Verify an audit bundle offline with only the public keys the auditor trusts (no store needed)."""
    from primum.adapters.evidence.bundle import verify_bundle

    if not public_keys:
        raise InputError.single(str(bundle), "verifying a bundle needs the public key you trust",
                                "pass --key PUB.pem (obtained from the log operator, not from the bundle)")
    if not bundle.is_file():
        raise InputError.single(str(bundle), "bundle file not found", "pass the .tar.gz written by "
                                "`primum evidence export`")
    return verify_bundle(bundle, list(public_keys))


def _ranges(indices: list[int]) -> list[list[int]]:
    """[0, 1, 2, 5] -> [[0, 2], [5, 5]]: purged indices, compactly."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out
