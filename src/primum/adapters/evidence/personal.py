"""A person's own signing key: the file they hold, which proves who they are to primum.

One Ed25519 private key per person, PKCS#8 PEM, mode 0600, by default at
``$XDG_CONFIG_HOME/primum/key.pem`` (``~/.config/primum/key.pem``); ``$PRIMUM_KEY`` or ``--key FILE``
name another. Its public half is enrolled in ``identities.yaml`` as an OpenSSH line
(``ssh-ed25519 AAAA... alice``), which is what :func:`public_line` prints. An existing OpenSSH
ed25519 private key (``ssh-keygen -t ed25519``, unencrypted) is accepted too.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from primum.adapters.evidence.keys import KeyFileError, SigningKey, _write_atomically


def generate_personal_key(path: Path) -> SigningKey:
    """Write a new private key to ``path`` (mode 0600; refused if one exists)."""
    if path.exists():
        raise KeyFileError(path, "a personal key already exists here",
                           "keep it (`primum keys personal show` prints its line to enrol), or pass --key NEW_FILE")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = SigningKey.generate()
    _write_atomically(path, key.private_pem(), 0o600)
    return key


def load_personal_key(path: Path) -> SigningKey:
    """The person's signing key from ``path``; errors name the file and the fix."""
    if not path.is_file():
        raise KeyFileError(path, "no personal signing key: primum knows you by the key you hold, not a name",
                           "generate one with `primum keys personal init` (or pass --key FILE / set $PRIMUM_KEY) "
                           "and enrol the line it prints under keys: of your user in identities.yaml")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise KeyFileError(path, f"permissions {path.stat().st_mode & 0o777:04o} let other users read your key",
                           f"chmod 600 {path}")
    data = path.read_bytes()
    key: object
    try:
        if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(path, f"not a readable unencrypted private key ({exc})",
                           "pass the file `primum keys personal init` wrote (or an unencrypted ssh ed25519 key)"
                           ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(path, f"a {type(key).__name__}, not an Ed25519 key",
                           "primum signs with Ed25519 only: `primum keys personal init --key NEW_FILE`")
    return SigningKey(key)


def public_line(public_key: Ed25519PublicKey, comment: str = "") -> str:
    """The OpenSSH line to enrol under ``keys:`` in identities.yaml."""
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()
