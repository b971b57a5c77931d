"""The standard-library listing of a SQLite store (`primum history`'s fast path) against the store's own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from primum.adapters.evidence.keys import Keyring
from primum.adapters.store.listing import list_rollout_rows, sqlite_file
from primum.adapters.store.records import NewRollout
from primum.adapters.store.repository import Store


def new_rollout(rid: str, phase: str) -> NewRollout:
    return NewRollout(id=rid, digest="sha256:" + "ab" * 32, estate_name="hospital", estate_digest="sha256:" + "cd" * 32,
                      services=("sched",), estate={}, release={},
                      status={"items": [], "reason": f"{rid} reason" if phase != "running" else None,
                              "pause_reason": None, "finished_at": None},
                      phase=phase)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'primum.db'}"
    store = Store(url, keys=Keyring.generate())
    for n, phase in enumerate(["promoted", "running", "paused", "rolled_back", "pending"]):
        store.create_rollout(new_rollout(f"rel-{n}", phase), now=1000.0 + (n // 2))  # two share a time
    store.close()
    return url


def test_the_listing_is_the_stores_listing(store_url: str) -> None:
    store = Store(store_url, keys=Keyring.generate())
    try:
        for phases in (None, ("pending", "running", "paused"), ("promoted",)):
            for limit in (50, 2):
                rows = list_rollout_rows(store_url, limit=limit, phases=phases)
                assert rows is not None
                expected = store.list_rollouts(limit=limit, phases=phases)
                assert [(r["id"], r["phase"], r["digest"], r["estate_name"], r["created_at"], r["status"])
                        for r in rows] == [(r.id, r.phase, r.digest, r.estate_name, r.created_at, r.status)
                                           for r in expected]
        assert [r["id"] for r in list_rollout_rows(store_url, limit=50) or []][:2] == ["rel-4", "rel-3"]
    finally:
        store.close()


def test_a_store_file_that_does_not_exist_lists_nothing_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "primum.db"
    assert list_rollout_rows(f"sqlite:///{path}", limit=10) == []
    assert not path.exists() and not path.parent.exists()


@pytest.mark.parametrize("url", ["postgresql://localhost/test", "sqlite://", "sqlite:///:memory:",
                                 "sqlite:///x.db?mode=ro"])
def test_other_stores_are_left_to_the_store(url: str) -> None:
    assert sqlite_file(url) is None
    assert list_rollout_rows(url, limit=10) is None


def test_a_schema_other_than_this_codes_is_left_to_the_store(store_url: str) -> None:
    path = sqlite_file(store_url)
    assert path is not None
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0002'")
    assert list_rollout_rows(store_url, limit=10) is None


def test_a_file_that_is_not_a_store_is_left_to_the_store(tmp_path: Path) -> None:
    (tmp_path / "primum.db").write_text("not a database")
    assert list_rollout_rows(f"sqlite:///{tmp_path / 'primum.db'}", limit=10) is None
