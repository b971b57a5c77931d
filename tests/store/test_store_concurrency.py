"""Several controller processes share rollouts: leases and fencing keep them apart."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from primum.adapters.store.records import NewRollout
from primum.adapters.store.repository import Store

WORKER = Path(__file__).with_name("lease_worker.py")
ROLLOUTS = 20
WORKERS = 3
SECONDS = 2.5
TTL = 0.5


@pytest.mark.slow
def test_processes_never_act_on_one_rollout_together(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url)
    try:
        now = time.time()
        for i in range(ROLLOUTS):
            store.create_rollout(
                NewRollout(
                    id=f"rel-{i:02d}",
                    digest=f"sha256:{i:064x}",
                    estate_name="st-marys",
                    estate_digest="sha256:" + "e" * 64,
                    services=(f"svc-{i}",),
                    estate={},
                    release={},
                    status={"history": []},
                ),
                now=now,
            )

        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    db_url,
                    f"ctl-{n}",
                    str(SECONDS),
                    str(TTL),
                    str(tmp_path / f"ctl-{n}.json"),
                    str(n),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for n in range(WORKERS)
        ]
        for worker in workers:
            output, _ = worker.communicate(timeout=SECONDS + 60)
            assert worker.returncode == 0, output

        attempts: list[dict[str, Any]] = []
        leases: list[dict[str, Any]] = []
        for n in range(WORKERS):
            log = json.loads((tmp_path / f"ctl-{n}.json").read_text())
            attempts += log["persists"]
            leases += log["leases"]
        histories = {}
        takeovers = 0
        for i in range(ROLLOUTS):
            record = store.get_rollout(f"rel-{i:02d}")
            assert record is not None
            history = record.status["history"]
            # One persist = one history entry + one event, in the same transaction:
            # a lost update or a half-written persist would make these differ.
            # (A lease that expired in one worker's hands and was claimed by another adds the takeover's
            # lease_lost and lease_taken_over events, in the claim's transaction: they are counted apart.)
            assert [event.data for event in store.events(record.id) if event.kind == "tick"] == history
            takeovers += sum(event.kind == "lease_taken_over" for event in store.events(record.id))
            assert record.revision == len(history)
            histories[record.id] = history
    finally:
        store.close()

    assert takeovers > 0, "the workers' stalls past their leases must show as recorded takeovers"
    assert_persists_fenced(histories, attempts)
    assert_leases_never_overlap(leases)


def assert_persists_fenced(histories: dict[str, list[dict[str, Any]]], attempts: list[dict[str, Any]]) -> None:
    """Accepted persists are all stored, refused ones left no trace, tokens only go up."""

    def key(entry: dict[str, Any]) -> tuple[str, int]:
        return entry["owner"], entry["seq"]

    persisted = {key(entry): rollout for rollout, hist in histories.items() for entry in hist}
    accepted = {key(a): a["rollout"] for a in attempts if a["ok"]}
    refused = {key(a) for a in attempts if not a["ok"]}
    assert persisted == accepted
    assert not refused & persisted.keys()

    owners_of_token: dict[int, set[str]] = defaultdict(set)
    rollouts_of_token: dict[int, set[str]] = defaultdict(set)
    for rollout, history in histories.items():
        tokens = [entry["fence"] for entry in history]
        assert tokens == sorted(tokens), f"{rollout}: token went backwards: {tokens}"
        for entry in history:
            owners_of_token[entry["fence"]].add(entry["owner"])
            rollouts_of_token[entry["fence"]].add(rollout)
    # A token is one lease: one owner of one rollout.
    assert all(len(owners) == 1 for owners in owners_of_token.values())
    assert all(len(rollouts) == 1 for rollouts in rollouts_of_token.values())

    # The run must actually have exercised contention, takeovers and fencing.
    changed_hands = [r for r, h in histories.items() if len({e["owner"] for e in h}) > 1]
    stats = f"{len(accepted)} accepted, {len(refused)} refused, {len(changed_hands)} changed hands"
    assert len(accepted) >= 2 * ROLLOUTS, stats
    assert refused, stats
    assert len(changed_hands) >= ROLLOUTS // 4, stats


def assert_leases_never_overlap(leases: list[dict[str, Any]]) -> None:
    """A holder acts from the grant until expiry or release; no two such spans overlap."""
    owners: dict[tuple[str, int], str] = {}
    start: dict[tuple[str, int], float] = {}
    until: dict[tuple[str, int], float] = defaultdict(float)
    released: dict[tuple[str, int], float] = {}
    for held in leases:
        lease = (held["rollout"], held["token"])
        assert owners.setdefault(lease, held["owner"]) == held["owner"], f"{lease} shared"
        if "since" in held:
            start[lease] = min(start.get(lease, held["since"]), held["since"])
        if "until" in held:
            until[lease] = max(until[lease], held["until"])
        if "released" in held:
            released[lease] = held["released"]
    spans: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for lease, begin in start.items():
        end = min(until[lease], released.get(lease, until[lease]))
        spans[lease[0]].append((lease[1], begin, end))
    for rollout, token_spans in spans.items():
        token_spans.sort()
        for (token, _, end), (next_token, next_begin, _) in itertools.pairwise(token_spans):
            assert next_begin > end, (
                f"{rollout}: token {next_token} ({owners[rollout, next_token]}) granted at "
                f"{next_begin} while token {token} ({owners[rollout, token]}) held until {end}"
            )
