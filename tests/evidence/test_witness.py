"""The witness: C2SP cosignatures, the tlog-witness rule (extend or refuse), the store's append-time copy,
`primum evidence witness`, and `primum evidence verify` failing on a wiped or rolled-back log."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest

from primum.adapters.evidence.witness import CHECKPOINT_FILE, VKEY_FILE, read_note, witness_once
from primum.adapters.store.evidence import verifier_keys
from primum.adapters.store.repository import Store
from primum.core.evidence.checkpoint import Checkpoint, NoteSigner, open_checkpoint, sign_checkpoint
from primum.core.evidence.tlog import SignedSize, consistency_proof, leaf_hash, root
from primum.core.evidence.witness import (
    WitnessKey,
    compare_with_witness,
    cosign,
    cosignature_time,
    mirror_step,
    witness_step,
)
from tests.cli.test_cli import Cli, write_noop_estate
from tests.cli.test_cli import cli as cli
from tests.controller.noop_estate import write_release
from tests.store.test_evidence_log import T0, events, rollout

LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(12)]
LOG = NoteSigner.generate("example.org/log")


def head(size: int, leaves: list[bytes] = LEAVES) -> Checkpoint:
    return Checkpoint("example.org/log", size, root(leaves[:size]))


def test_a_cosignature_verifies_and_the_log_s_own_verifiers_set_it_aside() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    key = WitnessKey("witness-a", private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                    serialization.PublicFormat.Raw))
    assert WitnessKey.parse(key.encode()) == key
    assert base64.b64decode(key.encode().split("+", 2)[2])[0] == 0x04  # the cosignature/v1 signature type
    note = sign_checkpoint(head(5), [LOG])
    cosigned = cosign(note, key, private.sign, 1_700_000_000)
    assert cosigned.startswith(note) and cosigned.count("\u2014 ") == 2
    assert open_checkpoint(cosigned, [LOG.verifier]).size == 5  # still opens with the log's key alone
    assert cosignature_time(cosigned, [LOG.verifier], key) == 1_700_000_000
    # cosigning again replaces this witness's line, keeping the log's
    again = cosign(cosigned, key, private.sign, 1_700_000_100)
    assert again.count("\u2014 ") == 2 and cosignature_time(again, [LOG.verifier], key) == 1_700_000_100
    other = WitnessKey("witness-a", bytes(32))
    assert cosignature_time(cosigned, [LOG.verifier], other) is None
    # the cosignature covers the body: a changed tree size breaks it
    forged = cosigned.replace("\n5\n", "\n6\n", 1)
    with pytest.raises(ValueError):
        cosignature_time(forged, [LOG.verifier], key)


def test_the_witness_takes_only_a_tree_that_extends_the_one_it_holds() -> None:
    assert witness_step(None, head(4), []).action == "take"
    assert witness_step(head(4), head(4), []).action == "same"
    assert witness_step(head(4), head(9), consistency_proof(LEAVES, 4, 9)).action == "take"
    rollback = witness_step(head(9), head(4), [])
    assert not rollback.ok and rollback.problem == ("rollback: the log now has 4 entries but the witness already "
                                                    "holds a signed checkpoint at size 9")
    forked = [*LEAVES[:6], leaf_hash(b"other"), *LEAVES[7:]]
    fork = witness_step(head(4), head(9, forked), consistency_proof(forked, 4, 9))
    assert fork.ok  # entries 6.. changed after size 4: still extends the tree of 4
    fork = witness_step(head(7), head(9, forked), consistency_proof(forked, 7, 9))
    assert not fork.ok and "does not extend the checkpoint the witness holds at size 7" in (fork.problem or "")
    assert not witness_step(head(9), head(9, forked), []).ok
    other_log = Checkpoint("example.org/other", 9, root(LEAVES[:9]))
    assert "not of" in (witness_step(other_log, head(9), []).problem or "")


def test_the_append_time_copy_never_goes_back_nor_onto_another_tree() -> None:
    def step(held: int | None, old: int, new: int, leaves: list[bytes] = LEAVES) -> str:
        copy = None if held is None else SignedSize(held, root(LEAVES[:held]))
        return mirror_step(copy, old_size=old, old_root=root(leaves[:old]), new_size=new,
                           new_root=root(leaves[:new]), root_at=lambda n: root(leaves[:n])).action

    assert step(None, 0, 3) == "take"
    assert step(3, 3, 5) == "take"  # the common case: one batch behind, checked without reading the log
    assert step(3, 5, 7) == "take"  # lagging (a write missed): checked against the stored leaves
    assert step(7, 3, 5) == "same"  # a later append wrote it already
    assert step(6, 5, 7) == "refuse"  # the copy lies inside this batch: the log was rolled back
    forked = [*LEAVES[:2], leaf_hash(b"x"), *LEAVES[3:]]
    assert step(3, 5, 7, forked) == "refuse"
    assert step(3, 3, 5, forked) == "refuse"
    assert step(5, 3, 5, forked) == "refuse"


def test_compare_with_witness_names_wipe_rollback_and_fork() -> None:
    w = SignedSize(8, root(LEAVES[:8]))
    assert "wiped" in (compare_with_witness(w, store_size=0, store_root_at=None, where="D") or "")
    assert "rolled back: it has 5 entries" in (compare_with_witness(w, store_size=5, store_root_at=None,
                                                                    where="D") or "")
    assert "forked" in (compare_with_witness(w, store_size=9, store_root_at=b"\x00" * 32, where="D") or "")
    assert compare_with_witness(w, store_size=9, store_root_at=root(LEAVES[:8]), where="D") is None


def test_witness_once_cosigns_then_refuses_a_rollback(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}", keys=tmp_path / "keys")
    try:
        store.create_rollout(rollout("rel-1"), T0)
        store.add_events("rel-1", events(3), T0)
        origin = store.evidence_checkpoint()[0]
        vkeys = verifier_keys(origin, store.evidence.keys.keyring())
        where = tmp_path / "elsewhere"

        def once() -> object:
            note = store.evidence_checkpoint()[1].note  # type: ignore[union-attr]
            return witness_once(where, origin=origin, note=note, verifiers=vkeys,
                                proof_from=lambda n: store.consistency(n)[1], now=1_700_000_000)

        first = once()
        assert first.verdict.action == "take" and first.held_size is None  # type: ignore[attr-defined]
        key = WitnessKey.parse((where / VKEY_FILE).read_text())
        assert cosignature_time(read_note(where) or "", vkeys, key) == 1_700_000_000
        assert (where / "witness.pem").stat().st_mode & 0o777 == 0o600
        store.add_events("rel-1", events(2), T0 + 1)
        second = once()
        assert second.verdict.action == "take" and second.held_size == 3  # type: ignore[attr-defined]
        agreed = store.verify_evidence(witness_dirs=[where])
        assert agreed.ok and agreed.witnesses == (f"{where}: size 5, cosigned by {key.name} at 2023-11-14T22:13:20Z",)
        # a replaced file whose cosignature line no longer verifies is caught
        kept = (where / CHECKPOINT_FILE).read_text()
        text, lines = kept[: kept.rfind("\n\n") + 2], kept[kept.rfind("\n\n") + 2:].splitlines()
        sig = base64.b64decode(lines[-1].split(" ")[2])
        forged = [*lines[-1].split(" ")[:2], base64.b64encode(sig[:-1] + bytes([sig[-1] ^ 1])).decode()]
        (where / CHECKPOINT_FILE).write_text(text + "\n".join([*lines[:-1], " ".join(forged)]) + "\n")
        replaced = store.verify_evidence(witness_dirs=[where])
        assert not replaced.ok and "does not verify: the file was replaced" in (replaced.problem or "")
        (where / CHECKPOINT_FILE).write_text(kept)
        # roll the store back to 3 entries: the witness refuses and keeps what it holds
        with sqlite3.connect(tmp_path / "p.db") as db:
            db.execute("DELETE FROM evidence_entries WHERE idx >= 3")
            db.execute("DELETE FROM evidence_checkpoints WHERE size > 3")
        refused = once()
        assert not refused.verdict.ok  # type: ignore[attr-defined]
        assert "rollback: the log now has 3 entries" in (refused.verdict.problem or "")  # type: ignore[attr-defined]
        assert open_checkpoint(read_note(where) or "", vkeys).size == 5
        result = store.verify_evidence(witness_dirs=[where])
        assert not result.ok and any("rolled back: it has 3 entries" in p for p in result.problems)
    finally:
        store.close()


def test_cli_witness_and_verify_catch_a_wiped_log(cli: Cli, tmp_path: Path) -> None:
    estate = write_noop_estate(tmp_path)
    assert cli("release", "apply", write_release(tmp_path, "rel-w", ["api"], "2.0"), "--estate", estate,
               "--no-wait").code == 0
    ok = cli("evidence", "verify")
    assert ok.code == 0, ok
    assert "store rows evidenced; witness " in ok.out and str(cli.home / "witness") in ok.out
    elsewhere = tmp_path / "offsite"
    witnessed = cli("evidence", "witness", "--dir", elsewhere)
    assert witnessed.code == 0, witnessed
    assert "(first checkpoint); cosigned by witness-" in witnessed.out
    assert (elsewhere / CHECKPOINT_FILE).is_file()

    with sqlite3.connect(cli.home / "primum.db") as db:  # the attack of the issue: entries, checkpoints, head
        db.execute("DELETE FROM evidence_entries")
        db.execute("DELETE FROM evidence_checkpoints")
        db.execute("UPDATE evidence_head SET size = 0, nodes = ''")
    wiped = cli("evidence", "verify", "--witness", elsewhere)
    assert wiped.code == 1, wiped
    assert "NOT verified" in wiped.err and "the log was wiped: it is empty but the witness" in wiped.err
    assert "also: " in wiped.err and "event row 1 (submitted of release rel-w" in wiped.err
    assert cli("evidence", "witness", "--dir", elsewhere).code == 2  # an empty log: nothing to witness
    missing = cli("evidence", "witness")
    assert missing.code == 2 and "empty" in missing.err
