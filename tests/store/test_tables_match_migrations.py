"""The store's table definitions (``adapters/store/tables.py``, used to build queries) and the schema the
Alembic migrations create must not drift apart: a column, type, index, key or nullability added to one
and not the other fails here, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from primum.adapters.store import db
from primum.adapters.store.tables import metadata


def _drift(url: str) -> list[object]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        db.migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_sqlite_schema_is_the_tables(tmp_path) -> None:
    assert _drift(f"sqlite:///{tmp_path / 'drift.db'}") == []


@pytest.mark.usefixtures("postgres_url")
def test_postgres_schema_is_the_tables(postgres_url: str) -> None:
    assert _drift(postgres_url) == []
