"""Alembic environment for the store.

``primum.adapters.store.db.migrate`` passes an open connection in
``config.attributes["connection"]``; without one (the ``alembic`` command line)
the URL comes from ``sqlalchemy.url`` or ``default_database_url()``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from primum.adapters.store.db import default_database_url, make_engine, normalize_url
from primum.adapters.store.tables import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or default_database_url()
    return normalize_url(url).render_as_string(hide_password=False)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
