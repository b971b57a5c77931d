"""Compiling and querying Rego with regopy (rego-cpp): everything that knows regopy's API.

The modules of a bundle are compiled once into a ``regopy.Bundle``; an ``Evaluator``
queries its entrypoints. regopy specifics kept here: strict built-in errors (a
built-in that fails is an error, not an undefined result, so the decision fails
closed), no logging from rego-cpp (errors come back as ``PolicyError`` or an
``Outcome.error``), rego-cpp's error trees and ``label|offset|length`` locations
turned into file, line, column and rule, and a query's ``Output`` kept referenced
while its nodes are read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import regopy

from primum.adapters.policy.files import PolicyError, PolicyFile, enclosing_rule, entrypoint

_ERRORMSG = re.compile(r"\(errormsg (\d+):")
_NOT_FOUND = re.compile(r"Function not found: ([A-Za-z_][A-Za-z0-9_.]*)")

Where = tuple[str, int, int, str | None]  # file label, line, column, rule


def _sexpr_messages(text: str) -> list[str]:
    """The ``errormsg`` strings of a rego-cpp error tree (length-prefixed)."""
    messages = []
    for match in _ERRORMSG.finditer(text):
        length = int(match.group(1))
        start = match.end()
        raw = text.encode()[len(text[:start].encode()):][:length]
        messages.append(raw.decode(errors="replace"))
    return messages


class Locator:
    """Maps rego-cpp locations (``label|byte offset|length``) to file, line, column and rule."""

    def __init__(self, files: Sequence[PolicyFile]):
        self.files = {f.label: f for f in files}

    def find(self, text: str) -> Where | None:
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
    def _at(f: PolicyFile, offset: int) -> Where:
        before = f.source.encode()[:offset].decode(errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        return f.label, line, column, enclosing_rule(f.source, line)

    def describe(self, text: str) -> tuple[str, Where | None]:
        messages = _sexpr_messages(text) or [text.strip() or "unknown error"]
        where = self.find(text)
        message = "; ".join(dict.fromkeys(messages))
        if where:
            label, line, column, rule = where
            message += f" ({label}:{line}:{column}" + (f", rule {rule})" if rule else ")")
        return message, where


def new_interpreter() -> regopy.Interpreter:
    """An interpreter that fails closed on built-in errors and prints nothing."""
    rego = regopy.Interpreter()
    rego.strict_built_in_errors = True
    rego.log_level = regopy.LogLevel.NONE  # errors are reported through PolicyError, not printed
    return rego


def _compile_error(locator: Locator, texts: Sequence[str]) -> PolicyError:
    described = [locator.describe(t) for t in texts] or [("unknown error", None)]
    message, where = described[0]
    for extra, _ in described[1:]:
        message += f"\n  {extra}"
    label, line, column = (where[0], where[1], where[2]) if where else (None, None, None)
    return PolicyError(f"the policy does not compile: {message}", file=label, line=line, column=column)


def compile_modules(files: Sequence[PolicyFile], entrypoints: Sequence[str]) -> regopy.Bundle:
    """Compile ``files`` with ``entrypoints`` (rego-cpp form). Raises ``PolicyError`` naming file and line."""
    locator = Locator(files)
    rego = new_interpreter()
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


class Outcome:
    """One query's result: its value when ``defined``, or the ``error`` that made it fail."""

    __slots__ = ("defined", "error", "value")

    def __init__(self, value: Any = None, defined: bool = False, error: str | None = None):
        self.value = value
        self.defined = defined
        self.error = error


class Evaluator:
    """One interpreter over one compiled bundle. Not thread-safe: the caller serialises
    ``set_input`` and the queries that read it (the input is the interpreter's state)."""

    def __init__(self, files: Sequence[PolicyFile], bundle: regopy.Bundle):
        self._bundle = bundle
        self._locator = Locator(files)
        self._rego = new_interpreter()

    def set_input(self, doc: Any) -> None:
        """The input document (JSON-compatible Python values) the next queries see."""
        self._rego.set_input(doc)

    def set_input_term(self, term: str) -> None:
        """The input as a Rego term (e.g. ``{}`` for the tests)."""
        self._rego.set_input_term(term)

    def query(self, path: str) -> Outcome:
        """Evaluate one entrypoint (``data.<package>.<rule>``) against the input already set."""
        try:
            out = self._rego.query_bundle_entrypoint(self._bundle, entrypoint(path))
        except json.JSONDecodeError as exc:  # an error term inside an otherwise ok output
            return Outcome(error=self._locator.describe(exc.doc)[0])
        except regopy.RegoError as exc:
            return Outcome(error=self._locator.describe(str(exc))[0])
        if not out.ok():
            node = out.node()  # `out` stays referenced while its nodes are read
            texts = [node.at(i).json() for i in range(len(node))] or [str(out)]
            described = [self._locator.describe(t)[0] for t in texts]
            return Outcome(error="; ".join(dict.fromkeys(described)))
        if not out.results or not out.results[0].expressions:
            return Outcome()
        return Outcome(out.results[0].expressions[0], defined=True)
