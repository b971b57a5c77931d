"""Witnessing the log: checkpoints kept outside the store, cosignatures, and what a witness decides. Pure.

The store's own checkpoints live in the database, so whoever can write the database can delete
them with the entries (a wipe) or restore an older copy (a rollback), and the log then verifies
against itself. A witness holds the newest checkpoint it has seen somewhere else and only ever
moves forward: before it takes a new checkpoint it checks that the new tree extends the one it
holds (an RFC 9162 consistency proof, c2sp.org/tlog-witness), and it refuses a smaller tree or a
different root. ``evidence verify`` then compares the store's head with what the witness holds.

Cosignatures follow c2sp.org/tlog-cosignature (``cosignature/v1``): the witness signs
``"cosignature/v1\\ntime <unix seconds>\\n" + checkpoint body`` with Ed25519, and the signature
line carries the key id (signature type 0x04), the 8-byte big-endian timestamp and the signature.
The log's own verifiers set the line aside as a signature from an unknown key, as the spec intends.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from primum.core.evidence.checkpoint import (
    Checkpoint,
    KeyFormatError,
    MalformedNoteError,
    NoteSignature,
    VerifierKey,
    is_valid_key_name,
    open_note,
)
from primum.core.evidence.tlog import TreeHead, verify_consistency

ALG_COSIGNATURE_V1 = 0x04
COSIGNATURE_HEADER = "cosignature/v1\n"


def cosignature_key_id(name: str, public_key: bytes) -> int:
    """First 4 bytes (big-endian) of SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a cosignature signs: the header, the time line, then the checkpoint body."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n".encode() + body.encode()


@dataclass(frozen=True)
class WitnessKey:
    """A witness's public key: ``<name>+<hex key id>+<base64(0x04 || public key)>``."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise KeyFormatError(f"witness name {self.name!r} must be non-empty, without spaces or '+'")
        if len(self.public_key) != 32:
            raise KeyFormatError(f"an Ed25519 public key is 32 bytes, not {len(self.public_key)}")

    @property
    def key_id(self) -> int:
        return cosignature_key_id(self.name, self.public_key)

    def encode(self) -> str:
        data = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{data}"

    @classmethod
    def parse(cls, vkey: str) -> WitnessKey:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise KeyFormatError(f"witness key {vkey!r} is not <name>+<8 hex digits>+<base64 key>")
        try:
            raw = base64.b64decode(parts[2], validate=True)
            wanted = int(parts[1], 16)
        except ValueError:
            raise KeyFormatError(f"witness key {parts[0]!r}: bad key id or key data") from None
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise KeyFormatError(f"witness key {parts[0]!r}: key data is not base64 of 0x04 || Ed25519 key")
        key = cls(parts[0], raw[1:])
        if key.key_id != wanted:
            raise KeyFormatError(f"witness key {parts[0]!r}: key id {parts[1]} does not match the key")
        return key


def split_note(note: str) -> tuple[str, list[str]]:
    """A signed note's text and its signature lines."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise MalformedNoteError("no blank line separates the note text from its signatures")
    return note[: split + 1], note[split + 2 : -1].split("\n")


def cosign(note: str, key: WitnessKey, sign: Callable[[bytes], bytes], timestamp: int) -> str:
    """``note`` with this witness's cosignature at ``timestamp`` (replacing an older one of the same key)."""
    text, lines = split_note(note)
    signature = NoteSignature(key.name, key.key_id,
                              timestamp.to_bytes(8, "big") + sign(cosigned_message(text, timestamp)))
    kept = [line for line in lines if not _same_key(line, key)]
    return text + "\n" + "".join(line + "\n" for line in kept) + signature.line()


def _same_key(line: str, key: WitnessKey) -> bool:
    name, _, b64 = line.removeprefix("\u2014 ").partition(" ")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        return False
    return name == key.name and len(raw) >= 4 and int.from_bytes(raw[:4], "big") == key.key_id


def cosignature_time(note: str, log_keys: Sequence[VerifierKey], key: WitnessKey) -> int | None:
    """The time of ``key``'s valid cosignature on ``note`` (opened with the log's keys), or None."""
    opened = open_note(note, log_keys)
    for sig in opened.unverified:
        if sig.name == key.name and sig.key_id == key.key_id and len(sig.signature) == 72:
            timestamp = int.from_bytes(sig.signature[:8], "big")
            verifier = VerifierKey(key.name, key.public_key)
            if verifier.verify(cosigned_message(opened.text, timestamp), sig.signature[8:]):
                return timestamp
    return None


# --- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessVerdict:
    """Whether a witness takes a new checkpoint: ``action`` is "take", "same" or "refuse" (with ``problem``)."""

    action: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.action != "refuse"


def witness_step(held: Checkpoint | None, new: Checkpoint, proof: Sequence[bytes]) -> WitnessVerdict:
    """The tlog-witness rule: take ``new`` only if it extends the checkpoint held (``proof`` from held to new)."""
    if held is None:
        return WitnessVerdict("take")
    if held.origin != new.origin:
        return WitnessVerdict("refuse", f"the witness holds a checkpoint of the log {held.origin!r}, not of "
                                        f"{new.origin!r}")
    if new.size < held.size:
        return WitnessVerdict("refuse", f"rollback: the log now has {new.size} entries but the witness already "
                                        f"holds a signed checkpoint at size {held.size}")
    if new.size == held.size:
        if new.root_hash == held.root_hash:
            return WitnessVerdict("same")
        return WitnessVerdict("refuse", f"fork: the log's root at size {new.size} is not the root the witness "
                                        "holds for that size")
    if not verify_consistency(held.size, new.size, held.root_hash, new.root_hash, proof):
        return WitnessVerdict("refuse", f"fork: the log at size {new.size} does not extend the checkpoint the "
                                        f"witness holds at size {held.size} (the consistency proof fails)")
    return WitnessVerdict("take")


def mirror_step(held: TreeHead | None, *, old_size: int, old_root: bytes, new_size: int, new_root: bytes,
                root_at: Callable[[int], bytes | None]) -> WitnessVerdict:
    """Should the store's append-time copy replace the checkpoint held, after a batch took the log from
    ``old_size`` to ``new_size``? ``root_at(n)`` gives the store's tree hash at size ``n`` (it reads the
    leaf hashes, so it is asked only when the copy lags more than one batch behind)."""
    if held is None:
        return WitnessVerdict("take")
    if held.size >= new_size:
        if held.size == new_size and held.root_hash != new_root:
            return WitnessVerdict("refuse", f"the copy holds another root at size {new_size}: the log was "
                                            "rolled back and rewritten")
        return WitnessVerdict("same")  # a later append wrote it already
    if held.size == old_size:
        if held.root_hash == old_root:
            return WitnessVerdict("take")
        return WitnessVerdict("refuse", f"the copy holds another root at size {old_size}: the log was rolled "
                                        "back and rewritten")
    if held.size > old_size:
        return WitnessVerdict("refuse", f"the copy holds size {held.size} but the log had {old_size} entries "
                                        "before this append: it was rolled back")
    if root_at(held.size) != held.root_hash:
        return WitnessVerdict("refuse", f"the log does not extend the copy's checkpoint at size {held.size}: "
                                        "it was rewritten")
    return WitnessVerdict("take")


def compare_with_witness(witnessed: TreeHead, *, store_size: int, store_root_at: bytes | None,
                         where: str) -> str | None:
    """What is wrong with the store's log seen from the checkpoint a witness holds, or None.

    ``store_size`` is the store's newest checkpoint's size (0 when it has none); ``store_root_at`` is
    the store's tree hash at the witnessed size (None when the store is smaller).
    """
    if witnessed.size == 0:
        return None
    if store_size == 0:
        return (f"the log was wiped: it is empty but the witness {where} holds a signed checkpoint at size "
                f"{witnessed.size}")
    if store_size < witnessed.size:
        return (f"the log was rolled back: it has {store_size} entries but the witness {where} holds a signed "
                f"checkpoint at size {witnessed.size}; entries {store_size} to {witnessed.size - 1} are gone")
    if store_root_at != witnessed.root_hash:
        return (f"the log was rewritten (forked): its tree at size {witnessed.size} is not the root the witness "
                f"{where} holds for that size")
    return None
