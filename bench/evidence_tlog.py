"""Transparency log benchmark: build, sign and verify a log of ``--entries`` envelope-sized entries.

Against it, in the same run on the same bytes: a bare loop of
``hashlib.sha256(entry).digest()`` (one hash per entry and nothing else). A
Merkle log costs about two SHA-256 calls per entry (the leaf hash and, on
average, one interior node), so twice the bare loop is the floor. Measured:
building the tree with ``CompactRange``; opening a signed checkpoint and
verifying the whole log with ``verify_log``, with recorded leaf hashes and
without; and, for a sample of leaves, an inclusion proof made from the full
list of leaf hashes and checked. Best of ``--repeat`` runs each. Figures, not
assertions.

    .venv/bin/python bench/evidence_tlog.py
    .venv/bin/python bench/evidence_tlog.py --entries 1000000 --size 512 --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import time
from collections.abc import Callable

from primum.core.evidence.checkpoint import Checkpoint, NoteSigner, open_checkpoint, sign_checkpoint
from primum.core.evidence.tlog import CompactRange, inclusion_proof, leaf_hash, verify_inclusion, verify_log


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def build(entries: list[bytes]) -> CompactRange:
    tree = CompactRange()
    for e in entries:
        tree.append_entry(e)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=400, help="bytes per entry (a DSSE envelope is a few hundred)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--proofs", type=int, default=20, help="inclusion proofs to make and check")
    args = parser.parse_args()

    entries = [i.to_bytes(8, "big") + os.urandom(args.size - 8) for i in range(args.entries)]
    n = len(entries)

    def raw() -> None:
        sha = hashlib.sha256
        for e in entries:
            sha(e).digest()

    t_raw = best_of(args.repeat, raw)
    t_build = best_of(args.repeat, lambda: build(entries))

    tree = build(entries)
    signer = NoteSigner.generate("bench.primum.example/log")
    note = sign_checkpoint(Checkpoint("bench.primum.example/log", tree.size, tree.root()), [signer])
    leaves = [leaf_hash(e) for e in entries]

    def verify(recorded: bool) -> None:
        cp = open_checkpoint(note, [signer.verifier])
        result = verify_log(entries, leaves if recorded else None, cp)
        assert result.ok, result.fault

    t_verify = best_of(args.repeat, lambda: verify(True))
    t_verify_bare = best_of(args.repeat, lambda: verify(False))

    rng = random.Random(7)
    sample = [rng.randrange(n) for _ in range(args.proofs)]
    root_hash = tree.root()

    def proofs() -> None:
        for i in sample:
            assert verify_inclusion(leaves[i], i, n, inclusion_proof(leaves, i, n), root_hash)

    t_proofs = best_of(max(1, args.repeat // 2), proofs)

    def rate(seconds: float) -> str:
        return f"{n / seconds:>12,.0f} entries/s  {seconds * 1000:>9.1f} ms  {seconds / t_raw:>5.2f}x raw"

    print(f"{n:,} entries of {args.size} bytes, best of {args.repeat}")
    print(f"  raw sha256 per entry              {rate(t_raw)}")
    print(f"  build tree (CompactRange)         {rate(t_build)}")
    print(f"  open checkpoint + verify_log      {rate(t_verify)}   (with recorded leaf hashes)")
    print(f"  open checkpoint + verify_log      {rate(t_verify_bare)}   (entries and checkpoint only)")
    print(f"  inclusion proof, make + verify    {t_proofs / len(sample) * 1000:>9.1f} ms each over {n:,} leaf hashes")


if __name__ == "__main__":
    main()
