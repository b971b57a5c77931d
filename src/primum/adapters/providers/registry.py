"""Metric providers by source type: adding one is one module and one line here (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

from collections.abc import Callable

from primum.adapters.providers.base import Provider
from primum.adapters.providers.builtin import BuiltinProvider
from primum.adapters.providers.command import CommandProvider
from primum.adapters.providers.prometheus import PrometheusProvider
from primum.adapters.providers.web import WebProvider
from primum.adapters.registry import Registry
from primum.core.model.analysis import SOURCES, BuiltinSource, CommandSource, PrometheusSource, WebSource
from primum.core.model.plugins import PluginSpec

PROVIDERS: Registry[Callable[[], Provider]] = Registry(SOURCES)
PROVIDERS.add(BuiltinSource, BuiltinProvider)
PROVIDERS.add(PrometheusSource, PrometheusProvider)
PROVIDERS.add(WebSource, WebProvider)
PROVIDERS.add(CommandSource, CommandProvider)


def provider_for(source: PluginSpec) -> Provider:
    """A new provider for ``source``'s type. Providers are cheap; the builtin one caches router answers
    for its lifetime, so make one per collection."""
    return PROVIDERS.get(source.type)()
