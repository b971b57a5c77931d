"""The signed-decision check (pure): valid, or exactly why not; one case per way a record can lie."""

from __future__ import annotations

import base64
import json

import pytest

from primum.core.governance.identities import Identities, identities_digest, identities_from_record
from primum.core.governance.signatures import (
    Claim,
    envelope_digest,
    logged_digest,
    recorded_and_logged,
    sign_claim,
    signed_data,
    verify_signed,
)
from tests.people import People

PEOPLE = People()
IDS = Identities.model_validate({"users": [{"id": "carol", "roles": ["cab"], "keys": [PEOPLE.line("carol")]},
                                           {"id": "nokey", "roles": ["cab"]}]})
CLAIM = Claim("rel-1", "approve", "carol", "sha256:" + "a" * 64, 1795532400.25, env="prod")
GOOD = sign_claim(CLAIM, PEOPLE.key("carol"))


def test_a_record_signed_by_its_actor_over_its_fields_is_valid() -> None:
    check = verify_signed(CLAIM, GOOD, IDS)
    assert check.valid and bool(check) and check.reason == ""
    assert verify_signed(CLAIM, json.dumps(GOOD), IDS).valid  # the JSON text works too


def _tampered_payload() -> dict:
    statement = json.loads(base64.b64decode(GOOD["payload"]))
    statement["env"] = "staging"
    return {**GOOD, "payload": base64.b64encode(json.dumps(statement).encode()).decode()}


@pytest.mark.parametrize("claim, envelope, identities, reason", [
    (CLAIM, None, IDS, "no signature"),
    (CLAIM, {}, IDS, "no signature"),
    (CLAIM, GOOD, "the release recorded no identities", "the release recorded no identities"),
    (Claim("rel-1", "approve", "mallory", CLAIM.digest, CLAIM.at, env="prod"), GOOD, IDS,
     "mallory was not in the identities in force"),
    (Claim("rel-1", "approve", "nokey", CLAIM.digest, CLAIM.at, env="prod"), GOOD, IDS, "nokey had no enrolled key"),
    (CLAIM, sign_claim(CLAIM, PEOPLE.key("mallory")), IDS, "does not verify under carol's enrolled key"),
    (CLAIM, _tampered_payload(), IDS, "does not verify"),
    (Claim("rel-1", "approve", "carol", CLAIM.digest, CLAIM.at, env="staging"), GOOD, IDS, "differs from what carol "
     "signed (env)"),
    (Claim("rel-2", "reject", "carol", CLAIM.digest, CLAIM.at + 1, env="prod"), GOOD, IDS,
     "differs from what carol signed (at, decision, rollout)"),
    (CLAIM, {"payloadType": "x", "payload": "", "signatures": []}, IDS, "does not verify"),
])
def test_each_way_a_record_can_lie_is_named(claim: Claim, envelope: object, identities: object, reason: str) -> None:
    check = verify_signed(claim, envelope, identities)  # type: ignore[arg-type]
    assert not check.valid and reason in check.reason, check.reason


def test_the_evidence_entry_must_log_the_same_envelope() -> None:
    data = signed_data(GOOD)
    assert data["envelope_digest"] == envelope_digest(GOOD)
    statement = {"predicate": {"data": data}}
    entry = json.dumps({"payload": base64.b64encode(json.dumps(statement).encode()).decode()}).encode()
    assert logged_digest(entry) == envelope_digest(GOOD)
    assert recorded_and_logged(GOOD, logged_digest(entry)) is None
    assert "not in the log" in (recorded_and_logged(GOOD, None) or "")
    other = sign_claim(CLAIM, PEOPLE.key("carol"))  # Ed25519 is deterministic: same claim, same envelope
    assert recorded_and_logged(other, logged_digest(entry)) is None
    later = sign_claim(Claim("rel-1", "approve", "carol", CLAIM.digest, CLAIM.at + 1, env="prod"), PEOPLE.key("carol"))
    assert "not the one its evidence entry logged" in (recorded_and_logged(later, logged_digest(entry)) or "")
    for broken in (None, b"not json", b'{"payload": "!!"}', json.dumps({"payload": base64.b64encode(b"{}").decode()})):
        assert logged_digest(broken) is None


def test_the_identities_recorded_at_submit_must_match_their_digest() -> None:
    document = IDS.model_dump(mode="json", by_alias=True)
    recorded = {"digest": identities_digest(document), "document": document}
    assert identities_from_record(recorded) == IDS
    added = {**document, "users": [*document["users"], {"id": "dave", "roles": ["cab"]}]}
    assert "do not match their digest" in str(identities_from_record({**recorded, "document": added}))
    assert "recorded no identities" in str(identities_from_record(None))
