"""The composition root: where a process reads its settings and builds its adapters, once.

Every front end (the CLI, the demo, later the server and the site agent) asks a
:class:`Primum` for the store, the targets, the policy bundles, the evidence keys
and the clock instead of constructing them itself, and for the use cases built
on them. :class:`Settings` is the one place that reads primum's environment
variables; a test or an embedding program passes explicit settings instead.

Imports of the adapters are deferred to first use so that a command that needs
only the store does not pay for the targets' HTTP clients or the policy engine.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from primum.adapters.policy.bundle import PolicyBundle
    from primum.adapters.store.repository import Store
    from primum.adapters.targets.registry import Targets
    from primum.app.evidence import EvidenceService
    from primum.app.governance import GovernanceService
    from primum.app.identity import Caller
    from primum.app.releases import ReleaseService


@dataclass(frozen=True)
class Settings:
    """Where primum keeps its state and who is acting.

    ``home``: the state directory (SQLite database, keys, the local runtime's
    records); ``database_url``: the store (default: ``home/primum.db``);
    ``keys_dir``: the evidence signing keys (default: ``home/keys``); ``user``:
    the default actor of a command.
    """

    home: Path
    database_url: str
    keys_dir: Path
    user: str
    estate: str | None = None  # the estate file a command uses when none is given
    key_file: Path | None = None  # the person's own signing key (who they are to primum)
    witness_dir: Path | None = None  # each checkpoint is also kept here, outside the database

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """``PRIMUM_HOME`` (default ``./.primum``), ``PRIMUM_DATABASE_URL``, ``PRIMUM_KEYS_DIR``,
        ``PRIMUM_USER`` (default: the login name), ``PRIMUM_ESTATE``, ``PRIMUM_KEY`` (default
        ``$XDG_CONFIG_HOME/primum/key.pem``, ``~/.config/primum/key.pem``) and ``PRIMUM_WITNESS_DIR`` (default
        ``home/witness``; ``off`` keeps no copy of the checkpoints outside the database)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("PRIMUM_HOME") or ".primum").expanduser().resolve()
        keys = Path(env["PRIMUM_KEYS_DIR"]).expanduser().resolve() if env.get("PRIMUM_KEYS_DIR") else home / "keys"
        witness = env.get("PRIMUM_WITNESS_DIR") or str(home / "witness")
        return cls(home=home, database_url=env.get("PRIMUM_DATABASE_URL") or f"sqlite:///{home / 'primum.db'}",
                   keys_dir=keys, user=env.get("PRIMUM_USER") or getpass.getuser(),
                   estate=env.get("PRIMUM_ESTATE") or None, key_file=personal_key_path(env),
                   witness_dir=None if witness == "off" else Path(witness).expanduser().resolve())


def personal_key_path(env: Mapping[str, str]) -> Path:
    """``$PRIMUM_KEY``, else ``$XDG_CONFIG_HOME/primum/key.pem`` (default ``~/.config``)."""
    if env.get("PRIMUM_KEY"):
        return Path(env["PRIMUM_KEY"]).expanduser().resolve()
    config = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser()
    return (config / "primum" / "key.pem").resolve()


@dataclass
class Primum:
    """One process's adapters and use cases, each built once on first use. Close it when done."""

    settings: Settings
    clock: Callable[[], float] = time.time
    migrate: bool = True
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @classmethod
    def from_environment(cls) -> Primum:
        return cls(Settings.from_environment())

    @cached_property
    def home(self) -> Path:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        return self.settings.home

    @cached_property
    def store(self) -> Store:
        from primum.adapters.store.repository import Store

        self.home  # noqa: B018 - the SQLite file lives there: make it exist first
        store = Store(self.settings.database_url, keys=self.settings.keys_dir, migrate=self.migrate,
                      witness_dir=self.settings.witness_dir)
        self._closers.append(store.close)
        return store

    @cached_property
    def targets(self) -> Targets:
        from primum.adapters.targets.registry import Targets

        targets = Targets(self.home)
        self._closers.append(targets.close)
        return targets

    def policy(self, org_dir: Path | str | None = None) -> PolicyBundle:
        """The baseline bundle extended by ``org_dir``, compiled once per revision."""
        from primum.adapters.policy.bundle import PolicyBundle

        return PolicyBundle.load(org_dir)

    @cached_property
    def releases(self) -> ReleaseService:
        from primum.app.releases import ReleaseService

        return ReleaseService(self.store, self.clock)

    @cached_property
    def governance(self) -> GovernanceService:
        from primum.app.governance import GovernanceService

        return GovernanceService(self.store, self.clock)

    @cached_property
    def evidence(self) -> EvidenceService:
        from primum.app.evidence import EvidenceService

        return EvidenceService(self.store, self.clock)

    def caller(self, key_file: Path | None = None, asserted: str | None = None) -> Caller:
        """Who runs this command: the key in ``key_file`` (default: the settings' ``key_file``) and the
        name asserted with ``--as`` (checked against the key, never trusted on its own)."""
        from primum.adapters.evidence.personal import load_personal_key
        from primum.app.identity import Caller

        path = key_file or self.settings.key_file or personal_key_path(os.environ)
        return Caller(load_personal_key(Path(path).expanduser().resolve()), asserted)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()
