"""Rego policy bundles: load once, evaluate many times, fail closed, log every decision.

``PolicyBundle.load`` reads the bundle's files (``files.py``), checks an
organisation's bundle in a forked child (``preflight.py``), compiles it once
(``compiler.py``) and caches it per revision. ``PolicyBundle.evaluate`` evaluates
``data.primum.release.decision`` for one input document; what the result means is
``core/governance/policy.py`` ``decision_from``. The clock and the decision id are
arguments, defaulted here at the edge (``time.time()``, a uuid4).

Fail closed: a module that does not parse makes ``load`` raise ``PolicyError``
(file, line, column); at evaluation time an evaluation error (strict built-in
errors), an undefined result or a malformed result denies the release, naming
the rule that failed. Every decision carries a decision-log entry (decision id,
entrypoint, sha256 of the canonical input, raw result, bundle revision, time).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import regopy
from pydantic import BaseModel

from primum.adapters.policy.compiler import Evaluator, Outcome, compile_modules
from primum.adapters.policy.files import (
    PolicyFile,
    PolicyTest,
    bundle_revision,
    discover_tests,
    entrypoint,
    missing_rules,
    policy_files,
)
from primum.adapters.policy.preflight import preflight
from primum.core.governance.policy import (
    DECISION_PATH,
    PACKAGE,
    PARTS,
    REQUIRED_PARTS,
    PolicyDecision,
    decision_from,
)
from primum.core.model.release import canonical_json


class TestResult(BaseModel):
    """One ``test_*`` rule's outcome."""

    __test__ = False  # not a pytest class

    name: str  # data.<package>.test_x
    file: str
    line: int
    passed: bool
    message: str = ""
    duration_ms: float = 0.0


class TestSummary(BaseModel):
    """Every ``test_*`` rule of a bundle, run once (``primum policy test``)."""

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


class PolicyBundle:
    """A compiled policy bundle. Load it once (``PolicyBundle.load``) and reuse it for every evaluation."""

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
        self._evaluator = Evaluator(files, bundle)
        self._lock = threading.Lock()  # the input is the interpreter's state: one evaluation at a time

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
            preflight(files, points)
        compiled = compile_modules(files, points)
        bundle = cls(files, revision, compiled, tests)
        with cls._cache_lock:
            PolicyBundle.compiles += 1
            if cache:
                cls._cache[key] = bundle
                while len(cls._cache) > cls.CACHE_SIZE:
                    cls._cache.popitem(last=False)
        return bundle

    # ------------------------------------------------------------ evaluating

    def query(self, path: str, input: Mapping[str, Any] | None = None) -> tuple[Any, bool, str | None]:
        """Evaluate any rule of the bundle (an entrypoint compiled into it): (value, defined, error)."""
        doc = json.loads(canonical_json(dict(input or {})))
        with self._lock:
            self._evaluator.set_input(doc)
            outcome = self._evaluator.query(path)
        return outcome.value, outcome.defined, outcome.error

    def _diagnose(self, decision: Outcome) -> str:
        """Why the decision failed: name each undefined or failing rule. Call with the lock held."""
        if self.problems:  # an incomplete bundle: rego-cpp's own message says little
            cause = decision.error or "undefined"
            return "; ".join(self.problems) + f" (rego-cpp: {DECISION_PATH}: {cause})"
        problems = []
        for key, rule in PARTS.items():
            path = f"data.{PACKAGE}.{rule}"
            part = self._evaluator.query(path)
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

    def evaluate(self, input: Mapping[str, Any], *, now: float | None = None,
                 decision_id: str | None = None) -> PolicyDecision:
        """Evaluate the policy for one input document (``policy_input``). Never raises for a policy
        problem: it denies. ``now`` (default: the wall clock) and ``decision_id`` (default: a uuid4)
        go into the decision-log entry."""
        at = time.time() if now is None else now
        error: str | None
        try:
            doc = canonical_json(input)
        except (TypeError, ValueError) as exc:
            doc, outcome, error = b"", Outcome(), f"the input is not JSON: {exc}"
        else:
            outcome, error = self._evaluate_decision(doc)
        return decision_from(outcome.value if outcome.defined else None, error,
                             decision_id=decision_id or str(uuid.uuid4()),
                             input_digest="sha256:" + hashlib.sha256(doc).hexdigest(),
                             bundle_revision=self.revision, at=at)

    def _evaluate_decision(self, doc: bytes) -> tuple[Outcome, str | None]:
        with self._lock:
            # the policy sees exactly the canonical document whose digest is logged
            self._evaluator.set_input(json.loads(doc))
            outcome = self._evaluator.query(DECISION_PATH)
            if outcome.defined and not outcome.error:
                return outcome, None
            return outcome, self._diagnose(outcome)

    def run_tests(self) -> TestSummary:
        """Evaluate every ``test_*`` rule of the bundle (load it with ``include_tests=True``)."""
        results = []
        for test in self.tests:
            t0 = time.perf_counter()
            with self._lock:
                self._evaluator.set_input_term("{}")
                outcome = self._evaluator.query(test.name)
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
