"""Small value types shared by the estate and release models, with the ranges every number must keep.

Every numeric field of an estate, release, analysis or identities file uses one of the constrained types
below, so a value outside its range (a port of ``100000000000000000000``, ``set_weight: true``,
``duration: .inf``, ``expect_status: [-0.0]``) is an input error naming the field and the allowed
range, never a value the engine, the store (SQLite holds 64-bit integers) or a ``timedelta`` chokes on
later. Whole numbers are strict: a bool, a float such as ``8080.0`` or a string is not a whole number.
The ranges are documented in docs/FILES.md ("Limits and ranges").
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

# The largest count, limit or sample size a file may give: far above any real setting, far below what a
# 64-bit store column or a loop over it could hold.
MAX_COUNT = 1_000_000
# The longest duration (one year, in seconds): an approval's lifetime is the longest real one.
MAX_DURATION = 366 * 86400.0
# The largest finite number a float field may hold where no narrower range applies.
MAX_NUMBER = 1e12


def _shown(value: Any) -> str:
    """A value as its YAML spelling, so the message quotes what the user wrote."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def explained(allowed: str) -> WrapValidator:
    """Replace pydantic's one-sided message ("greater than or equal to 1") with the whole allowed range."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("out_of_range", "{value} is out of range: {allowed}",
                                      {"value": _shown(value), "allowed": allowed}) from None

    return WrapValidator(check)


def whole_range(low: int, high: int, what: str) -> str:
    return f"{what} is a whole number from {low} to {high}"


def number_range(low: float, high: float, what: str, *, open_low: bool = False, open_high: bool = False) -> str:
    if not open_low and not open_high:
        return f"{what} is a finite number from {low:g} to {high:g}"
    return (f"{what} is a finite number {'above' if open_low else 'at least'} {low:g} and "
            f"{'below' if open_high else 'at most'} {high:g}")


# Each type is spelled out (not built by a function) so type checkers see an ``int`` or a ``float``.
Port = Annotated[int, Field(strict=True, ge=1, le=65535), explained(whole_range(1, 65535, "a port"))]
Weight = Annotated[int, Field(strict=True, ge=0, le=100),
                   explained(whole_range(0, 100, "a weight (percent of traffic)"))]
StatusCode = Annotated[int, Field(strict=True, ge=100, le=599),
                       explained(whole_range(100, 599, "an HTTP status code"))]
# Limits and retries (0 allowed) and samples, measurements, replicas (at least one).
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT), explained(whole_range(0, MAX_COUNT, "a count"))]
PositiveCount = Annotated[int, Field(strict=True, ge=1, le=MAX_COUNT),
                          explained(whole_range(1, MAX_COUNT, "a count"))]
Retries = Annotated[int, Field(strict=True, ge=0, le=10), explained(whole_range(0, 10, "retries"))]
Replicas = Annotated[int, Field(strict=True, ge=1, le=20), explained(whole_range(1, 20, "replicas"))]
Attempts = Annotated[int, Field(strict=True, ge=1, le=20), explained(whole_range(1, 20, "attempts"))]

Fraction = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False),
                     explained(number_range(0, 1, "a fraction"))]
# A multiplier or a size that must be above zero (a latency objective, an allowed ratio).
Ratio = Annotated[float, Field(strict=True, gt=0, le=MAX_NUMBER, allow_inf_nan=False),
                  explained(number_range(0, MAX_NUMBER, "this value", open_low=True))]
# A shift, a slack, a number of days: zero or more.
NonNegative = Annotated[float, Field(strict=True, ge=0, le=MAX_NUMBER, allow_inf_nan=False),
                        explained(number_range(0, MAX_NUMBER, "this value"))]
# An absolute threshold, of either sign.
Bound = Annotated[float, Field(strict=True, ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False),
                  explained(number_range(-MAX_NUMBER, MAX_NUMBER, "a bound"))]
Score = Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False),
                  explained(number_range(0, 100, "a score"))]

# Probabilities and multipliers with bounds of their own (the judge's settings).
Confidence = Annotated[float, Field(strict=True, gt=0.5, lt=1, allow_inf_nan=False),
                       explained(number_range(0.5, 1, "this probability", open_low=True, open_high=True))]
Alpha = Annotated[float, Field(strict=True, gt=0, lt=0.5, allow_inf_nan=False),
                  explained(number_range(0, 0.5, "alpha", open_low=True, open_high=True))]
OpenFraction = Annotated[float, Field(strict=True, gt=0, lt=1, allow_inf_nan=False),
                         explained(number_range(0, 1, "this rate", open_low=True, open_high=True))]
Multiple = Annotated[float, Field(strict=True, ge=1, le=MAX_NUMBER, allow_inf_nan=False),
                     explained(number_range(1, MAX_NUMBER, "this multiple"))]
AboveOne = Annotated[float, Field(strict=True, gt=1, le=MAX_NUMBER, allow_inf_nan=False),
                     explained(number_range(1, MAX_NUMBER, "this ratio", open_low=True))]
RequestRate = Annotated[float, Field(strict=True, gt=0, le=500, allow_inf_nan=False),
                        explained(number_range(0, 500, "a request rate (per second)", open_low=True))]
Days = Annotated[float, Field(strict=True, ge=0, le=3650, allow_inf_nan=False),
                 explained(number_range(0, 3650, "a number of days"))]



def parse_duration(value: Any) -> float:
    """'10s', '2m', '500ms', '1h' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s', '2m'")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{_shown(value)} is not a duration: a duration is a finite number of seconds")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT[match.group(2)]
    raise ValueError(f"{value!r} is not a duration; write e.g. 30, '30s', '2m', '500ms'")


def _duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds > MAX_DURATION:
        raise ValueError(f"{_shown(value)} is out of range: a duration is from 0 to {MAX_DURATION / 86400:g} days")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueError(f"{_shown(value)} is out of range: this duration is above 0 and at most "
                         f"{MAX_DURATION / 86400:g} days (a zero timeout or interval never waits)")
    return seconds


# 0 allowed (a pause of 0, an analysis turned off); at most a year.
Duration = Annotated[float, Field(ge=0, le=MAX_DURATION, allow_inf_nan=False), BeforeValidator(_duration)]
# Timeouts, intervals, steps: above zero, at most a year.
PositiveDuration = Annotated[float, Field(gt=0, le=MAX_DURATION, allow_inf_nan=False),
                             BeforeValidator(_positive_duration)]

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
