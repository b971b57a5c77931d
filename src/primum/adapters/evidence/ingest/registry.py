"""The ingest formats by name: one line per format module, so adding a format is one module plus one line.

    INGEST_FORMATS.add("spdx", "primum.adapters.evidence.ingest.spdx")

The module declares ``FORMAT = Format(name="spdx", ...)`` (see ``base.Format``). The order of the lines is
the order of the names wherever they are listed (``FORMATS``, ``primum evidence add --format``, errors);
detection asks the formats of one syntax in their ``rank`` order instead.

Not ``primum.adapters.registry.Registry``: that one registers pydantic settings with the estate, and an
ingest format is no estate plug-in (it has no settings and no ``type`` in any file). The registry holds
module paths and imports a format on first use, so listing the names (the CLI's ``--help``) costs no
import of the parsers, the crypto or the redaction patterns.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from primum.adapters.evidence.ingest.base import Format


class FormatRegistry:
    """Format name -> the module declaring it, loaded (and checked) on first use."""

    def __init__(self) -> None:
        self._modules: dict[str, str] = {}
        self._loaded: dict[str, Format] = {}

    def add(self, name: str, module: str) -> None:
        """Register ``module`` (a dotted path whose ``FORMAT`` is named ``name``)."""
        self._modules[name] = module
        self._loaded.pop(name, None)

    def remove(self, name: str) -> None:
        """Forget a format (a test that registered a toy format cleans up with this)."""
        self._modules.pop(name, None)
        self._loaded.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._modules)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._modules

    def get(self, name: str) -> Format:
        """The format registered as ``name``; ``LookupError`` naming the registered ones otherwise."""
        loaded = self._loaded.get(name)
        if loaded is not None:
            return loaded
        module = self._modules.get(name)
        if module is None:
            raise LookupError(f"no ingest format is registered as {name!r} (registered: {', '.join(self._modules)})")
        declared = importlib.import_module(module).FORMAT
        if declared.name != name:
            raise LookupError(f"{module}: FORMAT is named {declared.name!r}, but it is registered as {name!r}")
        self._loaded[name] = declared
        return declared

    def formats(self) -> list[Format]:
        """Every registered format, in registration order (loads them all)."""
        return [self.get(name) for name in self._modules]

    def detect(self, syntax: str, doc: Any) -> str | None:
        """The name of the first format of ``syntax``, by rank, whose ``detect`` accepts ``doc``; None if none."""
        candidates = sorted((f for f in self.formats() if f.syntax == syntax), key=lambda f: f.rank)
        return next((f.name for f in candidates if f.detect(doc)), None)


INGEST_FORMATS = FormatRegistry()
INGEST_FORMATS.add("slsa", "primum.adapters.evidence.ingest.slsa")
INGEST_FORMATS.add("junit", "primum.adapters.evidence.ingest.junit")
INGEST_FORMATS.add("sarif", "primum.adapters.evidence.ingest.sarif")
INGEST_FORMATS.add("trivy", "primum.adapters.evidence.ingest.trivy")
INGEST_FORMATS.add("grype", "primum.adapters.evidence.ingest.grype")
INGEST_FORMATS.add("cyclonedx", "primum.adapters.evidence.ingest.cyclonedx")

FORMATS = INGEST_FORMATS.names()  # the builtin formats' names (the registry is the live list)
