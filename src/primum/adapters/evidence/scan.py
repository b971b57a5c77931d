"""Committed-secret scanning of a release's own files, with Yelp's detect-secrets.

A release carries configuration and infrastructure code (its release YAML, the estate YAML,
Terraform, Helm values, ``.env`` files). ``scan_paths`` runs detect-secrets over them with its
default plugins and filters and returns findings as plain data: file, line, type and the
SHA-1 ``hashed_secret`` that ``.secrets.baseline`` files use, never the secret. The policy input
(``ScanReport.as_policy_input``) carries only file, line and type: a hash of a weak password
can be reversed by guessing, and evidence is kept for years.

Fail closed: a file that cannot be read, or is larger than ``max_bytes``, raises ScanError
naming the file and the fix, because an unscanned file is not a clean one. Binary files are
skipped (secrets in them are out of detect-secrets' reach) and listed as skipped. Directories
are walked, skipping VCS and dependency caches (``.git``, ``.terraform``, ``node_modules``…).
A line marked ``# pragma: allowlist secret`` is not reported (detect-secrets' convention; the
marker is visible in review). Nothing is verified over the network.

Digests and commit SHAs are not secrets. detect-secrets' hex entropy plugin flags every quoted
random-looking hex string, so a real 40-hex ``source_commit`` or an in-toto subject's ``sha256``
would deny every release. ``is_digest_or_commit`` is a detect-secrets filter (registered in its
settings like its own ``is_likely_id_string`` heuristic, so no user file needs a pragma) that drops
a hex-entropy finding only when every occurrence of the value on its line is the quoted value of
a key naming a digest or a commit (``source_commit``, ``digest``, ``image_digest``, ``sha256``,
``gitCommit``…), in lowercase hex of that key's length (SHA-1/SHA-256 commits, or 7 to 12 digits
for an abbreviated one; a digest algorithm's own length). Anything else stays a finding: another
field, another length, upper case, a key naming a credential, a value also found elsewhere on the
line, and every other plugin's findings (AWS keys, private keys, base64 tokens…).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detect_secrets.core.scan import scan_file
from detect_secrets.plugins.base import BasePlugin
from detect_secrets.plugins.high_entropy_strings import HexHighEntropyString
from detect_secrets.settings import default_settings

__all__ = [
    "DEFAULT_MAX_BYTES", "ScanError", "ScanReport", "SecretFinding", "SkippedFile", "is_digest_or_commit", "scan_paths",
]

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", ".terraform", "node_modules", ".venv", "__pycache__"})
_VERIFY_FILTER = "detect_secrets.filters.common.is_ignored_due_to_verification_policies"

# Hex lengths of digests by algorithm (normalised key: lower case, no "_", "-" or "."), as in-toto
# DigestSets and `sha256:…` pins name them; git object names are SHA-1 or SHA-256.
_ALGORITHM_LENGTHS: dict[str, frozenset[int]] = {
    "sha1": frozenset({40}), "sha224": frozenset({56}), "sha256": frozenset({64}), "sha384": frozenset({96}),
    "sha512": frozenset({128}), "sha512224": frozenset({56}), "sha512256": frozenset({64}),
    "sha3224": frozenset({56}), "sha3256": frozenset({64}), "sha3384": frozenset({96}), "sha3512": frozenset({128}),
    "blake2b": frozenset({128}), "blake2s": frozenset({64}),
    "gitcommit": frozenset({40, 64}), "gittree": frozenset({40, 64}), "gitblob": frozenset({40, 64}),
}
_DIGEST_LENGTHS = frozenset().union(*_ALGORITHM_LENGTHS.values())
# A full commit SHA (SHA-1 or SHA-256 repositories) or an abbreviated one (git's default is 7 and
# grows with the repository; 12 covers large ones). Shorter than 9 never passes the entropy limit.
_COMMIT_LENGTHS = frozenset({40, 64, *range(7, 13)})
_COMMIT_SUFFIXES = ("commit", "commitsha", "commitid", "gitsha", "revision")
# A key naming a credential is never a digest field, whatever its suffix ("password_digest").
_CREDENTIAL_WORDS = ("password", "passwd", "secret", "token", "apikey", "privatekey", "credential", "authorization")
_KEY_BEFORE_VALUE = re.compile(r"""(?P<key>[A-Za-z0-9_.\-]+)["']?\s*(?::|=)\s*(?P<quote>["'])$""")
_LOWER_HEX = re.compile(r"[0-9a-f]+")


def _lengths_for(key: str) -> frozenset[int]:
    """The hex lengths a value under this key may have to be a digest or a commit; empty if none."""
    name = re.sub(r"[_.\-]", "", key).lower()
    if any(word in name for word in _CREDENTIAL_WORDS):
        return frozenset()
    for algorithm in sorted(_ALGORITHM_LENGTHS, key=len, reverse=True):
        if name.endswith(algorithm):
            return _ALGORITHM_LENGTHS[algorithm]
    if name.endswith(_COMMIT_SUFFIXES):
        return _COMMIT_LENGTHS
    if name.endswith("digest"):
        return _DIGEST_LENGTHS
    return frozenset()


def is_digest_or_commit(secret: str, line: str, plugin: BasePlugin | None = None) -> bool:
    """detect-secrets filter: True (not a secret) for a hex-entropy finding that is a digest or a commit.

    detect-secrets calls it with the finding, its line (for YAML and config files, its own
    ``key: "value"`` rendering) and the plugin. Every occurrence of the value on the line must be
    the whole quoted value of a digest or commit key, of that key's length, so a token pasted
    next to a digest is still reported.
    """
    if not isinstance(plugin, HexHighEntropyString) or not _LOWER_HEX.fullmatch(secret):
        return False
    occurrences = list(re.finditer(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", line))
    if not occurrences:
        return False
    for found in occurrences:
        before = _KEY_BEFORE_VALUE.search(line, 0, found.start())
        if before is None or line[found.end():found.end() + 1] != before.group("quote"):
            return False
        if len(secret) not in _lengths_for(before.group("key")):
            return False
    return True


_DIGEST_FILTER = f"{__name__}.{is_digest_or_commit.__name__}"

# detect-secrets keeps its settings in a process-wide singleton; one scan at a time.
_LOCK = threading.Lock()


class ScanError(Exception):
    """A file could not be scanned. The message names the file and the fix."""


@dataclass(frozen=True)
class SecretFinding:
    file: str
    line: int
    type: str
    hashed_secret: str  # SHA-1 of the secret, as in detect-secrets baselines

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "type": self.type}


@dataclass(frozen=True)
class SkippedFile:
    file: str
    reason: str


@dataclass(frozen=True)
class ScanReport:
    findings: tuple[SecretFinding, ...]
    scanned: tuple[str, ...]
    skipped: tuple[SkippedFile, ...] = field(default=())

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_policy_input(self) -> dict[str, Any]:
        """Plain data for the policy input and the evidence: no secret and no hash of one."""
        return {
            "secrets": [f.as_dict() for f in self.findings],
            "scanned": list(self.scanned),
            "skipped": [{"file": s.file, "reason": s.reason} for s in self.skipped],
        }


def _files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
                found += [Path(root, name) for name in sorted(names)]
        elif path.exists():
            found.append(path)
        else:
            raise ScanError(f"{path}: no such file or directory to scan for secrets; fix: correct the path or drop it")
    return found


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def _is_binary(path: Path, shown: str) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        raise ScanError(f"{shown}: cannot be read to scan for secrets ({exc.strerror}); fix: make it readable") from exc
    if b"\0" in head:
        return True
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def scan_paths(
    paths: Iterable[str | os.PathLike[str]], *, root: str | os.PathLike[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ScanReport:
    """Scan files and directories for committed secrets; file names are shown relative to ``root`` if given."""
    base = Path(root) if root is not None else None
    findings: list[SecretFinding] = []
    scanned: list[str] = []
    skipped: list[SkippedFile] = []
    for path in _files(paths):
        shown = _shown(path, base)
        if path.is_symlink() and not path.exists():
            skipped.append(SkippedFile(shown, "broken symbolic link"))
            continue
        size = path.stat().st_size
        if size > max_bytes:
            raise ScanError(
                f"{shown}: {size} bytes, over the {max_bytes}-byte limit of the secret scan; "
                "fix: keep large generated or vendored files out of the release's files, or raise max_bytes"
            )
        if _is_binary(path, shown):
            skipped.append(SkippedFile(shown, "binary"))
            continue
        with _LOCK, default_settings() as settings:
            settings.disable_filters(_VERIFY_FILTER)  # never call vendors' APIs with a found secret
            # its default filters plus ours, which it imports by path like its own heuristics
            filters = [{"path": name, **config} for name, config in settings.filters.items()]
            settings.configure_filters([*filters, {"path": _DIGEST_FILTER}])
            secrets = list(scan_file(str(path)))
        scanned.append(shown)
        findings += [
            SecretFinding(file=shown, line=s.line_number, type=s.type, hashed_secret=s.secret_hash) for s in secrets
        ]
    findings.sort(key=lambda f: (f.file, f.line, f.type))
    return ScanReport(findings=tuple(findings), scanned=tuple(scanned), skipped=tuple(skipped))
