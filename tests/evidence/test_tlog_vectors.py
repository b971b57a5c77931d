"""RFC 6962 / RFC 9162 reference vectors, as used by certificate-transparency-go and transparency-dev/merkle.

Sources (github.com/transparency-dev/merkle): ``testonly/constants.go`` (LeafInputs,
NodeHashes, RootHashes, CompactTrees), ``proof/verify_test.go`` (inclusionProofs,
consistencyProofs, the corruption probes and the degenerate-case table) and
``proof/proof_test.go`` (which tree nodes make up each proof, for trees of up to 8 leaves).
"""

from __future__ import annotations

import pytest

from primum.core.evidence import tlog
from primum.core.evidence.tlog import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

# NODE_HASHES[level][index]: every complete subtree of the 8-leaf tree.
NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]

# ROOT_HASHES[size] for size 0..8.
ROOT_HASHES = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

N = NODE_HASHES
# CompactTrees(): the perfect-subtree roots a compact range holds at each size.
COMPACT_TREES: list[list[bytes]] = [
    [],
    [N[0][0]],
    [N[1][0]],
    [N[1][0], N[0][2]],
    [N[2][0]],
    [N[2][0], N[0][4]],
    [N[2][0], N[1][2]],
    [N[2][0], N[1][2], N[0][6]],
    [N[3][0]],
]

# inclusionProofs: (1-based leaf, tree size, audit path).
INCLUSION_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# consistencyProofs: (size1, size2, proof).
CONSISTENCY_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

# proof_test.go: which nodes (level, index) make up a proof. A nested list is a
# "rehash" group: an incomplete right subtree whose hash is folded from its nodes.
Node = tuple[int, int] | list[tuple[int, int]]
INCLUSION_NODES: list[tuple[int, int, list[Node]]] = [  # (size, index, nodes)
    (1, 0, []),
    (2, 0, [(0, 1)]),
    (2, 1, [(0, 0)]),
    (3, 1, [(0, 0), (0, 2)]),
    (7, 0, [(0, 1), (1, 1), [(0, 6), (1, 2)]]),
    (7, 1, [(0, 0), (1, 1), [(0, 6), (1, 2)]]),
    (7, 2, [(0, 3), (1, 0), [(0, 6), (1, 2)]]),
    (7, 3, [(0, 2), (1, 0), [(0, 6), (1, 2)]]),
    (7, 4, [(0, 5), (0, 6), (2, 0)]),
    (7, 5, [(0, 4), (0, 6), (2, 0)]),
    (7, 6, [(1, 2), (2, 0)]),
    (4, 2, [(0, 3), (1, 0)]),
    (5, 3, [(0, 2), (1, 0), (0, 4)]),
    (6, 3, [(0, 2), (1, 0), (1, 2)]),
    (6, 4, [(0, 5), (2, 0)]),
]
CONSISTENCY_NODES: list[tuple[int, int, list[Node]]] = [  # (size1, size2, nodes)
    (1, 2, [(0, 1)]),
    (1, 4, [(0, 1), (1, 1)]),
    (1, 6, [(0, 1), (1, 1), (1, 2)]),
    (2, 3, [(0, 2)]),
    (2, 8, [(1, 1), (2, 1)]),
    (3, 7, [(0, 2), (0, 3), (1, 0), [(0, 6), (1, 2)]]),
    (4, 7, [[(0, 6), (1, 2)]]),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)]),
    (6, 7, [(1, 2), (0, 6), (2, 0)]),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)]),
    *[(s, s, []) for s in (1, 2, 3, 4, 5, 7, 8)],
    (2, 4, [(1, 1)]),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)]),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)]),
    (4, 6, [(1, 2)]),
    (1, 7, [(0, 1), (1, 1), [(0, 6), (1, 2)]]),
]

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


def _resolve(nodes: list[Node]) -> list[bytes]:
    out = []
    for n in nodes:
        if isinstance(n, list):
            # Go's Rehash: fold the group right to left into one subtree hash.
            acc = N[n[0][0]][n[0][1]]
            for level, index in n[1:]:
                acc = node_hash(N[level][index], acc)
            out.append(acc)
        else:
            out.append(N[n[0]][n[1]])
    return out


LEAVES = [leaf_hash(e) for e in LEAF_INPUTS]


def test_leaf_hashes_match_reference_level_zero() -> None:
    assert NODE_HASHES[0] == LEAVES


def test_node_hashes_match_reference_levels() -> None:
    for level in range(1, 4):
        below = NODE_HASHES[level - 1]
        assert [node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)] == NODE_HASHES[level]


def test_empty_tree_root_is_sha256_of_empty_string() -> None:
    assert tlog.root([]) == EMPTY_ROOT == ROOT_HASHES[0]
    assert CompactRange().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_root_hashes(size: int) -> None:
    assert tlog.root(LEAVES[:size]) == ROOT_HASHES[size]


def test_compact_range_root_and_nodes_at_every_size() -> None:
    tree = CompactRange()
    assert list(tree.nodes) == COMPACT_TREES[0]
    for size, entry in enumerate(LEAF_INPUTS, 1):
        assert tree.append_entry(entry) == LEAVES[size - 1]
        assert tree.size == size
        assert list(tree.nodes) == COMPACT_TREES[size]
        assert tree.root() == ROOT_HASHES[size]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_PROOFS)
def test_inclusion_proof_vectors(leaf: int, size: int, proof: list[bytes]) -> None:
    index = leaf - 1
    assert inclusion_proof(LEAVES, index, size) == proof
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOT_HASHES[size])


@pytest.mark.parametrize(("size", "index", "nodes"), INCLUSION_NODES)
def test_inclusion_proof_node_layout(size: int, index: int, nodes: list[Node]) -> None:
    proof = _resolve(nodes)
    assert inclusion_proof(LEAVES, index, size) == proof
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOT_HASHES[size])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_PROOFS)
def test_consistency_proof_vectors(size1: int, size2: int, proof: list[bytes]) -> None:
    assert consistency_proof(LEAVES, size1, size2) == proof
    assert verify_consistency(size1, size2, ROOT_HASHES[size1], ROOT_HASHES[size2], proof)


@pytest.mark.parametrize(("size1", "size2", "nodes"), CONSISTENCY_NODES)
def test_consistency_proof_node_layout(size1: int, size2: int, nodes: list[Node]) -> None:
    proof = _resolve(nodes)
    assert consistency_proof(LEAVES, size1, size2) == proof
    assert verify_consistency(size1, size2, ROOT_HASHES[size1], ROOT_HASHES[size2], proof)


def test_every_proof_in_the_reference_tree_verifies() -> None:
    for size in range(1, 9):
        for index in range(size):
            proof = inclusion_proof(LEAVES, index, size)
            assert verify_inclusion(LEAVES[index], index, size, proof, ROOT_HASHES[size])
        for size1 in range(size + 1):
            proof = consistency_proof(LEAVES, size1, size)
            assert verify_consistency(size1, size, ROOT_HASHES[size1], ROOT_HASHES[size], proof)


def _inclusion_probes(index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes) -> list[tuple]:
    """corruptInclusionProof of verify_test.go: every probe must fail."""
    probes: list[tuple] = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, [*proof, b""]),
        (index, size, root, leaf, [*proof, root]),
        (index, size, root, leaf, [b"", *proof]),
        (index, size, root, leaf, [root, *proof]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((index, size, root, leaf, wrong))
    if proof:
        probes.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]))
    return probes


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_PROOFS[1:])
def test_corrupted_inclusion_proofs_fail(leaf: int, size: int, proof: list[bytes]) -> None:
    index = leaf - 1
    for p_index, p_size, p_root, p_leaf, p_proof in _inclusion_probes(
        index, size, proof, ROOT_HASHES[size], LEAVES[index]
    ):
        assert not verify_inclusion(p_leaf, p_index, p_size, p_proof, p_root), (p_index, p_size)


def test_inclusion_degenerate_cases_fail() -> None:
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        assert not verify_inclusion(SOME_HASH, index, size, [], b"")
        assert not verify_inclusion(b"", index, size, [], EMPTY_ROOT)
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    single = leaf_hash(b"data")
    assert verify_inclusion(single, 0, 1, [], single)
    assert not verify_inclusion(b"", 0, 1, [], single)
    assert not verify_inclusion(single, 0, 1, [], b"")


@pytest.mark.parametrize(("size1", "size2", "proof"), [p for p in CONSISTENCY_PROOFS if p[2]])
def test_corrupted_consistency_proofs_fail(size1: int, size2: int, proof: list[bytes]) -> None:
    """corruptConsistencyProof of verify_test.go."""
    root1, root2 = ROOT_HASHES[size1], ROOT_HASHES[size2]
    probes = [
        (size1 - 1, size2, root1, root2, proof),
        (size1 + 1, size2, root1, root2, proof),
        (size1 ^ 2, size2, root1, root2, proof),
        (size1, size2 * 2, root1, root2, proof),
        (size1, size2 // 2, root1, root2, proof),
        (size1, size2, b"WrongRoot", root2, proof),
        (size1, size2, root1, b"WrongRoot", proof),
        (size1, size2, root2, root1, proof),
        (size1, size2, root1, root2, []),
        (size1, size2, root1, root2, [*proof, b""]),
        (size1, size2, root1, root2, [*proof, root1]),
        (size1, size2, root1, root2, [*proof, root2]),
        (size1, size2, root1, root2, [b"", *proof]),
        (size1, size2, root1, root2, [root1, *proof]),
        (size1, size2, root1, root2, [root2, *proof]),
        (size1, size2, root1, root2, [proof[0], *proof]),
        (size1, size2, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((size1, size2, root1, root2, wrong))
    for s1, s2, r1, r2, p in probes:
        assert not verify_consistency(s1, s2, r1, r2, p), (s1, s2)


OTHER_ROOT = SOME_HASH


@pytest.mark.parametrize(
    ("size1", "size2", "root1", "root2", "proof", "ok"),
    [
        # TestVerifyConsistency's table; the Go "don't care" roots are replaced by
        # real 32-byte hashes, and an empty old tree must carry the empty-tree root
        # (stricter than Go, which ignores root1 when size1 is 0).
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, EMPTY_ROOT, OTHER_ROOT, [], True),
        (0, 1, OTHER_ROOT, OTHER_ROOT, [], False),
        (1, 1, OTHER_ROOT, OTHER_ROOT, [], True),
        (1, 1, EMPTY_ROOT, OTHER_ROOT, [], False),
        (0, 0, EMPTY_ROOT, OTHER_ROOT, [], False),
        (1, 0, EMPTY_ROOT, OTHER_ROOT, [], False),  # time travel to the past
        (2, 1, EMPTY_ROOT, OTHER_ROOT, [], False),
        (1, 2, ROOT_HASHES[1], ROOT_HASHES[2], [], False),  # empty proof
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),  # roots match, proof not empty
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, b"short", b"short", [], False),  # not a hash
    ],
)
def test_consistency_degenerate_cases(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes], ok: bool
) -> None:
    assert verify_consistency(size1, size2, root1, root2, proof) is ok


def test_proof_requests_out_of_range_are_refused() -> None:
    for index, size in [(0, 0), (1, 1), (8, 8), (-1, 4), (0, 9)]:
        with pytest.raises(ValueError):
            inclusion_proof(LEAVES, index, size)
    for size1, size2 in [(5, 4), (-1, 3), (3, 9)]:
        with pytest.raises(ValueError):
            consistency_proof(LEAVES, size1, size2)
    assert consistency_proof(LEAVES, 0, 3) == []
