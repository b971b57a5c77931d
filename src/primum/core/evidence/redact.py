"""Redaction of secrets and PHI-like values before anything enters evidence or logs. Pure.

``redact(document)`` walks strings, dicts (keys and values) and lists, replaces every detected
value with a marker and returns the list of replacements, so the evidence can say what was
removed and where without saying what it was::

    >>> redact({"msg": "login with password=hunter2"})[0]
    {'msg': 'login with password=[REDACTED:password]'}

Markers are ``[REDACTED:<kind>]`` or ``[REDACTED:<kind>:<fingerprint>]``. The fingerprint is the
first 8 hex digits of a hash of the value, so the same secret redacts the same way everywhere
(two events leaking one token can be linked) without revealing it. A bare SHA-256 of a
low-entropy value (an SSN has about 30 bits, a DOB about 15, a human password not many more)
is reversed by trying every candidate, so:

- with an installation ``key`` every kind gets ``HMAC-SHA256(key, value)``: stable within the
  installation, useless to anyone without the key;
- without a key only high-entropy machine credentials (AWS keys, GitHub/GitLab/Slack/Stripe
  tokens, JWTs, bearer tokens, PEM private keys: ``HIGH_ENTROPY_KINDS``) get a plain SHA-256
  fingerprint; passwords, connection-string passwords and every PHI kind get none.

What is detected, and why each detector is what it is, is in ``primum.core.sensitive``:
``secrets.py`` (vendor tokens through detect-secrets' plugins, PEM keys, bearer tokens, ``password=…``
assignments) and ``identifiers.py`` (NHS numbers with their check digit, SSNs, MRNs with and without a
label, Medicare MBIs, dates of birth with the name next to them, HL7 PID fields, e-mail addresses and
phone numbers). Here: markers, fingerprints, and the walk over a document.

- dict keys: a value under a key named like a credential (``password``, ``*_secret``,
  ``*_token``, ``api_key``, ``authorization``, ``private_key``…) or like PHI (``ssn``,
  ``mrn``, ``dob``, ``date_of_birth``, ``patient_name``, ``nhs_number``) is replaced whatever it is,
  even a dict, except a reference to a secret (``{from_env: NAME}``, ``{from_file: PATH}``,
  ``${NAME}``), which says where the value is, not what it is;
- e-mail addresses and phone numbers are redacted unless ``contacts=False``: identities in primum
  are names, not addresses, and patient contact details in synthetic data are what leaks.

Over-redaction is the chosen failure (``password: expired`` loses ``expired``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from primum.core.sensitive.identifiers import CONTACT_DETECTORS, IDENTIFIER_DETECTORS
from primum.core.sensitive.secrets import SECRET_DETECTORS, is_reference, key_kind
from primum.core.sensitive.text import Span, Text

__all__ = ["HIGH_ENTROPY_KINDS", "MARKER", "RedactingFilter", "Redaction", "redact", "redact_text"]

MARKER = re.compile(r"\[REDACTED:[a-z0-9_]+(?::[0-9a-f]{8})?\]")

# Machine-generated credentials: 80+ random bits, so 32 bits of a plain SHA-256 reveal nothing.
HIGH_ENTROPY_KINDS = frozenset({
    "aws_key", "github_token", "gitlab_token", "jwt", "slack_token", "stripe_key", "api_token",
    "bearer_token", "private_key",
})


@dataclass(frozen=True)
class Redaction:
    """One replacement: where (a JSON Pointer, RFC 6901, into the redacted document), what kind, the marker."""

    path: str
    kind: str
    marker: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "marker": self.marker}


# --- detectors: core/sensitive, in priority order (on equal spans the earlier names the kind) ----

_PLAIN = (*SECRET_DETECTORS, *IDENTIFIER_DETECTORS)
_WITH_CONTACTS = (*_PLAIN, *CONTACT_DETECTORS)



# --- markers ---------------------------------------------------------------------------------


def _marker(kind: str, value: str, key: bytes | None) -> str:
    if key is not None:
        return f"[REDACTED:{kind}:{hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:8]}]"
    if kind in HIGH_ENTROPY_KINDS:
        return f"[REDACTED:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:8]}]"
    return f"[REDACTED:{kind}]"


def _pointer(parent: str, token: str | int) -> str:
    return f"{parent}/{str(token).replace('~', '~0').replace('/', '~1')}"


# --- strings ---------------------------------------------------------------------------------


def _detect(text: str, contacts: bool) -> list[tuple[int, int, int, str]]:
    wrapped = Text(text)
    spans: list[tuple[int, int, int, str]] = []
    for priority, detector in enumerate(_WITH_CONTACTS if contacts else _PLAIN):
        for start, end, kind in detector(wrapped):
            if end > start:
                spans.append((start, end, priority, kind))
    return spans


def _scan(text: str, contacts: bool) -> list[Span]:
    """Detected spans, overlaps merged (the earliest, then longest, then first detector wins the kind)."""
    spans = _detect(text, contacts)
    if not spans:
        return []
    # Markers already in the text stay as they are: that is what makes redaction idempotent.
    done = [(m.start(), m.end()) for m in MARKER.finditer(text)] if "[REDACTED:" in text else []
    merged: list[list[Any]] = []
    for start, end, _, kind in sorted(spans, key=lambda s: (s[0], -s[1], s[2])):
        if any(start < d_end and d_start < end for d_start, d_end in done):
            continue
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, kind])
    return [(start, end, kind) for start, end, kind in merged]


def redact_text(
    text: str, *, key: bytes | None = None, contacts: bool = True, path: str = ""
) -> tuple[str, list[Redaction]]:
    """Redact one string; ``path`` is where it sits in its document, for the notes."""
    if len(text) < 5:  # shorter than the shortest detection ("MRN 7" has 5 characters)
        return text, []
    spans = _scan(text, contacts)
    if not spans:
        return text, []
    pieces: list[str] = []
    notes: list[Redaction] = []
    at = 0
    for start, end, kind in spans:
        marker = _marker(kind, text[start:end], key)
        pieces += [text[at:start], marker]
        notes.append(Redaction(path=path, kind=kind, marker=marker))
        at = end
    pieces.append(text[at:])
    return "".join(pieces), notes


# --- documents -------------------------------------------------------------------------------

_SCALARS = (int, float, type(None), _dt.date, _dt.time, _dt.timedelta, Decimal, UUID)


class _Walk:
    def __init__(self, key: bytes | None, contacts: bool):
        self.key = key
        self.contacts = contacts
        self.notes: list[Redaction] = []

    def text(self, value: str, path: str) -> str:
        redacted, notes = redact_text(value, key=self.key, contacts=self.contacts, path=path)
        self.notes += notes
        return redacted

    def under_key(self, kind: str, value: Any, path: str) -> Any:
        """A value under a credential or PHI key: replaced whole, whatever it is."""
        if value is None or value == "" or isinstance(value, bool) or is_reference(value):
            return value  # nothing to hide: a flag such as use_token: true, or where the secret is kept
        if isinstance(value, str):
            if MARKER.fullmatch(value):
                return value
            shown = value
        else:
            shown = json.dumps(value, sort_keys=True, default=str)
        marker = _marker(kind, shown, self.key)
        self.notes.append(Redaction(path=path, kind=kind, marker=marker))
        return marker

    def any(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.text(value, path)
        if isinstance(value, dict):
            return self.mapping(value, path)
        if isinstance(value, list | tuple):
            items = [self.any(item, _pointer(path, i)) for i, item in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, _SCALARS):
            return value
        # Fail closed: an object we cannot look inside may carry a secret in its fields or repr.
        raise TypeError(
            f"cannot redact a {type(value).__name__} at {path or '/'}: convert it to JSON data (dict, list, str, "
            "number) before it goes into evidence or a log"
        )

    def mapping(self, value: dict[Any, Any], path: str) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for name, item in value.items():
            new_name = name
            if isinstance(name, str):
                seen = len(self.notes)
                new_name = base = self.text(name, "")
                suffix = 2
                while new_name in out:  # two keys redacted to one marker must not overwrite each other
                    new_name, suffix = f"{base}#{suffix}", suffix + 1
                here = _pointer(path, new_name)
                for i in range(seen, len(self.notes)):
                    self.notes[i] = Redaction(path=here, kind=self.notes[i].kind, marker=self.notes[i].marker)
                kind = key_kind(name)
            else:
                here, kind = _pointer(path, name), None
            out[new_name] = self.under_key(kind, item, here) if kind else self.any(item, here)
        return out


def redact(value: Any, *, key: bytes | None = None, contacts: bool = True) -> tuple[Any, list[Redaction]]:
    """Return a redacted copy of ``value`` (str, dict, list, tuple, numbers, dates) and the replacements made.

    ``key`` is the installation's redaction key (any bytes, 32 random ones are plenty): with it
    every marker has a keyed fingerprint, without it only high-entropy secrets do (see module
    docstring). ``contacts`` also redacts e-mail addresses and phone numbers. Raises TypeError,
    naming the path, for any other type.
    """
    # Fast path, for the usual event with nothing to hide: copy it while collecting its strings,
    # and scan them once, joined by newlines. No detector matches across a newline, so a value
    # that would be redacted on its own is found in the joined text too; only then is the
    # document walked string by string, which is what gives each note its path.
    strings: list[str] = []
    copied = _copy_clean(value, strings)
    if copied is not _DIRTY and not _detect("\n".join(strings), contacts):
        return copied, []
    walk = _Walk(key, contacts)
    return walk.any(value, ""), walk.notes


_DIRTY = object()


def _copy_clean(value: Any, strings: list[str]) -> Any:
    """A copy of ``value``, its strings collected; _DIRTY if a key alone calls for redaction or a type is unknown."""
    if isinstance(value, str):
        strings.append(value)
        return value
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            if isinstance(name, str):
                if key_kind(name) and not (item is None or item == "" or isinstance(item, bool)
                                           or is_reference(item)):
                    return _DIRTY
                strings.append(name)
            item = _copy_clean(item, strings)
            if item is _DIRTY:
                return _DIRTY
            out[name] = item
        return out
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            item = _copy_clean(item, strings)
            if item is _DIRTY:
                return _DIRTY
            items.append(item)
        return items if isinstance(value, list) else tuple(items)
    return value if isinstance(value, _SCALARS) else _DIRTY


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's formatted message before any handler sees it."""

    def __init__(self, key: bytes | None = None, contacts: bool = True):
        super().__init__()
        self.key = key
        self.contacts = contacts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted, notes = redact_text(message, key=self.key, contacts=self.contacts)
        if notes:
            record.msg, record.args = redacted, None
        # A traceback repeats the exception's message (a failed INSERT quotes its values): the formatter
        # uses exc_text when it is set, so the redacted text is what any handler writes.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, key=self.key, contacts=self.contacts)[0]
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, key=self.key, contacts=self.contacts)[0]
        return True
