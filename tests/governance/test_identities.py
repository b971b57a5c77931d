"""The identities file: users, groups, roles; clear errors for a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

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
