"""Property tests: proofs for random trees, and any tampering with a stored log is detected and located."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from primum.core.evidence.tlog import (
    EMPTY_ROOT,
    CompactRange,
    FaultKind,
    SignedSize,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
    verify_log,
)


def reference_mth(entries: Sequence[bytes]) -> bytes:
    """MTH of RFC 9162 §2.1.1 written straight from the definition, recursion and all."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(entries[:k]) + reference_mth(entries[k:])).digest()


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


entry_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=70)
unique_entries = st.lists(st.binary(max_size=6), min_size=1, max_size=40, unique=True)


@given(st.lists(st.binary(max_size=12), max_size=70))
def test_root_matches_the_rfc_definition(entries: list[bytes]) -> None:
    leaves = [leaf_hash(e) for e in entries]
    assert root(leaves) == reference_mth(entries)


@given(entry_lists)
def test_compact_range_gives_the_root_at_every_size(entries: list[bytes]) -> None:
    tree = CompactRange()
    assert tree.root() == EMPTY_ROOT
    for size, e in enumerate(entries, 1):
        tree.append_entry(e)
        assert tree.root() == reference_mth(entries[:size])
        assert len(tree.nodes) == bin(size).count("1")


@given(entry_lists, st.data())
def test_inclusion_proofs_verify_and_fail_for_wrong_root_or_index(entries: list[bytes], data: st.DataObject) -> None:
    leaves = [leaf_hash(e) for e in entries]
    size = data.draw(st.integers(1, len(leaves)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    r = root(leaves[:size])
    proof = inclusion_proof(leaves, index, size)
    assert verify_inclusion(leaves[index], index, size, proof, r)
    assert not verify_inclusion(leaves[index], index, size, proof, flip(r))
    assert not verify_inclusion(flip(leaves[index]), index, size, proof, r)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other") if size > 1 else None
    if other is not None and leaves[other] != leaves[index]:
        assert not verify_inclusion(leaves[index], other, size, proof, r)


@given(entry_lists, st.data())
def test_consistency_proofs_verify_and_fail_for_wrong_roots(entries: list[bytes], data: st.DataObject) -> None:
    leaves = [leaf_hash(e) for e in entries]
    new = data.draw(st.integers(1, len(leaves)), label="new")
    old = data.draw(st.integers(0, new), label="old")
    old_root, new_root = root(leaves[:old]), root(leaves[:new])
    proof = consistency_proof(leaves, old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)
    assert not verify_consistency(old, new, flip(old_root), new_root, proof)
    if old > 0:  # every tree extends the empty tree, whatever its root
        assert not verify_consistency(old, new, old_root, flip(new_root), proof)
    if 0 < old < new:
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])


# --- Tampering ---------------------------------------------------------------------------------


Tampered = tuple[list[bytes], list[bytes], str, int]


@st.composite
def tampered(draw: st.DrawFn) -> Tampered:
    """(original, tampered, operation, first differing index)."""
    original = draw(unique_entries)
    n = len(original)
    op = draw(st.sampled_from(["modify", "delete", "insert", "swap", "truncate"]))
    log = list(original)
    if op == "modify":
        i = draw(st.integers(0, n - 1))
        log[i] = draw(st.binary(max_size=6).filter(lambda b: b not in original))
    elif op == "delete":
        i = draw(st.integers(0, n - 1))
        del log[i]
    elif op == "insert":
        i = draw(st.integers(0, n))
        log.insert(i, draw(st.binary(max_size=6).filter(lambda b: b not in original)))
    elif op == "swap":
        assume(n >= 2)
        i = draw(st.integers(0, n - 2))
        j = draw(st.integers(i + 1, n - 1))
        log[i], log[j] = log[j], log[i]
    else:
        i = draw(st.integers(0, n - 1))
        log = log[:i]
    return original, log, op, i


def expected_kind(op: str, index: int, original: list[bytes]) -> FaultKind:
    n = len(original)
    if op == "delete" and index == n - 1:
        return FaultKind.TRUNCATED  # deleting the last entry is a truncation
    if op == "insert" and index == n:
        return FaultKind.UNCOVERED  # an entry appended past the signed size
    return {
        "modify": FaultKind.MODIFIED,
        "delete": FaultKind.DELETED,
        "insert": FaultKind.INSERTED,
        "swap": FaultKind.REORDERED,
        "truncate": FaultKind.TRUNCATED,
    }[op]


def head(entries: Sequence[bytes]) -> SignedSize:
    return SignedSize(len(entries), reference_mth(entries))


@given(unique_entries)
def test_an_untouched_log_verifies(entries: list[bytes]) -> None:
    leaves = [leaf_hash(e) for e in entries]
    result = verify_log(entries, leaves, head(entries))
    assert result.ok, result.fault
    assert result.entries == len(entries)
    assert result.root_hash == reference_mth(entries)
    assert verify_log(entries, None, head(entries)).ok


@settings(max_examples=300)
@given(tampered())
def test_any_tampering_is_detected_and_the_first_bad_entry_named(case: Tampered) -> None:
    original, log, op, index = case
    leaves = [leaf_hash(e) for e in original]
    result = verify_log(log, leaves, head(original))
    assert not result.ok
    assert result.fault is not None
    assert result.fault.index == index, result.fault
    assert result.fault.kind == expected_kind(op, index, original), result.fault
    assert str(index) in result.fault.reason


@settings(max_examples=300)
@given(tampered())
def test_tampering_is_located_by_per_append_checkpoints_alone(case: Tampered) -> None:
    """Without recorded leaf hashes (or with an attacker who rewrote them), checkpoints still pin the entry."""
    original, log, op, index = case
    heads = [head(original[:size]) for size in range(len(original) + 1)]
    result = verify_log(log, None, heads[-1], earlier=heads[:-1])
    assert result.fault is not None
    assert result.fault.index == index, result.fault
    if op in ("modify", "swap") or (op in ("delete", "insert") and result.fault.kind == FaultKind.ROOT_MISMATCH):
        assert result.fault.kind == FaultKind.ROOT_MISMATCH
        assert result.fault.end == index + 1


@given(tampered())
def test_tampering_is_detected_with_only_the_latest_checkpoint(case: Tampered) -> None:
    original, log, _op, index = case
    result = verify_log(log, None, head(original))
    assert result.fault is not None
    assert result.fault.index <= index < max(result.fault.end, result.fault.index + 1)


@given(unique_entries, st.data())
def test_rewriting_an_entry_and_its_recorded_hash_is_caught_by_root(entries: list[bytes], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(entries) - 1))
    forged = list(entries)
    forged[i] = entries[i] + b"!"
    assume(forged[i] not in entries)
    forged_leaves = [leaf_hash(e) for e in forged]
    result = verify_log(forged, forged_leaves, head(entries))
    assert result.fault is not None
    assert result.fault.kind == FaultKind.ROOT_MISMATCH
    assert result.fault.index <= i < result.fault.end


def test_checkpoint_sanity_checks() -> None:
    entries = [b"a", b"b"]
    bad_empty = verify_log([], None, SignedSize(0, b"\x00" * 32))
    assert bad_empty.fault is not None and bad_empty.fault.kind == FaultKind.BAD_CHECKPOINT
    short = verify_log(entries, None, SignedSize(2, b"short"))
    assert short.fault is not None and short.fault.kind == FaultKind.BAD_CHECKPOINT
    beyond = verify_log(entries, None, head(entries), earlier=[SignedSize(5, EMPTY_ROOT)])
    assert beyond.fault is not None and beyond.fault.kind == FaultKind.BAD_CHECKPOINT
    assert verify_log([], None, SignedSize(0, EMPTY_ROOT)).ok


def test_recorded_hashes_beyond_the_checkpoint_are_reported() -> None:
    entries = [b"a", b"b", b"c"]
    leaves = [leaf_hash(e) for e in entries]
    result = verify_log(entries[:2], leaves, head(entries[:2]))
    assert result.fault is not None
    assert (result.fault.kind, result.fault.index) == (FaultKind.UNCOVERED, 2)
