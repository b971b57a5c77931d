"""Batch inclusion proofs: byte-identical to the recursive reference, for every index of small trees and large logs."""

from __future__ import annotations

import time

import pytest

from primum.core.evidence.tlog import inclusion_proof, inclusion_proofs, leaf_hash, root, verify_inclusion

LEAVES = [leaf_hash(b"entry %d" % i) for i in range(70)]


@pytest.mark.parametrize("size", range(1, 71))
def test_every_proof_of_every_size_matches_the_reference(size: int) -> None:
    proofs = inclusion_proofs(LEAVES, range(size), size)
    assert sorted(proofs) == list(range(size))
    for index in range(size):
        assert proofs[index] == inclusion_proof(LEAVES, index, size), (size, index)


def test_size_defaults_to_all_leaves_and_duplicates_are_answered_once() -> None:
    leaves = LEAVES[:13]
    proofs = inclusion_proofs(leaves, [12, 0, 12, 5])
    assert proofs == {i: inclusion_proof(leaves, i) for i in (0, 5, 12)}
    for i, p in proofs.items():
        assert verify_inclusion(leaves[i], i, 13, p, root(leaves))


def test_a_proof_in_a_smaller_tree_ignores_later_leaves() -> None:
    assert inclusion_proofs(LEAVES, [6], 7)[6] == inclusion_proof(LEAVES[:7], 6)


def test_large_log_is_hashed_once_and_proofs_match() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(100_000)]
    indices = [0, 65535, 65536, 99_999]
    started = time.perf_counter()
    proofs = inclusion_proofs(leaves, indices)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0  # one O(n) pass (~0.1 s); the recursive proof costs O(n) per index
    top = root(leaves)
    for i in indices:
        assert proofs[i] == inclusion_proof(leaves, i)
        assert verify_inclusion(leaves[i], i, len(leaves), proofs[i], top)


@pytest.mark.parametrize(("indices", "size"), [([5], 5), ([-1], 5), ([0], 71), ([0], 0)])
def test_out_of_range_is_refused_like_the_reference(indices: list[int], size: int) -> None:
    with pytest.raises(ValueError, match="no inclusion proof"):
        inclusion_proofs(LEAVES, indices, size)


def test_no_indices_no_proofs() -> None:
    assert inclusion_proofs([], []) == {}
