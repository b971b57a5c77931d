"""Who is who: users, groups and roles (a file in embedded mode).

Roles (what a person may do in primum):

| role | may |
| --- | --- |
| ``release-author`` | submit releases (never approve their own) |
| ``service-owner-approver`` | approve releases of the services their groups own |
| ``cab`` | approve as the change advisory board (high-impact changes need one) |
| ``release-manager`` | approve any release; promote, abort, retry |
| ``platform-admin`` | administer policies and pipelines; may not approve production releases |
| ``operator`` | promote, abort, retry |
| ``auditor`` | read everything, change nothing |
| ``break-glass`` | start the emergency path (bypasses approvals and freezes, never the analysis) |

A person's roles are the union of their own and their groups'; a person counts
once however many groups they are in.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from primum.core.model.errors import InputError
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

    def owned_services(self, user_id: str) -> frozenset[str]:
        user = self.user(user_id)
        if user is None:
            return frozenset()
        return frozenset(s for g in user.groups if g in self.groups for s in self.groups[g].services)


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
        for j, group in enumerate(user.groups):
            if group not in identities.groups:
                problems.append(doc.problem(("users", i, "groups", j), f"unknown group '{group}'",
                                            f"define it under groups: (defined: {', '.join(identities.groups)})"))
    if problems:
        raise InputError(problems)
    return identities
