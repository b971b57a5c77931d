"""What every metric provider shares: the scope of a fetch, the one error type,
the protocol, retries, and the choice of provider for a source.

A provider turns one :class:`~primum.core.model.analysis.MetricSpec` and one
:class:`Scope` (which version, which role, which window, which tenant slice)
into :class:`~primum.core.analysis.data.Samples`, or raises :class:`ProviderError`.
It never returns empty or made-up samples in place of a failure: the judge
classifies an error as Error, never as a pass.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, runtime_checkable

import httpx

from primum.core.analysis.data import Samples
from primum.core.model.analysis import MetricSpec

T = TypeVar("T")

Role = Literal["baseline", "canary"]

BACKOFF_FIRST_S = 0.2  # before the first retry; doubled each time
BACKOFF_MAX_S = 1.0


class ProviderError(Exception):
    """A metric could not be fetched. The message names the metric and the
    provider, says what went wrong and what to fix; it is stored as
    :attr:`MetricData.error <primum.core.analysis.data.MetricData.error>`.

    ``retryable``: the failure may pass on its own (a timeout, a refused
    connection, a 5xx); :func:`with_retries` tries again only then.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


def error(metric: MetricSpec | str, provider: str, problem: str, fix: str = "", *,
          retryable: bool = False) -> ProviderError:
    """``metric 'NAME' (PROVIDER): PROBLEM; FIX``."""
    name = metric.name if isinstance(metric, MetricSpec) else metric
    text = f"metric {name!r} ({provider}): {problem}"
    if fix:
        text += f"; {fix}"
    return ProviderError(text, retryable=retryable)


def duration_text(seconds: float) -> str:
    """A duration as PromQL writes one: ``4s``, ``1500ms`` (whole ms, at least ``1ms``)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def epoch_text(seconds: float) -> str:
    """Unix seconds with at most millisecond precision, no trailing zeros: ``1700000000.25``."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True, slots=True)
class Scope:
    """What one fetch is about: one version in one role over one window,
    for all traffic (``tenant`` None) or one tenant's slice.

    ``version`` is the :attr:`VersionRef.key <primum.core.model.actions.VersionRef.key>`,
    ``start``/``end`` unix seconds, ``router_url`` the address of the service's
    local router's admin API, ``unix:PATH`` (the builtin provider needs it; others ignore it).
    """

    env: str
    service: str
    role: Role
    version: str
    digest: str
    start: float
    end: float
    tenant: str | None = None
    router_url: str | None = None

    @property
    def window(self) -> float:
        return self.end - self.start

    def placeholders(self, *, step: float = 1.0, all_tenants: str = "") -> dict[str, str]:
        """Values for :func:`~primum.core.model.analysis.fill`.

        ``window`` and ``step`` render as PromQL durations (``4s``, ``1500ms``),
        ``start``/``end`` as unix seconds; ``tenant`` is the slice's tenant, or
        ``all_tenants`` for the all-traffic fetch (``""``; the Prometheus provider
        passes ``.*`` so that ``tenant=~"{{tenant}}"`` matches every tenant).
        """
        return {
            "env": self.env,
            "service": self.service,
            "role": self.role,
            "version": self.version,
            "digest": self.digest,
            "tenant": self.tenant if self.tenant is not None else all_tenants,
            "start": epoch_text(self.start),
            "end": epoch_text(self.end),
            "window": duration_text(self.window),
            "step": duration_text(step),
        }

    def describe(self) -> str:
        where = f", tenant {self.tenant}" if self.tenant is not None else ""
        return f"{self.role} {self.version}{where}"

    def for_tenant(self, tenant: str | None) -> Scope:
        return Scope(self.env, self.service, self.role, self.version, self.digest, self.start, self.end,
                     tenant, self.router_url)


@runtime_checkable
class Provider(Protocol):
    """Fetches one metric for one scope. Must be safe to call from several threads."""

    name: str

    def fetch(self, metric: MetricSpec, scope: Scope) -> Samples: ...


def with_retries(fn: Callable[[], T], *, retries: int, sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn``; on a retryable :class:`ProviderError` try again, up to ``retries``
    more times, after a short doubling backoff (0.2 s, 0.4 s, ... at most 1 s).
    The last error is raised with the number of attempts added."""
    attempts = retries + 1
    for attempt in range(attempts):
        try:
            return fn()
        except ProviderError as exc:
            if not exc.retryable or attempt == attempts - 1:
                if attempt > 0:
                    raise ProviderError(f"{exc.message} (after {attempt + 1} attempts)",
                                        retryable=exc.retryable) from exc
                raise
            sleep(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def as_count(value: float) -> int | None:
    """A non-negative finite number rounded to an int, else None."""
    if math.isnan(value) or math.isinf(value) or value < 0:
        return None
    return round(value)


class PooledHttp:
    """One pooled HTTP client per provider, made on first use; thread-safe; close it when done.

    ``trust_env=False``: a proxy from the environment must not capture the
    (usually internal) metrics address.
    """

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(trust_env=False, follow_redirects=True)
            return self._client
