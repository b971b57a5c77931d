"""The pure matching of `evidence verify`'s row check: gaps named exactly, claims used once."""

from __future__ import annotations

from primum.core.evidence.events import event_to_statement
from primum.core.evidence.rowcheck import (
    ClaimLedger,
    approval_claim,
    claim_of_statement,
    describe_gaps,
    event_fingerprint,
    gaps,
    statement_fingerprint,
    unmatched_rows,
)

SUBJECTS = [{"name": "release:rel-1", "digest": {"sha256": "a" * 64}}]


def test_gaps_are_named_with_their_neighbours() -> None:
    assert gaps([0, 1, 2], 3) == []
    assert gaps([1, 2], 3) == [(0, 1)]
    assert gaps([0, 2, 5], 7) == [(1, 2), (3, 5), (6, 7)]
    assert gaps([], 2) == [(0, 2)]
    assert describe_gaps([(0, 1)], 3) == "entry 0 is missing (entry 1 is present)"
    assert describe_gaps([(0, 2)], 2) == ("entries 0 to 1 are missing (none of the 2 entries the log head counts "
                                          "is present)")
    assert describe_gaps([(1, 2), (3, 5), (6, 7), (8, 9)], 10, limit=2).endswith("; and 2 more gap(s)")


def test_an_event_row_fingerprint_is_its_statement_s() -> None:
    content = {"kind": "step", "message": "m", "at": 1_700_000_000.5, "env": "prod", "service": "api",
               "data": {"weight": 20, "ratio": 0.25}}
    stmt = event_to_statement(SUBJECTS, **content)
    assert event_fingerprint(**content) == statement_fingerprint(stmt)
    assert event_fingerprint(**{**content, "message": "changed"}) != statement_fingerprint(stmt)
    gate = event_to_statement(SUBJECTS, kind="analysis", message="ok", at=1.0,
                              data={"report": {"outcome": "Successful", "reason": ""}})
    assert event_fingerprint(kind="analysis", message="ok", at=1.0, env=None, service=None,
                             data={"report": {"outcome": "Successful", "reason": ""}}) == statement_fingerprint(gate)


def test_an_approval_statement_vouches_for_one_row() -> None:
    data = {"actor": "carol", "roles": ["cab"], "digest": "sha256:" + "a" * 64, "comment": "[REDACTED]",
            "expires_at": 10.0}
    stmt = event_to_statement(SUBJECTS, kind="approval", message="carol approved", at=5.0, env="prod", data=data)
    ledger = ClaimLedger.empty()
    claim = claim_of_statement(stmt)
    assert claim is not None
    ledger.add(claim)
    row = approval_claim(rollout_id="rel-1", decision="approve", env="prod", actor="carol",
                         digest="sha256:" + "a" * 64, at=5.0, roles=["cab"], expires_at=10.0)
    missing, purged = unmatched_rows([("row 1", row, 5.0), ("row 2", row, 5.0)], ledger)
    assert [m.what for m in missing] == ["row 2"] and purged == 0
    other = approval_claim(rollout_id="rel-1", decision="approve", env="staging", actor="carol",
                           digest="sha256:" + "a" * 64, at=5.0, roles=["cab"], expires_at=10.0)
    ledger.add(claim)
    assert [m.what for m in unmatched_rows([("row 3", other, 5.0)], ledger)[0]] == ["row 3"]
    ledger.add_purged("approval", "rel-1", 5.0)
    assert unmatched_rows([("row 4", other, 5.0)], ledger) == ([], 1)
