"""The settings of plug-ins, keyed by their ``type`` tag (pure).

An estate names plug-ins of three kinds: a metric's ``source`` (builtin,
prometheus, ...), a probe gate's ``probe`` (http, fhir, ...) and a service's
``target`` (local, noop, ...). Each kind is a :class:`SpecKind`: the settings
classes registered under their tags. The estate's fields of that kind validate
against whatever is registered, so the estate schema, the list of allowed kinds
in a validation error and the docs table all come from one place, and a new kind
needs no edit here. The implementations (which do I/O) are registered beside
their settings by the adapters' registries (``primum.adapters.*.registry``).

Each kind is declared next to its base class: ``SOURCES`` and ``PROBES`` in
``analysis.py``, ``TARGETS`` in ``estate.py``. The builtin kinds' settings are defined in this layer (``analysis.py``,
``estate.py``) because the estate's own cross-checks read them; a new kind can
define its settings in its own module, next to its implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, SerializeAsAny, WrapValidator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

S = TypeVar("S", bound=type[BaseModel])


class PluginSpec(BaseModel):
    """Base of every plug-in's settings: strict, frozen, and tagged by ``type``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str


class SpecKind:
    """The settings classes of one kind of plug-in, by type tag.

    ``what`` names the kind in errors ("metric source"); ``field`` is the estate
    field that holds it (for the fix); ``default`` is the tag used when a mapping
    has no ``type`` (None: ``type`` is required); ``base`` is the class every
    settings class of the kind derives from (what the core may call on it).
    """

    def __init__(self, what: str, field: str, default: str | None = None,
                 base: type[PluginSpec] | None = None) -> None:
        self.what = what
        self.base = base or PluginSpec
        self.field = field
        self.default = default
        self._specs: dict[str, type[BaseModel]] = {}

    def register(self, spec: S) -> S:
        """Register a settings class under the default of its ``type`` field; usable as a decorator."""
        if not issubclass(spec, self.base):
            raise TypeError(f"a {self.what}'s settings class derives from {self.base.__name__}; "
                            f"{spec.__name__} does not")
        tag = spec.model_fields["type"].default  # type: ignore[call-overload]  # pydantic 2.11+ warns on instances only
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"{spec.__name__}.type needs a literal default (its tag), e.g. type: Literal['x'] = 'x'")
        known = self._specs.get(tag)
        if known is not None and known is not spec:
            raise ValueError(f"{self.what} type {tag!r} is already registered by {known.__name__}")
        self._specs[tag] = spec
        return spec

    def unregister(self, tag: str) -> None:
        """Forget a tag (tests that register a toy kind clean up with this)."""
        self._specs.pop(tag, None)

    def tags(self) -> list[str]:
        return list(self._specs)

    def spec(self, tag: str) -> type[BaseModel]:
        return self._specs[tag]

    def __iter__(self) -> Iterator[tuple[str, type[BaseModel]]]:
        return iter(list(self._specs.items()))

    def __contains__(self, tag: object) -> bool:
        return tag in self._specs

    # --------------------------------------------------------------- pydantic

    def _validate(self, value: Any, handler: Callable[[Any], Any], info: core_schema.ValidationInfo) -> Any:
        specs = tuple(self._specs.values())
        if isinstance(value, specs):
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError("model_type", "expected a mapping with `type: ...` ({what})",
                                      {"what": self.what})
        tag = value.get("type", self.default)
        if tag is None:
            raise PydanticCustomError("missing", "required field is missing")
        if not isinstance(tag, str) or tag not in self._specs:
            raise PydanticCustomError(
                "union_tag_invalid",
                "{field}.type {tag} is not a known {what}; use one of: {expected_tags}",
                {"tag": repr(tag), "what": self.what, "field": self.field, "discriminator": "'type'",
                 "expected_tags": ", ".join(self._specs)})
        return self._specs[tag].model_validate(value, context=info.context)

    def field_type(self) -> Any:
        """The annotation of an estate field that holds one plug-in of this kind."""
        kind = self

        class _Schema:
            @classmethod
            def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema,
                                             handler: GetJsonSchemaHandler) -> JsonSchemaValue:
                variants = []
                for _, spec in kind:
                    sub = spec.model_json_schema(by_alias=True)
                    defs = sub.pop("$defs", {})  # inlined: each variant stands alone in the oneOf
                    variants.append(_inline_refs(sub, defs))
                return {"oneOf": variants, "description": f"a {kind.what}: one of {', '.join(kind.tags())}"}

        # SerializeAsAny: dump the registered class's fields, not only the base's
        return Annotated[SerializeAsAny[self.base], WrapValidator(self._validate), _Schema]  # type: ignore[misc,name-defined]


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    """The schema with each ``{"$ref": "#/$defs/X"}`` replaced by X's schema (plug-in settings are not recursive)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
            return _inline_refs(defs[ref[8:]], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline_refs(v, defs) for v in schema]
    return schema
