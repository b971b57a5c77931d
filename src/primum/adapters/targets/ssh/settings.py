"""Estate settings of the SSH target: where the host is, how it is trusted, and the commands it runs.

The private key is a reference to a secret (``{from_env: NAME}`` or ``{from_file: /path}``), never its
value, and the host key is pinned by a known_hosts file: a host that answers with another key is refused.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from primum.core.model.capabilities import Capability
from primum.core.model.estate import TargetSpec
from primum.core.model.types import Port, PositiveDuration, SecretRef


class SshCommand(BaseModel):
    """One command run on the host through ``sh -c``; ``{artifact}``, ``{version}`` and ``{digest}`` are
    replaced by the version's values, shell-quoted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: str = Field(min_length=1)
    timeout: PositiveDuration = 60.0


class SshTargetSettings(TargetSpec):
    """A legacy host reached over SSH: deploy, verify and revert commands (apply-only)."""

    type: Literal["ssh"] = "ssh"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.apply})
    host: str = Field(min_length=1)
    port: Port = 22
    user: str = Field(min_length=1)
    key: SecretRef  # the private key (OpenSSH format), by reference
    known_hosts: str  # absolute path of the known_hosts file pinning the host key
    deploy: SshCommand
    verify: SshCommand | None = None
    revert: SshCommand | None = None  # none: forward-only (a failure after the apply holds for a person)
    connect_timeout: PositiveDuration = 10.0

    @field_validator("known_hosts")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"known_hosts {value!r} is not an absolute path; write the full path of the file "
                             "holding the host's public key")
        return value

    @property
    def forward_only(self) -> bool:
        return self.revert is None


class CommandTargetSettings(TargetSpec):
    """The same deploy, verify and revert commands, run on the controller's machine (no SSH)."""

    type: Literal["command"] = "command"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.apply})
    deploy: SshCommand
    verify: SshCommand | None = None
    revert: SshCommand | None = None  # none: forward-only (a failure after the apply holds for a person)

    @property
    def forward_only(self) -> bool:
        return self.revert is None
