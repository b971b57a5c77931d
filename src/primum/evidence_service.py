"""Evidence use cases shared by every front end: CI evidence ingest, verifying the log, audit bundles,
legal holds and retention purges. Thin over ``primum.evidence`` (pure formats) and the store's log.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from primum.evidence.events import event_to_statement
from primum.evidence.statements import sha256_hex
from primum.evidence.tlog import EMPTY_ROOT
from primum.model.errors import InputError
from primum.redaction import safe
from primum.service import NotAllowed, NotFound, current_user
from primum.store.evidence import PendingEntry
from primum.store.records import NewEvent, RolloutRecord
from primum.store.repository import Store

# HIPAA keeps required documentation six years from its creation (45 CFR 164.316(b)(2)(i)).
DEFAULT_RETENTION_YEARS = 6
_RETENTION = re.compile(r"^(\d+)([yd])$")


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
        from primum.evidence.ingest import ingest_file

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

    # ------------------------------------------------------------------ bundles

    def export(self, rollout_id: str, out: str | Path) -> Any:
        """Write the release's audit bundle (envelopes, proofs, checkpoint, public keys, report)."""
        from primum.evidence.bundle import LogEntry, write_bundle

        record = self._record(rollout_id)
        pins = record.release.get("release", {}).get("services", {})
        artifacts = {name: {"digest": pin["digest"], "version": pin.get("version", "")} for name, pin in pins.items()}
        origin, checkpoint, hashes = self.store.evidence_snapshot()
        if checkpoint is None:
            raise NotAllowed("the evidence log is empty: nothing to export")
        entries = [LogEntry(index=e.index, leaf_hash=e.leaf_hash, envelope=e.envelope, purged_at=e.purged_at)
                   for e in self.store.evidence_entries(rollout_id, [a["digest"] for a in artifacts.values()])
                   if e.index < checkpoint.size]
        keyring = self.store.evidence.keys.keyring()
        return write_bundle(Path(out), release_id=record.id, release_digest=record.digest, origin=origin,
                            entries=entries, leaf_hashes=hashes, checkpoint_note=checkpoint.note,
                            public_keys=keyring.public_keys(), signer=keyring.current, generated_at=self.clock(),
                            artifacts=artifacts)

    # ------------------------------------------------------------------ retention

    def hold(self, rollout_id: str, reason: str, actor: str | None = None) -> int:
        if len(reason.strip()) < 5:
            raise NotAllowed("a legal hold needs a reason (the matter or ticket), e.g. --reason 'LIT-2026-014'")
        who = actor or current_user()
        self._record(rollout_id)
        now = self.clock()
        hold_id = self.store.add_legal_hold(rollout_id, reason=reason, actor=who, at=now)
        self.store.add_events(rollout_id, safe([NewEvent(kind="legal_hold", message=f"legal hold by {who}: {reason}",
                                                         data={"actor": who, "reason": reason})]), now)
        return hold_id

    def unhold(self, rollout_id: str, actor: str | None = None) -> int:
        who = actor or current_user()
        self._record(rollout_id)
        now = self.clock()
        released = self.store.release_legal_hold(rollout_id, actor=who, at=now)
        if released == 0:
            raise NotAllowed(f"release {rollout_id} has no open legal hold")
        self.store.add_events(rollout_id, safe([NewEvent(kind="legal_hold_released",
                                                         message=f"legal hold released by {who}",
                                                         data={"actor": who})]), now)
        return released

    def purge(self, retention: str = f"{DEFAULT_RETENTION_YEARS}y", *, dry_run: bool = False,
              allow_short: bool = False, actor: str | None = None) -> list[int]:
        """Purge the envelopes of entries older than the retention, except under legal hold.

        The purge itself is recorded in the log (subject: the log at its current tree head), so an
        auditor sees when and by whom evidence was removed, and which entries.
        """
        now = self.clock()
        before = retention_cutoff(retention, now, allow_short=allow_short)
        purged = self.store.purge_evidence(before=before, now=now, dry_run=dry_run)
        if purged and not dry_run:
            origin, checkpoint, _ = self.store.evidence_snapshot()
            root = (checkpoint.root_hash if checkpoint else EMPTY_ROOT).hex()
            who = actor or current_user()
            statement = event_to_statement(
                [{"name": f"log:{origin}", "digest": {"sha256": root}}], kind="purge",
                message=f"{len(purged)} evidence entries older than {retention} purged by {who}", at=now,
                data={"actor": who, "retention": retention, "before": before, "count": len(purged),
                      "indices": _ranges(purged)})
            self.store.append_evidence([PendingEntry(statement=statement, kind="purge")], now)
        return purged


def _ranges(indices: list[int]) -> list[list[int]]:
    """[0, 1, 2, 5] -> [[0, 2], [5, 5]]: purged indices, compactly."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out
