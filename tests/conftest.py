"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from tests.local import Backend, Processes, processes_fixture

DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Stores that are not SQLite files (PostgreSQL) keep their evidence keys under $PRIMUM_HOME/keys:
# never the checkout's own .primum. Tests that need their own home set PRIMUM_HOME themselves.
if "PRIMUM_HOME" not in os.environ:
    import tempfile

    os.environ["PRIMUM_HOME"] = tempfile.mkdtemp(prefix="primum-test-home-")


def _postgres_base_url() -> URL:
    url = make_url(os.environ.get("PRIMUM_TEST_POSTGRES_URL") or DEFAULT_TEST_POSTGRES_URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


@pytest.fixture(scope="session")
def postgres_server() -> URL:
    """The PostgreSQL server for tests; skipped when unreachable, an error in CI."""
    url = _postgres_base_url()
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = (
            f"PostgreSQL at {url.render_as_string(hide_password=True)} is unreachable "
            f"(set PRIMUM_TEST_POSTGRES_URL): {exc}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_url(postgres_server: URL) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(postgres_server, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = postgres_server.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# ------------------------------------------------------- router test fixtures (tests/local, providers)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Child processes (routers, services) of one test; all gone afterwards."""
    yield from processes_fixture(tmp_path)


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    """Two tiny in-process HTTP backends, A and B."""
    a, b = Backend("A"), Backend("B")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15, trust_env=False) as c:
        yield c


@pytest.fixture
def people():
    """Synthetic people with real keys (tests/people.py): enrol them, then act as them."""
    from tests.people import People

    return People()
