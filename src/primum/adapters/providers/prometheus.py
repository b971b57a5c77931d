"""PromQL over the Prometheus HTTP API (``/api/v1/query`` and ``/api/v1/query_range``).

* kind ``value``, ``range: true`` (the default): a range query over
  ``[start, end]`` at ``step``; the samples are the series' values, one per
  step, NaN at a step where the series has no point.
* kind ``value``, ``range: false``: one instant query at ``end``; one sample.
* kind ``proportion``: ``query`` (bad events) and ``total_query`` (all events)
  as instant queries at ``end``; their values, rounded, are ``events``/``total``.

A query must give exactly one series: anything else is a :class:`ProviderError`
naming how many series came back and their labels (aggregate with ``sum`` or
narrow the selector; ``or vector(0)`` turns "no series" into a zero). ``"NaN"``
values are float NaN. ``{{tenant}}`` in the all-traffic fetch is ``.*``, so
``tenant=~"{{tenant}}"`` works for the whole and for each slice.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from primum.adapters.providers.base import (
    PooledHttp,
    Scope,
    as_count,
    duration_text,
    epoch_text,
    error,
    with_retries,
)
from primum.adapters.secrets import SecretUnavailable, expand_headers
from primum.core.analysis.data import Samples
from primum.core.model.analysis import MetricKind, MetricSpec, PrometheusSource, fill

NAME = "prometheus"


class PrometheusProvider(PooledHttp):
    """Thread-safe; one pooled HTTP client per provider (close it when done)."""

    name = NAME

    # ------------------------------------------------------------------ API

    def fetch(self, metric: MetricSpec, scope: Scope) -> Samples:
        source = metric.source
        if not isinstance(source, PrometheusSource):
            raise TypeError(f"metric {metric.name!r}: not a prometheus source")
        values = scope.placeholders(step=source.step, all_tenants=".*")
        query = fill(source.query, values)
        if metric.kind is MetricKind.proportion:
            if source.total_query is None:  # the model's validator prevents this
                raise error(metric, self._what(source), "a proportion metric needs total_query")
            total_query = fill(source.total_query, values)
            events = self._count(metric, source, query, scope.end, "query (bad events)")
            total = self._count(metric, source, total_query, scope.end, "total_query (all events)")
            if events > total:
                raise error(metric, self._what(source),
                            f"bad events ({events}) exceed all events ({total})",
                            "check that query counts a subset of what total_query counts")
            return Samples(events=events, total=total, source=f"events: {query}; total: {total_query}")
        if source.range:
            points = self._range(metric, source, query, scope.start, scope.end)
            return Samples(values=points, source=query)
        return Samples(values=[self._instant(metric, source, query, scope.end)], source=query)

    # ------------------------------------------------------------- queries

    def _what(self, source: PrometheusSource) -> str:
        return f"{NAME} {source.address}"

    def _count(self, metric: MetricSpec, source: PrometheusSource, query: str, at: float, what: str) -> int:
        value = self._instant(metric, source, query, at)
        count = as_count(value)
        if count is None:
            raise error(metric, self._what(source), f"{what} {query!r} gave {value!r}, not a count",
                        "it must give a finite number >= 0 (wrap it in sum(...) or add 'or vector(0)')")
        return count

    def _instant(self, metric: MetricSpec, source: PrometheusSource, query: str, at: float) -> float:
        params = {"query": query, "time": epoch_text(at), "timeout": duration_text(source.timeout)}
        data = self._call(metric, source, "/api/v1/query", params)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return _number(metric, source, result[1], query)
        series = self._one_series(metric, source, query, kind, result, "vector")
        value = series.get("value")
        if not isinstance(value, list) or len(value) != 2:
            raise error(metric, self._what(source), f"malformed vector sample {value!r} for {query!r}")
        return _number(metric, source, value[1], query)

    def _range(self, metric: MetricSpec, source: PrometheusSource, query: str, start: float,
               end: float) -> list[float]:
        start_ms, end_ms, step_ms = round(start * 1000), round(end * 1000), max(1, round(source.step * 1000))
        params = {
            "query": query,
            "start": epoch_text(start_ms / 1000),
            "end": epoch_text(end_ms / 1000),
            "step": epoch_text(step_ms / 1000),
            "timeout": duration_text(source.timeout),
        }
        data = self._call(metric, source, "/api/v1/query_range", params)
        series = self._one_series(metric, source, query, data.get("resultType"), data.get("result"), "matrix")
        raw = series.get("values")
        if not isinstance(raw, list):
            raise error(metric, self._what(source), f"malformed matrix series {series!r} for {query!r}")
        points: list[tuple[int, float]] = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int | float):
                raise error(metric, self._what(source), f"malformed matrix point {item!r} for {query!r}")
            points.append((round(item[0] * 1000), _number(metric, source, item[1], query)))
        return _on_grid(points, start_ms, end_ms, step_ms)

    def _one_series(self, metric: MetricSpec, source: PrometheusSource, query: str, kind: object,
                    result: object, want: str) -> dict[str, Any]:
        if kind != want or not isinstance(result, list):
            raise error(metric, self._what(source), f"query {query!r} gave a {kind!r} result, expected a {want}",
                        "write an expression that gives one series")
        if len(result) != 1:
            labels = [_labels(item.get("metric") if isinstance(item, dict) else None) for item in result[:5]]
            more = f" and {len(result) - 5} more" if len(result) > 5 else ""
            shown = (": " + ", ".join(labels) + more) if labels else ""
            fix = ("aggregate it (e.g. sum(...)) or narrow the label selector to one series" if result else
                   "check the metric name and labels (is {{version}} the label value the service exports?), "
                   "or add 'or vector(0)' when no series means zero")
            raise error(metric, self._what(source),
                        f"query {query!r} returned {len(result)} series, need exactly one{shown}", fix)
        series = result[0]
        if not isinstance(series, dict):
            raise error(metric, self._what(source), f"malformed series {series!r} for {query!r}")
        return series

    def _call(self, metric: MetricSpec, source: PrometheusSource, path: str,
              params: dict[str, str]) -> dict[str, Any]:
        url = source.address.rstrip("/") + path
        what = self._what(source)
        try:  # "${NAME}" in a header: a secret read from the environment now, never kept in the estate
            headers = expand_headers(source.headers, "source.headers")
        except SecretUnavailable as exc:
            raise error(metric, what, str(exc)) from None

        def once() -> dict[str, Any]:
            try:
                resp = self._http().get(url, params=params, headers=headers, timeout=source.timeout)
            except httpx.TimeoutException as exc:
                raise error(metric, what, f"no answer from {url} within {source.timeout:g} s "
                            f"({type(exc).__name__})", "raise the source's timeout or check Prometheus' load",
                            retryable=True) from exc
            except httpx.HTTPError as exc:
                raise error(metric, what, f"cannot reach {url}: {type(exc).__name__}: {exc}",
                            "check the source's address and that Prometheus is running",
                            retryable=True) from exc
            try:
                body = resp.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and body.get("status") == "error":
                retryable = resp.status_code >= 500 or resp.status_code == 429
                raise error(metric, what, f"Prometheus answered HTTP {resp.status_code} "
                            f"{body.get('errorType', '?')}: {body.get('error', '')} (query {params['query']!r})",
                            "fix the PromQL" if not retryable else "", retryable=retryable)
            if resp.status_code != 200 or not isinstance(body, dict):
                retryable = resp.status_code >= 500 or resp.status_code == 429
                raise error(metric, what, f"{url} answered HTTP {resp.status_code}: {resp.text[:200]!r}",
                            "check that the address is a Prometheus server", retryable=retryable)
            data = body.get("data")
            if body.get("status") != "success" or not isinstance(data, dict):
                raise error(metric, what, f"unexpected answer from {url}: {resp.text[:200]!r}",
                            "check that the address is a Prometheus server")
            return data

        return with_retries(once, retries=source.retries)


def _number(metric: MetricSpec, source: PrometheusSource, raw: object, query: str) -> float:
    """Prometheus encodes sample values as strings (``"1.5"``, ``"NaN"``, ``"+Inf"``)."""
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise error(metric, f"{NAME} {source.address}", f"non-numeric sample value {raw!r} for {query!r}") from None


def _labels(metric: object) -> str:
    if not isinstance(metric, dict):
        return "{}"
    name = metric.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def _on_grid(points: list[tuple[int, float]], start_ms: int, end_ms: int, step_ms: int) -> list[float]:
    """One value per step from ``start`` to ``end`` (inclusive), NaN where the series
    has no point. Points off the grid (Prometheus never sends any) keep their order."""
    count = (end_ms - start_ms) // step_ms + 1 if end_ms >= start_ms else 0
    grid = [math.nan] * count
    for t_ms, value in points:
        offset = t_ms - start_ms
        index, rest = divmod(offset, step_ms)
        if rest or not 0 <= index < count:
            return [value for _, value in points]
        grid[index] = value
    return grid
