"""The store: one ``Store`` facade over one part per aggregate.

Callers hold one ``Store`` and call ``store.persist(...)``, ``store.add_events(...)``,
``store.approvals(...)`` as before; the methods live with the aggregate they belong to:

- ``rollouts.py``: rollouts, leases with fencing tokens, ``persist``, ``reset`` and operator commands;
- ``events.py``: the single event write path (every event is redacted there, then signed into the
  evidence log in its own transaction), the event readers and promotions by digest;
- ``approvals.py``: approvals and rejections, break-glass uses and their reviews;
- ``audit.py``: evidence entries and proofs, verification, legal holds and purges;
- ``base.py``: what they share (``StorePart``, the errors, bind parameters).

The parts are mixins rather than delegated components so that the facade stays one object with
one set of connections and every public method keeps its name and signature. Each part derives
from ``StorePart``, which declares the attributes set here (engines, dialect, evidence log), so
each type-checks alone; ``RolloutsPart`` derives from ``EventsPart`` because ``persist`` and
``reset`` write events in their own transaction. This module keeps the constructor (engines,
readers, keys, migrations) and ``close``. All times are float epoch seconds given by the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from primum.adapters.store import db
from primum.adapters.store.approvals import ApprovalsPart
from primum.adapters.store.audit import AuditPart
from primum.adapters.store.base import ReleaseConflict, RolloutLeased, RolloutNotFound
from primum.adapters.store.events import PASSING_KINDS, EventsPart
from primum.adapters.store.rollouts import RolloutsPart

if TYPE_CHECKING:
    from primum.adapters.evidence.keys import Keyring

__all__ = ["PASSING_KINDS", "ReleaseConflict", "RolloutLeased", "RolloutNotFound", "Store"]


class Store(RolloutsPart, ApprovalsPart, EventsPart, AuditPart):
    """Persistence of rollouts for the service layer and the controllers."""

    def __init__(self, url: str | None = None, *, migrate: bool = True,
                 keys: Keyring | Path | None = None, witness_dir: Path | None = None) -> None:
        """``keys``: the evidence signing keyring, or its directory (default: ``$PRIMUM_KEYS_DIR``, else
        ``$PRIMUM_HOME/keys``, as for ``primum keys``); a directory without a key gets one on first use.
        ``witness_dir``: where each committed append batch's checkpoint is also kept, outside the
        database (``adapters/evidence/witness.py``); None keeps none."""
        parsed = db.normalize_url(url or db.default_database_url())
        self.url: str = parsed.render_as_string(hide_password=False)
        self._engine = db.make_engine(parsed)
        self._postgres = self._engine.dialect.name == "postgresql"
        in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
        if keys is None and in_memory:
            from primum.adapters.evidence.keys import Keyring

            keys = Keyring.generate()  # a throwaway store: a throwaway key
        elif keys is None:
            from primum.adapters.evidence.keys import keys_dir

            keys = keys_dir()
        self._evidence_keys = keys
        self._evidence_log = None  # built on first use (``StorePart.evidence``)
        self._witness = None
        self.witness_dir = witness_dir
        if witness_dir is not None:
            from primum.adapters.evidence.witness import WitnessMirror

            self._witness = WitnessMirror(witness_dir)
        # Pure reads use a deferred BEGIN on SQLite so they never queue behind writers.
        # Each is one statement: on PostgreSQL it runs in autocommit mode, which reads
        # the same snapshot without the BEGIN and ROLLBACK round trips.
        reader_options: dict[str, Any] = {db.SQLITE_BEGIN_OPTION: "DEFERRED"}
        if self._postgres:
            reader_options["isolation_level"] = "AUTOCOMMIT"
        self._reader = self._engine.execution_options(**reader_options)
        if migrate:
            db.migrate(self._engine)

    def close(self) -> None:
        self._engine.dispose()
