"""Signed decisions (pure): what a person's key signs, and whether a recorded decision is theirs.

Every state-changing command (approve, reject, abort, promote, pause, retry, break-glass, review, and the
legal holds and purges of the evidence)
is a DSSE envelope over a small JSON statement naming the release, the environment, the release
digest, the decision, the actor and the time, signed by the actor's personal Ed25519 key. The
envelope is stored with the record and appended to the evidence log.

:func:`verify_signed` is the one check every reader uses (the gate, ``evidence verify``): given
the record as the database holds it, its envelope and the identities in force when the release
was submitted, it says valid, or why not. The database row alone proves nothing: a row someone
inserted by hand has no envelope a key enrolled for its actor signed, so it counts for nothing.
Free text (comments, justifications) is not part of the statement: it may be redacted at rest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from primum.core.evidence.dsse import Signer, VerificationError, sign, verify
from primum.core.governance.identities import Identities
from primum.core.model.release import canonical_json

PAYLOAD_TYPE = "application/vnd.primum.decision+json"
STATEMENT_TYPE = "https://primum.dev/decision/v1"

DECISIONS = frozenset({"approve", "reject", "abort", "promote", "pause", "resume", "retry", "break_glass",
                       "review", "submit", "hold", "unhold", "purge"})


@dataclass(frozen=True)
class Claim:
    """What a record says was decided, by whom, when: the fields its signature must cover.

    ``env`` is "" for a decision about the whole release (abort, retry, break-glass, ...);
    ``subject`` is an extra reference the decision is about (a break-glass use's number for a review).
    """

    rollout_id: str
    decision: str
    actor: str
    digest: str
    at: float
    env: str = ""
    subject: str = ""

    def statement(self) -> dict[str, Any]:
        return {"_type": STATEMENT_TYPE, "rollout": self.rollout_id, "env": self.env, "digest": self.digest,
                "decision": self.decision, "actor": self.actor, "at": self.at, "subject": self.subject}


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on one signed record: ``valid``, or ``reason`` says why it does not count."""

    valid: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.valid


def sign_claim(claim: Claim, signer: Signer) -> dict[str, Any]:
    """The DSSE envelope (as JSON-ready dict) of ``claim`` signed by ``signer``."""
    if claim.decision not in DECISIONS:
        raise ValueError(f"unknown decision {claim.decision!r}")
    return sign(canonical_json(claim.statement()), PAYLOAD_TYPE, signer).to_dict()


def verify_signed(claim: Claim, envelope: Mapping[str, Any] | str | bytes | None,
                  identities: Identities | str) -> SignatureCheck:
    """Is ``claim`` signed by a key enrolled for ``claim.actor`` in ``identities``, over exactly its fields?

    ``identities``: those in force when the release was submitted, or why there are none (which fails).
    Checked in order, each with its own reason: there are identities; there is an envelope; the actor
    is enrolled and has a key; the signature verifies under one of the actor's keys (never another
    person's); the signed statement names the same release, environment, digest, decision, actor,
    time and subject as the record.
    """
    if isinstance(identities, str):
        return SignatureCheck(False, identities)
    if envelope is None or envelope == "" or envelope == {}:
        return SignatureCheck(False, "no signature: a record without a signed envelope counts for nothing")
    user = identities.user(claim.actor)
    if user is None:
        return SignatureCheck(False, f"{claim.actor} was not in the identities in force when the release was "
                                     "submitted")
    keys = user.public_keys()
    if not keys:
        return SignatureCheck(False, f"{claim.actor} had no enrolled key when the release was submitted")
    try:
        payload = verify(envelope, keys, payload_type=PAYLOAD_TYPE)
    except VerificationError as exc:
        return SignatureCheck(False, f"the signature does not verify under {claim.actor}'s enrolled key(s): {exc}")
    try:
        signed = json.loads(payload)
    except ValueError:
        return SignatureCheck(False, "the signed statement is not JSON")
    expected = claim.statement()
    if not isinstance(signed, dict):
        return SignatureCheck(False, "the signed statement is not a JSON object")
    differs = sorted(k for k in expected if signed.get(k) != expected[k])
    if differs:
        return SignatureCheck(False, f"the record differs from what {claim.actor} signed ({', '.join(differs)})")
    return SignatureCheck(True)


def envelope_digest(envelope: Mapping[str, Any]) -> str:
    """sha256 of an envelope's canonical JSON: how a record and its evidence entry are matched (a digest
    survives redaction of the entry's copy, which a verbatim comparison would not)."""
    return "sha256:" + hashlib.sha256(canonical_json(dict(envelope))).hexdigest()


def signed_data(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """What the event logging a signed record carries: the envelope and its digest."""
    return {"envelope": dict(envelope), "envelope_digest": envelope_digest(envelope)}


def logged_digest(entry: bytes | str | None) -> str | None:
    """The digest of the signed envelope an evidence log entry records (``predicate.data.envelope_digest``
    of its statement), or None when the entry is absent, purged or records none. The entry's own signature
    and place in the log are the log's checks (``evidence verify``); this only reads what it recorded."""
    if entry is None:
        return None
    try:
        outer = json.loads(entry)
        statement = json.loads(base64.b64decode(outer["payload"], validate=True))
        found = statement["predicate"]["data"]["envelope_digest"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return found if isinstance(found, str) else None


def recorded_and_logged(stored: Mapping[str, Any] | None, logged: str | None) -> str | None:
    """Why a record's envelope is not the one its evidence entry logged (``logged``: the digest the entry
    records, None when there is no entry), or None when it is."""
    if logged is None:
        return "its evidence entry is not in the log (a record with no matching signed entry counts for nothing)"
    if stored is None or envelope_digest(stored) != logged:
        return "its envelope is not the one its evidence entry logged"
    return None
