"""Every plug-in kind the adapters define, registered with the estate before an estate file is read.

A kind whose settings live next to its implementation (``adapters/targets/kubernetes/settings.py``) joins
the estate when its registry line runs; a command that reads an estate without building targets
(``primum validate``, ``primum schema``, ``primum release apply``) calls :func:`load_plugins` first, so
it accepts the same ``type`` tags the controller does.
"""

from __future__ import annotations


def load_plugins() -> None:
    """Import the adapters' registries (settings only: no client library is imported here)."""
    import primum.adapters.probes.registry
    import primum.adapters.providers.registry
    import primum.adapters.targets.registry  # noqa: F401
