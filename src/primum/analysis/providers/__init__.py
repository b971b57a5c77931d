"""Metric providers: one interface over the local router's records, Prometheus,
web endpoints and commands. See docs/PROVIDERS.md.

``collect`` fetches a whole measurement; ``provider_for`` gives the provider
of one source; every failure is a :class:`ProviderError` with a message a
person can act on, and ``collect`` turns it into the metric's error.
"""

from primum.analysis.providers.base import Provider, ProviderError, Scope, provider_for, with_retries
from primum.analysis.providers.builtin import BuiltinProvider
from primum.analysis.providers.collect import collect
from primum.analysis.providers.command import CommandProvider
from primum.analysis.providers.prometheus import PrometheusProvider
from primum.analysis.providers.web import WebProvider

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
