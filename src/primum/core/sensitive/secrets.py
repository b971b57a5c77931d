"""Credentials in text, and whether a literal configuration value is one. Pure.

- vendor token formats (AWS, GitHub, GitLab, JWT, Slack, Stripe, Twilio, SendGrid, npm, PyPI,
  OpenAI, Azure storage, Discord, Telegram, Mailchimp, Square, Artifactory) and ``scheme://user:
  pass@host`` passwords come from the regex plugins of Yelp's ``detect-secrets``, the scanner
  ``adapters/evidence/scan.py`` also uses, so one well-kept list of formats serves both. Only the
  plugins' patterns are used: never ``verify`` (network) and not the keyword plugin, which depends
  on the file type and reports values, not spans;
- PEM private key blocks, ``Authorization:`` headers, ``Bearer <token>`` and generic
  ``password=…``/``secret: …``/``api_key=…`` assignments are our regexes: detect-secrets finds
  only the ``BEGIN … PRIVATE KEY`` line, and cannot say what to cut out of free text;
- :func:`key_kind` reads what a key name announces (``db_password`` → password, ``MRN`` → mrn);
- :func:`literal_secret` says why a literal value (an estate's ``target.env``) looks like a secret:
  the name, any detector above, or detect-secrets' high-entropy plugins over the bare value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from primum.core.sensitive.text import Insensitive, Span, Text, has_digit

__all__ = ["ENV_REFERENCE", "SECRET_DETECTORS", "is_reference", "key_kind", "literal_secret"]

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
    needles: tuple[tuple[int, tuple[str, ...]], ...]
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
    # Needles in lower case are looked for in the lowercase text, the others exactly (the plugins' patterns
    # are case-sensitive there: "AC" of Twilio, "AP" of Artifactory, "eyJ" of a JWT). Plain ``in`` tests,
    # one per needle, cost a few microseconds: less than one regex search for all of them, and far less
    # than running a plugin that cannot match (Artifactory's "AP" is "ap" in every "api").
    needles = tuple((index, tuple(entry[2])) for index, entry in enumerate(plugins) if entry[2])
    always = {i for i, (_, _, hints) in enumerate(plugins) if hints is None}
    return _Library(plugins, needles, always, JwtTokenDetector)


def _library(t: Text) -> Iterator[Span]:
    # The plugins' regexes, not their analyze_string: that returns values, not places, and with a
    # group it returns the group, which for GitHub and GitLab is just the "ghp" prefix.
    lib = _load_library()
    text = t.text
    chosen = set(lib.always)
    chosen.update(index for index, needles in lib.needles if t.has(needles))
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
_BEARER = Insensitive(r"\bbearer[ \t]+([a-z0-9\-._~+/]{8,}=*)")
_AUTHORIZATION = Insensitive(r"""\b(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?([^"'\r\n]+)""")
_ASSIGNMENT_WORDS = ("pass", "pwd", "secret", "token", "key", "credential")
_ASSIGNMENT = Insensitive(
    r"""(passwd|password|passphrase|pwd|secret[_-]?key|access[_-]?key|private[_-]?key|api[_-]?key"""
    r"""|secret|token|credentials?)(?![a-z0-9])["']?[ \t]*(?::=|=>|=|:)[ \t]*"""
    r"""(?:"([^"\r\n]*)"|'([^'\r\n]*)'|([^\s"',;&}\])]+))"""
)
# A reference to a secret is not a secret: ${VAR}, $VAR, {{ .Values.x }}, %(x)s, <placeholder>, ****.
_REFERENCE = re.compile(r"^(?:\$|\{\{|%\(|<|\*+$|(?i:null|none|true|false)$)")



def _pem(t: Text) -> Iterator[Span]:
    if "PRIVATE KEY" in t.text or "PuTTY" in t.text:
        for match in _PEM.finditer(t.text):
            yield match.start(), match.end(), "private_key"


def _bearer(t: Text) -> Iterator[Span]:
    if "bearer" in t.lowered:
        for match in _BEARER.finditer(t):
            if has_digit(match.group(1)):  # real tokens have digits; "Bearer authentication" is prose
                yield match.start(1), match.end(1), "bearer_token"


def _authorization(t: Text) -> Iterator[Span]:
    if "authorization" in t.lowered:
        for match in _AUTHORIZATION.finditer(t):
            yield match.start(1), match.end(1), "authorization"


def _assignments(t: Text) -> Iterator[Span]:
    if not t.has(_ASSIGNMENT_WORDS):
        return
    for match in _ASSIGNMENT.finditer(t):
        group = 2 if match.group(2) is not None else 3 if match.group(3) is not None else 4
        value = match.group(group)
        if not value or _REFERENCE.match(value):
            continue
        yield match.start(group), match.end(group), "password" if match.group(1)[0] in "pP" else "secret"




# In priority order: on equal spans the earlier detector names the kind.
SECRET_DETECTORS = (_pem, _library, _bearer, _authorization, _assignments)


# --- key names ---------------------------------------------------------------------------------

_SECRET_KEY_SUFFIXES = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey", "accesskey",
    "secretkey", "authorization", "credentials", "credential",
)
_SECRET_KEYS_EXACT = frozenset({"pwd", "pass", "cookie", "setcookie"})
_PHI_KEYS = {
    "ssn": "ssn", "socialsecuritynumber": "ssn", "mrn": "mrn", "medicalrecordnumber": "mrn",
    "dob": "dob", "dateofbirth": "dob", "birthdate": "dob", "patientname": "person_name",
    "nhsnumber": "nhs_number", "nhsno": "nhs_number", "mbi": "mbi", "medicarebeneficiaryidentifier": "mbi",
}


@lru_cache(maxsize=4096)
def key_kind(name: str) -> str | None:
    """The kind of value a key name announces, or None: ``db_password`` → password, ``MRN`` → mrn."""
    norm = "".join(c for c in name.lower() if c.isalnum())
    if norm in _PHI_KEYS:
        return _PHI_KEYS[norm]
    if norm in _SECRET_KEYS_EXACT or norm.endswith(_SECRET_KEY_SUFFIXES):
        if "pass" in norm or "pwd" in norm:
            return "password"
        return "authorization" if norm.endswith("authorization") else "secret"
    return None


# ``${NAME}``: a variable of the environment the value is read from.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REFERENCE_KEYS = frozenset({"from_env", "from_file"})
_SCHEME_ONLY = re.compile(r"\s*(?:[A-Za-z][A-Za-z-]*\s+)?")


def is_reference(value: Any) -> bool:
    """Is this a reference to a secret, not a secret: ``${NAME}`` (after an auth scheme: ``Bearer ${NAME}``),
    ``{from_env: NAME}`` or ``{from_file: PATH}``?"""
    if isinstance(value, str):  # "${NAME}", or an auth scheme and references: "Bearer ${PROM_TOKEN}"
        return ENV_REFERENCE.search(value) is not None and _SCHEME_ONLY.fullmatch(ENV_REFERENCE.sub("", value)) \
            is not None
    if not isinstance(value, dict) or not value or not set(value) <= _REFERENCE_KEYS:
        return False
    given = [v for v in value.values() if v is not None]  # a dumped model also says the other one is None
    return len(given) == 1 and isinstance(given[0], str)


# --- literal values ------------------------------------------------------------------------------

_BASE64_LIKE = re.compile(r"[A-Za-z0-9+/_\-]{20,}={0,2}")
_HEX_LIKE = re.compile(r"[0-9a-fA-F]{20,}")
_DIGEST_NAMES = ("sha", "digest", "commit", "revision", "checksum")


@lru_cache(maxsize=1)
def _entropy_plugins() -> tuple[Any, Any]:
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString

    # detect-secrets' default limits (4.5 and 3.0 bits per character), as `primum scan` uses them.
    return Base64HighEntropyString(limit=4.5), HexHighEntropyString(limit=3.0)


def literal_secret(name: str, value: str, *, by_name: bool = True) -> str | None:
    """Why the literal setting ``name: value`` looks like a secret, or None when it does not.

    A secret's name (``*_PASSWORD``, ``*_TOKEN``, ``API_KEY``…), a value any detector of this
    module finds (``NAME=value`` is scanned, so ``password=…`` forms count), or a single token of
    20+ characters whose Shannon entropy is over detect-secrets' limit (random base64 or hex:
    what generated keys look like). A hex value under a name saying digest, sha or commit is a
    digest, not a secret. ``LOG_LEVEL: info`` or ``FEATURE_X: "on"`` stay literal. ``by_name=False``
    skips the name rule (a value built around a reference, ``DB_PASSWORD: "${DB_PASSWORD_FILE}"``).
    """
    kind = key_kind(name) if by_name else None
    if kind is not None:
        return f"the name {name!r} says it holds a {kind.replace('_', ' ')}"
    wrapped = Text(f"{name}={value}")
    for detector in SECRET_DETECTORS:
        for _start, _end, found in detector(wrapped):
            return f"the value looks like a secret ({found.replace('_', ' ')})"
    base64, hexadecimal = _entropy_plugins()
    token = value.strip()
    if _HEX_LIKE.fullmatch(token):
        if any(word in name.lower() for word in _DIGEST_NAMES):
            return None
        if hexadecimal.calculate_shannon_entropy(token) > hexadecimal.entropy_limit:
            return "the value is a long random-looking hex string (high entropy)"
    elif _BASE64_LIKE.fullmatch(token) and base64.calculate_shannon_entropy(token) > base64.entropy_limit:
        return "the value is a long random-looking string (high entropy)"
    return None
