"""Audit bundles: export, offline verification, and every tampering named by its first problem."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from primum.adapters.evidence import bundle as bd
from primum.adapters.evidence.bundle import BundleError, LogEntry, read_members, verify_bundle, write_bundle
from primum.adapters.evidence.bundle import read as bundle_read
from primum.adapters.evidence.bundle import verify as bundle_verify
from primum.adapters.evidence.keys import Keyring, SigningKey
from primum.core.evidence import checkpoint as cp
from primum.core.evidence import statements as st
from primum.core.evidence import tlog
from primum.core.evidence.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from primum.core.evidence.dsse import PAYLOAD_TYPE_IN_TOTO, sign
from primum.core.evidence.tlog import consistency_proof, leaf_hash, root

ORIGIN = "primum.example/evidence"
RELEASE = "rel-42"
RELEASE_DIGEST = "sha256:" + hashlib.sha256(b"release rel-42").hexdigest()
API_DIGEST = "sha256:" + hashlib.sha256(b"scheduling-api 1.4.2").hexdigest()
ARTIFACTS = {"scheduling-api": {"digest": API_DIGEST, "version": "1.4.2"}}
OTHER_SUBJECTS = st.release_subjects("rel-41", "sha256:" + "0" * 64, {})
AT = 1_741_942_800.0  # 2025-03-14T09:00:00Z
TOP = f"primum-evidence-{RELEASE}"

# (kind, actor) of the release's events, logged at the indices below; other releases fill the gaps.
EVENTS = [("submitted", "ana"), ("approval", "ben"), ("started", ""), ("step", ""),
          ("rollback_started", ""), ("item_rolled_back", ""), ("rolled_back", "")]
RELEASE_INDICES = [0, 2, 3, 5, 6, 8, 9]
LOG_SIZE = 10


def subjects() -> list[dict[str, Any]]:
    return st.release_subjects(RELEASE, RELEASE_DIGEST, ARTIFACTS)


@dataclass
class Log:
    """A transparency log holding the release's entries and another release's, with its signed checkpoint."""

    envelopes: list[bytes]
    checkpoint: str
    keys: dict[str, Ed25519PublicKey]
    signer: SigningKey

    @property
    def leaf_hashes(self) -> list[bytes]:
        return [leaf_hash(e) for e in self.envelopes]

    def entries(self, purged: Mapping[int, float] | None = None) -> list[LogEntry]:
        purged = purged or {}
        return [LogEntry(i, leaf_hash(self.envelopes[i]), None if i in purged else self.envelopes[i], purged.get(i))
                for i in RELEASE_INDICES]


def build_log(sign_with: Callable[[int], SigningKey], keyring: Keyring,
              statement_at: Callable[[int], dict[str, Any]] | None = None) -> Log:
    envelopes: list[bytes] = []
    events = iter(EVENTS)
    for i in range(LOG_SIZE):
        if statement_at is not None and (custom := statement_at(i)):
            stmt = custom
        elif i in RELEASE_INDICES:
            kind, actor = next(events)
            stmt = st.event_statement(subjects(), kind=kind, message=f"{kind} of {RELEASE}", at=AT + i, actor=actor,
                                      env="prod" if kind != "submitted" else "")
        else:
            stmt = st.event_statement(OTHER_SUBJECTS, kind="submitted", message="another release", at=AT + i)
        envelopes.append(st.sign_statement(stmt, sign_with(i)).to_json())
    current = keyring.current
    head = Checkpoint(ORIGIN, LOG_SIZE, root([leaf_hash(e) for e in envelopes]))
    note = sign_checkpoint(head, [bd.note_signer(ORIGIN, current)])
    return Log(envelopes, note, dict(keyring.public_keys()), current)


@pytest.fixture(scope="module")
def log() -> Log:
    keyring = Keyring.generate()
    return build_log(lambda i: keyring.current, keyring)


def export(log: Log, path: Path, entries: Sequence[LogEntry] | None = None, **overrides: Any) -> bd.BundleSummary:
    args: dict[str, Any] = dict(
        release_id=RELEASE, release_digest=RELEASE_DIGEST, artifacts=ARTIFACTS, origin=ORIGIN,
        entries=log.entries() if entries is None else entries, leaf_hashes=log.leaf_hashes,
        checkpoint_note=log.checkpoint, public_keys=log.keys, signer=log.signer, generated_at=AT + 3600,
    )
    args.update(overrides)
    return write_bundle(path, **args)


@pytest.fixture(scope="module")
def bundle(log: Log, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "rel-42.tar.gz"
    export(log, path)
    return path


def raw_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name.removeprefix(TOP + "/"): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def write_tar(path: Path, files: Mapping[str, bytes], top: str = TOP) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tampered(bundle: Path, tmp_path: Path, change: Callable[[dict[str, bytes]], object]) -> Path:
    files = raw_members(bundle)
    change(files)
    return write_tar(tmp_path / "tampered.tar.gz", files)


def resign(files: dict[str, bytes], signer: SigningKey) -> None:
    """What an insider holding the signing key could do: re-sign the manifest over changed files."""
    manifest = json.loads(files[bd.MANIFEST])
    others = sorted(n for n in files if n not in (bd.MANIFEST, bd.MANIFEST_DSSE))
    manifest["files"] = {n: hashlib.sha256(files[n]).hexdigest() for n in others}
    files[bd.MANIFEST] = json.dumps(manifest).encode()
    names = sorted(n for n in files if n != bd.MANIFEST_DSSE)
    stmt = st.statement([{"name": n, "digest": {"sha256": hashlib.sha256(files[n]).hexdigest()}} for n in names],
                        bd.AUDIT_BUNDLE_V1,
                        {k: manifest[k] for k in ("release", "log", "generated_at")})
    files[bd.MANIFEST_DSSE] = st.sign_statement(stmt, signer).to_json()


# --- round trip --------------------------------------------------------------------------------


def test_round_trip_verifies_with_only_the_public_key(log: Log, bundle: Path, tmp_path: Path) -> None:
    # The auditor's side: only the tarball and a PEM file.
    pem = next(iter(log.keys.values())).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(pem)
    key = bd.load_public_key((tmp_path / "pub.pem").read_bytes())

    result = verify_bundle(bundle, [key])

    assert result.ok, result.problems
    assert result.complete and result.problems == [] and result.notes == []
    assert (result.release_id, result.release_digest) == (RELEASE, RELEASE_DIGEST)
    assert (result.entries, result.purged, result.tree_size) == (7, 0, LOG_SIZE)
    assert result.root_hash == root(log.leaf_hashes).hex()
    assert [s["predicate"]["kind"] for s in result.statements] == [k for k, _ in EVENTS]
    assert verify_bundle(bundle, {"any label": key}).ok  # a mapping works too; its labels are not trusted


def test_bundle_layout_and_manifest(log: Log, bundle: Path) -> None:
    files = raw_members(bundle)
    assert sorted(files) == sorted([
        "checkpoint.txt", "manifest.json", "manifest.dsse.json", "report.md", "report.html",
        *(f"envelopes/{i:08d}.dsse.json" for i in RELEASE_INDICES),
        *(f"proofs/{i:08d}.json" for i in RELEASE_INDICES),
        *(f"keys/{kid}.pem" for kid in log.keys),
    ])  # the other release's entries (1, 4, 7) are not in the bundle
    assert files["checkpoint.txt"] == log.checkpoint.encode()
    assert files["envelopes/00000005.dsse.json"] == log.envelopes[5]
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == "primum-audit-bundle/v1"
    assert manifest["release"] == {"id": RELEASE, "digest": RELEASE_DIGEST, "artifacts": ARTIFACTS}
    assert manifest["log"] == {"origin": ORIGIN, "tree_size": LOG_SIZE, "root_hash": root(log.leaf_hashes).hex()}
    assert manifest["generated_at"] == "2025-03-14T10:00:00Z"
    assert manifest["entries"][1] == {"index": 2, "leaf_hash": log.leaf_hashes[2].hex(),
                                      "envelope": "envelopes/00000002.dsse.json", "proof": "proofs/00000002.json",
                                      "purged_at": None}
    assert set(manifest["files"]) == set(files) - {"manifest.json", "manifest.dsse.json"}
    proof = json.loads(files["proofs/00000009.json"])
    assert proof["index"] == 9 and proof["tree_size"] == LOG_SIZE and proof["leaf_hash"] == log.leaf_hashes[9].hex()
    signed = st.open_statement(files["manifest.dsse.json"], log.keys)
    assert signed["predicateType"] == "https://primum.dev/predicates/audit-bundle/v1"
    assert {s["name"] for s in signed["subject"]} == set(files) - {"manifest.dsse.json"}
    assert signed["predicate"] == {k: manifest[k] for k in ("release", "log", "generated_at")}


def test_export_is_reproducible_and_entry_order_does_not_matter(log: Log, bundle: Path, tmp_path: Path) -> None:
    again = export(log, tmp_path / "again.tar.gz", entries=list(reversed(log.entries())))
    assert again.sha256 == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert (again.entries, again.purged, again.tree_size) == (7, 0, LOG_SIZE)


def test_artifact_level_ci_evidence_binds_through_the_artifact_digest(tmp_path: Path) -> None:
    keyring = Keyring.generate()
    artifact_only = [s for s in subjects() if not s["name"].startswith("release:")]
    provenance = st.provenance_statement(artifact_only, {
        "buildDefinition": {"buildType": "https://example.org/build/v1", "externalParameters": {}},
        "runDetails": {"builder": {"id": "https://ci.example.org/builder"}},
    })
    log = build_log(lambda i: keyring.current, keyring, lambda i: provenance if i == 3 else {})
    path = tmp_path / "b.tar.gz"
    export(log, path)
    result = verify_bundle(path, log.keys)
    assert result.ok, result.problems
    assert result.statements[2]["predicateType"] == st.SLSA_PROVENANCE_V1
    assert "https://ci.example.org/builder" in raw_members(path)["report.md"].decode()


# --- tampering ---------------------------------------------------------------------------------


def _flip_envelope_byte(files: dict[str, bytes]) -> None:
    data = bytearray(files["envelopes/00000003.dsse.json"])
    data[40] ^= 0x01
    files["envelopes/00000003.dsse.json"] = bytes(data)


def _swap(files: dict[str, bytes]) -> None:
    a, b = "envelopes/00000002.dsse.json", "envelopes/00000008.dsse.json"
    files[a], files[b] = files[b], files[a]


def _change_proof_hash(files: dict[str, bytes]) -> None:
    proof = json.loads(files["proofs/00000005.json"])
    proof["hashes"][0] = "00" * 32
    files["proofs/00000005.json"] = json.dumps(proof).encode()


def _edit_manifest(files: dict[str, bytes]) -> None:
    files["manifest.json"] = files["manifest.json"].replace(b"2025-03-14T10:00:00Z", b"2025-03-14T11:00:00Z")


def _edit_checkpoint(files: dict[str, bytes]) -> None:
    files["checkpoint.txt"] = files["checkpoint.txt"].replace(f"\n{LOG_SIZE}\n".encode(), b"\n11\n")


TAMPERING: dict[str, tuple[Callable[[dict[str, bytes]], object], str]] = {
    "envelope byte": (_flip_envelope_byte, "envelopes/00000003.dsse.json: changed after signing"),
    "report": (lambda f: f.update({"report.html": f["report.html"].replace(b"rollback", b"r0llback")}),
               "report.html: changed after signing"),
    "manifest": (_edit_manifest, "manifest.json: changed after signing"),
    "checkpoint": (_edit_checkpoint, "checkpoint.txt: changed after signing"),
    "proof hash": (_change_proof_hash, "proofs/00000005.json: changed after signing"),
    "removed envelope": (lambda f: f.pop("envelopes/00000005.dsse.json"),
                         "envelopes/00000005.dsse.json: listed in the signed manifest but missing"),
    "extra file": (lambda f: f.update({"notes.txt": b"all fine"}), "notes.txt: not listed in the signed manifest"),
    "swapped envelopes": (_swap, "envelopes/00000002.dsse.json: changed after signing"),
    "removed signature": (lambda f: f.pop("manifest.dsse.json"), "manifest.dsse.json: missing"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_detected_and_the_first_problem_names_the_file(
        case: str, log: Log, bundle: Path, tmp_path: Path) -> None:
    change, first = TAMPERING[case]
    result = verify_bundle(tampered(bundle, tmp_path, change), log.keys)
    assert not result.ok
    assert result.problems[0].startswith(first), result.problems


def test_untampered_rewrite_still_verifies(log: Log, bundle: Path, tmp_path: Path) -> None:
    # The tampering tests rewrite the tarball: rewriting alone must not be what fails them.
    assert verify_bundle(tampered(bundle, tmp_path, lambda f: None), log.keys).ok


def test_swapped_envelopes_are_also_caught_entry_by_entry(log: Log, bundle: Path, tmp_path: Path) -> None:
    result = verify_bundle(tampered(bundle, tmp_path, _swap), log.keys)
    assert any(p.startswith("entry 2 (envelopes/00000002.dsse.json): leaf hash") for p in result.problems)
    assert any(p.startswith("entry 8 (envelopes/00000008.dsse.json): leaf hash") for p in result.problems)


def test_an_insider_who_re_signs_the_manifest_is_still_caught_by_the_log(
        log: Log, bundle: Path, tmp_path: Path) -> None:
    forged = st.event_statement(subjects(), kind="approval", message="approved", at=AT, actor="mallory")

    def forge(files: dict[str, bytes]) -> None:
        files["envelopes/00000002.dsse.json"] = st.sign_statement(forged, log.signer).to_json()
        _change_proof_hash(files)
        resign(files, log.signer)

    result = verify_bundle(tampered(bundle, tmp_path, forge), log.keys)
    assert not result.ok
    assert result.problems[0].startswith("entry 2 (envelopes/00000002.dsse.json): leaf hash"), result.problems
    assert result.problems[1].startswith("entry 5 (proofs/00000005.json): does not prove"), result.problems


def test_a_wrong_key_verifies_nothing(bundle: Path) -> None:
    result = verify_bundle(bundle, [SigningKey.generate().public_key])
    assert not result.ok
    assert result.problems[0].startswith("manifest.dsse.json: not signed by any of the given keys")
    assert any(p.startswith("checkpoint.txt:") for p in result.problems)
    assert result.statements == []


def test_no_key_is_a_failure_not_a_vacuous_pass(bundle: Path) -> None:
    result = verify_bundle(bundle, [])
    assert not result.ok and result.problems == ["keys: no public key given, so nothing can be verified"]
    assert not bd.BundleVerification().ok  # a verdict whose checks did not all run is never a pass


def test_a_bundle_signed_by_one_of_its_own_keys_is_not_trusted(log: Log, bundle: Path, tmp_path: Path) -> None:
    # An attacker re-signs everything with a key of their own and ships it in keys/: it counts for nothing.
    intruder = SigningKey.generate()

    def replace(files: dict[str, bytes]) -> None:
        files[f"keys/{intruder.keyid}.pem"] = intruder.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        resign(files, intruder)

    result = verify_bundle(tampered(bundle, tmp_path, replace), log.keys)
    assert result.problems[0].startswith("manifest.dsse.json: not signed by any of the given keys")


# --- reading the tarball safely ------------------------------------------------------------------


def _tar_with(path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(kind: bytes) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(f"{TOP}/manifest.json")
        info.type, info.linkname = kind, "/etc/passwd"
        tar.addfile(info)
    return add


def _files(*names: str) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        for name in names:
            _file(tar, name)
    return add


UNSAFE: dict[str, tuple[Callable[[tarfile.TarFile], None], str]] = {
    "dot-dot": (_files(f"{TOP}/../evil"), f"bundle member '{TOP}/../evil': absolute or '..'"),
    "leading dot-dot": (_files("../evil"), "bundle member '../evil': absolute or '..'"),
    "absolute": (_files("/etc/evil"), "bundle member '/etc/evil': absolute"),
    "symlink": (_link(tarfile.SYMTYPE), f"bundle member '{TOP}/manifest.json': a symbolic link"),
    "hard link": (_link(tarfile.LNKTYPE), f"bundle member '{TOP}/manifest.json': a hard link"),
    "device": (_link(tarfile.CHRTYPE), f"bundle member '{TOP}/manifest.json': a device"),
    "two tops": (_files(f"{TOP}/a", "primum-evidence-x/b"),
                 "bundle member 'primum-evidence-x/b': outside the top directory"),
    "duplicate": (_files(f"{TOP}/a", f"{TOP}/a"), f"bundle member '{TOP}/a': appears twice"),
    "foreign top": (_files("home/a"), "bundle member 'home/a': not under a primum-evidence-"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused(case: str, log: Log, tmp_path: Path) -> None:
    add, first = UNSAFE[case]
    path = _tar_with(tmp_path / "evil.tar.gz", add)
    with pytest.raises(bd.BundleFormatError, match="^" + first.replace("(", r"\(").replace(".", r"\.")):
        read_members(path)
    result = verify_bundle(path, log.keys)
    assert not result.ok and result.problems[0].startswith(first)


def test_member_and_size_limits(log: Log, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_read, "MAX_MEMBERS", 5)
    assert verify_bundle(bundle, log.keys).problems == ["bundle: more than 5 members; refused"]
    monkeypatch.setattr(bundle_read, "MAX_MEMBERS", 100_000)
    monkeypatch.setattr(bundle_read, "MAX_UNCOMPRESSED", 4096)
    assert verify_bundle(bundle, log.keys).problems == ["bundle: more than 4096 bytes uncompressed; refused"]


def test_garbage_is_a_problem_not_an_exception(log: Log, tmp_path: Path) -> None:
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    result = verify_bundle(tmp_path / "junk.tar.gz", log.keys)
    assert not result.ok and result.problems[0].startswith("bundle: not a readable .tar.gz")
    missing = verify_bundle(tmp_path / "missing.tar.gz", log.keys)
    assert not missing.ok and missing.problems[0].startswith("bundle: not a readable .tar.gz")


def test_an_unexpected_error_fails_closed(log: Log, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tlog, "verify_inclusion", boom)
    result = verify_bundle(bundle, log.keys)
    assert not result.ok and not result.complete
    assert "RuntimeError: disk on fire" in result.problems[-1]


# --- key rotation --------------------------------------------------------------------------------


def test_key_rotation_needs_every_key_that_signed_an_entry(tmp_path: Path) -> None:
    keyring = Keyring.generate()
    old = keyring.current
    envelopes_by_old = [i for i in RELEASE_INDICES if i < 5]  # 0, 2, 3

    def signer_at(i: int) -> SigningKey:
        if i == 5 and keyring.current is old:
            keyring.rotate()  # the old key signed entries 0-4 and never signs again
        return keyring.current

    log = build_log(signer_at, keyring)
    assert old.retired and log.signer is not old
    path = tmp_path / "rotated.tar.gz"
    export(log, path)

    assert verify_bundle(path, list(log.keys.values())).ok
    only_new = verify_bundle(path, [log.signer.public_key])
    assert not only_new.ok
    assert only_new.problems[0].startswith(
        "entry 0 (envelopes/00000000.dsse.json): the DSSE signature does not verify"), only_new.problems
    assert [p.split(" ")[1] for p in only_new.problems] == [str(i) for i in envelopes_by_old]
    assert old.keyid in only_new.problems[0]


# --- purged entries ------------------------------------------------------------------------------


def test_purged_entries_are_verified_by_leaf_hash_and_proof_only(log: Log, tmp_path: Path) -> None:
    path = tmp_path / "purged.tar.gz"
    summary = export(log, path, entries=log.entries(purged={2: AT + 86400, 3: AT + 86400}))
    assert summary.purged == 2
    files = raw_members(path)
    assert "envelopes/00000002.dsse.json" not in files and "proofs/00000002.json" in files
    manifest = json.loads(files["manifest.json"])
    assert manifest["entries"][1] == {"index": 2, "leaf_hash": log.leaf_hashes[2].hex(), "envelope": None,
                                      "proof": "proofs/00000002.json", "purged_at": "2025-03-15T09:00:00Z"}
    assert "Purged entries" in files["report.md"].decode()

    result = verify_bundle(path, log.keys)
    assert result.ok, result.problems
    assert (result.entries, result.purged, len(result.statements)) == (7, 2, 5)

    def forge(f: dict[str, bytes]) -> None:
        _rewrite_proof(f, 2, lambda p: p["hashes"].reverse())
        resign(f, log.signer)

    forged = verify_bundle(tampered(path, tmp_path, forge), log.keys)
    assert forged.problems[0].startswith("entry 2 (proofs/00000002.json): does not prove"), forged.problems


def _rewrite_proof(files: dict[str, bytes], index: int, change: Callable[[dict[str, Any]], None]) -> None:
    proof = json.loads(files[f"proofs/{index:08d}.json"])
    change(proof)
    files[f"proofs/{index:08d}.json"] = json.dumps(proof).encode()


# --- in-toto-attestation -------------------------------------------------------------------------


def test_statements_are_checked_with_in_toto_attestation(tmp_path: Path) -> None:
    # primum's own parser accepts any Statement v1 payload; the in-toto library also wants a predicate.
    keyring = Keyring.generate()
    bare = {"_type": st.STATEMENT_TYPE, "subject": subjects(), "predicateType": st.PRIMUM_EVENT_V1, "predicate": {}}
    log = build_log(lambda i: keyring.current, keyring)
    log.envelopes[6] = sign(st.serialize(bare), PAYLOAD_TYPE_IN_TOTO, keyring.current).to_json()
    log.checkpoint = sign_checkpoint(Checkpoint(ORIGIN, LOG_SIZE, root(log.leaf_hashes)),
                                     [bd.note_signer(ORIGIN, keyring.current)])
    path = tmp_path / "b.tar.gz"
    export(log, path)
    result = verify_bundle(path, log.keys)
    assert result.problems == [
        "entry 6 (envelopes/00000006.dsse.json): not a valid in-toto Statement v1 "
        "(in-toto-attestation: Predicate object required)"]


def test_without_in_toto_attestation_verification_still_works_with_a_note(
        log: Log, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_verify, "_in_toto_validator", lambda: None)
    result = verify_bundle(bundle, log.keys)
    assert result.ok
    assert result.notes == ["in-toto-attestation not installed: statements checked by primum's own parser only"]


# --- export refuses inconsistent inputs, atomically ---------------------------------------------


def _wrong_entry(log: Log) -> list[LogEntry]:
    entries = log.entries()
    entries[2] = LogEntry(3, log.leaf_hashes[3], log.envelopes[4])
    return entries


def _other_release(log: Log) -> list[LogEntry]:
    return [*log.entries(), LogEntry(4, log.leaf_hashes[4], log.envelopes[4])]


EXPORT_ERRORS: dict[str, tuple[Callable[[Log], dict[str, Any]], str]] = {
    "checkpoint size": (lambda log: {"leaf_hashes": [*log.leaf_hashes, leaf_hash(b"x")]},
                        "checkpoint_note: covers 10 entries but 11 leaf hashes"),
    "root": (lambda log: {"leaf_hashes": [*log.leaf_hashes[:9], leaf_hash(b"x")]},
             "checkpoint_note: root hash"),
    "checkpoint key": (lambda log: {"checkpoint_note": sign_checkpoint(
        Checkpoint(ORIGIN, LOG_SIZE, root(log.leaf_hashes)), [NoteSigner.generate(ORIGIN)])},
        "checkpoint_note: note has no signature from a known key"),
    "origin": (lambda log: {"origin": "other.example/log"}, "checkpoint_note: note has no signature"),
    "envelope": (lambda log: {"entries": _wrong_entry(log)},
                 "entries: entry 3: the envelope's leaf hash is not the recorded"),
    "other release": (lambda log: {"entries": _other_release(log)},
                      "entries: entry 4: it is about neither release:rel-42"),
    "release digest": (lambda log: {"release_digest": "sha256:" + "1" * 64},
                       "entries: entry 0: its subject release:rel-42 has sha256"),
    "leaf hash": (lambda log: {"entries": [LogEntry(2, log.leaf_hashes[3], None)]},
                  "entries: entry 2: leaf hash"),
    "index": (lambda log: {"entries": [LogEntry(10, leaf_hash(b"x"), None)]}, "entries: entry 10: index outside"),
    "twice": (lambda log: {"entries": [*log.entries(), log.entries()[0]]}, "entries: entry 0: given twice"),
    "empty": (lambda log: {"entries": []}, "entries: a release with no log entries"),
    "signer": (lambda log: {"signer": SigningKey.generate()}, "signer: key"),
    "release id": (lambda log: {"release_id": "../x"}, "release_id '../x'"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_ERRORS))
def test_export_refuses_inconsistent_inputs_and_writes_nothing(case: str, log: Log, tmp_path: Path) -> None:
    overrides, message = EXPORT_ERRORS[case]
    with pytest.raises(BundleError) as err:
        export(log, tmp_path / "b.tar.gz", **overrides(log))
    assert str(err.value).startswith(message), str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_previous_bundle_and_no_temporary_file(
        log: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "b.tar.gz"
    path.write_bytes(b"previous bundle")
    calls = 0
    real_addfile = tarfile.TarFile.addfile

    def failing_addfile(self: tarfile.TarFile, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 6:
            raise OSError("disk full")
        real_addfile(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "addfile", failing_addfile)
    with pytest.raises(OSError, match="disk full"):
        export(log, path)
    assert path.read_bytes() == b"previous bundle"
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar.gz"]


# --- consistency with a checkpoint the auditor kept ----------------------------------------------

KEPT_SIZE = 6


def kept_checkpoint(log: Log, size: int = KEPT_SIZE, signer: NoteSigner | None = None,
                    leaf_hashes: Sequence[bytes] | None = None) -> str:
    """The signed checkpoint of the log's first ``size`` entries, as an auditor saw it earlier."""
    hashes = log.leaf_hashes if leaf_hashes is None else leaf_hashes
    return sign_checkpoint(Checkpoint(ORIGIN, size, root(hashes[:size])),
                           [signer or bd.note_signer(ORIGIN, log.signer)])


@pytest.fixture(scope="module")
def since_bundle(log: Log, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("since") / "rel-42-since.tar.gz"
    summary = export(log, path, previous_checkpoint=kept_checkpoint(log),
                     consistency=consistency_proof(log.leaf_hashes, KEPT_SIZE))
    assert summary.previous_size == KEPT_SIZE
    return path


def test_a_bundle_with_a_kept_checkpoint_proves_the_log_extends_it(log: Log, since_bundle: Path,
                                                                  bundle: Path) -> None:
    files = raw_members(since_bundle)
    assert files["previous-checkpoint.txt"] == kept_checkpoint(log).encode()
    proof = json.loads(files["consistency.json"])
    assert proof == {"old_size": KEPT_SIZE, "new_size": LOG_SIZE,
                     "hashes": [h.hex() for h in consistency_proof(log.leaf_hashes, KEPT_SIZE)]}
    manifest = json.loads(files["manifest.json"])
    assert manifest["log"]["previous"] == {"tree_size": KEPT_SIZE, "root_hash": root(log.leaf_hashes[:6]).hex()}
    assert {"previous-checkpoint.txt", "consistency.json"} <= set(manifest["files"])
    signed = st.open_statement(files["manifest.dsse.json"], log.keys)
    assert {"previous-checkpoint.txt", "consistency.json"} <= {s["name"] for s in signed["subject"]}
    assert signed["predicate"]["log"] == manifest["log"]
    assert "extends the checkpoint at size 6 you kept: consistency proof included" in files["report.md"].decode()
    assert "extends the checkpoint at size 6 you kept" in files["report.html"].decode()

    result = verify_bundle(since_bundle, log.keys)
    assert result.ok, result.problems
    assert (result.previous_size, result.previous_root_hash) == (KEPT_SIZE, root(log.leaf_hashes[:6]).hex())
    # a bundle without them verifies as before, and says nothing about a previous checkpoint
    plain = verify_bundle(bundle, log.keys)
    assert plain.ok and plain.previous_size is None
    assert "you kept" not in raw_members(bundle)["report.md"].decode()


def test_a_kept_checkpoint_of_the_same_size_needs_no_proof(log: Log, tmp_path: Path) -> None:
    path = tmp_path / "same.tar.gz"
    export(log, path, previous_checkpoint=kept_checkpoint(log, LOG_SIZE), consistency=[])
    result = verify_bundle(path, log.keys)
    assert result.ok and result.previous_size == LOG_SIZE, result.problems


def _rewrite_consistency(files: dict[str, bytes]) -> None:
    doc = json.loads(files["consistency.json"])
    doc["hashes"][0] = "00" * 32
    files["consistency.json"] = json.dumps(doc).encode()


def _rewritten_history(log: Log) -> list[bytes]:
    """The leaf hashes of a log whose entry 2 was replaced: what a rewritten log's checkpoint would cover."""
    hashes = list(log.leaf_hashes)
    hashes[2] = leaf_hash(b"a different entry 2")
    return hashes


def _swap_previous(log: Log, note: str) -> Callable[[dict[str, bytes]], None]:
    """An insider holding the signing key replaces the kept checkpoint (and the manifest's record of it)."""
    def change(files: dict[str, bytes]) -> None:
        files["previous-checkpoint.txt"] = note.encode()
        manifest = json.loads(files[bd.MANIFEST])
        opened = cp.parse_checkpoint_body(note.split("\n\n")[0] + "\n")
        manifest["log"]["previous"] = {"tree_size": opened.size, "root_hash": opened.root_hash.hex()}
        files[bd.MANIFEST] = json.dumps(manifest).encode()
        resign(files, log.signer)
    return change


CONSISTENCY_TAMPERING: dict[str, tuple[Callable[[Log], Callable[[dict[str, bytes]], object]], str]] = {
    "proof hash": (lambda log: _rewrite_consistency, "consistency.json: changed after signing"),
    "proof hash, re-signed": (lambda log: lambda f: (_rewrite_consistency(f), resign(f, log.signer)),
                              "consistency.json: does not prove that the log at tree size 10 (checkpoint.txt) "
                              "extends the previous checkpoint at size 6"),
    "proof sizes, re-signed": (lambda log: lambda f: (
        f.update({"consistency.json": f["consistency.json"].replace(b'"old_size": 6', b'"old_size": 5')}),
        resign(f, log.signer)), "consistency.json: old_size 5 is not the previous checkpoint's 6"),
    "previous removed": (lambda log: lambda f: (f.pop("previous-checkpoint.txt"), resign(f, log.signer)),
                         "previous-checkpoint.txt: missing, but manifest.json's log names a previous checkpoint"),
    "previous signed by another key": (
        lambda log: _swap_previous(log, kept_checkpoint(log, signer=NoteSigner.generate(ORIGIN))),
        "previous-checkpoint.txt: note has no signature from a known key"),
    "previous of another log": (
        lambda log: lambda f: (f.update({"previous-checkpoint.txt": sign_checkpoint(
            Checkpoint("other.example/log", KEPT_SIZE, root(log.leaf_hashes[:6])),
            [bd.note_signer("other.example/log", log.signer)]).encode()}), resign(f, log.signer)),
        "previous-checkpoint.txt: note has no signature from a known key"),
    "previous of a rewritten log": (
        lambda log: _swap_previous(log, kept_checkpoint(log, leaf_hashes=_rewritten_history(log))),
        "consistency.json: does not prove"),
    "previous not the manifest's": (
        lambda log: lambda f: (f.update({"previous-checkpoint.txt": kept_checkpoint(log, 7).encode()}),
                               resign(f, log.signer)),
        "previous-checkpoint.txt: tree size 7 and root"),
}


@pytest.mark.parametrize("case", sorted(CONSISTENCY_TAMPERING))
def test_a_tampered_consistency_proof_or_previous_checkpoint_fails(
        case: str, log: Log, since_bundle: Path, tmp_path: Path) -> None:
    make, first = CONSISTENCY_TAMPERING[case]
    result = verify_bundle(tampered(since_bundle, tmp_path, make(log)), log.keys)
    assert not result.ok and result.previous_size is None
    assert result.problems[0].startswith(first), result.problems


def test_previous_files_smuggled_into_a_plain_bundle_are_problems(log: Log, bundle: Path, tmp_path: Path) -> None:
    def smuggle(files: dict[str, bytes]) -> None:
        files["previous-checkpoint.txt"] = kept_checkpoint(log).encode()
        files["consistency.json"] = b"{}"
        resign(files, log.signer)

    result = verify_bundle(tampered(bundle, tmp_path, smuggle), log.keys)
    assert result.problems == [
        "previous-checkpoint.txt: present, but manifest.json's log names no previous checkpoint",
        "consistency.json: present, but manifest.json's log names no previous checkpoint"]


CONSISTENCY_EXPORT_ERRORS: dict[str, tuple[Callable[[Log], dict[str, Any]], str]] = {
    "only the checkpoint": (lambda log: {"previous_checkpoint": kept_checkpoint(log)},
                            "previous_checkpoint and consistency: give both"),
    "only the proof": (lambda log: {"consistency": []}, "previous_checkpoint and consistency: give both"),
    "another key": (lambda log: {"previous_checkpoint": kept_checkpoint(log, signer=NoteSigner.generate(ORIGIN)),
                                 "consistency": consistency_proof(log.leaf_hashes, KEPT_SIZE)},
                    "previous_checkpoint: note has no signature from a known key"),
    "larger": (lambda log: {"previous_checkpoint": kept_checkpoint(log, 11, leaf_hashes=[*log.leaf_hashes, b"x" * 32]),
                            "consistency": []}, "previous_checkpoint: covers 11 entries, more than the 10"),
    "rewritten": (lambda log: {"previous_checkpoint": kept_checkpoint(log, leaf_hashes=_rewritten_history(log)),
                               "consistency": consistency_proof(log.leaf_hashes, KEPT_SIZE)},
                  "consistency: does not prove that the checkpoint at size 10 extends the previous checkpoint at "
                  "size 6"),
    "wrong proof": (lambda log: {"previous_checkpoint": kept_checkpoint(log),
                                 "consistency": consistency_proof(log.leaf_hashes, 5)}, "consistency: does not prove"),
}


@pytest.mark.parametrize("case", sorted(CONSISTENCY_EXPORT_ERRORS))
def test_export_refuses_a_previous_checkpoint_it_cannot_prove(case: str, log: Log, tmp_path: Path) -> None:
    overrides, message = CONSISTENCY_EXPORT_ERRORS[case]
    with pytest.raises(BundleError) as err:
        export(log, tmp_path / "b.tar.gz", **overrides(log))
    assert str(err.value).startswith(message), str(err.value)
    assert list(tmp_path.iterdir()) == []
