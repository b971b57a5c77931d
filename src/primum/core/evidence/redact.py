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

Detectors, and why each is what it is:

- vendor token formats (AWS, GitHub, GitLab, JWT, Slack, Stripe, Twilio, SendGrid, npm, PyPI,
  OpenAI, Azure storage, Discord, Telegram, Mailchimp, Square, Artifactory) and ``scheme://user:
  pass@host`` passwords come from the regex plugins of Yelp's ``detect-secrets``, the scanner
  ``scan.py`` also uses, so one well-kept list of formats serves both. Only the plugins' pure
  ``analyze_string`` is called: never ``verify`` (network) and not the keyword and entropy
  plugins, which would flag digests like ``sha256:…`` and need file context;
- PEM private key blocks, ``Authorization:`` headers, ``Bearer <token>`` and generic
  ``password=…``/``secret: …``/``api_key=…`` assignments are our regexes: detect-secrets finds
  only the ``BEGIN … PRIVATE KEY`` line, and its keyword plugin depends on the file type and
  reports values, not spans, so it cannot say what to cut out of free text;
- PHI has no library of the same standing (Presidio needs spaCy models and is far too slow
  for every event), and the PHI that reaches release evidence has a few stable shapes, so the
  patterns are regexes written for false-positive control: US SSNs ``ddd-dd-dddd`` minus the
  never-issued areas 000, 666 and 9xx, group 00 and serial 0000 (undashed only after an
  ``SSN`` label); MRNs only after an ``MRN``/``medical record number`` label and only when the
  value has a digit; dates of birth only after a ``DOB``/``born``/``date of birth`` label
  (a bare date is never redacted), plus the capitalised name right before that label; HL7 v2
  ``PID`` segments, whose identifier, name, birth date, address, phone, account, SSN and
  licence fields (PID-2..7, 9, 11, 13, 14, 18, 19, 20) are cut field by field.
- dict keys: a value under a key named like a credential (``password``, ``*_secret``,
  ``*_token``, ``api_key``, ``authorization``, ``private_key``…) or like PHI (``ssn``,
  ``mrn``, ``dob``, ``date_of_birth``, ``patient_name``) is replaced whatever it is, even a dict.
- e-mail addresses and phone numbers only with ``contacts=True``: approvers' e-mail
  identities are themselves evidence (separation of duties), and a phone pattern matches
  too many numbers in telemetry; HL7 PID-13/14 phones are always cut.

Not detected: free-text names without a DOB label (that needs NER), addresses outside HL7,
secrets split across several strings, HL7 with a field separator other than ``|``.
Over-redaction is the chosen failure (``password: expired`` loses ``expired``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any
from uuid import UUID

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


# --- detectors: each yields (start, end, kind) spans of one string -------------------------------

Span = tuple[int, int, str]


class _Text:
    """A string and its lowercase form. Case-insensitive patterns run on ``low`` without re.I,
    about 8x faster in CPython's re; when lowercasing changes the length (a few non-ASCII
    letters such as "İ") indices would no longer line up, so they fall back to re.I on ``text``."""

    __slots__ = ("low", "lowered", "text")

    def __init__(self, text: str):
        self.text = text
        self.lowered = text.lower()
        self.low = self.lowered if len(self.lowered) == len(text) else None

    def has(self, needles: tuple[str, ...]) -> bool:
        """A cheap gate: one of these is in the text (case-insensitive; needles with capitals match exactly)."""
        return any(n in (self.lowered if n.islower() else self.text) for n in needles)


class _Insensitive:
    """A case-insensitive regex, written in lowercase."""

    def __init__(self, pattern: str):
        self.plain = re.compile(pattern)
        self.folded = re.compile(pattern, re.IGNORECASE)

    def finditer(self, t: _Text) -> Iterator[re.Match[str]]:
        return self.plain.finditer(t.low) if t.low is not None else self.folded.finditer(t.text)


# (plugin, kind, needles): a plugin runs only when one of its needles is in the text, which keeps
# redaction of a short string to microseconds. Each needle is a literal every one of the plugin's
# patterns requires (tests check each plugin still fires on a synthetic token); None = always run.

# Plugins whose capture group is the secret itself (AWS's keyword form, URL passwords, npm tokens);
# in the others a group only marks a prefix (ghp|gho…), so the whole match is cut.
_SECRET_IN_GROUP = frozenset({"AWSKeyDetector", "BasicAuthDetector", "NpmDetector"})
_TRIM = " \t\r\n\"'=:"
_JWT_TAIL = re.compile(r"[A-Za-z0-9\-_.+/=]*")


@dataclass(frozen=True)
class _Library:
    plugins: tuple[tuple[Any, str, tuple[str, ...] | None], ...]
    by_needle: dict[str, set[int]]
    needles: re.Pattern[str]
    always: set[int]
    jwt: Any


@lru_cache(maxsize=1)
def _load_library() -> _Library:
    """detect-secrets' plugins, loaded on the first redaction: a command that redacts nothing (``primum
    status``) does not pay ~0.1 s to import them."""
    from detect_secrets.plugins.artifactory import ArtifactoryDetector
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
    from detect_secrets.plugins.basic_auth import BasicAuthDetector
    from detect_secrets.plugins.discord import DiscordBotTokenDetector
    from detect_secrets.plugins.github_token import GitHubTokenDetector
    from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.mailchimp import MailchimpDetector
    from detect_secrets.plugins.npm import NpmDetector
    from detect_secrets.plugins.openai import OpenAIDetector
    from detect_secrets.plugins.pypi_token import PypiTokenDetector
    from detect_secrets.plugins.sendgrid import SendGridDetector
    from detect_secrets.plugins.slack import SlackDetector
    from detect_secrets.plugins.square_oauth import SquareOAuthDetector
    from detect_secrets.plugins.stripe import StripeDetector
    from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
    from detect_secrets.plugins.twilio import TwilioKeyDetector

    plugins: tuple[tuple[Any, str, tuple[str, ...] | None], ...] = (
        (AWSKeyDetector(), "aws_key", ("akia", "asia", "abia", "acca", "a3t", "aws")),
        (GitHubTokenDetector(), "github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
        (GitLabTokenDetector(), "gitlab_token", (
            "glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "glcbt-", "glimt-", "glptt-", "glagent-", "gloas-",
            "gr1348941",
        )),
        (JwtTokenDetector(), "jwt", ("eyJ",)),
        (SlackDetector(), "slack_token", ("xox", "hooks.slack.com")),
        (StripeDetector(), "stripe_key", ("k_live_",)),
        (TwilioKeyDetector(), "api_token", ("AC", "SK")),
        (SendGridDetector(), "api_token", ("SG.",)),
        (NpmDetector(), "api_token", ("_authtoken",)),
        (PypiTokenDetector(), "api_token", ("pypi-",)),
        (OpenAIDetector(), "api_token", ("T3BlbkFJ",)),
        (AzureStorageKeyDetector(), "api_token", ("AccountKey=",)),
        (DiscordBotTokenDetector(), "api_token", (".",)),
        (TelegramBotTokenDetector(), "api_token", (":",)),
        (MailchimpDetector(), "api_token", ("-us",)),
        (SquareOAuthDetector(), "api_token", ("sq0csp-",)),
        (ArtifactoryDetector(), "api_token", ("AKC", "AP")),
        (BasicAuthDetector(), "connection_password", ("://",)),
    )
    # One search for every plugin's needles, on the lowercase text (a superset of the exact needles),
    # then only the plugins whose needles were seen run: per plugin call overhead is what costs.
    # The lookahead finds overlapping needles; at one position it reports the longest, so each
    # needle also stands for the needles that are its prefixes ("acca" also means "ac").
    plugins_of: dict[str, set[int]] = {}
    for index, entry in enumerate(plugins):
        for needle in entry[2] or ():
            plugins_of.setdefault(needle.lower(), set()).add(index)
    by_needle = {n: set().union(*(p for m, p in plugins_of.items() if n.startswith(m))) for n in plugins_of}
    needles = re.compile("(?=(" + "|".join(re.escape(n) for n in sorted(by_needle, key=len, reverse=True)) + "))")
    always = {i for i, (_, _, hints) in enumerate(plugins) if hints is None}
    return _Library(plugins, by_needle, needles, always, JwtTokenDetector)


def _library(t: _Text) -> Iterator[Span]:
    # The plugins' regexes, not their analyze_string: that returns values, not places, and with a
    # group it returns the group, which for GitHub and GitLab is just the "ghp" prefix.
    lib = _load_library()
    text = t.text
    chosen = set(lib.always)
    for needle in set(lib.needles.findall(t.lowered)):
        chosen |= lib.by_needle[needle]
    for index in sorted(chosen):
        plugin, kind, _ = lib.plugins[index]
        by_group = type(plugin).__name__ in _SECRET_IN_GROUP
        for pattern in plugin.denylist:
            for match in pattern.finditer(text):
                group = next((g for g in range(1, pattern.groups + 1) if match.group(g)), 0) if by_group else 0
                start, end = match.span(group)
                if kind == "jwt":
                    if not lib.jwt.is_formally_valid(match.group()):
                        continue
                    # The plugin's match stops before the signature; cut the whole token.
                    end = _JWT_TAIL.match(text, end).end()  # type: ignore[union-attr]  # matches "" at worst
                while start < end and text[start] in _TRIM:
                    start += 1
                while end > start and text[end - 1] in _TRIM:
                    end -= 1
                yield start, end, kind


_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)"
    r"|PuTTY-User-Key-File-\d:.*?(?:Private-MAC:[^\r\n]*|\Z)",
    re.DOTALL,
)
_BEARER = _Insensitive(r"\bbearer[ \t]+([a-z0-9\-._~+/]{8,}=*)")
_AUTHORIZATION = _Insensitive(r"""\b(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?([^"'\r\n]+)""")
_ASSIGNMENT_WORDS = ("pass", "pwd", "secret", "token", "key", "credential")
_ASSIGNMENT = _Insensitive(
    r"""(passwd|password|passphrase|pwd|secret[_-]?key|access[_-]?key|private[_-]?key|api[_-]?key"""
    r"""|secret|token|credentials?)(?![a-z0-9])["']?[ \t]*(?::=|=>|=|:)[ \t]*"""
    r"""(?:"([^"\r\n]*)"|'([^'\r\n]*)'|([^\s"',;&}\])]+))"""
)
# A reference to a secret is not a secret: ${VAR}, $VAR, {{ .Values.x }}, %(x)s, <placeholder>, ****.
_REFERENCE = re.compile(r"^(?:\$|\{\{|%\(|<|\*+$|(?i:null|none|true|false)$)")

# An SSN is found from its "-dd-" middle (a literal-led search, cheap), then checked around it.
_SSN_MIDDLE = re.compile(r"-\d\d-")
_SSN_LABELLED = _Insensitive(
    r"\b(?:ssn|social[ _-]security(?:[ _-](?:number|no))?)\.?[ \t]*[:#=]?[ \t]*"
    r"((?!000|666|9\d\d)\d{3}[ -]?(?!00)\d{2}[ -]?(?!0000)\d{4})(?!\d)"
)
_MRN = _Insensitive(
    r"""\b(?:mrn|medical[ _-]record(?:[ _-](?:number|num|no))?)(?![a-z])\.?["']?[ \t]*[:#=]?[ \t]*["']?"""
    r"""([a-z0-9][a-z0-9-]*)"""
)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = (
    rf"\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{8}}"
    rf"|\d{{1,2}}[ \t]+{_MONTH},?[ \t]+\d{{4}}|{_MONTH}[ \t]+\d{{1,2}},?[ \t]+\d{{4}}"
)
_DOB_WORDS = ("dob", "d.o.b", "birth", "born")
_DOB = _Insensitive(
    r"""\b(?:d\.?o\.?b\.?|date[ _-]of[ _-]birth|birth[ _-]?date|birthday|born(?:[ \t]+on)?)(?![a-z])"""
    rf"""["']?[ \t]*[:=#]?[ \t]*["']?({_DATE})(?!\d)"""
)
_NAME_BEFORE = re.compile(r"([A-Z][A-Za-z'\-]+(?:,?[ \t]+(?:[A-Z]\.|[A-Z][A-Za-z'\-]+)){1,3})[ \t]*[,;:(\-]?[ \t]*\Z")
_HL7_PID = re.compile(r"(?<![A-Za-z0-9])PID\|([^\r\n]*)")
_PID_FIELDS = {
    2: "mrn", 3: "mrn", 4: "mrn", 5: "person_name", 6: "person_name", 7: "dob", 9: "person_name",
    11: "address", 13: "phone", 14: "phone", 18: "account_number", 19: "ssn", 20: "drivers_license",
}
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\d-])(?:\+?1[ .-]?)?(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d-])")


def _has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def _pem(t: _Text) -> Iterator[Span]:
    if "PRIVATE KEY" in t.text or "PuTTY" in t.text:
        for match in _PEM.finditer(t.text):
            yield match.start(), match.end(), "private_key"


def _bearer(t: _Text) -> Iterator[Span]:
    if "bearer" in t.lowered:
        for match in _BEARER.finditer(t):
            if _has_digit(match.group(1)):  # real tokens have digits; "Bearer authentication" is prose
                yield match.start(1), match.end(1), "bearer_token"


def _authorization(t: _Text) -> Iterator[Span]:
    if "authorization" in t.lowered:
        for match in _AUTHORIZATION.finditer(t):
            yield match.start(1), match.end(1), "authorization"


def _assignments(t: _Text) -> Iterator[Span]:
    if not t.has(_ASSIGNMENT_WORDS):
        return
    for match in _ASSIGNMENT.finditer(t):
        group = 2 if match.group(2) is not None else 3 if match.group(3) is not None else 4
        value = match.group(group)
        if not value or _REFERENCE.match(value):
            continue
        yield match.start(group), match.end(group), "password" if match.group(1)[0] in "pP" else "secret"


def _ssns(t: _Text) -> Iterator[Span]:
    text = t.text
    for match in _SSN_MIDDLE.finditer(text):
        start, end = match.start() - 3, match.end() + 4
        if start < 0 or end > len(text):
            continue
        area, group, serial = text[start : match.start()], match.group()[1:3], text[match.end() : end]
        if not (area.isdigit() and area.isascii() and serial.isdigit() and serial.isascii()):
            continue
        if (start > 0 and (text[start - 1].isdigit() or text[start - 1] == "-")) or (
            end < len(text) and (text[end].isdigit() or text[end] == "-")
        ):
            continue
        # Never issued: area 000, 666 and 900-999 (ITINs, ads), group 00, serial 0000.
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        yield start, end, "ssn"
    if t.has(("ssn", "social")):
        for m in _SSN_LABELLED.finditer(t):
            yield m.start(1), m.end(1), "ssn"


def _mrns(t: _Text) -> Iterator[Span]:
    if t.has(("mrn", "medical")):
        for match in _MRN.finditer(t):
            if _has_digit(match.group(1)):  # "MRN lookup" is prose, "MRN SYN0042" is an identifier
                yield match.start(1), match.end(1), "mrn"


def _dates_of_birth(t: _Text) -> Iterator[Span]:
    if not t.has(_DOB_WORDS):
        return
    for match in _DOB.finditer(t):
        yield match.start(1), match.end(1), "dob"
        name = _NAME_BEFORE.search(t.text, max(0, match.start() - 80), match.start())
        if name:
            yield name.start(1), name.end(1), "person_name"


def _hl7(t: _Text) -> Iterator[Span]:
    if "PID|" not in t.text:
        return
    for match in _HL7_PID.finditer(t.text):
        at = match.start(1)
        for number, field in enumerate(match.group(1).split("|"), start=1):
            kind = _PID_FIELDS.get(number)
            if kind and field.strip("^~& "):
                yield at, at + len(field), kind
            at += len(field) + 1


def _emails(t: _Text) -> Iterator[Span]:
    if "@" in t.text:
        for match in _EMAIL.finditer(t.text):
            yield match.start(), match.end(), "email"


def _phones(t: _Text) -> Iterator[Span]:
    for match in _PHONE.finditer(t.text):
        yield match.start(), match.end(), "phone"


# In priority order: on equal spans the earlier detector names the kind.
_PLAIN = (_pem, _library, _bearer, _authorization, _assignments, _ssns, _mrns, _dates_of_birth, _hl7)
_WITH_CONTACTS = (*_PLAIN, _emails, _phones)


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
    wrapped = _Text(text)
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
    text: str, *, key: bytes | None = None, contacts: bool = False, path: str = ""
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

_SECRET_KEY_SUFFIXES = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey", "accesskey",
    "secretkey", "authorization", "credentials", "credential",
)
_SECRET_KEYS_EXACT = frozenset({"pwd", "pass", "cookie", "setcookie"})
_PHI_KEYS = {
    "ssn": "ssn", "socialsecuritynumber": "ssn", "mrn": "mrn", "medicalrecordnumber": "mrn",
    "dob": "dob", "dateofbirth": "dob", "birthdate": "dob", "patientname": "person_name",
}


@lru_cache(maxsize=4096)
def _key_kind(name: str) -> str | None:
    """The kind of value a key name announces, or None: ``db_password`` → password, ``MRN`` → mrn."""
    norm = "".join(c for c in name.lower() if c.isalnum())
    if norm in _PHI_KEYS:
        return _PHI_KEYS[norm]
    if norm in _SECRET_KEYS_EXACT or norm.endswith(_SECRET_KEY_SUFFIXES):
        if "pass" in norm or "pwd" in norm:
            return "password"
        return "authorization" if norm.endswith("authorization") else "secret"
    return None


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
        if value is None or value == "" or isinstance(value, bool):
            return value  # nothing to hide, and a flag such as use_token: true is not a secret
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
                kind = _key_kind(name)
            else:
                here, kind = _pointer(path, name), None
            out[new_name] = self.under_key(kind, item, here) if kind else self.any(item, here)
        return out


def redact(value: Any, *, key: bytes | None = None, contacts: bool = False) -> tuple[Any, list[Redaction]]:
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
                if _key_kind(name) and not (item is None or item == "" or isinstance(item, bool)):
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

    def __init__(self, key: bytes | None = None, contacts: bool = False):
        super().__init__()
        self.key = key
        self.contacts = contacts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted, notes = redact_text(message, key=self.key, contacts=self.contacts)
        if notes:
            record.msg, record.args = redacted, None
        return True
