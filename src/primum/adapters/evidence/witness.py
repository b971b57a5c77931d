"""Witness directories: the log's checkpoints kept outside the database, and a cosigning witness.

Two writers keep a checkpoint in a directory (``<dir>/checkpoint``, the signed note as text):

- the store itself, after every append batch commits, when a witness directory is configured
  (``PRIMUM_WITNESS_DIR``, default ``$PRIMUM_HOME/witness``): :class:`WitnessMirror`. It never moves
  the copy backwards or onto another tree (``core.evidence.witness.mirror_step``); a refusal is logged
  as an error and left for ``evidence verify`` to report;
- ``primum evidence witness --dir DIR``: :func:`witness_once` checks that the log extends the
  checkpoint the directory holds (consistency proof), refuses a rollback, and cosigns the new one
  with the witness's own Ed25519 key (``<dir>/witness.pem``, mode 0600; its public key in
  ``<dir>/witness.vkey``).

Every write is atomic (a temporary file in the same directory, then a rename) and serialised by a
lock file, so concurrent controllers never leave a half-written or older checkpoint behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from primum.core.evidence.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    open_checkpoint,
    parse_checkpoint_body,
)
from primum.core.evidence.witness import WitnessKey, WitnessVerdict, cosign, mirror_step, split_note, witness_step
from primum.core.model.errors import InputError

log = logging.getLogger("primum.evidence.witness")

CHECKPOINT_FILE = "checkpoint"
KEY_FILE = "witness.pem"
VKEY_FILE = "witness.vkey"
MAX_NOTE_BYTES = 64 * 1024


class WitnessError(InputError):
    """A witness directory that cannot be read or written; names the path and the fix."""


def _problem(path: Path, message: str, fix: str) -> WitnessError:
    from primum.core.model.errors import Problem

    return WitnessError([Problem(file=str(path), line=None, path="", message=message, fix=fix)])


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a unique temporary file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the directory's lock file: one reader-decider-writer at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_note(directory: Path) -> str | None:
    """The checkpoint note the directory holds, or None when it holds none; WitnessError if unreadable."""
    path = directory / CHECKPOINT_FILE
    try:
        with path.open("rb") as f:
            data = f.read(MAX_NOTE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _problem(path, f"cannot read the witness checkpoint ({exc.strerror or exc})",
                       "make it readable by this user") from None
    if len(data) > MAX_NOTE_BYTES:
        raise _problem(path, f"larger than {MAX_NOTE_BYTES} bytes: not a checkpoint", "restore the witness copy")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _problem(path, "not UTF-8 text: not a checkpoint", "restore the witness copy") from None


def unsigned_head(note: str) -> Checkpoint:
    """The tree head a note claims, signatures unchecked (the store's own hot path trusts its directory's
    contents only to refuse going backwards; ``evidence verify`` checks the signatures)."""
    return parse_checkpoint_body(split_note(note)[0])


@dataclass(frozen=True)
class Appended:
    """One append batch as the witness needs it: the tree before and after, and the signed note after."""

    old_size: int
    old_root: bytes
    new_size: int
    new_root: bytes
    note: str


class WitnessMirror:
    """The store's append-time copy of its checkpoint in a witness directory.

    It is on the controller's hot path (every persisted tick appends), so the lock file stays open and
    the copy this process wrote last is remembered with the file's identity (inode, size, mtime): while
    the file is unchanged it is not read and parsed again.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock: Any = None
        self._mine: tuple[tuple[int, int, int], Checkpoint] | None = None
        self._last_error: str | None = None  # each distinct failure is logged once, not on every tick

    def _error(self, message: str) -> None:
        if message != self._last_error:
            self._last_error = message
            log.error("%s", message)

    def _held(self) -> Checkpoint | None:
        path = self.directory / CHECKPOINT_FILE
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if self._mine is not None and self._mine[0] == (st.st_ino, st.st_size, st.st_mtime_ns):
            return self._mine[1]
        note = read_note(self.directory)
        return None if note is None else unsigned_head(note)

    def _write(self, batch: Appended) -> None:
        path = self.directory / CHECKPOINT_FILE
        write_atomically(path, batch.note.encode())
        st = path.stat()
        self._mine = ((st.st_ino, st.st_size, st.st_mtime_ns), unsigned_head(batch.note))

    def after_commit(self, batches: Sequence[Appended], root_at: Callable[[int], bytes | None]) -> None:
        """Write the newest checkpoint of a committed transaction's batches; never raises (the data is
        committed already): a failure is logged, and ``evidence verify`` reports what it left."""
        if not batches:
            return
        first, last = batches[0], batches[-1]
        try:
            if self._lock is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._lock = open(self.directory / ".lock", "w")  # noqa: SIM115 - kept open for the process
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            try:
                verdict = mirror_step(self._held(), old_size=first.old_size, old_root=first.old_root,
                                      new_size=last.new_size, new_root=last.new_root, root_at=root_at)
                if verdict.action == "take":
                    self._write(last)
                    self._last_error = None
                elif not verdict.ok:
                    self._error(f"evidence witness {self.directory}: not updated: {verdict.problem} "
                                "(`primum evidence verify` reports it)")
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
        except (OSError, InputError, CheckpointError) as exc:
            self._error(f"evidence witness {self.directory}: cannot keep the checkpoint: {exc}")


# ---------------------------------------------------------------------- the cosigning witness


def witness_key(directory: Path, name: str | None = None) -> tuple[WitnessKey, Ed25519PrivateKey]:
    """The witness's key pair, created on first use (private key mode 0600, public key as a vkey)."""
    path = directory / KEY_FILE
    if not path.exists():
        private = Ed25519PrivateKey.generate()
        write_atomically(path, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()), 0o600)
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key = WitnessKey(name or f"witness-{socket.gethostname().split('.')[0] or 'local'}", raw)
        write_atomically(directory / VKEY_FILE, (key.encode() + "\n").encode())
        return key, private
    if path.stat().st_mode & 0o077:
        raise _problem(path, f"permissions {path.stat().st_mode & 0o777:04o} let other users read the witness key",
                       f"chmod 600 {path}")
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        key = WitnessKey.parse((directory / VKEY_FILE).read_text())
    except (OSError, ValueError, TypeError, CheckpointError) as exc:
        raise _problem(path, f"the witness key cannot be read ({exc})",
                       f"restore {KEY_FILE} and {VKEY_FILE}, or start a new witness in an empty directory") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise _problem(path, "not an Ed25519 private key", "start a new witness in an empty directory")
    raw = loaded.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if raw != key.public_key:
        raise _problem(directory / VKEY_FILE, "the public key does not match witness.pem", "restore both files")
    return key, loaded


@dataclass(frozen=True)
class Witnessed:
    """What the witness did: ``verdict`` (take, same or refuse), the sizes, and its key."""

    verdict: WitnessVerdict
    held_size: int | None
    new_size: int
    key: WitnessKey


def witness_once(directory: Path, *, origin: str, note: str, verifiers: Sequence[VerifierKey],
                 proof_from: Callable[[int], list[bytes]], now: int) -> Witnessed:
    """Check the log's newest checkpoint ``note`` against the one the directory holds and cosign it.

    ``proof_from(size)`` is the store's consistency proof from ``size`` to the new checkpoint (it raises
    ``ValueError`` when the log cannot give one: it is smaller, or entries were deleted).
    """
    new = open_checkpoint(note, verifiers, origin=origin)
    with locked(directory):
        key, private = witness_key(directory)
        held_note = read_note(directory)
        held: Checkpoint | None = None
        if held_note is not None:
            try:
                held = open_checkpoint(held_note, verifiers, origin=origin)
            except CheckpointError as exc:
                raise _problem(directory / CHECKPOINT_FILE, f"the checkpoint the witness holds does not verify "
                               f"with the log's keys ({exc})", "restore the witness copy, or pass --key with "
                               "every public key of the log") from None
        proof: list[bytes] = []
        if held is not None and 0 < held.size < new.size:
            try:
                proof = proof_from(held.size)
            except ValueError as exc:
                verdict = WitnessVerdict("refuse", f"the log cannot prove it extends the witnessed size "
                                                   f"{held.size}: {exc}")
                return Witnessed(verdict, held.size, new.size, key)
        verdict = witness_step(held, new, proof)
        if verdict.ok:
            write_atomically(directory / CHECKPOINT_FILE, cosign(note, key, private.sign, now).encode())
        return Witnessed(verdict, None if held is None else held.size, new.size, key)
