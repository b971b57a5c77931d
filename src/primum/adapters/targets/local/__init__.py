"""The embedded local target: services as processes behind a weighted router.

Exports are lazy on purpose: ``python -m primum.adapters.targets.local.router`` and
``... .traffic`` import this package first, and the data-plane processes
should not pay for loading the controller-side modules (pydantic models,
httpx) they never use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from primum.adapters.targets.local.router_client import RouterClient
    from primum.adapters.targets.local.runtime import LocalRuntime
    from primum.adapters.targets.local.target import LocalTarget

__all__ = ["LocalRuntime", "LocalTarget", "RouterClient"]

_EXPORTS = {
    "LocalRuntime": "primum.adapters.targets.local.runtime",
    "LocalTarget": "primum.adapters.targets.local.target",
    "RouterClient": "primum.adapters.targets.local.router_client",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
