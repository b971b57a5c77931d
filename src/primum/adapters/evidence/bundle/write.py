"""Export: write a release's audit bundle, a reproducible .tar.gz, atomically, after checking every input.

Nothing is written unless the inputs are consistent: the checkpoint signs the given leaf hashes, every
entry's envelope is the log's and verifies, and is about the release. The tarball's bytes depend only on
the inputs (fixed owner, modes and times, sorted members), so the same export gives the same bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from primum.adapters.evidence.bundle.base import (
    AUDIT_BUNDLE_V1,
    CHECKPOINT,
    CONSISTENCY,
    FORMAT,
    MANIFEST,
    MANIFEST_DSSE,
    PREVIOUS_CHECKPOINT,
    REPORT_HTML,
    REPORT_MD,
    TOP_PREFIX,
    BundleError,
    binding_problem,
    digest_hex,
    envelope_name,
    json_bytes,
    keyring_of,
    proof_name,
    verifier_key,
)
from primum.core.evidence import checkpoint as cp
from primum.core.evidence import dsse, tlog
from primum.core.evidence import statements as st
from primum.core.evidence.report import BundleInfo, render_html, render_markdown

_RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class LogEntry:
    """One transparency-log entry of the release, as the store holds it."""

    index: int  # 0-based position in the transparency log
    leaf_hash: bytes  # 32 bytes, tlog.leaf_hash(envelope) when not purged
    envelope: bytes | None  # exact stored DSSE envelope JSON bytes; None when purged under retention
    purged_at: float | None = None

    @property
    def purged(self) -> bool:
        return self.envelope is None


@dataclass(frozen=True)
class BundleSummary:
    """What :func:`write_bundle` wrote."""

    path: Path
    release_id: str
    entries: int
    purged: int
    tree_size: int
    root_hash: str  # hex
    files: tuple[str, ...]  # relative to the top directory
    sha256: str  # of the .tar.gz
    previous_size: int | None = None  # the tree size of the previous checkpoint, when one is included


def _release_section(release_id: str, release_digest: str,
                     artifacts: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    if not _RELEASE_ID.match(release_id):
        raise BundleError(f"release_id {release_id!r}: expected letters, digits, '.', '_', '-' (max 100)")
    try:
        section: dict[str, Any] = {"id": release_id, "digest": "sha256:" + st.sha256_hex(release_digest),
                                   "artifacts": {}}
        for service in sorted(artifacts):
            pin = artifacts[service]
            if not isinstance(service, str) or not service:
                raise BundleError(f"artifacts: service name {service!r} must be a non-empty string")
            section["artifacts"][service] = {
                "digest": "sha256:" + st.sha256_hex(pin.get("digest", ""), f"artifacts.{service}.digest"),
                "version": str(pin.get("version") or ""),
            }
    except st.StatementError as exc:
        raise BundleError(str(exc)) from exc
    return section


def _checked_head(note: str, origin: str, keyring: Mapping[str, Ed25519PublicKey],
                  leaf_hashes: Sequence[bytes]) -> cp.Checkpoint:
    try:
        head = cp.open_checkpoint(note, [verifier_key(origin, k) for k in keyring.values()], origin=origin)
    except cp.CheckpointError as exc:
        raise BundleError(f"checkpoint_note: {exc} (it must be signed by one of public_keys, key name {origin!r})"
                          ) from exc
    if head.size != len(leaf_hashes):
        raise BundleError(f"checkpoint_note: covers {head.size} entries but {len(leaf_hashes)} leaf hashes were "
                          "given; pass the log's leaf hashes up to exactly the checkpoint's size")
    computed = tlog.root(leaf_hashes)
    if head.root_hash != computed:
        raise BundleError(f"checkpoint_note: root hash {head.root_hash.hex()} is not the root {computed.hex()} of "
                          "the given leaf hashes: the log or its checkpoint was changed")
    return head


def _checked_entries(entries: Sequence[LogEntry], leaf_hashes: Sequence[bytes], keyring: Mapping[str, Ed25519PublicKey],
                     release: Mapping[str, Any]) -> list[tuple[int, st.Statement]]:
    """The entries' statements (index, statement); raises ``BundleError`` naming the first bad entry."""
    release_hex = release["digest"].removeprefix("sha256:")
    artifact_hexes = {a["digest"].removeprefix("sha256:") for a in release["artifacts"].values()}
    out: list[tuple[int, st.Statement]] = []
    previous = -1
    for e in entries:
        where = f"entries: entry {e.index}"
        if isinstance(e.index, bool) or not isinstance(e.index, int) or not 0 <= e.index < len(leaf_hashes):
            raise BundleError(f"{where}: index outside the checkpoint's {len(leaf_hashes)} entries")
        if e.index == previous:
            raise BundleError(f"{where}: given twice")
        previous = e.index
        if e.leaf_hash != leaf_hashes[e.index]:
            raise BundleError(f"{where}: leaf hash {e.leaf_hash.hex()} is not the log's {leaf_hashes[e.index].hex()}")
        if e.envelope is None:
            continue
        if e.purged_at is not None:
            raise BundleError(f"{where}: has both an envelope and purged_at")
        if tlog.leaf_hash(e.envelope) != e.leaf_hash:
            raise BundleError(f"{where}: the envelope's leaf hash is not the recorded {e.leaf_hash.hex()}")
        try:
            stmt = st.open_statement(e.envelope, keyring)
        except dsse.VerificationError as exc:
            raise BundleError(f"{where}: does not verify with public_keys: {exc}") from exc
        why = binding_problem(stmt, release["id"], release_hex, artifact_hexes)
        if why:
            raise BundleError(f"{where}: {why}")
        out.append((e.index, stmt))
    return out


def _checked_previous(note: str, proof: Sequence[bytes], origin: str, keyring: Mapping[str, Ed25519PublicKey],
                      head: cp.Checkpoint) -> cp.Checkpoint:
    """The previous checkpoint, opened, after checking that ``proof`` shows ``head`` extends it."""
    try:
        previous = cp.open_checkpoint(note, [verifier_key(origin, k) for k in keyring.values()], origin=origin)
    except cp.CheckpointError as exc:
        raise BundleError(f"previous_checkpoint: {exc} (it must be a checkpoint of this log, signed by one of "
                          f"public_keys, key name {origin!r})") from exc
    if previous.size > head.size:
        raise BundleError(f"previous_checkpoint: covers {previous.size} entries, more than the {head.size} of "
                          "checkpoint_note: the log does not extend it")
    if not tlog.verify_consistency(previous.size, head.size, previous.root_hash, head.root_hash, list(proof)):
        raise BundleError(f"consistency: does not prove that the checkpoint at size {head.size} extends the previous "
                          f"checkpoint at size {previous.size}: the log was rewritten, or the proof is not for them")
    return previous


def write_bundle(
    path: str | os.PathLike[str],
    *,
    release_id: str,
    release_digest: str,
    origin: str,
    entries: Sequence[LogEntry],
    leaf_hashes: Sequence[bytes],
    checkpoint_note: str,
    public_keys: Mapping[str, Ed25519PublicKey] | Sequence[Ed25519PublicKey],
    signer: dsse.Signer,
    generated_at: float,
    artifacts: Mapping[str, Mapping[str, str]] | None = None,
    report_title: str | None = None,
    previous_checkpoint: str | None = None,
    consistency: Sequence[bytes] | None = None,
) -> BundleSummary:
    """Write the audit bundle of a release atomically; raise ``BundleError`` (and write nothing) on bad inputs.

    ``leaf_hashes`` are all the log's leaf hashes up to the checkpoint's size; ``checkpoint_note`` is the
    signed checkpoint of exactly that tree; ``entries`` are the release's entries (any order);
    ``artifacts`` maps each service to ``{"digest": "sha256:..", "version": ".."}``. ``public_keys``
    must include every key that signed an entry (retired ones too) and ``signer``'s key.

    ``previous_checkpoint`` (an earlier signed checkpoint of the same log, e.g. one an auditor kept) and
    ``consistency`` (the RFC 9162 consistency proof from it to ``checkpoint_note``) go together: the
    proof is verified before anything is written, and both are added to the bundle and its signed manifest.
    """
    target = Path(path)
    release = _release_section(release_id, release_digest, artifacts or {})
    keyring = keyring_of(public_keys)
    if signer.keyid not in keyring:
        raise BundleError(f"signer: key {signer.keyid} is not among public_keys, so the bundle would not verify")
    if (previous_checkpoint is None) != (consistency is None):
        raise BundleError("previous_checkpoint and consistency: give both (the earlier checkpoint and the proof "
                          "from it to checkpoint_note) or neither")
    head = _checked_head(checkpoint_note, origin, keyring, leaf_hashes)
    previous: cp.Checkpoint | None = None
    if previous_checkpoint is not None and consistency is not None:
        previous = _checked_previous(previous_checkpoint, consistency, origin, keyring, head)
    ordered = sorted(entries, key=lambda e: e.index)
    if not ordered:
        raise BundleError("entries: a release with no log entries has nothing to audit")
    signed = _checked_entries(ordered, leaf_hashes, keyring, release)
    proofs = tlog.inclusion_proofs(leaf_hashes, [e.index for e in ordered], head.size)

    files: dict[str, bytes] = {CHECKPOINT: checkpoint_note.encode()}
    manifest_entries: list[dict[str, Any]] = []
    for e in ordered:
        if e.envelope is not None:
            files[envelope_name(e.index)] = e.envelope
        files[proof_name(e.index)] = json_bytes({
            "index": e.index, "tree_size": head.size, "leaf_hash": e.leaf_hash.hex(),
            "hashes": [h.hex() for h in proofs[e.index]],
        })
        manifest_entries.append({
            "index": e.index,
            "leaf_hash": e.leaf_hash.hex(),
            "envelope": envelope_name(e.index) if e.envelope is not None else None,
            "proof": proof_name(e.index),
            "purged_at": st.rfc3339(e.purged_at) if e.envelope is None and e.purged_at is not None else None,
        })
    for kid in sorted(keyring):
        files[f"keys/{kid}.pem"] = keyring[kid].public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    root_hex = head.root_hash.hex()
    log: dict[str, Any] = {"origin": origin, "tree_size": head.size, "root_hash": root_hex}
    if previous is not None and previous_checkpoint is not None and consistency is not None:
        files[PREVIOUS_CHECKPOINT] = previous_checkpoint.encode()
        files[CONSISTENCY] = json_bytes({"old_size": previous.size, "new_size": head.size,
                                          "hashes": [h.hex() for h in consistency]})
        log["previous"] = {"tree_size": previous.size, "root_hash": previous.root_hash.hex()}
    generated = st.rfc3339(generated_at)
    info = BundleInfo(
        release_id=release_id, release_digest=release["digest"], origin=origin, tree_size=head.size,
        root_hash=root_hex, generated_at=generated, artifacts=release["artifacts"], entries=len(ordered),
        purged=[(m["index"], m["purged_at"]) for m in manifest_entries if m["envelope"] is None],
        key_ids=sorted(keyring), title=report_title, since_size=None if previous is None else previous.size,
    )
    statements = [s for _, s in signed]
    indices = [i for i, _ in signed]
    files[REPORT_MD] = render_markdown(info, statements, indices).encode()
    files[REPORT_HTML] = render_html(info, statements, indices).encode()
    files[MANIFEST] = json_bytes({
        "format": FORMAT, "release": release, "log": log, "generated_at": generated,
        "entries": manifest_entries, "files": {name: digest_hex(files[name]) for name in sorted(files)},
    })
    subjects = [{"name": name, "digest": {"sha256": digest_hex(files[name])}} for name in sorted(files)]
    predicate = {"release": release, "log": log, "generated_at": generated}
    files[MANIFEST_DSSE] = st.sign_statement(st.statement(subjects, AUDIT_BUNDLE_V1, predicate), signer).to_json()

    digest = _write_tar_atomically(target, f"{TOP_PREFIX}{release_id}", files, int(generated_at))
    return BundleSummary(target, release_id, len(ordered), len(info.purged), head.size, root_hex,
                         tuple(sorted(files)), digest, None if previous is None else previous.size)


def _write_tar_atomically(path: Path, top: str, files: Mapping[str, bytes], mtime: int) -> str:
    """Write a reproducible tar.gz (fixed owner, modes, times) next to ``path``, then rename it over ``path``."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w+b") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz, \
                    tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                dirs = sorted({name.rsplit("/", 1)[0] for name in files if "/" in name})
                for d in ["", *dirs]:
                    info = tarfile.TarInfo(f"{top}/{d}".rstrip("/"))
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                    tar.addfile(info)
                for name in sorted(files):
                    data = files[name]
                    info = tarfile.TarInfo(f"{top}/{name}")
                    info.size, info.mode, info.mtime = len(data), 0o644, mtime
                    tar.addfile(info, _BytesReader(data))
            raw.flush()
            os.fsync(raw.fileno())
            raw.seek(0)
            digest = hashlib.file_digest(raw, "sha256").hexdigest()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the platform allows it
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return digest


class _BytesReader:
    """The minimal file object ``tarfile.addfile`` reads from."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._pos + size
        chunk = self._view[self._pos : end].tobytes()
        self._pos += len(chunk)
        return chunk
