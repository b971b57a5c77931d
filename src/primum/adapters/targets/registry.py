"""Targets by type: adding one is one module (its settings and its ``Target``) and one line here.

A factory gets the primum home (where a target may keep its state) and the
estate's name; :class:`Targets` makes one instance per (estate, type) and hands
it to every service of that type.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from primum.adapters.registry import Registry
from primum.adapters.targets.base import Target
from primum.adapters.targets.haproxy.settings import HaproxyTargetSettings
from primum.adapters.targets.kubernetes.settings import KubernetesTargetSettings
from primum.adapters.targets.ssh.settings import CommandTargetSettings, SshTargetSettings
from primum.core.model.estate import TARGETS as TARGET_SPECS
from primum.core.model.estate import Estate, LocalTargetSettings, NoopTargetSettings

TargetFactory = Callable[[Path, str], Target]


def _local(home: Path, estate: str) -> Target:
    from primum.adapters.targets.local.target import LocalTarget  # the router client pulls in aiohttp/httpx

    return LocalTarget(home, estate)


def _haproxy(home: Path, estate: str) -> Target:
    from primum.adapters.targets.haproxy.target import HaproxyTarget

    return HaproxyTarget(home, estate)


def _noop(home: Path, estate: str) -> Target:
    from primum.adapters.targets.noop import NoopTarget

    return NoopTarget()


def _ssh(home: Path, estate: str) -> Target:
    from primum.adapters.targets.ssh.target import SshTarget  # asyncssh is imported only when used

    return SshTarget(home, estate)


def _command(home: Path, estate: str) -> Target:
    from primum.adapters.targets.ssh.target import SshTarget

    return SshTarget(home, estate, kind="command")


def _kubernetes(home: Path, estate: str) -> Target:
    from primum.adapters.targets.kubernetes.target import KubernetesTarget  # the client is a large import

    return KubernetesTarget(home, estate)


TARGETS: Registry[TargetFactory] = Registry(TARGET_SPECS)
TARGETS.add(LocalTargetSettings, _local)
TARGETS.add(NoopTargetSettings, _noop)
TARGETS.add(SshTargetSettings, _ssh)
TARGETS.add(CommandTargetSettings, _command)
TARGETS.add(KubernetesTargetSettings, _kubernetes)
TARGETS.add(HaproxyTargetSettings, _haproxy)


class Targets:
    """Hands out one target instance per (estate, type) for a controller process."""

    def __init__(self, home: Path):
        self.home = home
        self._cache: dict[tuple[str, str], Target] = {}

    def for_service(self, estate: Estate, service: str) -> Target:
        kind = estate.services[service].target.type
        key = (estate.name, kind)
        if key not in self._cache:
            self._cache[key] = TARGETS.get(kind)(self.home, estate.name)
        return self._cache[key]

    def close(self) -> None:
        for target in self._cache.values():
            target.close()
        self._cache.clear()
