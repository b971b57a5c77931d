"""Offline verification of a bundle with only the caller's public keys: the signed manifest, every file's
digest, the checkpoint, each entry's inclusion proof, envelope, signature and binding to the release, and
the optional consistency proof from a previous checkpoint.

``verify_bundle`` never raises for a bad bundle and fails closed: a check that cannot run is a problem,
and only a walk that ran to its end without a problem is ``ok``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from primum.adapters.evidence.bundle.base import (
    AUDIT_BUNDLE_V1,
    CHECKPOINT,
    CONSISTENCY,
    HEX64,
    MANIFEST,
    MANIFEST_DSSE,
    PREVIOUS_CHECKPOINT,
    TOP_PREFIX,
    BundleFormatError,
    binding_problem,
    digest_hex,
    envelope_name,
    keyring_of,
    proof_name,
    subject_sha256,
    verifier_key,
)
from primum.adapters.evidence.bundle.read import Manifest, ManifestEntry, parse_manifest, read_members
from primum.core.evidence import checkpoint as cp
from primum.core.evidence import dsse, tlog
from primum.core.evidence import statements as st
from primum.core.model import jsonfile

IN_TOTO_MISSING = "in-toto-attestation not installed: statements checked by primum's own parser only"


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
        sha = subject_sha256(s)
        if not isinstance(name, str) or not isinstance(sha, str) or not HEX64.match(sha) or name in subjects:
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
        elif (got := digest_hex(files[name])) != signed[name]:
            check.problem(f"{name}: changed after signing (sha256 {got[:16]}... is not the signed "
                          f"{signed[name][:16]}...)")


def _proof_document(data: bytes) -> tuple[dict[str, Any], list[bytes]] | str:
    """A proof file's JSON object and its ``hashes``, or what is wrong with it."""
    try:
        doc = jsonfile.loads(data)  # strict and depth-limited: a bundle comes from elsewhere
    except ValueError as exc:
        return f"not JSON ({exc})"
    if not isinstance(doc, dict):
        return "not a JSON object"
    hashes = doc.get("hashes")
    if not isinstance(hashes, list) or not all(isinstance(h, str) and HEX64.match(h) for h in hashes):
        return "hashes: expected a list of 64-hex-digit hashes"
    return doc, [bytes.fromhex(h) for h in hashes]


def _proof_problem(data: bytes, entry: ManifestEntry, head: cp.Checkpoint) -> str | None:
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


def _check_previous(files: Mapping[str, bytes], m: Manifest, head: cp.Checkpoint | None,
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


def _check_entries(files: Mapping[str, bytes], m: Manifest, head: cp.Checkpoint | None,
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
        if why := binding_problem(stmt, m.release_id, m.release_hex, m.artifact_hexes):
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
        keyring = keyring_of(public_keys)
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
        m = parse_manifest(files[MANIFEST])
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
