"""What writing, reading and verifying a bundle share: member names, errors, keys and the binding rule.

The binding rule (:func:`binding_problem`) is one function on purpose: export refuses an entry that
verification would reject for the same reason, so a bundle primum writes is one it verifies.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from primum.adapters.evidence.keys import SigningKey, key_id, public_key_bytes
from primum.core.evidence import checkpoint as cp

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

HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(ValueError):
    """A bundle that must not be written: the inputs are inconsistent. The message names the input."""


class BundleFormatError(ValueError):
    """A tarball or manifest that cannot be read as a bundle; the message names the member or field."""


def envelope_name(index: int) -> str:
    """The member holding entry ``index``'s DSSE envelope (zero-padded, so members sort in log order)."""
    return f"envelopes/{index:08d}.dsse.json"


def proof_name(index: int) -> str:
    """The member holding entry ``index``'s inclusion proof."""
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


def keyring_of(public_keys: Sequence[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    """Keys by their real key id (a caller's mapping keys are not trusted to be key ids)."""
    values = public_keys.values() if isinstance(public_keys, Mapping) else public_keys
    keyring: dict[str, Ed25519PublicKey] = {}
    for k in values:
        if not isinstance(k, Ed25519PublicKey):
            raise TypeError(f"{type(k).__name__} is not an Ed25519 public key")
        keyring[key_id(k)] = k
    return keyring


def digest_hex(data: bytes) -> str:
    """The lowercase hex SHA-256 of a member's bytes (what the manifests record)."""
    return hashlib.sha256(data).hexdigest()


def json_bytes(value: Any) -> bytes:
    """Canonical-enough JSON for a member: sorted keys, no NaN, one trailing newline (stable bytes)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False).encode() + b"\n"


def subject_sha256(subject: Any) -> Any:
    """A statement subject's ``digest.sha256``, or None when the subject has none (never raises)."""
    digest = subject.get("digest") if isinstance(subject, Mapping) else None
    return digest.get("sha256") if isinstance(digest, Mapping) else None


def binding_problem(stmt: Mapping[str, Any], release_id: str, release_hex: str,
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
        got = subject_sha256(first)
        if got == release_hex:
            return None
        return f"its subject release:{release_id} has sha256 {got}, not the release digest {release_hex}"
    if any(subject_sha256(s) in artifact_hexes for s in subjects):
        return None
    return (f"it is about neither release:{release_id} (its first subject is {first.get('name')!r}) "
            "nor one of the release's artifacts")
