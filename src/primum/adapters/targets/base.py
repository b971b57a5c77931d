"""The one interface every target implements, and the registry by name."""

from __future__ import annotations

from typing import Protocol

from primum.core.model.actions import Action, ServiceObservation, ServiceRuntimeSpec


class TargetError(Exception):
    """A target could not carry out an action or an observation. Never a pass."""


class StaleFenceError(TargetError):
    """The data plane has seen a newer fencing token: this controller lost its lease."""


class Target(Protocol):
    """What a step does to the world.

    ``apply`` must be idempotent and must not block for long: it starts work
    (spawns a process, pushes a route) and returns; progress is seen through
    ``observe``. ``fence`` is the caller's lease fencing token; a target that
    can, rejects actions carrying a token older than one it has already seen.
    """

    name: str

    def prepare(self, specs: list[ServiceRuntimeSpec]) -> None:
        """Make the data plane for these services exist (routers, traffic). Idempotent."""

    def apply(self, action: Action, spec: ServiceRuntimeSpec, fence: int) -> None:
        """Carry out one idempotent action."""

    def observe(self, spec: ServiceRuntimeSpec, metrics: bool = False) -> ServiceObservation:
        """Report instances, route and (optionally) router metrics of one service."""

    def router_url(self, spec: ServiceRuntimeSpec) -> str | None:
        """Base URL of the data port of the service's router in its environment (probes), if it has one."""

    def router_admin(self, spec: ServiceRuntimeSpec) -> str | None:
        """Address (``unix:PATH``) of the admin API of the service's router (builtin metrics), if it has one."""

    def close(self) -> None:
        """Release client resources. Never stops the data plane."""
