"""Reading YAML while remembering where every field came from.

PyYAML's composed node tree carries line marks; we walk it once to build a
map from field path to line, so a validation error can name the line.
Duplicate keys are an error here (PyYAML would silently keep the last one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from primum.core.model.errors import InputError, Problem

Loc = tuple[str | int, ...]


class LocatedDocument:
    """A parsed YAML document and the line of every field in it."""

    def __init__(self, file: str, data: Any, lines: dict[Loc, int]):
        self.file = file
        self.data = data
        self.lines = lines

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc`` or of its nearest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)

    def problem(self, loc: Loc, message: str, fix: str) -> Problem:
        return Problem(self.file, self.line_of(loc), dotted(loc), message, fix)


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_yaml(path: str | Path) -> LocatedDocument:
    """Parse ``path``; raise InputError on unreadable files, YAML errors and duplicate keys."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError.single(name, "file not found", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError.single(name, f"cannot read file: {exc}", "check the file") from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> LocatedDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError.single(
            name, f"not valid YAML: {getattr(exc, 'problem', exc)}", "fix the YAML syntax", line=line
        ) from None
    if node is None:
        raise InputError.single(name, "the file is empty", "write the document (see `primum init`)")
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    _walk(node, (), lines, problems, name)
    if problems:
        raise InputError(problems)
    data = yaml.safe_load(text)
    return LocatedDocument(name, data, lines)


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[Problem], name: str) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(name, line, dotted((*loc, key)),
                            f"duplicate key (first defined on line {seen[key]})",
                            "keep one of the two definitions")
                )
                continue
            seen[key] = line
            lines[(*loc, key)] = line
            _walk(value_node, (*loc, key), lines, problems, name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _walk(item, (*loc, i), lines, problems, name)
