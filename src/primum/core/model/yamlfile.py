"""Reading YAML safely, while remembering where every field came from.

Every YAML file primum reads from a user (estates, releases, identities) goes through :func:`load_yaml` or
:func:`parse_yaml`. The file is composed into PyYAML's node graph by a loader that enforces the limits below
*while it composes*, so nothing is expanded, walked or constructed before it is known to be small:

* the file is at most ``MAX_BYTES``;
* nesting is at most ``MAX_DEPTH`` levels, counted as the document expands (through aliases too);
* at most ``MAX_ALIASES`` aliases (``*name``), never one inside the node it names (a recursive anchor);
* the document expands (aliases and merge keys ``<<`` followed) to at most ``MAX_NODES`` values: PyYAML
  composes an alias as a reference to the anchored node, so a "billion laughs" file is a small graph whose
  expanded size is counted here once per node, before anything walks it;
* mapping keys are plain scalars (no ``? [a, b]`` complex keys) and the only tags are YAML's plain types
  (no ``!custom`` or ``!!python/...`` tags).

Each violation is an :class:`InputError` naming the file, the line and the limit (the CLI exits 2). The
composed graph is then walked once to map every field path to its line, so a validation error can name the
line; duplicate keys are an error here (PyYAML would silently keep the last one). The limits are documented
in docs/FILES.md ("Limits and ranges").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from primum.core.model.errors import InputError, Problem

Loc = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024  # an estate of hundreds of services is a few hundred KiB
MAX_DEPTH = 64  # an estate nests about ten levels deep
MAX_ALIASES = 100
MAX_NODES = 100_000  # values after every alias and merge key is expanded

_CORE = "tag:yaml.org,2002:"
# YAML's plain types (what the safe resolver gives untagged values), and `=` read as a string.
ALLOWED_TAGS = frozenset(_CORE + t for t in ("null", "bool", "int", "float", "str", "seq", "map", "timestamp",
                                             "merge", "value"))

_ALIAS_WHY = "YAML anchors and aliases are limited to keep a file from expanding without bound"


class _Refused(yaml.MarkedYAMLError):
    """A limit of this module, raised while composing, with the mark of the node that broke it."""

    def __init__(self, mark: Any, problem: str, fix: str):
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


try:  # libyaml's scanner and parser (events one at a time, no recursion) are five times faster than PyYAML's
    import yaml.cyaml

    CParser: Any = getattr(yaml.cyaml, "CParser", None)
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None


if CParser is not None:
    class _SafeLoader(CParser, Composer, SafeConstructor, Resolver):
        """libyaml's parser under PyYAML's own composer (so the limits below see every node) and safe constructor."""

        def __init__(self, text: str):
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

        # CParser composes in C; these three must be the Python composer's, which calls ``compose_node``.
        check_node = Composer.check_node
        get_node = Composer.get_node
        get_single_node = Composer.get_single_node
else:  # pragma: no cover
    _SafeLoader = yaml.SafeLoader  # type: ignore[misc,assignment]


class _LimitedLoader(_SafeLoader):
    """The safe loader, composing under the module's limits (see the module docstring)."""

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self._aliases = 0
        self._open: set[str] = set()  # anchors of the nodes being composed (an alias to one is recursive)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> Any:
        event: Any = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(event.start_mark, f"more than {MAX_ALIASES} aliases (limit {MAX_ALIASES})",
                               f"{_ALIAS_WHY}; write the values out, or share settings with templates")
            if event.anchor in self._open:
                raise _Refused(event.start_mark, f"the alias *{event.anchor} is inside the node &{event.anchor} "
                               "it refers to (a recursive anchor)", "refer only to a node defined before the alias")
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep (limit {MAX_DEPTH})",
                           "flatten the document; no primum file nests that deep")
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        try:
            node: Any = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.discard(anchor)
        if node.tag not in ALLOWED_TAGS:
            shown = "!!" + node.tag[len(_CORE):] if node.tag.startswith(_CORE) else node.tag
            raise _Refused(node.start_mark, f"the tag {shown} is not allowed",
                           "remove the tag; primum files use only plain YAML values (strings, numbers, booleans, "
                           "null, lists and mappings)")
        if isinstance(node, yaml.MappingNode):
            for key, _value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    raise _Refused(key.start_mark, "a mapping key is a list or a mapping (a complex key)",
                                   "use a plain name as the key")
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value PyYAML cannot build (``2024-02-30``, an integer of 5,000 digits) is a marked YAML error."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, TypeError) as exc:
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this value ({exc})",
                                                    node.start_mark) from None


_LimitedLoader.add_constructor(_CORE + "value", _LimitedLoader.construct_yaml_str)  # type: ignore[type-var]


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


def _too_big(name: str) -> InputError:
    return InputError.single(name, f"larger than {MAX_BYTES // 1024} KiB (limit {MAX_BYTES // 1024} KiB)",
                             "split the file; no primum file needs to be that large")


def load_yaml(path: str | Path) -> LocatedDocument:
    """Parse ``path``; raise InputError on unreadable or oversized files, YAML errors, limits and duplicate keys."""
    name = str(path)
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError.single(name, "file not found", "check the path") from None
    except IsADirectoryError:
        raise InputError.single(name, "is a directory, not a file", "give the path of the YAML file") from None
    except OSError as exc:
        raise InputError.single(name, f"cannot read file: {exc.strerror or exc}", "check the file") from None
    if len(raw) > MAX_BYTES:
        raise _too_big(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError.single(name, f"not UTF-8 text (invalid byte at offset {exc.start})",
                                "save the file as UTF-8") from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> LocatedDocument:
    """Parse YAML text under the module's limits; raise InputError naming ``name``, the line and the problem."""
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _too_big(name)
    loader: _LimitedLoader | None = None
    try:
        loader = _LimitedLoader(text)  # the reader refuses control characters already
        node = loader.get_single_node()
        if node is None:
            raise InputError.single(name, "the file is empty", "write the document (see `primum init`)")
        _check_expansion(node, {}, 1)
        lines: dict[Loc, int] = {}
        problems: list[Problem] = []
        _walk(node, (), lines, problems, name)
        if problems:
            raise InputError(problems)
        data = loader.construct_document(node)
    except _Refused as exc:
        raise InputError.single(name, str(exc.problem), exc.fix, line=_line(exc)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        char = exc.character if isinstance(exc.character, int) else ord(exc.character or "\0")
        raise InputError.single(name, f"not valid YAML: the character U+{char:04X} is not allowed",
                                "remove the control character", line=line) from None
    except yaml.constructor.ConstructorError as exc:
        raise InputError.single(name, str(exc.problem), "correct the value", line=_line(exc)) from None
    except yaml.YAMLError as exc:
        raise InputError.single(name, f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                                "fix the YAML syntax", line=_line(exc)) from None
    except RecursionError:  # a safety net: the depth limit keeps every walk far from Python's stack limit
        raise InputError.single(name, f"nested too deeply (limit {MAX_DEPTH} levels)",
                                "flatten the document") from None
    finally:
        if loader is not None:
            loader.dispose()
    return LocatedDocument(name, data, lines)


def _line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def _check_expansion(node: yaml.Node, sizes: dict[int, tuple[int, int]], depth: int) -> tuple[int, int]:
    """(values, levels) of ``node`` expanded, each node sized once: an alias costs its target's size again.

    Anchors come before their aliases, so a node reached through an alias is already sized and this
    recursion goes no deeper than the composed document (``MAX_DEPTH``).
    """
    known = sizes.get(id(node))
    if known is not None:
        size, levels = known
    else:
        size, levels = 1, 0
        children = (node.value if isinstance(node, yaml.SequenceNode)
                    else [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
        for child in children:
            child_size, child_levels = _check_expansion(child, sizes, depth + 1)
            size += child_size
            levels = max(levels, child_levels)
            # reported at the node holding the alias (the alias's own node is the anchor's, earlier)
            if size > MAX_NODES:
                raise _Refused(node.start_mark, f"the document expands to more than {MAX_NODES} values "
                               f"(limit {MAX_NODES})", f"{_ALIAS_WHY}; write fewer or smaller aliases, or "
                               "split the file")
            if depth + child_levels > MAX_DEPTH:
                raise _Refused(node.start_mark, f"nested more than {MAX_DEPTH} levels deep once aliases are "
                               f"expanded (limit {MAX_DEPTH})", f"{_ALIAS_WHY}; flatten the document")
        levels += 1
        sizes[id(node)] = (size, levels)
    return size, levels


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
