"""DSSE v1 envelopes signed with Ed25519: pre-authentication encoding, sign, verify.

Spec: https://github.com/secure-systems-lab/dsse (protocol.md, envelope.md).
Verification fails closed: anything undecodable, an unexpected payload type, or fewer
valid signatures by trusted keys than the threshold raises ``VerificationError``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from primum.core.model import jsonfile

PAYLOAD_TYPE_IN_TOTO = "application/vnd.in-toto+json"

_ENVELOPE_FIELDS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})


class VerificationError(Exception):
    """An envelope that must not be trusted; the message says why."""


class EnvelopeFormatError(VerificationError):
    """An envelope that cannot be decoded (bad JSON, field or base64)."""


class Signer(Protocol):
    """Something that signs bytes with Ed25519 under a key id (``keys.SigningKey``)."""

    @property
    def keyid(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class PublicKeys(Protocol):
    """Trusted verification keys by key id (``keys.Keyring``)."""

    def public_key(self, keyid: str) -> Ed25519PublicKey | None: ...

    def public_keys(self) -> Mapping[str, Ed25519PublicKey]: ...


@dataclass(frozen=True)
class Signature:
    keyid: str  # an unauthenticated hint; "" when absent
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        """The DSSE JSON envelope: standard base64 with padding; ``keyid`` omitted when empty."""
        signatures: list[dict[str, str]] = []
        for s in self.signatures:
            entry = {"keyid": s.keyid} if s.keyid else {}
            entry["sig"] = base64.b64encode(s.sig).decode("ascii")
            signatures.append(entry)
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": signatures,
        }

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys, no whitespace), stable for hashing into a log."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        """Decode a JSON envelope; raises ``EnvelopeFormatError`` naming the bad field."""
        if not isinstance(data, Mapping):
            raise EnvelopeFormatError("envelope: expected a JSON object")
        unknown = sorted(set(data) - _ENVELOPE_FIELDS)
        if unknown:
            raise EnvelopeFormatError(f"envelope: unknown field(s) {', '.join(unknown)}")
        payload_type = data.get("payloadType")
        if not isinstance(payload_type, str):
            raise EnvelopeFormatError("envelope.payloadType: expected a string")
        payload = _b64decode(data.get("payload"), "envelope.payload")
        raw_signatures = data.get("signatures")
        if not isinstance(raw_signatures, list) or not raw_signatures:
            raise EnvelopeFormatError("envelope.signatures: expected a non-empty list")
        signatures = []
        for i, entry in enumerate(raw_signatures):
            where = f"envelope.signatures[{i}]"
            if not isinstance(entry, Mapping):
                raise EnvelopeFormatError(f"{where}: expected a JSON object")
            unknown = sorted(set(entry) - _SIGNATURE_FIELDS)
            if unknown:
                raise EnvelopeFormatError(f"{where}: unknown field(s) {', '.join(unknown)}")
            keyid = entry.get("keyid", "")
            if not isinstance(keyid, str):
                raise EnvelopeFormatError(f"{where}.keyid: expected a string")
            signatures.append(Signature(keyid=keyid, sig=_b64decode(entry.get("sig"), f"{where}.sig")))
        return cls(payload_type=payload_type, payload=payload, signatures=tuple(signatures))

    @classmethod
    def from_json(cls, text: bytes | str) -> Envelope:
        try:
            data = jsonfile.loads(text)  # strict and depth-limited: an envelope is user input
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeFormatError(f"envelope: not valid JSON ({exc})") from exc
        return cls.from_dict(data)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``.

    LEN is the ASCII decimal byte length (of the UTF-8 type, not its characters).
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign(payload: bytes, payload_type: str, signer: Signer) -> Envelope:
    """Sign ``PAE(payload_type, payload)`` and wrap it in an envelope with one signature."""
    if not payload_type:
        raise ValueError("payload_type must not be empty: it is what binds the payload's meaning")
    sig = signer.sign(pae(payload_type, payload))
    return Envelope(payload_type=payload_type, payload=payload, signatures=(Signature(signer.keyid, sig),))


def verify(
    envelope: Envelope | Mapping[str, Any] | bytes | str,
    keyring: PublicKeys | Mapping[str, Ed25519PublicKey],
    payload_type: str = PAYLOAD_TYPE_IN_TOTO,
    threshold: int = 1,
) -> bytes:
    """Return the payload once ``threshold`` distinct trusted keys signed it, else raise ``VerificationError``.

    A signature with a ``keyid`` is checked only against that key (an unknown key id
    counts for nothing); one without a ``keyid`` is tried against every trusted key.
    The key id is a hint only: what counts is which trusted key the signature verifies under.
    """
    if threshold < 1:
        # A threshold of zero would accept an envelope nobody signed.
        raise ValueError("threshold must be at least 1")
    env = _as_envelope(envelope)
    keys = _key_map(keyring)
    if not env.payload_type:
        raise VerificationError("the payload type is empty, so nothing says how to read the payload")
    if env.payload_type != payload_type:
        raise VerificationError(f"payload type {env.payload_type!r} is not the expected {payload_type!r}")
    if not env.signatures:
        raise VerificationError("the envelope carries no signature")
    message = pae(env.payload_type, env.payload)
    accepted: set[str] = set()
    problems: list[str] = []
    for i, signature in enumerate(env.signatures):
        if signature.keyid:
            key = keys.get(signature.keyid)
            candidates = {signature.keyid: key} if key is not None else {}
            if not candidates:
                problems.append(f"signature {i}: unknown key id {signature.keyid!r}")
                continue
        else:
            candidates = dict(keys)
        matched = [kid for kid, k in candidates.items() if _verifies(k, signature.sig, message)]
        if matched:
            accepted.update(matched[:1])
        else:
            problems.append(f"signature {i}: does not verify under key {signature.keyid or '(any trusted key)'}")
    if len(accepted) < threshold:
        detail = "; ".join(problems) or "no trusted key"
        raise VerificationError(
            f"{len(accepted)} of the required {threshold} trusted signature(s) verify: {detail}")
    return env.payload


def _verifies(key: Ed25519PublicKey, sig: bytes, message: bytes) -> bool:
    try:
        key.verify(sig, message)
    except InvalidSignature:
        return False
    return True


def _as_envelope(envelope: Envelope | Mapping[str, Any] | bytes | str) -> Envelope:
    if isinstance(envelope, Envelope):
        return envelope
    if isinstance(envelope, bytes | str):
        return Envelope.from_json(envelope)
    return Envelope.from_dict(envelope)


def _key_map(keyring: PublicKeys | Mapping[str, Ed25519PublicKey]) -> Mapping[str, Ed25519PublicKey]:
    if isinstance(keyring, Mapping):
        return keyring
    return keyring.public_keys()


def _b64decode(value: object, where: str) -> bytes:
    """Standard or URL-safe base64 (the spec says verifiers MUST accept either), padded and canonical.

    Non-canonical encodings (stray padding bits, mixed alphabets, whitespace) are rejected so
    one payload has exactly one envelope text per alphabet.
    """
    if not isinstance(value, str):
        raise EnvelopeFormatError(f"{where}: expected a base64 string")
    url_safe = "-" in value or "_" in value
    if url_safe and ("+" in value or "/" in value):
        raise EnvelopeFormatError(f"{where}: mixes the standard and URL-safe base64 alphabets")
    text = value.replace("-", "+").replace("_", "/") if url_safe else value
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeFormatError(f"{where}: not valid base64 ({exc})") from exc
    if base64.b64encode(decoded).decode("ascii") != text:
        raise EnvelopeFormatError(f"{where}: non-canonical base64")
    return decoded
