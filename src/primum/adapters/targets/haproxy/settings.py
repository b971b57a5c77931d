"""The estate settings of ``type: haproxy`` (kept apart from the target so the registry imports no sockets)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from primum.core.model.capabilities import TRAFFIC, Capability
from primum.core.model.estate import TargetSpec
from primum.core.model.types import Name, PositiveDuration, Replicas


class HaproxyTargetSettings(TargetSpec):
    """Servers of an HAProxy backend, driven through the Runtime API on its admin socket (on-prem VMs).

    ``sockets`` names the admin socket per environment; ``slots`` the backend's ``server`` lines primum
    may point at instances (at least twice ``replicas``: old and new versions run side by side)."""

    type: Literal["haproxy"] = "haproxy"
    capabilities: ClassVar[frozenset[Capability]] = TRAFFIC
    sockets: dict[Name, str] = Field(min_length=1)  # environment -> admin socket path
    backend: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    slots: list[str] = Field(min_length=2)
    frontends: dict[Name, str] = Field(default_factory=dict)  # environment -> frontend URL (probes)
    command: list[str] = Field(default_factory=lambda: ["{python}", "{artifact}", "--port", "{port}"],
                               min_length=1)
    host: str = "127.0.0.1"  # the address the instances listen on, as HAProxy reaches them
    replicas: Replicas = 1
    startup_timeout: PositiveDuration = 30.0

    @model_validator(mode="after")
    def _enough_slots(self) -> HaproxyTargetSettings:
        for slot in self.slots:
            if not slot or any(c.isspace() or c in "/;" for c in slot):
                raise ValueError(f"slot {slot!r} is not a server name (no spaces, '/' or ';')")
        if len(set(self.slots)) != len(self.slots):
            raise ValueError("slots must be distinct server names")
        if len(self.slots) < 2 * self.replicas:
            raise ValueError(f"{len(self.slots)} slot(s) cannot run two versions of {self.replicas} replica(s) "
                             f"side by side: declare at least {2 * self.replicas} slots (server lines)")
        return self
