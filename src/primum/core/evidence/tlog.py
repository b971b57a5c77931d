"""The transparency log core: RFC 9162 Merkle tree hashes, proofs, and full-log verification.

Pure and storage-agnostic: entries and leaf hashes come in as bytes, roots and
proofs go out as bytes. The hashing is that of RFC 9162 §2.1 (identical to
RFC 6962): a leaf is ``SHA-256(0x00 || entry)``, an interior node is
``SHA-256(0x01 || left || right)``, and the empty tree hashes to
``SHA-256("")``. A log that is 100,000 entries long verifies in one pass with
O(log n) memory through :class:`CompactRange`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """The RFC 9162 leaf hash: ``SHA-256(0x00 || entry)``."""
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


class CompactRange:
    """An append-only Merkle tree builder that keeps only the O(log n) perfect subtrees' roots.

    ``nodes`` holds the roots of the perfect subtrees covering ``[0, size)``,
    left to right, largest first: one per set bit of ``size``. Folding them
    right to left gives the RFC 9162 tree hash at the current size.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self._size = 0

    @classmethod
    def restore(cls, size: int, nodes: Sequence[bytes]) -> CompactRange:
        """The range saved as ``(size, nodes)``; the node count must be the number of set bits of size."""
        if size < 0 or len(nodes) != bin(size).count("1") or not all(_is_hash(n) for n in nodes):
            raise ValueError(f"a compact range of size {size} has {bin(max(size, 0)).count('1')} "
                             f"32-byte nodes, got {len(nodes)}")
        cr = cls()
        cr._nodes = list(nodes)
        cr._size = size
        return cr

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        return tuple(self._nodes)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash (not the entry: hash entries with :func:`leaf_hash` first)."""
        nodes = self._nodes
        h = leaf
        # Each trailing one bit of the old size is a left sibling waiting for this subtree.
        s = self._size
        while s & 1:
            h = _sha256(_NODE_PREFIX + nodes.pop() + h).digest()
            s >>= 1
        nodes.append(h)
        self._size += 1

    def append_entry(self, entry: bytes) -> bytes:
        """Hash ``entry`` as a leaf, append it, and return its leaf hash."""
        h = _sha256(_LEAF_PREFIX + entry).digest()
        self.append(h)
        return h

    def extend(self, leaves: Iterable[bytes]) -> None:
        for h in leaves:
            self.append(h)

    def root(self) -> bytes:
        """The RFC 9162 Merkle tree hash of the leaves appended so far."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        r = nodes[-1]
        for h in reversed(nodes[:-1]):
            r = _sha256(_NODE_PREFIX + h + r).digest()
        return r


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over already-hashed leaves."""
    tree = CompactRange()
    tree.extend(leaf_hashes)
    return tree.root()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n`` >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1: the audit path of leaf ``index`` in the tree of ``size`` leaves."""
    n = len(leaf_hashes) if size is None else size
    if not 0 <= index < n <= len(leaf_hashes):
        raise ValueError(f"no inclusion proof for leaf {index} in a tree of size {n} ({len(leaf_hashes)} leaves known)")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    # Walk down from the root; siblings are collected top-down and returned bottom-up.
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaf_hashes[lo : lo + k]))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def inclusion_proofs(
    leaf_hashes: Sequence[bytes], indices: Iterable[int], size: int | None = None
) -> dict[int, list[bytes]]:
    """:func:`inclusion_proof` for many leaves at once: the tree is hashed once (O(n)), each proof is O(log n).

    Level ``l`` holds the roots of the complete subtrees of ``2**l`` leaves. An RFC 9162 tree is not
    perfect: its right edge has incomplete subtrees, whose roots are computed once per level
    (``edge[l]``, the root of the leaves from ``(n - 1) >> l << l`` to ``n``). Walking up from a leaf,
    the sibling at each level is a complete node, the right-edge node, or absent (the node is
    carried up unchanged, as RFC 9162 splits never leave a lone child).
    """
    n = len(leaf_hashes) if size is None else size
    wanted = sorted(set(indices))
    for index in wanted:
        if not 0 <= index < n <= len(leaf_hashes):
            raise ValueError(
                f"no inclusion proof for leaf {index} in a tree of size {n} ({len(leaf_hashes)} leaves known)")
    if not wanted:
        return {}
    levels: list[Sequence[bytes]] = [leaf_hashes[:n]]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([_sha256(_NODE_PREFIX + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)])
    depth = (n - 1).bit_length()  # the number of levels below the root
    edge = [levels[0][n - 1]]
    for level in range(depth):
        last = (n - 1) >> level
        # The right-edge node is a right child: hash it with its complete left sibling; else carry it up.
        edge.append(node_hash(levels[level][last - 1], edge[level]) if last & 1 else edge[level])
    proofs: dict[int, list[bytes]] = {}
    for index in wanted:
        path: list[bytes] = []
        for level in range(depth):
            sibling, last = (index >> level) ^ 1, (n - 1) >> level
            if sibling < last:
                path.append(levels[level][sibling])
            elif sibling == last:
                path.append(edge[level])
        proofs[index] = path
    return proofs


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1; empty when ``old_size`` is 0 or equals ``new_size``."""
    n = len(leaf_hashes) if new_size is None else new_size
    if not 0 <= old_size <= n <= len(leaf_hashes):
        raise ValueError(f"no consistency proof from size {old_size} to size {n} ({len(leaf_hashes)} leaves known)")
    if old_size in (0, n):
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    # SUBPROOF(m, D[lo:hi], complete), unrolled; nodes collected top-down, returned bottom-up.
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root(leaf_hashes[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(root(leaf_hashes[lo:hi]))
    proof.reverse()
    return proof


def _is_hash(value: bytes) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2), or None when the proof has the wrong shape."""
    if not (0 <= index < size) or not _is_hash(leaf) or not all(_is_hash(p) for p in proof):
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """True when ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``size`` leaves with ``root_hash``."""
    return _is_hash(root_hash) and root_from_inclusion_proof(leaf, index, size, proof) == root_hash


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` shows the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``).

    RFC 9162 §2.1.4.2, plus the degenerate cases: equal sizes need equal roots and
    an empty proof; an empty old tree needs the empty-tree root and an empty proof.
    """
    if not (_is_hash(old_root) and _is_hash(new_root)) or not 0 <= old_size <= new_size:
        return False
    if not all(_is_hash(c) for c in proof):
        return False
    if old_size == 0:
        # Fail closed: a claimed empty tree must carry the empty-tree hash.
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# --- Full-log verification -------------------------------------------------------------------


class TreeHead(Protocol):
    """What a signed checkpoint commits to; :class:`primum.core.evidence.checkpoint.Checkpoint` is one."""

    @property
    def size(self) -> int: ...

    @property
    def root_hash(self) -> bytes: ...


@dataclass(frozen=True)
class SignedSize:
    """A bare (size, root) pair, for callers that hold a tree head without its note."""

    size: int
    root_hash: bytes


class FaultKind(StrEnum):
    MODIFIED = "modified"  # the entry's bytes differ from what was recorded
    DELETED = "deleted"  # the recorded entry at this index is gone; later entries shifted down
    INSERTED = "inserted"  # an unrecorded entry sits at this index; later entries shifted up
    REORDERED = "reordered"  # the entry is a recorded one, but recorded at another index
    TRUNCATED = "truncated"  # the log ends before the size a checkpoint or the record commits to
    UNCOVERED = "uncovered"  # entries beyond the checkpoint: nothing signed vouches for them
    ROOT_MISMATCH = "root_mismatch"  # the tree hash at a checkpoint's size is not the signed one
    BAD_CHECKPOINT = "bad_checkpoint"  # the checkpoints themselves are unusable


@dataclass(frozen=True)
class LogFault:
    """The first bad entry of a log and why. ``index`` is 0-based.

    For a root mismatch the bad entry lies in ``[index, end)``; ``end`` is
    ``index + 1`` whenever the fault is pinned to one entry.
    """

    index: int
    end: int
    kind: FaultKind
    reason: str


@dataclass(frozen=True)
class LogVerification:
    """The verdict of :func:`verify_log`: ``ok`` or the first fault, plus what was read."""

    entries: int
    root_hash: bytes
    fault: LogFault | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None


def _short(h: bytes) -> str:
    return h.hex()[:16]


@dataclass(frozen=True)
class Purged:
    """A log entry whose bytes were purged under retention: only its recorded leaf hash is left.

    ``verify_log`` takes the hash as given; the signed roots still cover it, so a changed
    hash is caught as a root mismatch, and the entries around it verify as before.
    """

    leaf_hash: bytes


def _leaf(entry: bytes | Purged) -> bytes:
    return entry.leaf_hash if isinstance(entry, Purged) else leaf_hash(entry)


def _hashed_with_lookahead(entries: Iterable[bytes | Purged]) -> Iterator[tuple[bytes, bytes | None]]:
    """Each entry's leaf hash, paired with the next entry's (None at the end); every entry is hashed once."""
    it = iter(entries)
    first = next(it, None)
    if first is None:
        return
    cur = _leaf(first)
    for entry in it:
        nxt = _leaf(entry)
        yield cur, nxt
        cur = nxt
    yield cur, None


def _classify(
    i: int, got: bytes, following: bytes | None, expected: Sequence[bytes], positions: dict[bytes, int]
) -> LogFault:
    """Name the kind of the first mismatch at index ``i`` from a one-entry look on each side."""
    want = expected[i]
    nxt_want = expected[i + 1] if i + 1 < len(expected) else None
    if got == nxt_want and following == want:
        return LogFault(i, i + 1, FaultKind.REORDERED, f"entries {i} and {i + 1} are swapped")
    if got == nxt_want:
        return LogFault(
            i, i + 1, FaultKind.DELETED, f"entry {i} (leaf {_short(want)}) is missing; entry {i + 1} now sits at {i}"
        )
    if following == want:
        return LogFault(
            i,
            i + 1,
            FaultKind.INSERTED,
            f"entry {i} (leaf {_short(got)}) was not recorded; recorded entry {i} follows it",
        )
    j = positions.get(got)
    if j is not None and j != i:
        return LogFault(i, i + 1, FaultKind.REORDERED, f"entry {i} is the entry recorded at index {j}")
    return LogFault(
        i,
        i + 1,
        FaultKind.MODIFIED,
        f"entry {i} was modified: leaf hash {_short(got)} differs from recorded {_short(want)}",
    )


def verify_log(
    entries: Iterable[bytes | Purged],
    expected_leaf_hashes: Sequence[bytes] | None,
    checkpoint: TreeHead,
    *,
    earlier: Sequence[TreeHead] = (),
) -> LogVerification:
    """Verify a whole log in one pass against a signed tree head; name the first bad entry.

    ``entries`` are the stored entries in log order. ``expected_leaf_hashes``, when
    given, are the leaf hashes recorded alongside them (the store's index, or an
    exported bundle): a mismatch pins the fault to one entry and says whether it
    was modified, deleted, inserted or reordered. ``checkpoint`` is the tree head
    the log must hash to; the log must hold exactly ``checkpoint.size`` entries.
    ``earlier`` checkpoints at smaller sizes narrow a root mismatch down to the
    entries between two checkpoints (to one entry when a checkpoint was signed
    after every append). Signatures are not checked here: open the checkpoints
    with :func:`primum.core.evidence.checkpoint.open_checkpoint` first.
    """
    heads = sorted([*earlier, checkpoint], key=lambda h: h.size)
    for h in heads:
        if h.size < 0 or not _is_hash(h.root_hash):
            return LogVerification(
                0,
                EMPTY_ROOT,
                LogFault(0, 0, FaultKind.BAD_CHECKPOINT, f"checkpoint at size {h.size} has no valid 32-byte root hash"),
            )
        if h.size == 0 and h.root_hash != EMPTY_ROOT:
            return LogVerification(
                0,
                EMPTY_ROOT,
                LogFault(
                    0,
                    0,
                    FaultKind.BAD_CHECKPOINT,
                    f"checkpoint at size 0 must carry the empty-tree root {EMPTY_ROOT.hex()}",
                ),
            )
    if heads[-1].size != checkpoint.size:
        return LogVerification(
            0,
            EMPTY_ROOT,
            LogFault(
                0,
                0,
                FaultKind.BAD_CHECKPOINT,
                f"an earlier checkpoint has size {heads[-1].size}, beyond the latest size {checkpoint.size}",
            ),
        )
    size = checkpoint.size
    tree = CompactRange()
    positions: dict[bytes, int] | None = None
    head_i = 0
    last_good = 0
    next_check = 0  # the tree size at which the next checkpoint is compared

    def check_heads() -> LogFault | None:
        nonlocal head_i, last_good, next_check
        while head_i < len(heads) and heads[head_i].size == tree.size:
            h = heads[head_i]
            if tree.root() != h.root_hash:
                lo = last_good
                where = f"entry {lo}" if h.size - lo == 1 else f"entries [{lo}, {h.size})"
                return LogFault(
                    lo,
                    h.size,
                    FaultKind.ROOT_MISMATCH,
                    f"the tree hash at size {h.size} is not the signed root {_short(h.root_hash)}; "
                    f"the first bad entry is in {where}",
                )
            last_good = h.size
            head_i += 1
        next_check = heads[head_i].size if head_i < len(heads) else -1
        return None

    def done(fault: LogFault | None) -> LogVerification:
        return LogVerification(tree.size, tree.root(), fault)

    fault = check_heads()
    if fault:
        return done(fault)
    for i, (got, following) in enumerate(_hashed_with_lookahead(entries)):
        if i >= size:
            return done(
                LogFault(
                    i,
                    i + 1,
                    FaultKind.UNCOVERED,
                    f"entry {i} is beyond the checkpoint size {size}: no signed tree head covers it",
                )
            )
        if expected_leaf_hashes is not None:
            if i >= len(expected_leaf_hashes):
                return done(
                    LogFault(
                        i,
                        i + 1,
                        FaultKind.INSERTED,
                        f"entry {i} is beyond the {len(expected_leaf_hashes)} recorded leaf hashes",
                    )
                )
            if got != expected_leaf_hashes[i]:
                if positions is None:
                    # Built once, on the first mismatch only: the happy path stays O(log n) memory.
                    positions = {}
                    for j, recorded in enumerate(expected_leaf_hashes):
                        positions.setdefault(recorded, j)
                return done(_classify(i, got, following, expected_leaf_hashes, positions))
        tree.append(got)
        if tree.size == next_check:
            fault = check_heads()
            if fault:
                return done(fault)
    n = tree.size
    if n < size:
        # The missing tail is the first fault only if what was read is known good: either the
        # recorded leaf hashes (which matched every entry) hash to the signed root, or a
        # checkpoint vouched for the entries so far. Otherwise an earlier entry may be the bad one.
        recorded_ok = expected_leaf_hashes is not None and root(expected_leaf_hashes[:size]) == checkpoint.root_hash
        lo = n if recorded_ok else last_good
        return done(
            LogFault(
                lo,
                size,
                FaultKind.TRUNCATED,
                f"the log ends after {n} entries but the checkpoint commits to {size}; "
                + (
                    f"entries [{n}, {size}) are missing"
                    if lo == n
                    else f"only entries before {lo} are verified, the first bad entry is in [{lo}, {size})"
                ),
            )
        )
    if expected_leaf_hashes is not None and len(expected_leaf_hashes) > size:
        return done(
            LogFault(
                size,
                len(expected_leaf_hashes),
                FaultKind.UNCOVERED,
                f"{len(expected_leaf_hashes)} leaf hashes are recorded but the checkpoint "
                f"commits to {size} entries: entries [{size}, {len(expected_leaf_hashes)}) "
                "are missing from the log and no signed tree head covers them",
            )
        )
    return done(None)
