"""Who is who: users, groups and roles (a file in embedded mode).

Roles (what a person may do in primum):

| role | may |
| --- | --- |
| ``release-author`` | submit releases, the only role that may (never approve their own) |
| ``service-owner-approver`` | approve releases of the services their groups own |
| ``cab`` | approve as the change advisory board (high-impact changes need one) |
| ``release-manager`` | approve any release; promote, abort, pause, retry; place legal holds |
| ``platform-admin`` | administer policies, pipelines, legal holds and purges; may not approve production releases |
| ``operator`` | promote, abort, pause, retry (of their groups' services) |
| ``auditor`` | read everything, change nothing |
| ``break-glass`` | start the emergency path (bypasses approvals and freezes, never the analysis) |

A person's roles are the union of their own and their groups'; a person counts
once however many groups they are in.

Who a person is comes from what they hold, not a name they type: each user lists the
public halves of their Ed25519 keys under ``keys:`` (OpenSSH lines, ``ssh-ed25519 AAAA...``),
and a command's actor is the enrolled user whose key signed it (:meth:`Identities.identify`).
The file holds public keys only, so its content is recorded with every release it governs
(:func:`identities_digest`): a person's roles are those in force when the release was submitted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from primum.core.errors import NotAllowed
from primum.core.model.errors import InputError
from primum.core.model.release import canonical_json
from primum.core.model.types import Name
from primum.core.model.validate import problems_from_validation
from primum.core.model.yamlfile import load_yaml


class Role(StrEnum):
    release_author = "release-author"
    service_owner_approver = "service-owner-approver"
    cab = "cab"
    release_manager = "release-manager"
    platform_admin = "platform-admin"
    operator = "operator"
    auditor = "auditor"
    break_glass = "break-glass"


APPROVING_ROLES = frozenset({Role.service_owner_approver, Role.cab, Role.release_manager})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Group(Strict):
    roles: list[Role] = Field(default_factory=list)
    services: list[Name] = Field(default_factory=list)  # what service-owner approvers of this group own


class User(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
    name: str = ""
    groups: list[str] = Field(default_factory=list)
    roles: list[Role] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list)  # OpenSSH ed25519 public key lines

    @field_validator("keys")
    @classmethod
    def _keys_are_ed25519(cls, keys: list[str]) -> list[str]:
        for line in keys:
            parse_public_key(line)  # raises ValueError naming what is wrong
        return keys

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """This user's enrolled keys by key id."""
        out = {}
        for line in self.keys:
            key = parse_public_key(line)
            out[key_id(key)] = key
        return out


def parse_public_key(line: str) -> Ed25519PublicKey:
    """An OpenSSH public key line (``ssh-ed25519 AAAA... comment``) as an Ed25519 public key."""
    parts = line.strip().split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise ValueError("expected an OpenSSH ed25519 public key line 'ssh-ed25519 AAAA... name' "
                         "(`primum keys personal init` prints one)")
    try:
        key = serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a readable ssh-ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):  # pragma: no cover - the prefix was checked above
        raise ValueError("not an Ed25519 key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw 32-byte public key (the same key id as the evidence keys)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


class Identities(Strict):
    api_version: str = Field(default="primum/v1", alias="apiVersion")
    kind: str = "Identities"
    users: list[User] = Field(default_factory=list)
    groups: dict[str, Group] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def user(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def roles_of(self, user_id: str) -> frozenset[Role]:
        user = self.user(user_id)
        if user is None:
            return frozenset()
        roles = set(user.roles)
        for g in user.groups:
            roles |= set(self.groups[g].roles) if g in self.groups else set()
        return frozenset(roles)

    def holder_of(self, keyid: str) -> User | None:
        """The user who enrolled the key with this id, if anyone."""
        return next((u for u in self.users if keyid in u.public_keys()), None)

    def identify(self, keyid: str, asserted: str | None = None, *, source: str = "the identities file") -> str:
        """The enrolled user whose key this is; ``asserted`` (``--as``) must name that same user.

        Raises ``NotAllowed`` (a refusal, never a guess) for a key nobody enrolled, or a name that
        is not the key holder's."""
        user = self.holder_of(keyid)
        if user is None:
            who = f" ({asserted})" if asserted else ""
            raise NotAllowed(f"your key {keyid[:16]}...{who} is not enrolled in {source}: add the line "
                             "`primum keys personal show` prints under keys: of your user there")
        if asserted is not None and asserted != user.id:
            raise NotAllowed(f"--as {asserted} does not match your key, which is enrolled for {user.id}: "
                             "a name is only an assertion; sign with your own key (--key FILE or $PRIMUM_KEY)")
        return user.id

    def owned_services(self, user_id: str) -> frozenset[str]:
        user = self.user(user_id)
        if user is None:
            return frozenset()
        return frozenset(s for g in user.groups if g in self.groups for s in self.groups[g].services)


def identities_digest(document: Mapping[str, Any]) -> str:
    """sha256 of an identities document's canonical JSON (what a release records at submit)."""
    return "sha256:" + hashlib.sha256(canonical_json(dict(document))).hexdigest()


def identities_from_record(recorded: Any) -> Identities | str:
    """The identities recorded with a release at submit, or why there are none usable (fail closed)."""
    if not isinstance(recorded, Mapping) or not isinstance(recorded.get("document"), Mapping):
        return "the release recorded no identities when it was submitted (submitted before identities were " \
               "evidence, or without an identities file): submit it again"
    document = recorded["document"]
    if identities_digest(document) != recorded.get("digest"):
        return "the identities recorded with the release do not match their digest (tampered)"
    try:
        return Identities.model_validate(document)
    except ValidationError as exc:
        return f"the identities recorded with the release are unreadable ({exc.error_count()} problem(s))"


def load_identities(path: str | Path) -> Identities:
    """Read and check an identities file; every problem names the file, line, field and fix."""
    doc = load_yaml(path)
    try:
        identities = Identities.model_validate(doc.data)
    except ValidationError as exc:
        raise InputError(problems_from_validation(doc, exc, "identities")) from None
    problems = []
    ids = [u.id for u in identities.users]
    for i, user in enumerate(identities.users):
        if user.id in ids[:i]:
            problems.append(doc.problem(("users", i, "id"), f"user '{user.id}' is listed twice",
                                        "give every user one entry"))
        for k, keyid in enumerate(user.public_keys()):
            other = next((u.id for u in identities.users[:i] if keyid in u.public_keys()), None)
            if other is not None:
                problems.append(doc.problem(("users", i, "keys", k), f"this key is already enrolled for {other}",
                                            "every person enrols their own key: generate one with "
                                            "`primum keys personal init`"))
        for j, group in enumerate(user.groups):
            if group not in identities.groups:
                problems.append(doc.problem(("users", i, "groups", j), f"unknown group '{group}'",
                                            f"define it under groups: (defined: {', '.join(identities.groups)})"))
    if problems:
        raise InputError(problems)
    return identities
