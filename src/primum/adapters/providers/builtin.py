"""The local router's per-request records (``GET /_primum/samples`` on its admin socket).

``Scope.router_url`` is the router's admin address, ``unix:PATH`` (``Target.router_admin``):
the records are per-request tenant data, so the router serves them only there, never on its data port.

For a scope (version, window ``[start, end]``, optionally one tenant) the
records whose response was ready within the window are taken:

* kind ``latency``: ``values`` = each request's latency in seconds, in order;
* kind ``errors``: ``events`` = 5xx answers, ``total`` = requests, and
  ``values`` = the error rate per 1 s step from ``start`` (NaN in a step
  without requests), the time series Kayenta mode compares.

A window the router cannot fully answer is a :class:`ProviderError`, never
partial samples: the router restarted after the window began (its records
died with the old process), its ring buffer already evicted records of the
window, or the window has not ended yet by the router's clock.

One provider caches the router's answer per ``(router_url, start, end)`` for
its lifetime (one collection): baseline, canary and every tenant slice of
every builtin metric share one request.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from primum.adapters.providers.base import ProviderError, Scope, epoch_text, error, with_retries
from primum.adapters.targets.base import TargetError
from primum.adapters.targets.local.router_client import RouterClient, RouterSamples
from primum.core.analysis.data import Samples
from primum.core.model.analysis import MetricKind, MetricSpec

NAME = "builtin"
TIMEOUT_S = 5.0
RETRIES = 2
STEP_S = 1.0  # the error-rate series' step


@dataclass(frozen=True)
class _Failure:
    problem: str
    fix: str


class BuiltinProvider:
    """Thread-safe; concurrent fetches of one window wait for a single request."""

    name = NAME

    def __init__(self, *, timeout: float = TIMEOUT_S, retries: int = RETRIES) -> None:
        self.timeout = timeout
        self.retries = retries
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, float, float], RouterSamples | _Failure] = {}
        self._window_locks: dict[tuple[str, float, float], threading.Lock] = {}

    def close(self) -> None:
        with self._lock:
            self._windows.clear()
            self._window_locks.clear()

    # ------------------------------------------------------------------ API

    def fetch(self, metric: MetricSpec, scope: Scope) -> Samples:
        if scope.router_url is None:
            raise error(metric, NAME, "no router URL for this service",
                        "the builtin source reads the local target's router; use another source elsewhere")
        what = f"{NAME} {scope.router_url}"
        data = self._window(scope.router_url, scope.start, scope.end)
        if isinstance(data, _Failure):
            raise error(metric, what, data.problem, data.fix)
        self._check_complete(metric, what, data, scope)

        latencies: list[float] = []
        times: list[float] = []
        statuses: list[int] = []
        for t, version, status, tenant, latency in zip(data.t, data.version, data.status, data.tenant, data.latency,
                                                      strict=True):
            if version != scope.version or (scope.tenant is not None and tenant != scope.tenant):
                continue
            latencies.append(latency)
            times.append(t)
            statuses.append(status)
        sent = (f"GET {scope.router_url} /_primum/samples?since={epoch_text(scope.start)}&until={epoch_text(scope.end)}"
                f" version={scope.version}" + (f" tenant={scope.tenant}" if scope.tenant is not None else ""))
        if metric.kind is MetricKind.latency:
            return Samples(values=latencies, source=sent)
        if metric.kind is MetricKind.errors:
            errors = sum(1 for status in statuses if status >= 500)
            return Samples(values=_error_rate_series(times, statuses, scope.start, scope.end), events=errors,
                           total=len(statuses), source=sent)
        raise error(metric, what, f"kind {metric.kind.value!r} is not provided by the builtin source",
                    "use kind 'latency' or 'errors'")

    # -------------------------------------------------------------- window

    def _check_complete(self, metric: MetricSpec, what: str, data: RouterSamples, scope: Scope) -> None:
        if data.started_at > scope.start:
            raise error(metric, what,
                        f"the router started at {epoch_text(data.started_at)}, after the window began at "
                        f"{epoch_text(scope.start)}: the records of the window before then are gone",
                        "measure again over a window after the router's restart")
        if data.now < scope.end:
            raise error(metric, what,
                        f"the window ends at {epoch_text(scope.end)}, after the router's clock "
                        f"({epoch_text(data.now)})", "fetch the window only once it has ended")
        if not data.complete:
            oldest = epoch_text(data.oldest) if data.oldest is not None else "none"
            raise error(metric, what,
                        f"the router's ring buffer no longer holds every request of the window "
                        f"(oldest record {oldest}, window start {epoch_text(scope.start)})",
                        "shorten the measurement interval or start the router with a larger --samples-max")

    def _window(self, url: str, start: float, end: float) -> RouterSamples | _Failure:
        key = (url, start, end)
        with self._lock:
            cached = self._windows.get(key)
            if cached is not None:
                return cached
            lock = self._window_locks.setdefault(key, threading.Lock())
        with lock:  # one request per window; the others wait for its answer
            with self._lock:
                cached = self._windows.get(key)
            if cached is not None:
                return cached
            result = self._request(url, start, end)
            with self._lock:
                self._windows[key] = result
            return result

    def _request(self, url: str, start: float, end: float) -> RouterSamples | _Failure:
        def once() -> RouterSamples:
            try:
                with RouterClient.at(url, timeout=self.timeout) as client:
                    return client.samples(start, end)
            except TargetError as exc:
                raise ProviderError(str(exc), retryable=True) from exc

        try:
            return with_retries(once, retries=self.retries, sleep=time.sleep)
        except ProviderError as exc:
            return _Failure(f"cannot read the router's records: {exc}",
                            "check that the service's router is running (primum status)")


def _error_rate_series(times: list[float], statuses: list[int], start: float, end: float) -> list[float]:
    """5xx share per 1 s step from ``start`` (the last step may be shorter); NaN without requests."""
    steps = max(1, math.ceil((end - start) / STEP_S - 1e-9))
    requests = [0] * steps
    errors = [0] * steps
    for t, status in zip(times, statuses, strict=True):
        index = min(steps - 1, max(0, int((t - start) // STEP_S)))
        requests[index] += 1
        if status >= 500:
            errors[index] += 1
    return [e / n if n else math.nan for e, n in zip(errors, requests, strict=True)]
