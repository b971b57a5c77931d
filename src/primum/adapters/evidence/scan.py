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
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detect_secrets.core.scan import scan_file
from detect_secrets.settings import default_settings

__all__ = ["DEFAULT_MAX_BYTES", "ScanError", "ScanReport", "SecretFinding", "SkippedFile", "scan_paths"]

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", ".terraform", "node_modules", ".venv", "__pycache__"})
_VERIFY_FILTER = "detect_secrets.filters.common.is_ignored_due_to_verification_policies"

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
            secrets = list(scan_file(str(path)))
        scanned.append(shown)
        findings += [
            SecretFinding(file=shown, line=s.line_number, type=s.type, hashed_secret=s.secret_hash) for s in secrets
        ]
    findings.sort(key=lambda f: (f.file, f.line, f.type))
    return ScanReport(findings=tuple(findings), scanned=tuple(scanned), skipped=tuple(skipped))
