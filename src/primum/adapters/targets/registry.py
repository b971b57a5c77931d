"""Targets by name: adding a target is one module and one line here."""

from __future__ import annotations

from pathlib import Path

from primum.adapters.targets.base import Target
from primum.core.model.estate import Estate


class Targets:
    """Hands out one target instance per (estate, kind) for a controller process."""

    def __init__(self, home: Path):
        self.home = home
        self._cache: dict[tuple[str, str], Target] = {}

    def for_service(self, estate: Estate, service: str) -> Target:
        kind = estate.services[service].target.type
        key = (estate.name, kind)
        if key not in self._cache:
            self._cache[key] = self._make(kind, estate)
        return self._cache[key]

    def _make(self, kind: str, estate: Estate) -> Target:
        if kind == "local":
            from primum.adapters.targets.local.target import LocalTarget

            return LocalTarget(self.home, estate.name)
        if kind == "noop":
            from primum.adapters.targets.noop import NoopTarget

            return NoopTarget()
        raise ValueError(f"unknown target type {kind!r}")

    def close(self) -> None:
        for target in self._cache.values():
            target.close()
        self._cache.clear()

