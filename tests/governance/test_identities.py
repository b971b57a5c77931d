"""The identities file: users, groups, roles; clear errors for a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from primum.core.errors import NotAllowed
from primum.core.governance.identities import Role, load_identities
from primum.core.model.errors import InputError

GOOD = """\
apiVersion: primum/v1
kind: Identities
groups:
  team-scheduling: {roles: [release-author, service-owner-approver], services: [scheduling-api]}
  cab: {roles: [cab]}
  platform: {roles: [platform-admin]}
users:
  - {id: alice, name: Alice (synthetic), groups: [team-scheduling]}
  - {id: carol, groups: [team-scheduling, cab]}
  - {id: pat, groups: [platform], roles: [operator]}
"""


def test_roles_are_the_union_of_own_and_group_roles(tmp_path: Path) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(GOOD)
    ids = load_identities(path)
    assert ids.roles_of("carol") == {Role.release_author, Role.service_owner_approver, Role.cab}
    assert ids.roles_of("pat") == {Role.platform_admin, Role.operator}
    assert ids.owned_services("alice") == {"scheduling-api"}
    assert ids.roles_of("nobody") == frozenset()


@pytest.mark.parametrize("text, where, words", [
    (GOOD.replace("groups: [platform]", "groups: [platfrom]"), ":10:", "unknown group 'platfrom'"),
    (GOOD.replace("roles: [cab]", "roles: [chief]"), ":5:", "'chief' is not allowed"),
    (GOOD + "  - {id: alice}\n", ":11:", "user 'alice' is listed twice"),
])
def test_a_bad_identities_file_names_the_line_and_the_fix(tmp_path: Path, text: str, where: str, words: str) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_identities(path)
    rendered = " ".join(p.render() for p in err.value.problems)
    assert where in rendered and words in rendered, rendered


def test_keys_are_enrolled_per_user_and_identify_their_holder(tmp_path: Path, people) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(people.enrol(GOOD))
    ids = load_identities(path)
    assert ids.identify(people.key("carol").keyid) == "carol"
    assert ids.identify(people.key("carol").keyid, "carol") == "carol"
    with pytest.raises(NotAllowed, match="--as alice does not match your key, which is enrolled for carol"):
        ids.identify(people.key("carol").keyid, "alice")
    with pytest.raises(NotAllowed, match="is not enrolled in the identities file"):
        ids.identify(people.key("mallory").keyid, "alice")


@pytest.mark.parametrize("key, words", [
    ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ alice", "expected an OpenSSH ed25519 public key line"),
    ("ssh-ed25519 not-base64 alice", "not a readable ssh-ed25519 public key"),
    ("AAAAC3NzaC1lZDI1NTE5AAAAIOdd", "expected an OpenSSH ed25519 public key line"),
])
def test_a_key_that_is_not_an_ed25519_line_names_the_line(tmp_path: Path, key: str, words: str) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(GOOD.replace("{id: alice, name: Alice (synthetic), groups: [team-scheduling]}",
                                 f"{{id: alice, groups: [team-scheduling], keys: ['{key}']}}"))
    with pytest.raises(InputError) as err:
        load_identities(path)
    rendered = " ".join(p.render() for p in err.value.problems)
    assert ":8:" in rendered and "users[0].keys" in rendered and words in rendered, rendered


def test_one_key_belongs_to_one_person(tmp_path: Path, people) -> None:
    line = people.line("alice")
    path = tmp_path / "identities.yaml"
    path.write_text(GOOD.replace("{id: alice, name: Alice (synthetic), groups: [team-scheduling]}",
                                 f"{{id: alice, groups: [team-scheduling], keys: ['{line}']}}")
                        .replace("{id: carol, groups: [team-scheduling, cab]}",
                                 f"{{id: carol, groups: [cab], keys: ['{line}']}}"))
    with pytest.raises(InputError) as err:
        load_identities(path)
    rendered = " ".join(p.render() for p in err.value.problems)
    assert ":9:" in rendered and "already enrolled for alice" in rendered, rendered
