"""The files of a policy bundle: read from disk, merged, hashed, and scanned by name.

A bundle is the shipped healthcare baseline (``primum/adapters/policy/baseline``)
plus, optionally, an organisation's policy directory: a file there with the same
relative path as a baseline file replaces it, every other ``.rego`` file is added.
This module only reads and scans text (no regopy): what a bundle is made of, its
revision (a hash of its files), its ``test_*`` rules, and the rules it uses that no
module defines. Errors name the file and say what to do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from primum.core.errors import UserError
from primum.core.governance.policy import PACKAGE, PARTS, REQUIRED_PARTS

BASELINE_DIR = Path(__file__).resolve().parent / "baseline"

_RULE_HEAD = re.compile(r"^(?:default\s+)?([A-Za-z_][A-Za-z0-9_]*)")
_TEST_HEAD = re.compile(r"^(test_[A-Za-z0-9_]*)\b(?!\s*\()", re.MULTILINE)
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)", re.MULTILINE)
_CODE_NOISE = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*')


class PolicyError(UserError):
    """A policy bundle that cannot be used: unreadable, does not compile, or crashes the compiler."""

    label = "policy error"

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 column: int | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column


@dataclass(frozen=True)
class PolicyFile:
    """One Rego module of a bundle."""

    name: str  # path relative to its policy directory, with forward slashes
    origin: str  # "baseline" or "org"
    path: Path
    source: str

    @property
    def label(self) -> str:
        """How errors name the file: ``baseline/<name>`` or the org file's path."""
        return f"baseline/{self.name}" if self.origin == "baseline" else str(self.path)

    @property
    def package(self) -> str | None:
        match = _PACKAGE.search(self.source)
        return match.group(1) if match else None

    @property
    def is_test(self) -> bool:
        return self.name.endswith("_test.rego")


@dataclass(frozen=True)
class PolicyTest:
    """A ``test_*`` rule found in a module."""

    rule: str
    package: str
    file: str
    line: int

    @property
    def name(self) -> str:
        return f"data.{self.package}.{self.rule}"

    @property
    def entrypoint(self) -> str:
        return entrypoint(self.name)


def entrypoint(path: str) -> str:
    """``data.primum.release.decision`` -> ``primum/release/decision`` (rego-cpp's entrypoint form)."""
    return path.removeprefix("data.").replace(".", "/")


def _read_dir(root: Path, origin: str, include_tests: bool) -> dict[str, PolicyFile]:
    files: dict[str, PolicyFile] = {}
    for path in sorted(root.rglob("*.rego")):
        if not path.is_file():
            continue
        name = path.relative_to(root).as_posix()
        if name.endswith("_test.rego") and not include_tests:
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: cannot read the policy file: {exc}", file=str(path)) from exc
        files[name] = PolicyFile(name=name, origin=origin, path=path, source=source)
    return files


def policy_files(org_dir: Path | str | None = None, *, include_tests: bool = False) -> list[PolicyFile]:
    """The baseline's files with the organisation's applied: same relative path replaces, others add."""
    files = _read_dir(BASELINE_DIR, "baseline", include_tests)
    if org_dir is not None:
        root = Path(org_dir)
        if not root.is_dir():
            raise PolicyError(f"{root}: the policy directory does not exist", file=str(root))
        files.update(_read_dir(root, "org", include_tests))
    return [files[name] for name in sorted(files)]


def bundle_revision(files: Iterable[PolicyFile]) -> str:
    """sha256 over the sorted files' relative paths and contents."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f.name.encode())
        h.update(b"\0")
        h.update(f.source.encode())
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def discover_tests(files: Iterable[PolicyFile]) -> list[PolicyTest]:
    """Rules named ``test_*`` (not functions) defined at the top level of each module."""
    seen: dict[str, PolicyTest] = {}
    for f in files:
        package = f.package
        if package is None:
            continue
        for match in _TEST_HEAD.finditer(f.source):
            line = f.source.count("\n", 0, match.start()) + 1
            test = PolicyTest(rule=match.group(1), package=package, file=f.label, line=line)
            seen.setdefault(test.name, test)  # a rule defined in several places runs once
    return list(seen.values())


def rule_heads(source: str) -> set[str]:
    """Names of the rules and functions a module defines (heads start at column 0, as `opa fmt` writes)."""
    names = set()
    for line in source.splitlines():
        head = _RULE_HEAD.match(line)
        if head and head.group(1) not in ("package", "import"):
            names.add(head.group(1))
    return names


def enclosing_rule(source: str, line: int) -> str | None:
    """The rule or function whose head is the nearest at or above ``line`` (1-based), for error messages."""
    for text in reversed(source.splitlines()[:line]):
        head = _RULE_HEAD.match(text)
        if head and head.group(1) not in ("package", "import"):
            return head.group(1)
    return None


def code_only(source: str) -> str:
    """The module without comments and string literals (for finding references by name)."""
    return _CODE_NOISE.sub(" ", source)


def missing_rules(files: Sequence[PolicyFile]) -> list[str]:
    """Problems with rules of package primum.release that the bundle uses but no module defines:
    a decision part (class, requirements, deny, warn), or a baseline rule another module still
    references (an organisation file replaced the baseline file that defined it)."""
    ours = [f for f in files if f.package == PACKAGE]
    defined = set().union(*(rule_heads(f.source) for f in ours)) if ours else set()
    baseline = set().union(*(rule_heads(f.source) for f in _read_dir(BASELINE_DIR, "baseline", False).values()))
    problems = []
    for name in sorted((baseline | set(PARTS.values())) - defined):
        pattern = re.compile(r"(?<![A-Za-z0-9_.])" + re.escape(name) + r"\b")
        users = [f.label for f in ours if pattern.search(code_only(f.source))]
        if users or name in (PARTS[p] for p in REQUIRED_PARTS):
            used = f" (used by {', '.join(users)})" if users else ""
            problems.append(f"rule data.{PACKAGE}.{name} is not defined by any module{used}")
    return problems
