"""What every detector shares: the text being scanned, case-insensitive patterns, the span type."""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["Insensitive", "Span", "Text", "has_digit"]

# (start, end, kind) of one detected value in one string.
Span = tuple[int, int, str]


class Text:
    """A string and its lowercase form. Case-insensitive patterns run on ``low`` without re.I,
    about 8x faster in CPython's re; when lowercasing changes the length (a few non-ASCII
    letters such as "İ") indices would no longer line up, so they fall back to re.I on ``text``."""

    __slots__ = ("gates", "low", "lowered", "text")

    def __init__(self, text: str):
        self.text = text
        self.gates: dict[str, bool] = {}  # cheap pre-checks shared by several detectors, computed once
        self.lowered = text.lower()
        self.low = self.lowered if len(self.lowered) == len(text) else None

    def has(self, needles: tuple[str, ...]) -> bool:
        """A cheap gate: one of these is in the text (case-insensitive; needles with capitals match exactly)."""
        return any(n in (self.lowered if n.islower() else self.text) for n in needles)


class Insensitive:
    """A case-insensitive regex, written in lowercase."""

    def __init__(self, pattern: str):
        self.plain = re.compile(pattern)
        self.folded = re.compile(pattern, re.IGNORECASE)

    def finditer(self, t: Text) -> Iterator[re.Match[str]]:
        return self.plain.finditer(t.low) if t.low is not None else self.folded.finditer(t.text)


def has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)
