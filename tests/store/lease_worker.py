"""One controller process for the lease concurrency test.

Usage: python lease_worker.py URL OWNER SECONDS TTL LOG_PATH SEED

Loops claim_due -> persist on the shared rollouts, appending its owner and fencing
token ("fence") to each rollout's status history (and an event), now and then stalling past its
lease or releasing it so leases change hands. Writes to LOG_PATH as JSON every
lease it was granted, extended or released ("leases": rollout, owner, token and
since, until or released) and every persist it attempted, with whether the store
accepted it ("persists").
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from primum.adapters.store.events import redact_events
from primum.adapters.store.records import Lease, NewEvent
from primum.adapters.store.repository import Store

STALL_EVERY = 30  # persist attempts; the 3rd, 33rd, 63rd... come after a stall
RELEASE_CHANCE = 0.25


def step(store: Store, lease: Lease, entry: dict[str, Any], ttl: float) -> Lease | None:
    status = dict(lease.rollout.status)
    status["history"] = [*status.get("history", []), entry]
    now = time.time()
    return store.persist(
        lease,
        status=status,
        phase="running",
        next_due_at=now + 0.002,
        now=now,
        ttl=ttl,
        events=[NewEvent("tick", f"{entry['owner']} wrote #{entry['seq']}", data=entry)],
    )


def main(url: str, owner: str, seconds: float, ttl: float, log_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = Store(url)
    attempts: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []

    def note(lease: Lease, **times: float) -> None:
        held.append({"rollout": lease.rollout.id, "owner": owner, "token": lease.token, **times})

    # The store redacts every event it writes, and the first redaction loads detect-secrets' plugins:
    # load them before the clock starts, as a long-running controller has, so a lease is not lost to it.
    redact_events([NewEvent("warm-up", "warm-up")])
    deadline = time.time() + seconds
    seq = 0
    try:
        while time.time() < deadline:
            leases = store.claim_due(owner, time.time(), ttl, limit=rng.randint(1, 4))
            granted = time.time()  # this controller may act on them from now on
            if not leases:
                time.sleep(0.002)
                continue
            for lease in leases:
                note(lease, since=granted, until=lease.expires_at)
            for lease in leases:
                seq += 1
                if seq % STALL_EVERY == 3:
                    # A pause (GC, slow target) long enough to lose the lease.
                    time.sleep(ttl * rng.uniform(1.05, 1.5))
                # "fence", not "token": the store redacts a value under a key named like a credential,
                # and the test compares each event's data with the status history.
                entry = {"owner": owner, "fence": lease.token, "seq": seq}
                kept = step(store, lease, entry, ttl)
                attempts.append({"rollout": lease.rollout.id, **entry, "ok": kept is not None})
                if kept is not None:
                    note(kept, until=kept.expires_at)
                if kept is not None and rng.random() < RELEASE_CHANCE:
                    note(kept, released=time.time())  # stops acting on it before releasing
                    store.release(kept)
    finally:
        store.close()
        log_path.write_text(json.dumps({"persists": attempts, "leases": held}))


if __name__ == "__main__":
    url, owner, seconds, ttl, log_path, seed = sys.argv[1:]
    main(url, owner, float(seconds), float(ttl), Path(log_path), int(seed))
