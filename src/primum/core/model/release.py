"""A release: artifacts pinned by digest, one per changed service."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import ConfigDict, Field

from primum.core.model.estate import Strategy, Strict
from primum.core.model.types import Digest, Name


class ArtifactPin(Strict):
    """The exact artifact of one service, pinned by its sha256 digest."""

    artifact: str = Field(min_length=1)  # path relative to the release file, or absolute
    digest: Digest
    version: str = Field(default="", max_length=64)
    strategy: Strategy | None = None  # overrides the service's default strategy


class Release(Strict):
    api_version: Literal["primum/v1"] = Field(alias="apiVersion")
    kind: Literal["Release"]
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    description: str = ""
    ticket: str = ""
    source_commit: str = Field(default="", pattern=r"^([0-9a-f]{7,64})?$")
    services: dict[Name, ArtifactPin] = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def canonical_json(data: Any) -> bytes:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_digest(model: Strict) -> str:
    """sha256 of the model's canonical JSON, as declared (aliases, no defaults dropped)."""
    data = model.model_dump(mode="json", by_alias=True)
    return "sha256:" + hashlib.sha256(canonical_json(data)).hexdigest()
