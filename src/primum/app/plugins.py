"""Every plug-in kind the adapters define, registered with the estate before an estate file is read.

A kind whose settings live next to its implementation (``adapters/targets/kubernetes/settings.py``) joins
the estate when its registry line runs; a command that reads an estate without building targets
(``primum validate``, ``primum schema``, ``primum release apply``) calls :func:`load_plugins` first, so
it accepts the same ``type`` tags the controller does.
"""

from __future__ import annotations

from typing import Any


def load_plugins() -> None:
    """Import the adapters' registries (settings only: no client library is imported here)."""
    import primum.adapters.probes.registry
    import primum.adapters.providers.registry
    import primum.adapters.targets.registry  # noqa: F401


def plugin_catalog() -> dict[str, list[dict[str, Any]]]:
    """Every registered kind of every plug-in type (``primum plugins``): its ``type`` tag, the summary its
    settings class gives, the settings class, and for targets their capabilities and the strategies those
    allow. The docs' tables (docs/ARCHITECTURE.md) are made from the same entries."""
    from primum.adapters.probes.registry import PROBES
    from primum.adapters.providers.registry import PROVIDERS
    from primum.adapters.targets.registry import TARGETS

    load_plugins()
    return {"targets": TARGETS.describe(), "providers": PROVIDERS.describe(), "probes": PROBES.describe()}
