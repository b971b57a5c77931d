"""Database URLs, SQLite tuning and migrations."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from primum.adapters.store import db
from primum.adapters.store.repository import Store

TABLES = {"rollouts", "rollout_events", "rollout_commands", "fence_sequence", "approvals", "break_glass",
          "alembic_version"}


def test_database_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMUM_DATABASE_URL", "postgresql://ctl@db.example/primum")
    assert db.default_database_url() == "postgresql://ctl@db.example/primum"


def test_database_url_defaults_to_sqlite_in_primum_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMUM_DATABASE_URL", raising=False)
    home = tmp_path / "nested" / "home"
    monkeypatch.setenv("PRIMUM_HOME", str(home))
    assert db.default_database_url() == f"sqlite:///{home}/primum.db"
    assert home.is_dir()

    monkeypatch.delenv("PRIMUM_HOME")
    monkeypatch.chdir(tmp_path)
    assert db.default_database_url() == f"sqlite:///{tmp_path.resolve()}/.primum/primum.db"
    assert (tmp_path / ".primum").is_dir()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        (
            "postgresql://u@h/d?options=-csearch_path%3Dmyschema",
            "postgresql+psycopg://u@h/d?options=-csearch_path%3Dmyschema",
        ),
        ("sqlite:////var/lib/primum.db", "sqlite:////var/lib/primum.db"),
    ],
)
def test_normalize_url_selects_psycopg(given: str, expected: str) -> None:
    assert db.normalize_url(given).render_as_string(hide_password=False) == expected


def test_search_path_option_reaches_the_driver() -> None:
    url = db.normalize_url("postgresql://u@h/d?options=-csearch_path%3Dmyschema")
    assert url.query["options"] == "-csearch_path=myschema"


def test_sqlite_connections_are_tuned(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
    finally:
        engine.dispose()
    assert pragma == {"journal_mode": "wal", "busy_timeout": 15000, "foreign_keys": 1, "synchronous": 1}


def test_sqlite_transactions_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    store = Store(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with store._engine.begin():  # no statement yet: BEGIN IMMEDIATE already locked
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            # Readers are not blocked by a writer (WAL, deferred BEGIN for reads).
            assert store.list_rollouts() == []
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()


def _head() -> str | None:
    return ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def test_migrations_ship_in_the_package() -> None:
    assert (db.MIGRATIONS_DIR / "env.py").is_file()
    assert (db.MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert _head() == db.HEAD_REVISION == "0005_identities"


def test_migrating_twice_is_a_no_op(db_url: str) -> None:
    for _ in range(2):
        store = Store(db_url)
        store.close()
    engine = db.make_engine(db_url)
    try:
        db.migrate(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == _head()
            assert set(inspect(conn).get_table_names()) >= TABLES
            assert conn.execute(text("SELECT id, value FROM fence_sequence")).all() == [(1, 0)]
    finally:
        engine.dispose()


def test_replicas_starting_together_migrate_once(db_url: str) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            Store(db_url).close()
        except BaseException as exc:  # reported below, threads swallow exceptions
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = Store(db_url, migrate=False)
    try:
        assert store.list_rollouts() == []
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_tables_live_in_the_search_path_schema(postgres_url: str) -> None:
    Store(postgres_url).close()
    schema = str(db.normalize_url(postgres_url).query["options"]).split("=", 1)[1]
    where = text(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(:name)"
    )
    engine = db.make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            found = {name: conn.execute(where, {"name": name}).scalar() for name in TABLES}
    finally:
        engine.dispose()
    assert found == dict.fromkeys(TABLES, schema)


def test_head_revision_constant_matches_the_migrations():
    from alembic.script import ScriptDirectory

    from primum.adapters.store.db import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION
