"""Reading JSON safely: the one strict JSON parser for every JSON a user hands primum.

CI reports (SARIF, Trivy, Grype, CycloneDX, SLSA provenance), DSSE envelopes and their payloads, and the
manifest of an audit bundle are parsed by :func:`loads`, which refuses what different parsers read
differently or what would hurt later:

* a key twice in one object (one tool reads the first, another the last);
* ``NaN``, ``Infinity`` and numbers that overflow to infinity (``1e400``);
* integers longer than ``MAX_INT_DIGITS`` digits (no count, size or score needs more; Python would spend
  quadratic time converting them);
* nesting deeper than ``MAX_DEPTH`` levels (the YAML limit, ``core.model.yamlfile``), checked without
  recursion after the C parser, which itself stops at Python's recursion limit.

The size of a file is limited by its reader (``adapters/evidence/ingest/base.py`` for CI files).
:class:`JsonRefused` is a ``ValueError``, so callers that already map ``ValueError`` to their own error keep
doing so; :func:`parse_json` turns it into an ``InputError`` naming the file and the line.
"""

from __future__ import annotations

import json
import math
from typing import Any

from primum.core.model.errors import InputError
from primum.core.model.yamlfile import MAX_DEPTH

MAX_INT_DIGITS = 40  # a 128-bit integer has 39 digits


class JsonRefused(ValueError):
    """JSON that is malformed or breaks a limit; ``line`` where the parser knows it."""

    def __init__(self, message: str, line: int | None = None, key: str = ""):
        super().__init__(message)
        self.message = message
        self.line = line
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonRefused(f"the key {key!r} appears twice in one object", key=key)
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not JSON (a number must be finite)")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"the number {text[:40]} is too large (a number must be finite)")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonRefused(f"an integer of {len(text.lstrip('-'))} digits (limit {MAX_INT_DIGITS})")
    return int(text)


def loads(text: str | bytes) -> Any:
    """Strict JSON under the limits above; ``JsonRefused`` (a ``ValueError``) on anything else."""
    try:
        data = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float,
                          parse_int=_int)
    except JsonRefused:
        raise
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"{exc.msg} (line {exc.lineno} column {exc.colno})", line=exc.lineno) from None
    except RecursionError:
        raise JsonRefused(f"nested more than {MAX_DEPTH} levels deep (limit {MAX_DEPTH})") from None
    except UnicodeDecodeError as exc:
        raise JsonRefused(f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    _check_depth(data)
    return data


def _check_depth(data: Any) -> None:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise JsonRefused(f"nested more than {MAX_DEPTH} levels deep (limit {MAX_DEPTH})")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def parse_json(text: str | bytes, name: str, fix: str = "give the file exactly as the tool wrote it") -> Any:
    """:func:`loads`, with an ``InputError`` naming ``name``, the line and the problem."""
    try:
        return loads(text)
    except JsonRefused as exc:
        raise InputError.single(name, f"not valid JSON: {exc.message}", fix, path=exc.key, line=exc.line) from None
