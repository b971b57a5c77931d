"""Synthetic people with real Ed25519 keys for tests: enrol them in an identities file, act as them."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from primum.adapters.evidence.keys import SigningKey
from primum.adapters.evidence.personal import load_personal_key, public_line
from primum.app.identity import Caller


class People:
    """One key per synthetic person, made on first use; ``enrol`` writes their public lines into an
    identities document, ``__call__`` is a person as a use case's caller, ``write_key`` their key file."""

    def __init__(self) -> None:
        self.keys: dict[str, SigningKey] = {}

    def key(self, user: str) -> SigningKey:
        if user not in self.keys:
            self.keys[user] = SigningKey.generate()
        return self.keys[user]

    def __call__(self, user: str, asserted: str | None = None) -> Caller:
        return Caller(self.key(user), asserted)

    def line(self, user: str) -> str:
        return public_line(self.key(user).public_key, user)

    def enrol(self, text: str, only: set[str] | None = None) -> str:
        """The identities document ``text`` with every user's (or ``only`` these users') key enrolled."""
        doc = yaml.safe_load(text)
        for user in doc.get("users", []):
            if only is None or user["id"] in only:
                user["keys"] = [self.line(user["id"])]
        return yaml.safe_dump(doc, sort_keys=False)

    def enrol_file(self, path: Path, only: set[str] | None = None) -> Path:
        path.write_text(self.enrol(path.read_text(), only))
        return path

    def write_key(self, user: str, directory: Path) -> Path:
        """The person's private key as a 0600 file (for the CLI's --key)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{user}.pem"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as f:
                f.write(self.key(user).private_pem())
        assert load_personal_key(path).keyid == self.key(user).keyid
        return path
