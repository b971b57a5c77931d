"""Metric providers: one interface over the local router's records, Prometheus,
web endpoints and commands. See docs/PROVIDERS.md.

``collect`` fetches a whole measurement; ``provider_for`` (the registry) gives the provider
of one source; every failure is a :class:`ProviderError` with a message a
person can act on, and ``collect`` turns it into the metric's error.
"""

from primum.adapters.providers.base import Provider, ProviderError, Scope, with_retries
from primum.adapters.providers.builtin import BuiltinProvider
from primum.adapters.providers.collect import collect
from primum.adapters.providers.command import CommandProvider
from primum.adapters.providers.prometheus import PrometheusProvider
from primum.adapters.providers.registry import provider_for
from primum.adapters.providers.web import WebProvider

__all__ = [
    "BuiltinProvider",
    "CommandProvider",
    "PrometheusProvider",
    "Provider",
    "ProviderError",
    "Scope",
    "WebProvider",
    "collect",
    "provider_for",
    "with_retries",
]
