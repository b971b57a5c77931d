"""Reading the Ed25519 public keys a user passes (``--key``, ``--trust-key``): PEM files, or directories of
them; every bad file is an :class:`InputError` naming it and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from primum.core.model.errors import InputError

PEM_MARKER = b"-----BEGIN PUBLIC KEY-----"


def load_public_keys(paths: list[Path]) -> list[Any]:
    """Ed25519 public keys from PEM files (a file may hold several) or directories holding ``*.pem`` files."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys: list[Any] = []
    for path in paths:
        files = sorted(path.glob("*.pem")) if path.is_dir() else [path]
        if not files:
            raise InputError.single(str(path), "no .pem public keys in this directory",
                                    "pass the public key file given with the bundle, e.g. --key primum-evidence.pem")
        for file in files:
            try:
                text = file.read_bytes()
                blocks = [PEM_MARKER + b for b in text.split(PEM_MARKER)[1:]] or [text]
                loaded = [load_pem_public_key(block) for block in blocks]
            except (OSError, ValueError) as exc:
                raise InputError.single(str(file), f"not a readable PEM public key ({exc})",
                                        "pass the evidence log's Ed25519 public key (PEM)") from None
            for key in loaded:
                if not isinstance(key, Ed25519PublicKey):
                    raise InputError.single(str(file), "not an Ed25519 public key",
                                            "pass the evidence log's Ed25519 public key")
                keys.append(key)
    return keys
