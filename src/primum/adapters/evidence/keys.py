"""Ed25519 signing keys for evidence: generation, a keyring with rotation, key files.

Key id: the lowercase hex SHA-256 of the raw 32-byte Ed25519 public key (RFC 8032
encoding). Anyone holding the public key can recompute it, with no other convention.

A keyring has one current signing key and the public halves of retired keys, so
envelopes signed before a rotation still verify; a retired key never signs again.

Layout of a key directory (``$PRIMUM_HOME/keys/``)::

    signing.pem          the current private key, PKCS#8 PEM, mode 0600
    public/<keyid>.pem   every public key ever used, current and retired (SubjectPublicKeyInfo PEM)

Rotation writes the new public key first and then replaces ``signing.pem`` atomically,
so the old private key is gone from disk once rotation returns.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from primum.core.model.errors import InputError, Problem

SIGNING_KEY_FILE = "signing.pem"
PUBLIC_KEYS_DIR = "public"
_KEYID = re.compile(r"^[0-9a-f]{64}$")


class KeyFileError(InputError):
    """A key file that is missing, unreadable, corrupt or too open; names the file and the fix."""

    def __init__(self, path: Path, message: str, fix: str):
        self.path = path
        super().__init__([Problem(file=str(path), line=None, path="", message=message, fix=fix)])


class RetiredKeyError(Exception):
    """A retired key was asked to sign."""


class NoSigningKeyError(Exception):
    """A verification-only keyring was asked to sign."""


def public_key_bytes(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key_bytes(public_key)).hexdigest()


class SigningKey:
    """An Ed25519 private key that signs until its keyring retires it."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._private = private_key
        self.public_key = private_key.public_key()
        self._keyid = key_id(self.public_key)
        self._retired = False

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def keyid(self) -> str:
        return self._keyid

    @property
    def retired(self) -> bool:
        return self._retired

    def sign(self, message: bytes) -> bytes:
        if self._retired:
            raise RetiredKeyError(f"key {self._keyid} is retired and may only verify; sign with the current key")
        return self._private.sign(message)

    def retire(self) -> None:
        """Never sign again (and drop the private key from this object)."""
        self._retired = True
        del self._private

    def private_pem(self) -> bytes:
        if self._retired:
            raise RetiredKeyError(f"key {self._keyid} is retired; its private key is not kept")
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def __repr__(self) -> str:
        return f"SigningKey(keyid={self._keyid!r}, retired={self._retired})"


class Keyring:
    """The current signing key plus every retired public key, looked up by key id."""

    def __init__(self, current: SigningKey | None, public_keys: Iterable[Ed25519PublicKey] = ()):
        self._current = current
        self._public: dict[str, Ed25519PublicKey] = {key_id(k): k for k in public_keys}
        if current is not None:
            if current.retired:
                raise RetiredKeyError(f"key {current.keyid} is retired and cannot be the current key")
            self._public[current.keyid] = current.public_key

    @classmethod
    def generate(cls) -> Keyring:
        return cls(SigningKey.generate())

    @property
    def current(self) -> SigningKey:
        """The key that signs; a verification-only keyring has none."""
        if self._current is None:
            raise NoSigningKeyError("this keyring only verifies: it was loaded without a private key")
        return self._current

    @property
    def can_sign(self) -> bool:
        return self._current is not None

    def public_key(self, keyid: str) -> Ed25519PublicKey | None:
        return self._public.get(keyid)

    def public_keys(self) -> Mapping[str, Ed25519PublicKey]:
        return dict(self._public)

    def keyids(self) -> list[str]:
        return sorted(self._public)

    def retired_keyids(self) -> list[str]:
        current = self._current.keyid if self._current else None
        return sorted(k for k in self._public if k != current)

    def rotate(self) -> SigningKey:
        """Make a new current key; the old one keeps verifying and can no longer sign."""
        new = SigningKey.generate()
        if self._current is not None:
            self._current.retire()
        self._current = new
        self._public[new.keyid] = new.public_key
        return new

    def verification_only(self) -> Keyring:
        """The same public keys without a signing key, e.g. to hand to an auditor."""
        return Keyring(None, self._public.values())


def keys_dir(home: Path | str | None = None) -> Path:
    """``$PRIMUM_KEYS_DIR`` if set (and no home is given), else ``<home>/keys``, with home defaulting to
    ``$PRIMUM_HOME`` or ``./.primum``."""
    if home is None and os.environ.get("PRIMUM_KEYS_DIR"):
        return Path(os.environ["PRIMUM_KEYS_DIR"]).expanduser().resolve()
    base = Path(home) if home is not None else Path(os.environ.get("PRIMUM_HOME") or ".primum")
    return base.expanduser().resolve() / "keys"


def init_keyring(directory: Path) -> Keyring:
    """Generate the first signing key in an empty key directory."""
    if (directory / SIGNING_KEY_FILE).exists():
        raise KeyFileError(directory / SIGNING_KEY_FILE, "a signing key already exists",
                           "keep it, or rotate it (`primum keys rotate`) so old evidence still verifies")
    keyring = Keyring.generate()
    save_keyring(keyring, directory)
    return keyring


def rotate_keyring(directory: Path) -> Keyring:
    """Load the keyring, rotate it and save it: the old private key is replaced, its public key kept."""
    keyring = load_keyring(directory)
    keyring.rotate()
    save_keyring(keyring, directory)
    return keyring


def save_keyring(keyring: Keyring, directory: Path) -> None:
    """Write every public key, then (atomically, mode 0600) the current private key if there is one."""
    public_dir = directory / PUBLIC_KEYS_DIR
    public_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for keyid, key in keyring.public_keys().items():
        path = public_dir / f"{keyid}.pem"
        if not path.exists():
            pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            _write_atomically(path, pem, 0o644)
    if keyring.can_sign:
        _write_atomically(directory / SIGNING_KEY_FILE, keyring.current.private_pem(), 0o600)


def load_keyring(directory: Path) -> Keyring:
    """The signing keyring: ``signing.pem`` plus every public key under ``public/``."""
    path = directory / SIGNING_KEY_FILE
    current = SigningKey(_load_private_key(path))
    public = _load_public_keys(directory / PUBLIC_KEYS_DIR)
    if current.keyid not in public:
        raise KeyFileError(directory / PUBLIC_KEYS_DIR / f"{current.keyid}.pem",
                           "the signing key's public key is missing, so its evidence could not be verified",
                           "save the keyring again (keys.save_keyring) to rewrite the public keys")
    return Keyring(current, public.values())


def load_public_keyring(directory: Path) -> Keyring:
    """A verification-only keyring from ``public/`` (what an auditor needs; no private key)."""
    public = _load_public_keys(directory / PUBLIC_KEYS_DIR)
    if not public:
        raise KeyFileError(directory / PUBLIC_KEYS_DIR, "no public keys found",
                           "copy the public/<keyid>.pem files from the primum key directory")
    return Keyring(None, public.values())


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    if not path.is_file():
        raise KeyFileError(path, "no signing key", "generate one (`primum keys init`) or restore signing.pem")
    if os.name == "posix":
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError(path, f"permissions {mode:04o} let other users read or change the private key",
                               f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(path, f"not a readable unencrypted PEM private key ({exc})",
                           "restore signing.pem from backup, or rotate to a new key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(path, f"a {type(key).__name__}, not an Ed25519 private key",
                           "evidence is signed with Ed25519 only: generate a key with `primum keys init`")
    return key


def _load_public_keys(public_dir: Path) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    if not public_dir.is_dir():
        return keys
    for path in sorted(public_dir.glob("*.pem")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as exc:
            raise KeyFileError(path, f"not a readable PEM public key ({exc})",
                               "restore it from backup; without it evidence it signed cannot be verified") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(path, f"a {type(key).__name__}, not an Ed25519 public key",
                               "remove it: evidence is signed with Ed25519 only")
        keyid = key_id(key)
        if path.stem != keyid:
            # The file name is what people and bundles refer to; a mismatch means a wrong or swapped file.
            raise KeyFileError(path, f"the file name does not match the key's id {keyid}",
                               f"rename it to {keyid}.pem, or restore the right key")
        keys[keyid] = key
    return keys


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        if hasattr(os, "fchmod"):
            os.fchmod(f.fileno(), mode)  # O_CREAT's mode is ignored for an existing file and cut by the umask
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


__all__ = [
    "KeyFileError", "Keyring", "NoSigningKeyError", "RetiredKeyError", "SigningKey", "init_keyring", "key_id",
    "keys_dir", "load_keyring", "load_public_keyring", "public_key_bytes", "rotate_keyring", "save_keyring",
]
