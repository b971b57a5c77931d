"""Rego policy bundles: load once, decide many times, fail closed, log every decision.

A bundle is the shipped healthcare baseline (``primum/adapters/policy/baseline``)
plus, optionally, an organisation's policy directory: a file there with the same
relative path as a baseline file replaces it, every other ``.rego`` file is added.
The modules are compiled once (regopy, the Python binding of rego-cpp) into a
bundle that every decision reuses.

Fail closed: a module that does not parse makes ``load`` raise ``PolicyError``
(file, line, column); at decision time an evaluation error (strict built-in
errors), an undefined result or a malformed result denies the release, naming
the rule that failed. Every decision carries a decision-log entry (decision id,
entrypoint, sha256 of the canonical input, raw result, bundle revision, time).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import signal
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import regopy
from pydantic import BaseModel

from primum.core.errors import UserError
from primum.core.governance.policy import (
    DECISION_PATH,
    PACKAGE,
    PARTS,
    REQUIRED_PARTS,
    PolicyDecision,
    decision_from,
)
from primum.core.model.release import canonical_json

BASELINE_DIR = Path(__file__).resolve().parent / "baseline"

_RULE_HEAD = re.compile(r"^(?:default\s+)?([A-Za-z_][A-Za-z0-9_]*)")
_TEST_HEAD = re.compile(r"^(test_[A-Za-z0-9_]*)\b(?!\s*\()", re.MULTILINE)
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)", re.MULTILINE)
_ERRORMSG = re.compile(r"\(errormsg (\d+):")
_NOT_FOUND = re.compile(r"Function not found: ([A-Za-z_][A-Za-z0-9_.]*)")
_WHOLE_INPUT_WITH = re.compile(r"\bwith\s+input\s+as\b")


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


class TestResult(BaseModel):
    __test__ = False  # not a pytest class

    name: str  # data.<package>.test_x
    file: str
    line: int
    passed: bool
    message: str = ""
    duration_ms: float = 0.0


class TestSummary(BaseModel):
    __test__ = False

    passed: int
    failed: int
    results: list[TestResult]
    bundle_revision: str
    files: list[str]

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def failures(self) -> list[TestResult]:
        return [r for r in self.results if not r.passed]


# ------------------------------------------------------------------- files


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


_CODE_NOISE = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*')


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


# ------------------------------------------------------------------ errors


def _sexpr_messages(text: str) -> list[str]:
    """The ``errormsg`` strings of a rego-cpp error tree (length-prefixed)."""
    messages = []
    for match in _ERRORMSG.finditer(text):
        length = int(match.group(1))
        start = match.end()
        raw = text.encode()[len(text[:start].encode()):][:length]
        messages.append(raw.decode(errors="replace"))
    return messages


class _Locator:
    """Maps rego-cpp locations (``label|byte offset|length``) to file, line, column and rule."""

    def __init__(self, files: Sequence[PolicyFile]):
        self.files = {f.label: f for f in files}

    def find(self, text: str) -> tuple[str, int, int, str | None] | None:
        for label, f in self.files.items():
            match = re.search(r"(?:^|[:\s(])" + re.escape(label) + r"\|(\d+)\|(\d+)", text)
            if match:
                return self._at(f, int(match.group(1)))
        missing = _NOT_FOUND.search(text)
        if missing:  # no location for an unknown function: find where it is called
            call = re.compile(r"(?<![A-Za-z0-9_.])" + re.escape(missing.group(1)) + r"\s*\(")
            for f in self.files.values():
                found = call.search(f.source)
                if found:
                    return self._at(f, len(f.source[: found.start()].encode()))
        return None

    @staticmethod
    def _at(f: PolicyFile, offset: int) -> tuple[str, int, int, str | None]:
        before = f.source.encode()[:offset].decode(errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        rule = None
        for text in reversed(f.source.splitlines()[:line]):
            head = _RULE_HEAD.match(text)
            if head and head.group(1) not in ("package", "import"):
                rule = head.group(1)
                break
        return f.label, line, column, rule

    def describe(self, text: str) -> tuple[str, tuple[str, int, int, str | None] | None]:
        messages = _sexpr_messages(text) or [text.strip() or "unknown error"]
        where = self.find(text)
        message = "; ".join(dict.fromkeys(messages))
        if where:
            label, line, column, rule = where
            message += f" ({label}:{line}:{column}" + (f", rule {rule})" if rule else ")")
        return message, where


# --------------------------------------------------------------- compiling


def _new_interpreter() -> regopy.Interpreter:
    rego = regopy.Interpreter()
    rego.strict_built_in_errors = True
    rego.log_level = regopy.LogLevel.NONE  # errors are reported through PolicyError, not printed
    return rego


def _compile_error(locator: _Locator, texts: Sequence[str]) -> PolicyError:
    described = [locator.describe(t) for t in texts] or [("unknown error", None)]
    message, where = described[0]
    for extra, _ in described[1:]:
        message += f"\n  {extra}"
    label, line, column = (where[0], where[1], where[2]) if where else (None, None, None)
    return PolicyError(f"the policy does not compile: {message}", file=label, line=line, column=column)


def _compile(files: Sequence[PolicyFile], entrypoints: Sequence[str]) -> regopy.Bundle:
    locator = _Locator(files)
    rego = _new_interpreter()
    try:
        for f in files:
            rego.add_module(f.label, f.source)
        bundle = rego.build(None, list(entrypoints))
    except regopy.RegoError as exc:
        text = str(exc)
        raise _compile_error(locator, ["(error " + b for b in text.split("(error ")[1:]] or [text]) from exc
    if not bundle.ok():
        node = bundle.node()
        raise _compile_error(locator, [node.at(i).json() for i in range(len(node))])
    return bundle


def _preflight(files: Sequence[PolicyFile], entrypoints: Sequence[str], timeout: float = 60.0) -> None:
    """Compile in a forked child first: rego-cpp aborts the whole process on some inputs
    (e.g. ``with input as {...}`` over certain rules), which must be a PolicyError, not a crash."""
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compile, report by exit code
        code = 0
        try:
            os.dup2(write, 1)
            os.dup2(write, 2)
            _compile(files, entrypoints)
        except PolicyError:
            code = 3
        except BaseException:
            code = 4
        os._exit(code)
    os.close(write)
    output = b""
    deadline = time.monotonic() + timeout
    status = None
    try:
        while True:
            ready, _, _ = select.select([read], [], [], max(0.0, min(0.05, deadline - time.monotonic())))
            if ready:
                chunk = os.read(read, 65536)
                output += chunk
                if chunk:
                    continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:  # give up the check, compile in-process
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
    finally:
        os.close(read)
    if status is not None and os.WIFSIGNALED(status):
        detail = output.decode(errors="replace").strip().splitlines()
        hint = ""
        suspects = [f.label for f in files if _WHOLE_INPUT_WITH.search(code_only(f.source))]
        if suspects:
            hint = ("; rego-cpp is known to crash on `with input as {...}` (replacing the whole input): "
                    "write one `with input.<key> as ...` per key instead, in " + ", ".join(suspects))
        raise PolicyError(
            f"the Rego compiler (rego-cpp {regopy.__version__}) crashed on this policy bundle "
            f"(signal {os.WTERMSIG(status)}: {' '.join(detail[-2:]) or 'no message'}){hint}")


# ------------------------------------------------------------------ bundle


class _Outcome:
    __slots__ = ("defined", "error", "value")

    def __init__(self, value: Any = None, defined: bool = False, error: str | None = None):
        self.value = value
        self.defined = defined
        self.error = error


class PolicyBundle:
    """A compiled policy bundle. Load it once (``PolicyBundle.load``) and reuse it for every decision."""

    compiles: ClassVar[int] = 0  # bundles compiled by this process (the cache makes repeats free)
    _cache: ClassVar[OrderedDict[tuple[Any, ...], PolicyBundle]] = OrderedDict()
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()
    CACHE_SIZE: ClassVar[int] = 16

    def __init__(self, files: Sequence[PolicyFile], revision: str, bundle: regopy.Bundle,
                 tests: Sequence[PolicyTest]):
        self.files = tuple(files)
        self.revision = revision
        self.tests = tuple(tests)
        # Rules the modules use that no module defines: they explain a decision that fails.
        self.problems = tuple(missing_rules(files))
        self._bundle = bundle
        self._locator = _Locator(files)
        self._rego = _new_interpreter()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PolicyBundle({len(self.files)} files, revision={self.revision[:19]}…)"

    @classmethod
    def load(cls, org_dir: Path | str | None = None, *, include_tests: bool = False,
             cache: bool = True) -> PolicyBundle:
        """The baseline, extended or overridden by ``org_dir``, compiled (once per revision).

        ``include_tests``: also load ``*_test.rego`` modules and their ``test_*`` rules.
        Raises ``PolicyError`` when a file cannot be read or does not compile.
        """
        files = policy_files(org_dir, include_tests=include_tests)
        revision = bundle_revision(files)
        key = (revision, include_tests, tuple(f.label for f in files))
        if cache:
            with cls._cache_lock:
                hit = cls._cache.get(key)
                if hit is not None:
                    cls._cache.move_to_end(key)
                    return hit
        tests = discover_tests(files) if include_tests else []
        points = [entrypoint(f"data.{PACKAGE}.{rule}") for rule in ("decision", *PARTS.values())]
        points += [t.entrypoint for t in tests]
        if any(f.origin != "baseline" for f in files):
            _preflight(files, points)
        compiled = _compile(files, points)
        bundle = cls(files, revision, compiled, tests)
        with cls._cache_lock:
            PolicyBundle.compiles += 1
            if cache:
                cls._cache[key] = bundle
                while len(cls._cache) > cls.CACHE_SIZE:
                    cls._cache.popitem(last=False)
        return bundle

    # ------------------------------------------------------------ evaluating

    def _query(self, path: str) -> _Outcome:
        """Evaluate one entrypoint against the input already set. Call with the lock held."""
        try:
            out = self._rego.query_bundle_entrypoint(self._bundle, entrypoint(path))
        except json.JSONDecodeError as exc:  # an error term inside an otherwise ok output
            return _Outcome(error=self._locator.describe(exc.doc)[0])
        except regopy.RegoError as exc:
            return _Outcome(error=self._locator.describe(str(exc))[0])
        if not out.ok():
            node = out.node()  # `out` stays referenced while its nodes are read
            texts = [node.at(i).json() for i in range(len(node))] or [str(out)]
            described = [self._locator.describe(t)[0] for t in texts]
            return _Outcome(error="; ".join(dict.fromkeys(described)))
        if not out.results or not out.results[0].expressions:
            return _Outcome()
        return _Outcome(out.results[0].expressions[0], defined=True)

    def query(self, path: str, input: Mapping[str, Any] | None = None) -> tuple[Any, bool, str | None]:
        """Evaluate any rule of the bundle (an entrypoint compiled into it): (value, defined, error)."""
        doc = json.loads(canonical_json(dict(input or {})))
        with self._lock:
            self._rego.set_input(doc)
            outcome = self._query(path)
        return outcome.value, outcome.defined, outcome.error

    def _diagnose(self, decision: _Outcome) -> str:
        """Why the decision failed: name each undefined or failing rule. Call with the lock held."""
        if self.problems:  # an incomplete bundle: rego-cpp's own message says little
            cause = decision.error or "undefined"
            return "; ".join(self.problems) + f" (rego-cpp: {DECISION_PATH}: {cause})"
        problems = []
        for key, rule in PARTS.items():
            path = f"data.{PACKAGE}.{rule}"
            part = self._query(path)
            if part.error:
                problems.append(f"rule {path} failed: {part.error}")
            elif not part.defined and key in (*REQUIRED_PARTS, "risk_class"):
                problems.append(f"rule {path} is undefined for this input (no rule body held), "
                                f"so {DECISION_PATH} is undefined")
        if problems:
            return "; ".join(problems)
        if decision.error:
            return f"rule {DECISION_PATH} failed: {decision.error}"
        return f"rule {DECISION_PATH} is undefined for this input"

    def decide(self, input: Mapping[str, Any], *, now: float | None = None) -> PolicyDecision:
        """Decide one input document (``policy_input``). Never raises for a policy problem: it denies."""
        at = time.time() if now is None else now
        error: str | None
        try:
            doc = canonical_json(input)
        except (TypeError, ValueError) as exc:
            doc, outcome, error = b"", _Outcome(), f"the input is not JSON: {exc}"
        else:
            outcome, error = self._evaluate_decision(doc)
        return decision_from(outcome.value if outcome.defined else None, error,
                             decision_id=str(uuid.uuid4()), input_digest="sha256:" + hashlib.sha256(doc).hexdigest(),
                             bundle_revision=self.revision, at=at)

    def _evaluate_decision(self, doc: bytes) -> tuple[_Outcome, str | None]:
        with self._lock:
            # the policy sees exactly the canonical document whose digest is logged
            self._rego.set_input(json.loads(doc))
            outcome = self._query(DECISION_PATH)
            if outcome.defined and not outcome.error:
                return outcome, None
            return outcome, self._diagnose(outcome)

    def run_tests(self) -> TestSummary:
        """Evaluate every ``test_*`` rule of the bundle (load it with ``include_tests=True``)."""
        results = []
        for test in self.tests:
            t0 = time.perf_counter()
            with self._lock:
                self._rego.set_input_term("{}")
                outcome = self._query(test.name)
            ms = 1000 * (time.perf_counter() - t0)
            if outcome.error:
                passed, message = False, f"error: {outcome.error}"
                if self.problems:
                    message += " (" + "; ".join(self.problems) + ")"
            elif not outcome.defined:
                passed, message = False, "undefined: a condition of the test did not hold"
            elif outcome.value is True:
                passed, message = True, ""
            else:
                passed, message = False, f"returned {json.dumps(outcome.value)}; a test passes only when exactly true"
            results.append(TestResult(name=test.name, file=test.file, line=test.line, passed=passed,
                                      message=message, duration_ms=round(ms, 3)))
        passed_count = sum(r.passed for r in results)
        return TestSummary(passed=passed_count, failed=len(results) - passed_count, results=results,
                           bundle_revision=self.revision, files=[f.label for f in self.files])


def run_tests(target: PolicyBundle | Path | str | None = None) -> TestSummary:
    """Run the ``test_*`` rules of the baseline plus ``target`` (an org policy directory), or of a
    bundle loaded with ``include_tests=True``. Raises ``PolicyError`` if the bundle does not compile."""
    bundle = target if isinstance(target, PolicyBundle) else PolicyBundle.load(target, include_tests=True)
    return bundle.run_tests()
