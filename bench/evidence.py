"""Evidence log benchmark: durable signed appends, and full-log verification, against raw crypto.

Appends: each append is one committed transaction of the store (the path every event takes):
build the statement's DSSE envelope, sign it (Ed25519), hash it into the Merkle log, write the
entry and the new log head, and sign and write a checkpoint. Measured on SQLite (a file, WAL,
synchronous=NORMAL) and on PostgreSQL (``PRIMUM_TEST_POSTGRES_URL`` or the local server), one
entry per transaction and 100 entries per transaction. Baseline, same run, same payload bytes:
raw Ed25519 signing of the DSSE pre-authentication encoding, nothing else.

Verification: ``Store.verify_evidence`` over a log of ``--entries`` entries (default 100,000):
every checkpoint signature, every envelope signature, the leaf hashes and the Merkle tree, read
from the database. Baseline, same run, same bytes: a bare loop of sha256 + Ed25519 verify per
envelope. Figures, not assertions.

    .venv/bin/python bench/evidence.py
    .venv/bin/python bench/evidence.py --entries 20000 --appends 500 --no-postgres
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from primum.adapters.evidence.keys import Keyring
from primum.adapters.store.evidence import PendingEntry
from primum.adapters.store.repository import Store
from primum.core.evidence.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, pae
from primum.core.evidence.statements import event_statement, serialize

SUBJECTS = [{"name": "release:bench-1", "digest": {"sha256": "a" * 64}},
            {"name": "scheduling-api@2.0.1", "digest": {"sha256": "b" * 64}}]


def statement(i: int) -> dict:
    return event_statement(SUBJECTS, kind="step", message=f"scheduling-api in prod: canary step {i} at 25%",
                           at=1_700_000_000 + i, env="prod", service="scheduling-api", actor="",
                           data={"step": i, "weight": 25, "replicas": {"canary": 1, "stable": 3}})


def raw_sign_rate(keyring: Keyring, n: int) -> float:
    key = keyring.current
    messages = [pae(PAYLOAD_TYPE_IN_TOTO, serialize(statement(i))) for i in range(n)]
    t0 = time.perf_counter()
    for m in messages:
        key.sign(m)
    return n / (time.perf_counter() - t0)


def append_rate(store: Store, n: int, batch: int) -> float:
    pending = [PendingEntry(statement=statement(i), kind="step") for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        store.append_evidence(pending[i:i + batch], 1_700_000_000.0 + i)
    return n / (time.perf_counter() - t0)


def fill(store: Store, n: int) -> None:
    for i in range(0, n, 1000):
        store.append_evidence([PendingEntry(statement=statement(j), kind="step")
                               for j in range(i, min(n, i + 1000))], 1_700_000_000.0 + i)


def raw_verify_rate(store: Store, keyring: Keyring) -> float:
    envelopes = [e.envelope for e in store.evidence_entries() if e.envelope is not None]
    parsed = [Envelope.from_json(e) for e in envelopes]
    public = keyring.current.public_key
    t0 = time.perf_counter()
    for raw, env in zip(envelopes, parsed, strict=True):
        hashlib.sha256(b"\x00" + raw).digest()
        public.verify(env.signatures[0].sig, pae(env.payload_type, env.payload))
    return len(envelopes) / (time.perf_counter() - t0)


def store_verify_rate(store: Store) -> tuple[float, int]:
    t0 = time.perf_counter()
    report = store.verify_evidence()
    elapsed = time.perf_counter() - t0
    if not report.ok:
        raise SystemExit(f"verification failed: {report.problem}")
    return report.entries / elapsed, report.entries


def postgres_database() -> tuple[str, str] | None:
    base = make_url(os.environ.get("PRIMUM_TEST_POSTGRES_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"primum_bench_{uuid.uuid4().hex[:8]}"
    try:
        engine = create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception as exc:  # a bench reports and goes on
        print(f"postgresql: not measured ({type(exc).__name__}: {exc})")
        return None
    return base.set(database=name).render_as_string(hide_password=False), name


def drop_postgres(name: str) -> None:
    base = make_url(os.environ.get("PRIMUM_TEST_POSTGRES_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000, help="log size for the verification run")
    parser.add_argument("--appends", type=int, default=2000, help="appends per append measurement")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    keyring = Keyring.generate()
    raw = raw_sign_rate(keyring, args.appends)
    print(f"raw Ed25519 sign (DSSE PAE of an event statement): {raw:,.0f} signatures/s (1.0x)")
    with tempfile.TemporaryDirectory() as tmp:
        targets: list[tuple[str, str, str | None]] = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", None)]
        if not args.no_postgres:
            pg = postgres_database()
            if pg:
                targets.append(("postgresql", pg[0], pg[1]))
        for label, url, dbname in targets:
            try:
                store = Store(url, keys=keyring)
                for batch in (1, 100):
                    rate = append_rate(store, args.appends, batch)
                    print(f"{label}: durable signed appends, {batch:>3} per transaction: {rate:,.0f}/s "
                          f"({raw / rate:.1f}x slower than raw signing)")
                store.close()
                store = Store(url.replace("bench.db", "verify.db") if dbname is None else url, keys=keyring)
                if dbname is not None:
                    with store._engine.begin() as conn:  # a bench resets its own database
                        conn.execute(text("TRUNCATE evidence_entries, evidence_checkpoints"))
                        conn.execute(text("UPDATE evidence_head SET size = 0, nodes = ''"))
                t0 = time.perf_counter()
                fill(store, args.entries)
                print(f"{label}: filled a log of {args.entries:,} entries in {time.perf_counter() - t0:.1f} s")
                rate, n = store_verify_rate(store)
                base = raw_verify_rate(store, keyring)
                print(f"{label}: full-log verify of {n:,} entries: {rate:,.0f} entries/s; raw sha256 + Ed25519 "
                      f"verify of the same bytes {base:,.0f}/s ({base / rate:.2f}x)")
                store.close()
            finally:
                if dbname is not None:
                    drop_postgres(dbname)


if __name__ == "__main__":
    main()
