"""Who is acting, proven by the key they hold, and may they do this to this release.

A front end hands the use cases a :class:`Caller`: the person's signing key (a file they hold,
``adapters/evidence/personal.py``) and, at most, the name they assert (``--as``). The actor is the
user of the identities file whose enrolled key that is (``Identities.identify``); a name that does
not match the key is refused, never believed.

Identities are evidence: :func:`snapshot` records the identities file's content (public keys only)
and digest with a release when it is submitted, and every later decision on that release is judged
against that record (:func:`identities_at_submission`), so a person added or promoted afterwards
cannot approve or operate it.

Roles per command (see ``core/governance/identities.py``): promote, abort, pause, retry take the
``operator`` role for one of the release's services (its groups list the service) or
``release-manager``; approving is the separation-of-duties rules of ``core/governance/approvals.py``;
break-glass takes ``break-glass``; reviews take ``cab`` or ``release-manager``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from primum.adapters.evidence.keys import SigningKey
from primum.adapters.store.records import CommandRecord, RolloutRecord
from primum.core.errors import NotAllowed
from primum.core.governance.identities import (
    Identities,
    Role,
    identities_digest,
    identities_from_record,
    load_identities,
)
from primum.core.governance.signatures import Claim, sign_claim, verify_signed

OPERATING = "operator or release-manager"


@dataclass(frozen=True)
class Caller:
    """The person behind a command: the key they hold, and the name they assert (``--as``), if any."""

    key: SigningKey
    asserted: str | None = None


def snapshot(identities_path: str | None) -> tuple[Identities | None, dict[str, Any] | None]:
    """The identities file in force now, and the record of it a release keeps (content and digest)."""
    if identities_path is None:
        return None, None
    identities = load_identities(identities_path)
    document = identities.model_dump(mode="json", by_alias=True)
    return identities, {"file": str(identities_path), "digest": identities_digest(document), "document": document}


def identities_at_submission(release: dict[str, Any]) -> Identities | str:
    """The identities recorded with a release when it was submitted, or why there are none (fail closed)."""
    return identities_from_record(release.get("identities"))


def identify(release: dict[str, Any], caller: Caller | None, release_id: str) -> tuple[str, Identities]:
    """The actor of a command on this release, proven by their key against the identities in force at its
    submission; ``NotAllowed`` (exit 2) for no key, an unknown key, or a name that is not the key's."""
    if caller is None:
        raise NotAllowed("this command must be signed: primum knows you by your key, not a name; pass --key FILE "
                         "or set $PRIMUM_KEY (`primum keys personal init` makes one)")
    identities = identities_at_submission(release)
    if isinstance(identities, str):
        raise NotAllowed(f"release {release_id}: {identities}")
    actor = identities.identify(caller.key.keyid, caller.asserted,
                                source=f"the identities in force when {release_id} was submitted")
    return actor, identities


def may_operate(identities: Identities, actor: str, services: Sequence[str]) -> str | None:
    """Why ``actor`` may not promote, abort, pause or retry a release of ``services``, or None."""
    roles = identities.roles_of(actor)
    if Role.release_manager in roles:
        return None
    if Role.operator in roles:
        if identities.owned_services(actor) & set(services):
            return None
        return f"is an operator, but not of {', '.join(services)} (their groups' services: " \
               f"{', '.join(sorted(identities.owned_services(actor))) or 'none'})"
    return f"holds neither role that may do this ({OPERATING} of {', '.join(services)})"


def may_submit(identities: Identities, actor: str) -> str | None:
    """Why ``actor`` may not submit a release, or None: submitting takes the ``release-author`` role (an
    approver, operator or auditor only is no author; that the author never approves their own release is
    the separation of duties, checked when approving)."""
    if Role.release_author in identities.roles_of(actor):
        return None
    held = ", ".join(sorted(r.value for r in identities.roles_of(actor))) or "no role"
    return f"does not hold the release-author role (holds: {held}); add them to a group with roles: [release-author]"


# Who may administer the evidence (legal holds, retention purges). Placing a hold only keeps more, so release
# managers may; releasing one or purging lets evidence be destroyed, so only platform admins may. An auditor
# reads everything and changes nothing.
EVIDENCE_ROLES: dict[str, frozenset[Role]] = {
    "hold": frozenset({Role.release_manager, Role.platform_admin}),
    "unhold": frozenset({Role.platform_admin}),
    "purge": frozenset({Role.platform_admin}),
}


def administrator(caller: Caller | None, identities_path: str | None, action: str) -> tuple[str, dict[str, Any]]:
    """The proven actor of an evidence administration ``action`` (hold, unhold, purge) and the record of the
    identities file in force now (content and digest), judged against that file: a legal hold may come years
    after the release, when the people of its submission have left. ``NotAllowed`` (exit 2) for no identities
    file, no key, an unknown key, a name that is not the key's, or a role that may not."""
    if identities_path is None:
        raise NotAllowed(f"evidence {action} must be signed by an enrolled person, and the estate has no identities "
                         "file: write identities.yaml next to the estate (or set governance.identities), or pass "
                         "--estate FILE")
    identities, recorded = snapshot(identities_path)
    assert identities is not None and recorded is not None
    if caller is None:
        raise NotAllowed(f"evidence {action} must be signed: pass --key FILE or set $PRIMUM_KEY")
    actor = identities.identify(caller.key.keyid, caller.asserted, source=f"the identities file {identities_path}")
    allowed = EVIDENCE_ROLES[action]
    if not identities.roles_of(actor) & allowed:
        held = ", ".join(sorted(r.value for r in identities.roles_of(actor))) or "no role"
        raise NotAllowed(f"{actor} may not evidence {action}: it takes {' or '.join(sorted(r.value for r in allowed))}"
                         f" (holds: {held})")
    return actor, recorded


def sign(caller: Caller, claim: Claim) -> dict[str, Any]:
    """The caller's DSSE envelope over ``claim``."""
    return sign_claim(claim, caller.key)


def unsigned_command(record: RolloutRecord, command: CommandRecord) -> str | None:
    """Why a queued promote, abort or pause must not be obeyed (its signature, or its actor's roles), or None.

    The controller asks this of every pending command: a row inserted into ``rollout_commands`` by hand
    carries no envelope an enrolled operator signed, so it is dropped and reported, never obeyed."""
    identities = identities_at_submission(record.release)
    claim = Claim(record.id, command.kind, command.actor, record.digest, command.created_at)
    check = verify_signed(claim, command.payload.get("envelope"), identities)
    if not check.valid:
        return check.reason
    assert not isinstance(identities, str)  # the signature verified against them
    refused = may_operate(identities, command.actor, record.services)
    return None if refused is None else f"{command.actor} {refused}"
