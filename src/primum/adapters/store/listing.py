"""Listing releases from a SQLite store with the standard library alone: the fast path of `primum history`
and `primum status`.

Importing SQLAlchemy costs about 0.15 s, more than the whole listing; these two commands are the ones
people run most (and scripts run in loops), so for a SQLite store whose schema is current they read the
``rollouts`` table through :mod:`sqlite3`, read-only. Anything else (PostgreSQL, an in-memory or
URL-parameterised database, a schema that is older or newer than this code, any error) answers ``None``,
and the caller uses the :class:`~primum.adapters.store.repository.Store`, which migrates and reads as
every other command does. A file that does not exist yet holds no releases: nothing is created to say so.

The query is the store's own listing (``rollouts.py`` ``_LIST_ROLLOUTS``): newest first by creation time,
then by id; ``tests/store/test_listing.py`` checks that both give the same rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from primum.adapters.store.revision import HEAD_REVISION

_PREFIX = "sqlite:///"


def sqlite_file(url: str) -> Path | None:
    """The database file of a plain SQLite URL (``sqlite:///path``), or None for anything else."""
    if not url.startswith(_PREFIX) or "?" in url:
        return None
    path = url[len(_PREFIX):]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def list_rollout_rows(url: str, *, limit: int, phases: Sequence[str] | None = None) -> list[dict[str, Any]] | None:
    """The rollouts' listing columns, newest first, with ``status`` parsed; None when the store must answer."""
    path = sqlite_file(url)
    if path is None:
        return None
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=15.0)
    except sqlite3.Error:
        return None
    try:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
        if revision != HEAD_REVISION:
            return None
        sql = "SELECT id, digest, phase, estate_name, created_at, status FROM rollouts"
        params: list[Any] = []
        if phases is not None:
            sql += f" WHERE phase IN ({', '.join('?' for _ in phases)})"
            params.extend(phases)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [{"id": row[0], "digest": row[1], "phase": row[2], "estate_name": row[3], "created_at": row[4],
                 "status": json.loads(row[5])} for row in conn.execute(sql, params)]
    except (sqlite3.Error, ValueError, TypeError):
        return None
    finally:
        conn.close()
