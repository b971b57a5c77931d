"""Audit bundles: one .tar.gz holding a release's signed evidence, verifiable offline with only a public key.

Layout (one top directory, ``primum-evidence-<release id>/``)::

    manifest.dsse.json           DSSE envelope of an in-toto Statement: every other file is a subject (sha256)
    manifest.json                release (with artifacts), log, entries, and the sha256 of every other file
    checkpoint.txt               the signed C2SP checkpoint every proof is checked against
    envelopes/<index>.dsse.json  the exact stored DSSE envelope of each entry (none for purged entries)
    proofs/<index>.json          the RFC 9162 inclusion proof of each entry in the checkpoint's tree
    keys/<keyid>.pem             the public keys, for reference only: a verifier trusts only the keys it is given
    report.md, report.html       the human-readable report (covered by the signed manifest too)
    previous-checkpoint.txt      optional: an earlier signed checkpoint of the log that the auditor kept
    consistency.json             with it: the RFC 9162 consistency proof from that checkpoint to checkpoint.txt

No database here: the store reads the log and passes :class:`LogEntry` values in. Verification reads the
tarball in memory, never extracts it, and fails closed: every check that cannot run is a problem.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from primum.adapters.evidence.keys import SigningKey, key_id, public_key_bytes
from primum.core.evidence import checkpoint as cp
from primum.core.evidence import dsse, tlog
from primum.core.evidence import statements as st
from primum.core.evidence.report import BundleInfo, render_html, render_markdown

FORMAT = "primum-audit-bundle/v1"
AUDIT_BUNDLE_V1 = "https://primum.dev/predicates/audit-bundle/v1"
TOP_PREFIX = "primum-evidence-"
MANIFEST = "manifest.json"
MANIFEST_DSSE = "manifest.dsse.json"
CHECKPOINT = "checkpoint.txt"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PREVIOUS_CHECKPOINT = "previous-checkpoint.txt"
CONSISTENCY = "consistency.json"
MAX_MEMBERS = 100_000
MAX_UNCOMPRESSED = 1 << 30  # bytes of the uncompressed tar stream
IN_TOTO_MISSING = "in-toto-attestation not installed: statements checked by primum's own parser only"

_RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MEMBER_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+@=-]{0,254}$")


class BundleError(ValueError):
    """A bundle that must not be written: the inputs are inconsistent. The message names the input."""


class BundleFormatError(ValueError):
    """A tarball or manifest that cannot be read as a bundle; the message names the member or field."""


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


@dataclass
class BundleVerification:
    """The verdict of :func:`verify_bundle`. ``problems[0]`` names the first bad file or entry."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts that are not failures
    release_id: str = ""
    release_digest: str = ""
    entries: int = 0
    purged: int = 0
    tree_size: int = 0
    root_hash: str = ""  # hex
    statements: list[dict[str, Any]] = field(default_factory=list)  # verified statements, in log order
    complete: bool = False  # every check ran to the end
    previous_size: int | None = None  # the previous checkpoint the bundle's log was proved to extend
    previous_root_hash: str = ""  # hex

    @property
    def ok(self) -> bool:
        # An early stop without a problem must never read as a pass.
        return self.complete and not self.problems


def envelope_name(index: int) -> str:
    return f"envelopes/{index:08d}.dsse.json"


def proof_name(index: int) -> str:
    return f"proofs/{index:08d}.json"


def verifier_key(origin: str, public_key: Ed25519PublicKey) -> cp.VerifierKey:
    """The checkpoint verifier key: the note key name is the log origin, the key is the DSSE Ed25519 key."""
    return cp.VerifierKey(origin, public_key_bytes(public_key))


def note_signer(origin: str, key: SigningKey) -> cp.NoteSigner:
    """A checkpoint signer for the log ``origin`` that signs with ``key`` (so a retired key refuses)."""
    return cp.NoteSigner(origin, public_key_bytes(key.public_key), key.sign)


def load_public_key(pem: bytes, where: str = "public key") -> Ed25519PublicKey:
    """An Ed25519 public key from SubjectPublicKeyInfo PEM; ``ValueError`` naming ``where`` otherwise."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ValueError(f"{where}: not a readable PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{where}: a {type(key).__name__}, not an Ed25519 public key")
    return key


def _key_map(public_keys: Sequence[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    """Keys by their real key id (a caller's mapping keys are not trusted to be key ids)."""
    values = public_keys.values() if isinstance(public_keys, Mapping) else public_keys
    keyring: dict[str, Ed25519PublicKey] = {}
    for k in values:
        if not isinstance(k, Ed25519PublicKey):
            raise TypeError(f"{type(k).__name__} is not an Ed25519 public key")
        keyring[key_id(k)] = k
    return keyring


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False).encode() + b"\n"


def _subject_sha256(subject: Any) -> Any:
    digest = subject.get("digest") if isinstance(subject, Mapping) else None
    return digest.get("sha256") if isinstance(digest, Mapping) else None


def _binding_problem(stmt: Mapping[str, Any], release_id: str, release_hex: str,
                     artifact_hexes: set[str]) -> str | None:
    """Why the statement is not about this release, or None.

    It is when its first subject is ``release:<id>`` with the release digest, or (artifact-level CI
    evidence) when one of its subjects carries one of the release's artifact digests. A statement naming
    this release with another digest is about another version of it and never passes.
    """
    subjects = stmt.get("subject")
    subjects = subjects if isinstance(subjects, list) else []
    first = subjects[0] if subjects and isinstance(subjects[0], Mapping) else {}
    if first.get("name") == f"release:{release_id}":
        got = _subject_sha256(first)
        if got == release_hex:
            return None
        return f"its subject release:{release_id} has sha256 {got}, not the release digest {release_hex}"
    if any(_subject_sha256(s) in artifact_hexes for s in subjects):
        return None
    return (f"it is about neither release:{release_id} (its first subject is {first.get('name')!r}) "
            "nor one of the release's artifacts")


# --- export ----------------------------------------------------------------------------------


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
        why = _binding_problem(stmt, release["id"], release_hex, artifact_hexes)
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
    keyring = _key_map(public_keys)
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
        files[proof_name(e.index)] = _json_bytes({
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
        files[CONSISTENCY] = _json_bytes({"old_size": previous.size, "new_size": head.size,
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
    files[MANIFEST] = _json_bytes({
        "format": FORMAT, "release": release, "log": log, "generated_at": generated,
        "entries": manifest_entries, "files": {name: _sha256(files[name]) for name in sorted(files)},
    })
    subjects = [{"name": name, "digest": {"sha256": _sha256(files[name])}} for name in sorted(files)]
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


# --- reading ---------------------------------------------------------------------------------


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.isdev():
        return "device or FIFO"
    if member.issparse():
        return "sparse file"
    return f"member of type {member.type!r}"


def _check_uncompressed_size(path: Path) -> None:
    total = 0
    with gzip.open(path, "rb") as gz:
        while chunk := gz.read(1 << 20):
            total += len(chunk)
            if total > MAX_UNCOMPRESSED:
                raise BundleFormatError(f"bundle: more than {MAX_UNCOMPRESSED} bytes uncompressed; refused")


def read_members(path: str | os.PathLike[str]) -> tuple[str, dict[str, bytes]]:
    """The bundle's top directory and its files (relative path -> bytes), read in memory, never extracted.

    Refuses absolute paths, ``..`` and other unusual names, links, devices, duplicate names, more than one
    top directory, more than ``MAX_MEMBERS`` members and more than ``MAX_UNCOMPRESSED`` bytes.
    """
    path = Path(path)
    try:
        _check_uncompressed_size(path)
    except (OSError, EOFError) as exc:
        raise BundleFormatError(f"bundle: not a readable .tar.gz ({exc})") from exc
    files: dict[str, bytes] = {}
    top: str | None = None
    total = 0
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise BundleFormatError(f"bundle: more than {MAX_MEMBERS} members; refused")
                name = member.name
                parts = name.split("/")
                if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
                    raise BundleFormatError(f"bundle member {name!r}: absolute or '..' path; refused")
                if not all(_MEMBER_PART.match(p) for p in parts):
                    raise BundleFormatError(f"bundle member {name!r}: unexpected characters in the path; refused")
                if top is None:
                    top = parts[0]
                    if not top.startswith(TOP_PREFIX):
                        raise BundleFormatError(f"bundle member {name!r}: not under a {TOP_PREFIX}<release> directory")
                elif parts[0] != top:
                    raise BundleFormatError(f"bundle member {name!r}: outside the top directory {top}/")
                if member.isdir():
                    continue
                if not member.isreg() or member.issparse():
                    raise BundleFormatError(f"bundle member {name!r}: a {_member_kind(member)}; only regular files "
                                            "are accepted")
                if len(parts) == 1:
                    raise BundleFormatError(f"bundle member {name!r}: a file in place of the top directory")
                rel = "/".join(parts[1:])
                if rel in files:
                    raise BundleFormatError(f"bundle member {name!r}: appears twice")
                total += member.size
                if total > MAX_UNCOMPRESSED:
                    raise BundleFormatError(f"bundle: more than {MAX_UNCOMPRESSED} bytes uncompressed; refused")
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if len(data) != member.size:
                    raise BundleFormatError(f"bundle member {name!r}: truncated")
                files[rel] = data
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleFormatError(f"bundle: not a readable .tar.gz ({exc})") from exc
    if top is None:
        raise BundleFormatError("bundle: empty archive")
    return top, files


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    index: int
    leaf_hash: bytes
    envelope: str | None
    proof: str
    purged_at: str | None


@dataclass(frozen=True)
class _Manifest:
    release: dict[str, Any]
    log: dict[str, Any]
    generated_at: str
    release_id: str
    release_hex: str
    artifact_hexes: set[str]
    origin: str
    tree_size: int
    root_hash: bytes
    entries: list[_Entry]
    files: dict[str, str]
    previous: tuple[int, bytes] | None = None  # log.previous: (tree size, root hash)


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BundleFormatError(f"{MANIFEST}: {where}{key}: missing or of the wrong type")
    return value


def _hex_hash(text: str, where: str) -> bytes:
    if not _HEX64.match(text):
        raise BundleFormatError(f"{where}: expected 64 lowercase hex digits")
    return bytes.fromhex(text)


def _parse_manifest(data: bytes) -> _Manifest:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BundleFormatError(f"{MANIFEST}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleFormatError(f"{MANIFEST}: format is not {FORMAT!r}")
    release = _field(doc, "release", dict, "")
    release_id = _field(release, "id", str, "release.")
    digest = _field(release, "digest", str, "release.")
    release_hex = _hex_hash(digest.removeprefix("sha256:"), f"{MANIFEST}: release.digest")
    artifacts = _field(release, "artifacts", dict, "release.")
    artifact_hexes = {
        _hex_hash(_field(pin, "digest", str, f"release.artifacts.{name}.").removeprefix("sha256:"),
                  f"{MANIFEST}: release.artifacts.{name}.digest").hex()
        for name, pin in artifacts.items()}
    log = _field(doc, "log", dict, "")
    entries: list[_Entry] = []
    for n, raw in enumerate(_field(doc, "entries", list, "")):
        where = f"entries[{n}]."
        index = _field(raw, "index", int, where)
        entries.append(_Entry(
            index=index,
            leaf_hash=_hex_hash(_field(raw, "leaf_hash", str, where), f"{MANIFEST}: {where}leaf_hash"),
            envelope=_field(raw, "envelope", str, where, optional=True),
            proof=_field(raw, "proof", str, where),
            purged_at=_field(raw, "purged_at", str, where, optional=True),
        ))
    files = _field(doc, "files", dict, "")
    if not all(isinstance(v, str) for v in files.values()):
        raise BundleFormatError(f"{MANIFEST}: files: every value must be a sha256 hex string")
    previous: tuple[int, bytes] | None = None
    if "previous" in log:
        raw_previous = _field(log, "previous", dict, "log.")
        previous_size = _field(raw_previous, "tree_size", int, "log.previous.")
        if previous_size < 0:
            raise BundleFormatError(f"{MANIFEST}: log.previous.tree_size: negative")
        previous = (previous_size, _hex_hash(_field(raw_previous, "root_hash", str, "log.previous."),
                                             f"{MANIFEST}: log.previous.root_hash"))
    return _Manifest(
        release=release, log=log, generated_at=_field(doc, "generated_at", str, ""),
        release_id=release_id, release_hex=release_hex.hex(), artifact_hexes=artifact_hexes,
        origin=_field(log, "origin", str, "log."), tree_size=_field(log, "tree_size", int, "log."),
        root_hash=_hex_hash(_field(log, "root_hash", str, "log."), f"{MANIFEST}: log.root_hash"),
        entries=entries, files=files, previous=previous,
    )


def _in_toto_validator() -> Callable[[Mapping[str, Any]], None] | None:
    """Parse and validate with the in-toto-attestation library (protobuf), or None when it is not installed."""
    try:
        from google.protobuf import json_format
        from in_toto_attestation.v1 import statement_pb2
        from in_toto_attestation.v1.statement import Statement as InTotoStatement
    except ImportError:
        return None

    def validate(stmt: Mapping[str, Any]) -> None:
        pb = json_format.ParseDict(stmt, statement_pb2.Statement())
        InTotoStatement.copy_from_pb(pb).validate()

    return validate


class _Check:
    """Collects problems while the verification walks the bundle."""

    def __init__(self, result: BundleVerification) -> None:
        self.result = result

    def problem(self, text: str) -> None:
        self.result.problems.append(text)


def _signed_manifest(files: Mapping[str, bytes], keyring: Mapping[str, Ed25519PublicKey],
                     check: _Check) -> tuple[dict[str, str], Any] | None:
    """The signed subjects (file -> sha256) and predicate of manifest.dsse.json, or None (a problem is noted)."""
    data = files.get(MANIFEST_DSSE)
    if data is None:
        check.problem(f"{MANIFEST_DSSE}: missing, so nothing in the bundle is signed")
        return None
    try:
        stmt = st.open_statement(data, keyring)
    except dsse.VerificationError as exc:
        check.problem(f"{MANIFEST_DSSE}: not signed by any of the given keys ({exc})")
        return None
    if stmt.get("predicateType") != AUDIT_BUNDLE_V1:
        check.problem(f"{MANIFEST_DSSE}: predicateType {stmt.get('predicateType')!r} is not {AUDIT_BUNDLE_V1}")
        return None
    subjects: dict[str, str] = {}
    raw_subjects = stmt.get("subject")
    for i, s in enumerate(raw_subjects if isinstance(raw_subjects, list) else []):
        name = s.get("name") if isinstance(s, Mapping) else None
        sha = _subject_sha256(s)
        if not isinstance(name, str) or not isinstance(sha, str) or not _HEX64.match(sha) or name in subjects:
            check.problem(f"{MANIFEST_DSSE}: subject[{i}] is not a unique file name with a sha256 digest")
            return None
        subjects[name] = sha
    return subjects, stmt.get("predicate")


def _check_files(files: Mapping[str, bytes], signed: Mapping[str, str], check: _Check) -> None:
    for name in sorted((set(files) | set(signed)) - {MANIFEST_DSSE}):
        if name not in signed:
            check.problem(f"{name}: not listed in the signed manifest (the file was added)")
        elif name not in files:
            check.problem(f"{name}: listed in the signed manifest but missing from the bundle")
        elif (got := _sha256(files[name])) != signed[name]:
            check.problem(f"{name}: changed after signing (sha256 {got[:16]}... is not the signed "
                          f"{signed[name][:16]}...)")


def _proof_document(data: bytes) -> tuple[dict[str, Any], list[bytes]] | str:
    """A proof file's JSON object and its ``hashes``, or what is wrong with it."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        return f"not JSON ({exc})"
    if not isinstance(doc, dict):
        return "not a JSON object"
    hashes = doc.get("hashes")
    if not isinstance(hashes, list) or not all(isinstance(h, str) and _HEX64.match(h) for h in hashes):
        return "hashes: expected a list of 64-hex-digit hashes"
    return doc, [bytes.fromhex(h) for h in hashes]


def _proof_problem(data: bytes, entry: _Entry, head: cp.Checkpoint) -> str | None:
    parsed = _proof_document(data)
    if isinstance(parsed, str):
        return parsed
    doc, hashes = parsed
    if type(doc.get("index")) is not int or doc["index"] != entry.index:
        return f"records index {doc.get('index')!r}, not {entry.index}"
    if type(doc.get("tree_size")) is not int or doc["tree_size"] != head.size:
        return f"is for tree size {doc.get('tree_size')!r}, not the checkpoint's {head.size}"
    if doc.get("leaf_hash") != entry.leaf_hash.hex():
        return "its leaf hash is not the one in manifest.json"
    if not tlog.verify_inclusion(entry.leaf_hash, entry.index, head.size, hashes, head.root_hash):
        return f"does not prove leaf {entry.leaf_hash.hex()[:16]}... is entry {entry.index} of the checkpoint's tree"
    return None


def _consistency_problem(data: bytes, previous: cp.Checkpoint, head: cp.Checkpoint) -> str | None:
    parsed = _proof_document(data)
    if isinstance(parsed, str):
        return parsed
    doc, hashes = parsed
    if type(doc.get("old_size")) is not int or doc["old_size"] != previous.size:
        return f"old_size {doc.get('old_size')!r} is not the previous checkpoint's {previous.size}"
    if type(doc.get("new_size")) is not int or doc["new_size"] != head.size:
        return f"new_size {doc.get('new_size')!r} is not the checkpoint's {head.size}"
    if not tlog.verify_consistency(previous.size, head.size, previous.root_hash, head.root_hash, hashes):
        return (f"does not prove that the log at tree size {head.size} ({CHECKPOINT}) extends the previous "
                f"checkpoint at size {previous.size} ({PREVIOUS_CHECKPOINT}): the log was rewritten, or the proof "
                "was changed")
    return None


def _check_previous(files: Mapping[str, bytes], m: _Manifest, head: cp.Checkpoint | None,
                    keyring: Mapping[str, Ed25519PublicKey], check: _Check) -> None:
    """The previous checkpoint and the consistency proof to the bundle's checkpoint, when the bundle has them."""
    present = [name for name in (PREVIOUS_CHECKPOINT, CONSISTENCY) if name in files]
    if m.previous is None:
        for name in present:
            check.problem(f"{name}: present, but {MANIFEST}'s log names no previous checkpoint")
        return
    missing = [name for name in (PREVIOUS_CHECKPOINT, CONSISTENCY) if name not in files]
    for name in missing:
        check.problem(f"{name}: missing, but {MANIFEST}'s log names a previous checkpoint at tree size "
                      f"{m.previous[0]}")
    if missing:
        return
    try:
        previous = cp.open_checkpoint(files[PREVIOUS_CHECKPOINT], [verifier_key(m.origin, k) for k in keyring.values()],
                                      origin=m.origin)
    except cp.CheckpointError as exc:
        check.problem(f"{PREVIOUS_CHECKPOINT}: {exc}")
        return
    if (previous.size, previous.root_hash) != m.previous:
        check.problem(f"{PREVIOUS_CHECKPOINT}: tree size {previous.size} and root {previous.root_hash.hex()[:16]}... "
                      f"differ from {MANIFEST}'s log.previous ({m.previous[0]}, {m.previous[1].hex()[:16]}...)")
        return
    if head is None:
        return  # the checkpoint did not verify: that is already a problem, and nothing can be proved against it
    if why := _consistency_problem(files[CONSISTENCY], previous, head):
        check.problem(f"{CONSISTENCY}: {why}")
        return
    check.result.previous_size, check.result.previous_root_hash = previous.size, previous.root_hash.hex()


def _check_entries(files: Mapping[str, bytes], m: _Manifest, head: cp.Checkpoint | None,
                   keyring: Mapping[str, Ed25519PublicKey], check: _Check) -> None:
    result = check.result
    validate = _in_toto_validator()
    if validate is None:
        result.notes.append(IN_TOTO_MISSING)
    if not m.entries:
        check.problem(f"{MANIFEST}: lists no entries, so there is nothing to verify")
    referenced: set[str] = set()
    previous = -1
    for n, e in enumerate(m.entries):
        where = f"entry {e.index}"
        if e.index <= previous:
            check.problem(f"{MANIFEST}: entries[{n}] (index {e.index}) is not after index {previous}: "
                          "entries must be listed once each, in log order")
        previous = max(previous, e.index)
        referenced.add(e.proof)
        if e.proof != proof_name(e.index):
            check.problem(f"{where}: proof file {e.proof!r} is not {proof_name(e.index)}")
        elif e.proof not in files:
            check.problem(f"{where} ({e.proof}): the inclusion proof is missing")
        elif head is not None and (why := _proof_problem(files[e.proof], e, head)):
            check.problem(f"{where} ({e.proof}): {why}")
        if e.envelope is None:
            result.purged += 1  # purged under retention: the leaf hash and the proof are all that is left
            continue
        referenced.add(e.envelope)
        if e.purged_at is not None:
            check.problem(f"{where}: has both an envelope and purged_at")
        if e.envelope != envelope_name(e.index):
            check.problem(f"{where}: envelope file {e.envelope!r} is not {envelope_name(e.index)}")
            continue
        data = files.get(e.envelope)
        if data is None:
            check.problem(f"{where} ({e.envelope}): the envelope is missing")
            continue
        where = f"{where} ({e.envelope})"
        if (got := tlog.leaf_hash(data)) != e.leaf_hash:
            check.problem(f"{where}: leaf hash {got.hex()[:16]}... is not the recorded {e.leaf_hash.hex()[:16]}...: "
                          "the envelope is not the one in the log")
        try:
            stmt = st.open_statement(data, keyring)
        except dsse.VerificationError as exc:
            check.problem(f"{where}: the DSSE signature does not verify with the given keys ({exc})")
            continue
        if why := _binding_problem(stmt, m.release_id, m.release_hex, m.artifact_hexes):
            check.problem(f"{where}: the statement is not about this release: {why}")
        if validate is not None:
            try:
                validate(stmt)
            except Exception as exc:  # the library raises ValueError or protobuf's ParseError
                check.problem(f"{where}: not a valid in-toto Statement v1 (in-toto-attestation: {exc})")
        result.statements.append(stmt)
    for name in sorted(files):
        if name.startswith(("envelopes/", "proofs/")) and name not in referenced:
            check.problem(f"{name}: not referenced by any entry of {MANIFEST}")


def _verify(path: Path, public_keys: Sequence[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey],
            result: BundleVerification) -> None:
    check = _Check(result)
    try:
        keyring = _key_map(public_keys)
    except TypeError as exc:
        check.problem(f"keys: {exc}")
        return
    if not keyring:
        check.problem("keys: no public key given, so nothing can be verified")
        return
    try:
        top, files = read_members(path)
    except BundleFormatError as exc:
        check.problem(str(exc))
        return
    signed = _signed_manifest(files, keyring, check)
    if signed is not None:
        _check_files(files, signed[0], check)
    if MANIFEST not in files:
        check.problem(f"{MANIFEST}: missing")
        return
    try:
        m = _parse_manifest(files[MANIFEST])
    except BundleFormatError as exc:
        check.problem(str(exc))
        return
    result.release_id, result.release_digest = m.release_id, m.release["digest"]
    result.tree_size, result.root_hash, result.entries = m.tree_size, m.root_hash.hex(), len(m.entries)
    if top != f"{TOP_PREFIX}{m.release_id}":
        check.problem(f"{top}/: the top directory does not name release {m.release_id}")
    if signed is not None:
        subjects, predicate = signed
        listed = {name: sha for name, sha in subjects.items() if name != MANIFEST}
        if m.files != listed:
            differ = sorted(n for n in set(m.files) | set(listed) if m.files.get(n) != listed.get(n))
            check.problem(f"{MANIFEST}: files disagrees with the signed manifest on {', '.join(differ)}")
        if predicate != {"release": m.release, "log": m.log, "generated_at": m.generated_at}:
            check.problem(f"{MANIFEST}: release, log or generated_at differ from the signed manifest")

    head: cp.Checkpoint | None = None
    note = files.get(CHECKPOINT)
    if note is None:
        check.problem(f"{CHECKPOINT}: missing")
    else:
        try:
            head = cp.open_checkpoint(note, [verifier_key(m.origin, k) for k in keyring.values()], origin=m.origin)
        except cp.CheckpointError as exc:
            check.problem(f"{CHECKPOINT}: {exc}")
        if head is not None and (head.size, head.root_hash) != (m.tree_size, m.root_hash):
            check.problem(f"{CHECKPOINT}: tree size {head.size} and root {head.root_hash.hex()[:16]}... differ from "
                          f"{MANIFEST}'s log ({m.tree_size}, {m.root_hash.hex()[:16]}...)")
            head = None
    _check_previous(files, m, head, keyring, check)
    _check_entries(files, m, head, keyring, check)
    result.complete = True


def verify_bundle(path: str | os.PathLike[str],
                  public_keys: Sequence[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey]) -> BundleVerification:
    """Verify an audit bundle offline with only the caller's public keys (the bundle's ``keys/`` is not trusted).

    Never raises for a bad bundle: every failure is a problem, the first one naming the file or entry.
    """
    result = BundleVerification()
    try:
        _verify(Path(path), public_keys, result)
    except Exception as exc:  # fail closed: an unexpected error is a failed verification, never a pass
        result.complete = False
        result.problems.append(f"{Path(path).name}: verification stopped by an unexpected error "
                               f"({type(exc).__name__}: {exc})")
    return result


__all__ = [
    "AUDIT_BUNDLE_V1", "CONSISTENCY", "FORMAT", "PREVIOUS_CHECKPOINT", "BundleError", "BundleFormatError",
    "BundleSummary", "BundleVerification", "LogEntry", "envelope_name", "load_public_key", "note_signer",
    "proof_name", "read_members", "verifier_key", "verify_bundle", "write_bundle",
]
