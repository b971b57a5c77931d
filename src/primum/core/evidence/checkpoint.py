"""Signed checkpoints: the C2SP tlog-checkpoint body inside a C2SP signed note, Ed25519 signatures.

A checkpoint commits a log to its tree head at one size (docs/EVIDENCE.md has the
keys behind this example)::

  primum.example/evidence
  3
  o2UlJOnLNmA82+l1lNKre4RcdZB1efZpR1n671qnsTk=

  — primum.example/evidence dLtghWuqTypEPzMRiYhL7TGvMgxt4Kt9zmndK3+G4thzCSRb7eUk9mwvqYop5HWFvrIy19aJr1qKYxw+MnsTUaK0Rwg=

The body (origin line, decimal tree size, base64 RFC 9162 root hash, optional
extension lines) is the signed note text; each signature line names the key and
starts with its 4-byte key id, ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``
(c2sp.org/signed-note). A verifier key is written
``<name>+<8 hex digits of key id>+<base64(0x01 || 32-byte public key)>``, the
format of golang.org/x/mod/sumdb/note, so keys and notes interoperate with the
Go ecosystem's tools.

Signatures from unknown keys are ignored (that is what lets a log rotate keys
and witnesses cosign); a note must carry at least one valid signature from a
known key, and any invalid signature from a known key rejects the whole note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from primum.core.evidence.tlog import HASH_SIZE

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100  # the spec asks for at least 16; Go's sumdb/note allows 100
_SIG_PREFIX = "\u2014 "  # em dash, space
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(ValueError):
    """A note or checkpoint that cannot be trusted; the message says why."""


class MalformedNoteError(CheckpointError):
    """The text is not a well-formed signed note or checkpoint."""


class UnverifiedNoteError(CheckpointError):
    """No signature on the note is from a known key."""


class InvalidSignatureError(CheckpointError):
    """A known key's signature on the note does not verify."""


class KeyFormatError(CheckpointError):
    """A verifier or signer key string is malformed or its key id does not match."""


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty, without Unicode spaces or '+' (c2sp.org/signed-note)."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, public_key: bytes) -> int:
    """The Ed25519 note key id: first 4 bytes (big-endian) of SHA-256(name || 0x0A || 0x01 || public key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key that verifies note signatures."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise KeyFormatError(f"key name {self.name!r} must be non-empty, without spaces or '+'")
        if len(self.public_key) != 32:
            raise KeyFormatError(f"an Ed25519 public key is 32 bytes, not {len(self.public_key)}")

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public_key)

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``<name>+<hex key id>+<base64(0x01 || public key)>``; the key id must match the key."""
        parts = vkey.split("+", 2)  # base64 key data may itself contain "+"
        if len(parts) != 3 or not _HEX8.fullmatch(parts[1]):
            raise KeyFormatError(f"verifier key {vkey!r} is not <name>+<8 hex digits>+<base64 key>")
        name, hex_id, b64 = parts
        raw = _b64decode(b64)
        if raw is None or len(raw) != 33:
            raise KeyFormatError(f"verifier key {name!r}: key data is not base64 of 33 bytes (0x01 || Ed25519 key)")
        if raw[0] != ALG_ED25519:
            raise KeyFormatError(f"verifier key {name!r}: algorithm {raw[0]:#04x} is not Ed25519 (0x01)")
        key = cls(name, raw[1:])
        if key.key_id != int(hex_id, 16):
            raise KeyFormatError(f"verifier key {name!r}: key id {hex_id} does not match the key ({key.key_id:08x})")
        return key

    def encode(self) -> str:
        data = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{data}"

    def __str__(self) -> str:
        return self.encode()

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 signer. ``sign`` may be any Ed25519 signing function, e.g. a keyring's current key."""

    name: str
    public_key: bytes
    sign: Callable[[bytes], bytes] = field(repr=False)

    def __post_init__(self) -> None:
        VerifierKey(self.name, self.public_key)  # validates name and key length

    @property
    def key_id(self) -> int:
        return key_id(self.name, self.public_key)

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.public_key)

    @classmethod
    def from_private_key(cls, name: str, private_key: Ed25519PrivateKey) -> NoteSigner:
        return cls(name, _raw_public(private_key.public_key()), private_key.sign)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls.from_private_key(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> NoteSigner:
        """Parse a Go sumdb/note signer key, ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _HEX8.fullmatch(parts[3]):
            raise KeyFormatError("signer key is not PRIVATE+KEY+<name>+<8 hex digits>+<base64 seed>")
        name, hex_id, b64 = parts[2:]
        raw = _b64decode(b64)
        if raw is None or len(raw) != 33 or raw[0] != ALG_ED25519:
            raise KeyFormatError(f"signer key {name!r}: key data is not base64 of 0x01 || 32-byte Ed25519 seed")
        signer = cls.from_private_key(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id != int(hex_id, 16):
            raise KeyFormatError(f"signer key {name!r}: key id {hex_id} does not match the key")
        return signer


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key id, and the raw signature (without the key id)."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        data = base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature).decode()
        return f"{_SIG_PREFIX}{self.name} {data}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text, the signatures that verified, and those from unknown keys."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = ()


def sign_note(text: str, signers: Sequence[NoteSigner], existing: Iterable[NoteSignature] = ()) -> str:
    """Sign ``text`` (which must end in a newline) with every signer; keep ``existing`` signatures of other keys."""
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end with a newline")
    _check_characters(text)
    if not signers and not existing:
        raise MalformedNoteError("a signed note needs at least one signature")
    message = text.encode()
    fresh = [NoteSignature(s.name, s.key_id, s.sign(message)) for s in signers]
    replaced = {(s.name, s.key_id) for s in fresh}
    kept = [s for s in existing if (s.name, s.key_id) not in replaced]
    for s in kept:
        if not is_valid_key_name(s.name):
            raise MalformedNoteError(f"signature key name {s.name!r} is not a valid key name")
    return text + "\n" + "".join(s.line() for s in [*kept, *fresh])


def _check_characters(text: str) -> None:
    for pos, ch in enumerate(text):
        if ch < " " and ch != "\n":
            raise MalformedNoteError(f"control character {ord(ch):#04x} at offset {pos}")


def open_note(message: str | bytes, verifiers: Iterable[VerifierKey]) -> Note:
    """Parse a signed note and verify it against known keys (c2sp.org/signed-note).

    Signatures from unknown keys are set aside; a known key's bad signature rejects
    the note; with no verified signature the note is rejected.
    """
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as err:
            raise MalformedNoteError(f"note is not valid UTF-8 (byte {err.start})") from None
    _check_characters(message)
    known: dict[tuple[str, int], VerifierKey] = {}
    ambiguous: set[tuple[str, int]] = set()
    for v in verifiers:
        k = (v.name, v.key_id)
        if k in known and known[k] != v:
            ambiguous.add(k)
        known[k] = v
    split = message.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("no blank line separates the note text from its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedNoteError("the signature block must be non-empty and end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"{len(lines)} signatures, more than the {MAX_SIGNATURES} accepted")
    payload = text.encode()
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for n, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(f"signature line {n} does not start with an em dash and a space")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        raw = _b64decode(b64)
        if not is_valid_key_name(name) or raw is None or len(raw) < 5:
            raise MalformedNoteError(f"signature line {n} is not '— <key name> <base64 signature>'")
        sig = NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])
        k = (sig.name, sig.key_id)
        if k not in known:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if k in ambiguous:
            raise CheckpointError(f"ambiguous key {name}+{sig.key_id:08x}: two different verifier keys share it")
        if k in seen:
            continue
        seen.add(k)
        if not known[k].verify(payload, sig.signature):
            raise InvalidSignatureError(f"invalid signature for key {name}+{sig.key_id:08x}")
        verified.append(sig)
    if not verified:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unverified) or "none"
        raise UnverifiedNoteError(f"note has no signature from a known key (signed by: {names})")
    return Note(text, tuple(verified), tuple(unverified))


# --- Checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, size, RFC 9162 root hash, optional extension lines.

    ``signatures`` holds the verified signatures when the checkpoint came from
    :func:`open_checkpoint`; it is empty for one built to be signed.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedNoteError("checkpoint origin must be one non-empty line")
        if self.size < 0:
            raise MalformedNoteError(f"checkpoint tree size {self.size} is negative")
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedNoteError(f"checkpoint root hash is {len(self.root_hash)} bytes, not {HASH_SIZE}")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise MalformedNoteError("checkpoint extension lines must be non-empty single lines")

    def body(self) -> str:
        """The note text: origin, size, base64 root hash, extension lines, each newline-terminated."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The verified signers as ``<name>+<hex key id>``."""
        return tuple(f"{s.name}+{s.key_id:08x}" for s in self.signatures)


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse a checkpoint note text (unsigned); raises :class:`MalformedNoteError` naming the bad line."""
    if not text.endswith("\n"):
        raise MalformedNoteError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedNoteError(f"checkpoint has {len(lines)} lines; needs origin, tree size and root hash")
    origin, size_line, root_line, *extensions = lines
    if not origin:
        raise MalformedNoteError("checkpoint line 1 (origin) is empty")
    if not _TREE_SIZE.fullmatch(size_line):
        raise MalformedNoteError(f"checkpoint line 2 (tree size) {size_line!r} is not a decimal without leading zeros")
    root = _b64decode(root_line)
    if root is None or len(root) != HASH_SIZE or base64.b64encode(root).decode() != root_line:
        raise MalformedNoteError(f"checkpoint line 3 (root hash) {root_line!r} is not base64 of {HASH_SIZE} bytes")
    for n, ext in enumerate(extensions, 4):
        if not ext:
            raise MalformedNoteError(f"checkpoint line {n} (extension) is empty")
    return Checkpoint(origin, int(size_line), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """The signed note text of ``checkpoint``, one signature line per signer (key rotation: sign with several)."""
    if not signers:
        raise CheckpointError("a checkpoint needs at least one signer")
    return sign_note(checkpoint.body(), signers)


def open_checkpoint(
    text: str | bytes, verifier_keys: Iterable[VerifierKey | str], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint against known verifier keys and parse it.

    ``verifier_keys`` may mix :class:`VerifierKey` and vkey strings; include retired
    keys so checkpoints signed before a rotation still open. ``origin``, when given,
    must equal the checkpoint's origin line (c2sp.org/tlog-checkpoint: verifiers check it).
    """
    keys = [VerifierKey.parse(k) if isinstance(k, str) else k for k in verifier_keys]
    note = open_note(text, keys)
    cp = parse_checkpoint_body(note.text)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    return Checkpoint(cp.origin, cp.size, cp.root_hash, cp.extensions, note.signatures)
