"""Controller benchmark: N concurrent rollouts on the no-op target.

Prints the reconcile overhead per rollout tick (claim + observe + decide +
persist + act, divided by rollouts processed) and the scheduling lag (how
late a due rollout is processed: p50, p99), against an empty loop measured in
the same run: the same due-time schedule served by a heap that does nothing,
which is the floor any scheduler pays on this machine. Figures, not
assertions.

    .venv/bin/python bench/controller.py --n 10 100 1000 --seconds 20
    .venv/bin/python bench/controller.py --n 200 --database postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from primum.adapters.store.db import normalize_url
from primum.adapters.store.records import NewRollout
from primum.adapters.store.repository import Store
from primum.adapters.targets.noop import NoopTarget
from primum.adapters.targets.registry import Targets
from primum.app.controller import Controller, TickStats
from primum.core.engine.planner import plan
from primum.core.model.actions import VersionRef
from primum.core.model.estate import Estate
from primum.core.model.release import Release, canonical_digest


def estate(i: int) -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": f"bench-{i}",
        "environments": [{"name": "staging", "class": "nonprod"}, {"name": "prod", "class": "prod"}],
        "services": {"svc": {"owner": "bench", "tier": "internal", "data_class": "none",
                             "target": {"type": "noop"},
                             "strategy": {"type": "canary", "steps": [
                                 {"set_weight": 20}, {"pause": {"duration": 2}}, {"set_weight": 60},
                                 {"pause": {"duration": 2}}]}}},
    })


def version(i: int, label: str) -> VersionRef:
    digest = "sha256:" + hashlib.sha256(f"{i}-{label}".encode()).hexdigest()
    return VersionRef(digest=digest, artifact=f"/bench/{i}-{label}", label=label)


class SharedNoop(Targets):
    """Every estate shares one no-op target whose services already run version 1."""

    def __init__(self, home: Path):
        super().__init__(home)
        self.target = NoopTarget()

    def for_service(self, estate, service):  # type: ignore[override]
        return self.target


def seed(store: Store, targets: SharedNoop, n: int, now: float) -> None:
    from primum.core.model.actions import EnsureInstances, SetRoute
    from primum.core.model.validate import runtime_spec

    for i in range(n):
        e = estate(i)
        old, new = version(i, "1"), version(i, "2")
        for env in ("staging", "prod"):
            spec = runtime_spec(e, env, "svc")
            targets.target.apply(EnsureInstances(env=env, service="svc", version=old, count=1), spec, 0)
            targets.target.apply(SetRoute(env=env, service="svc", weights={old.key: 100}), spec, 0)
        release = Release.model_validate({"apiVersion": "primum/v1", "kind": "Release", "id": f"bench-{i}",
                                          "ticket": "CHG-BENCH",
                                          "services": {"svc": {"artifact": new.artifact, "digest": new.digest}}})
        digest = canonical_digest(release)
        status = plan(e, release, digest, {"svc": new}, ["staging", "prod"], now)
        store.create_rollout(NewRollout(
            id=release.id, digest=digest, estate_name=e.name, estate_digest=canonical_digest(e), services=("svc",),
            estate=e.model_dump(mode="json", by_alias=True),
            release={"release": release.model_dump(mode="json", by_alias=True)}, status=status.model_dump(mode="json")),
            now)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def isolated(url: str | None, home: Path) -> Iterator[str]:
    """A database URL for one run: a fresh SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if url is None:
        yield f"sqlite:///{home / 'bench.db'}"
        return
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "postgresql":
        yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:16]}"
    admin = create_engine(parsed, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run_controller(n: int, seconds: float, url: str | None) -> dict:
    home = Path(tempfile.mkdtemp(prefix="primum-bench-"))
    with isolated(url, home) as run_url:
        return _run_controller(n, seconds, run_url, home)


def _run_controller(n: int, seconds: float, url: str, home: Path) -> dict:
    store = Store(url)
    targets = SharedNoop(home)
    seed(store, targets, n, time.time())
    controller = Controller(store, targets, lease_ttl=30.0, batch=max(50, n))
    stats = TickStats()
    busy = 0.0
    start = time.time()
    while time.time() - start < seconds:
        t0 = time.perf_counter()
        before = stats.persisted
        controller.tick(stats)
        if stats.persisted > before:
            busy += time.perf_counter() - t0
        done = not store.list_rollouts(limit=1, phases=("pending", "running", "paused"))
        if done:
            break
        due = store.next_due_at()
        wait = 0.0 if due is None else due - time.time()
        if wait > 0:
            time.sleep(min(0.05, wait))
    elapsed = time.time() - start
    finished = len(store.list_rollouts(limit=100_000, phases=("promoted",)))
    store.close()
    return {"ticks": stats.persisted, "busy": busy, "lags": stats.lags, "elapsed": elapsed, "finished": finished}


def run_empty_loop(n: int, ticks: int, interval: float = 0.25) -> dict:
    """The same number of due-time ticks served by a heap that does nothing."""
    now = time.time()
    heap = [(now, i) for i in range(n)]
    heapq.heapify(heap)
    lags: list[float] = []
    busy = 0.0  # time spent serving ticks, sleeps excluded (as the controller's "tick ms")
    served = 0
    while served < ticks:
        due, i = heap[0]
        now = time.time()
        if due > now:
            time.sleep(min(0.05, due - now))
            continue
        t0 = time.perf_counter()
        heapq.heappop(heap)
        lags.append(now - due)
        heapq.heappush(heap, (now + interval, i))
        served += 1
        busy += time.perf_counter() - t0
    return {"ticks": served, "busy": busy, "lags": lags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--database", default=None, help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    print(f"{'N':>5} {'ticks':>6} {'done':>5} {'tick ms':>8} {'empty us':>8} {'tick ratio':>10} "
          f"{'lag p50 ms':>10} {'lag p99 ms':>10} "
          f"{'empty p50':>9} {'empty p99':>9} {'p99 ratio':>9}")
    for n in args.n:
        full = run_controller(n, args.seconds, args.database)
        empty = run_empty_loop(n, max(1, min(full["ticks"], 20_000)))
        per_tick = 1000 * full["busy"] / max(1, full["ticks"])
        lag50, lag99 = 1000 * pct(full["lags"], 0.5), 1000 * pct(full["lags"], 0.99)
        e50, e99 = 1000 * pct(empty["lags"], 0.5), 1000 * pct(empty["lags"], 0.99)
        empty_us = 1e6 * empty["busy"] / max(1, empty["ticks"])
        print(f"{n:>5} {full['ticks']:>6} {full['finished']:>5} {per_tick:>8.2f} {empty_us:>8.2f} "
              f"{1000 * per_tick / max(empty_us, 1e-3):>10.0f} {lag50:>10.1f} "
              f"{lag99:>10.1f} {e50:>9.2f} {e99:>9.2f} {lag99 / max(e99, 1e-3):>9.1f}")
    print("tick ms: wall time of controller ticks divided by rollout ticks persisted (claim, observe, decide, "
          "persist, act); empty us: the do-nothing scheduler's cost per tick\n"
          "lag: time between a rollout's due time and its processing; empty: a do-nothing heap "
          "scheduler serving the same number of ticks at the same cadence, in the same run")
    _ = statistics  # keep the import for ad-hoc analysis


if __name__ == "__main__":
    main()
