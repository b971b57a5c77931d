"""The secrets an estate refers to, read at the moment they are used (issue 13.5).

The estate holds where a secret is, never its value, so the store and the evidence never see one:
``target.env`` values (``{from_env: NAME}``, ``{from_file: /path}``, ``${NAME}`` inside a literal) are read
when a target starts an instance, into that process's environment only; HTTP header values of metric sources
and probes (``Authorization: "Bearer ${PROM_TOKEN}"``) when the request is sent. Fail closed: a variable that
is not set or a file that cannot be read is an error naming the setting and the fix, never an empty value.
Messages never carry a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from re import Match

from primum.core.model.types import EnvValue, SecretRef
from primum.core.sensitive.secrets import ENV_REFERENCE

__all__ = ["SecretUnavailable", "expand_headers", "resolve_env"]

MAX_SECRET_FILE_BYTES = 64 * 1024


class SecretUnavailable(Exception):
    """A secret an environment setting refers to cannot be read."""


def _variable(setting: str, name: str, environ: Mapping[str, str], alternative: str = ", or refer to a file "
              "with from_file") -> str:
    value = environ.get(name)
    if value is None:
        raise SecretUnavailable(
            f"{setting}: the variable {name} is not set in the controller's environment; fix: set it "
            f"where the controller runs (`primum up`, `primum controller`){alternative}")
    return value


def _file(setting: str, ref: Path) -> str:
    try:
        if ref.stat().st_size > MAX_SECRET_FILE_BYTES:
            raise SecretUnavailable(f"target.env.{setting}: {ref} is over {MAX_SECRET_FILE_BYTES} bytes; fix: "
                                    "point from_file at the file holding only the secret")
        text = ref.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise SecretUnavailable(f"target.env.{setting}: cannot read {ref} ({why}); fix: make it readable by "
                                "the controller's user, or correct from_file") from None
    return text[:-1] if text.endswith("\n") else text  # files written by `echo` end with one newline


def resolve_env(env: Mapping[str, EnvValue], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values to pass to a started process: references read, ``${NAME}`` in literals expanded."""
    source = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for setting, value in env.items():
        if isinstance(value, SecretRef):
            if value.from_env is not None:
                out[setting] = _variable(f"target.env.{setting}", value.from_env, source)
            else:
                out[setting] = _file(setting, Path(value.from_file or ""))
        else:
            def expand(match: Match[str], setting: str = setting) -> str:
                return _variable(f"target.env.{setting}", match.group(1), source)

            out[setting] = ENV_REFERENCE.sub(expand, value)
    return out


def expand_headers(headers: Mapping[str, str], where: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """HTTP headers with each ``${NAME}`` read from the environment; ``where`` names them in an error
    (``metric error_rate: headers``)."""
    source = os.environ if environ is None else environ
    out = {}
    for name, value in headers.items():
        def expand(match: Match[str], name: str = name) -> str:
            return _variable(f"{where}.{name}", match.group(1), source, alternative="")

        out[name] = ENV_REFERENCE.sub(expand, value) if "${" in value else value
    return out
