"""Small value types shared by the estate and release models."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """'10s', '2m', '500ms', '1h' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s', '2m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT[match.group(2)]
    raise ValueError(f"{value!r} is not a duration; write e.g. 30, '30s', '2m', '500ms'")


Duration = Annotated[float, BeforeValidator(parse_duration)]

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN)]


ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN, max_length=255)]
_ENV_NAME = re.compile(ENV_NAME_PATTERN)


class SecretRef(BaseModel):
    """Where a secret is kept, never the secret: an environment variable of the process that starts the
    service (``{from_env: DB_PASSWORD}``) or a file it reads (``{from_file: /run/secrets/db}``, an absolute
    path). The store and the evidence keep only this reference; the target reads the value when it
    starts an instance (issue 13.5)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_env: str | None = None
    from_file: str | None = None


_REF_FORMS = "a string, {from_env: NAME} or {from_file: /absolute/path}"


def parse_env_value(value: Any) -> Any:
    """A setting is a literal string or a reference; anything else fails with the forms it may take."""
    if isinstance(value, str | SecretRef):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"an environment value is {_REF_FORMS}, not {type(value).__name__}")
    unknown = sorted(set(value) - {"from_env", "from_file"})
    if unknown or len(value) != 1:
        raise ValueError(f"a reference to a secret has exactly one of from_env or from_file"
                         f"{f' (not {unknown[0]})' if unknown else ''}; write {_REF_FORMS}")
    [(kind, target)] = value.items()
    if not isinstance(target, str):
        raise ValueError(f"{kind} takes a string, not {type(target).__name__}")
    if kind == "from_env" and not _ENV_NAME.match(target):
        raise ValueError(f"from_env {target!r} is not a variable name (letters, digits and _, not first a digit)")
    if kind == "from_file" and not target.startswith("/"):
        raise ValueError(f"from_file {target!r} is not an absolute path: the controller may run elsewhere "
                         "than the estate file; write the full path")
    return SecretRef(**{kind: target})


# A setting passed to a service: a literal (not a secret; ``${NAME}`` inside it is read from the
# environment) or a reference to a secret.
EnvValue = Annotated[str | SecretRef, BeforeValidator(parse_env_value)]
