"""One registry per plug-in kind: a type tag -> its settings class and its implementation.

Each kind of plug-in (metric providers, probes, targets, later readiness gates)
has one :class:`Registry`, in ``primum.adapters.<kind>.registry``, holding one
line per implementation::

    PROVIDERS.add(PrometheusSource, PrometheusProvider)

``add`` also registers the settings class with the estate's
:class:`~primum.core.model.plugins.SpecKind`, so the estate accepts the new
``type``, its schema shows it and a validation error lists it. Adding a kind is
one new module (its settings and its implementation) plus that one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from primum.core.model.capabilities import strategies_for
from primum.core.model.plugins import SpecKind

I = TypeVar("I")  # noqa: E741 - the implementation's type


@dataclass(frozen=True)
class Entry(Generic[I]):
    tag: str
    spec: type[BaseModel]
    implementation: I

    @property
    def capabilities(self) -> list[str] | None:
        """The capabilities the settings class declares (targets), sorted; None for kinds without any."""
        declared = getattr(self.spec, "capabilities", None)
        return sorted(str(c) for c in declared) if isinstance(declared, frozenset) else None

    @property
    def strategies(self) -> list[str] | None:
        """The strategy types a target of this kind can carry out (from its capabilities); None if not a target."""
        declared = getattr(self.spec, "capabilities", None)
        return strategies_for(declared) if isinstance(declared, frozenset) else None

    def describe(self) -> dict[str, Any]:
        """What ``primum plugins --output json`` prints for this kind."""
        out: dict[str, Any] = {"type": self.tag, "summary": self.summary,
                                  "settings": f"{self.spec.__module__}.{self.spec.__qualname__}"}
        if self.capabilities is not None:
            out["capabilities"] = self.capabilities
            out["strategies"] = self.strategies
        return out

    @property
    def summary(self) -> str:
        """The first line of the settings class's docstring (the docs table)."""
        doc = " ".join((self.spec.__doc__ or "").strip().split("\n\n")[0].split())
        first = doc.split(". ")[0].rstrip(".")
        return (first + ".").replace("``", "`") if first else "(no docstring)"


class Registry(Generic[I]):
    """The implementations of one plug-in kind, keyed by the ``type`` tag of their settings."""

    def __init__(self, kind: SpecKind) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[I]] = {}

    def add(self, spec: type[BaseModel], implementation: I) -> None:
        """Register ``spec`` (its ``type`` default is the tag) with ``implementation``."""
        self.kind.register(spec)
        tag = spec.model_fields["type"].default
        self._entries[tag] = Entry(tag, spec, implementation)

    def remove(self, tag: str) -> None:
        """Forget a kind (a test that registered a toy kind cleans up with this)."""
        self._entries.pop(tag, None)
        self.kind.unregister(tag)

    def get(self, tag: str) -> I:
        """The implementation for ``tag``; a clear error if nothing is registered under it."""
        entry = self._entries.get(tag)
        if entry is None:
            raise LookupError(f"no {self.kind.what} implementation is registered for type {tag!r} "
                              f"(registered: {', '.join(self._entries) or 'none'})")
        return entry.implementation

    def tags(self) -> list[str]:
        return list(self._entries)

    def __iter__(self) -> Iterator[Entry[I]]:
        return iter(list(self._entries.values()))

    def describe(self) -> list[dict[str, Any]]:
        """Every registered kind, as ``primum plugins --output json`` prints it."""
        return [e.describe() for e in self]

    def docs_table(self) -> str:
        """A Markdown table of the registered kinds (docs/ARCHITECTURE.md), from the same entries
        ``primum plugins`` prints: a kind that declares capabilities (targets) gets their column and the
        strategies they allow."""
        entries = list(self)
        if any(e.capabilities is not None for e in entries):
            rows = [f"| `{e.tag}` | {e.summary} | {', '.join(e.capabilities or []) or '-'} | "
                    f"{', '.join(e.strategies or []) or '-'} |" for e in entries]
            return "\n".join([f"| {self.kind.field}.type | what it is | capabilities | strategies |",
                              "| --- | --- | --- | --- |", *rows])
        rows = [f"| `{e.tag}` | {e.summary} |" for e in entries]
        return "\n".join([f"| {self.kind.field}.type | what it is |", "| --- | --- |", *rows])
