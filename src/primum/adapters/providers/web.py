"""An HTTP endpoint answering JSON; a JSONPath picks the numbers.

``url``, ``body`` and header values are templated with ``{{name}}``
placeholders (values are percent-encoded in the URL, verbatim elsewhere; the
all-traffic fetch fills ``{{tenant}}`` with ``""``). The request is a GET, or a
POST of ``body`` (``Content-Type: application/json`` unless a header says
otherwise). ``jsonpath`` (the ``jsonpath-ng`` dialect with its extensions,
so filters like ``$.series[?(@.version == "abc")].value`` work) must pick:

* one number: one sample;
* one list of numbers, or several numbers: the samples, in order.

Numbers may be JSON numbers or numeric strings (``"1.5"``, ``"NaN"``); a
``null`` inside a list is NaN (a missing point). Anything else -- nothing
matched, a string, an object, a lone ``null`` -- is a :class:`ProviderError`,
as is a non-2xx answer (its status and the first 200 characters of its body).
Proportion metrics read ``events`` at ``jsonpath`` and ``total`` at
``total_jsonpath``, each one number.

The environment's proxy settings are not used (``trust_env=False``).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any
from urllib.parse import quote

import httpx
from jsonpath_ng.ext import parse as jsonpath_parse

from primum.adapters.providers.base import PooledHttp, Scope, as_count, error, with_retries
from primum.adapters.secrets import SecretUnavailable, expand_headers
from primum.core.analysis.data import Samples
from primum.core.model.analysis import MetricKind, MetricSpec, WebSource, fill

NAME = "web"


@functools.lru_cache(maxsize=256)
def _compile(path: str) -> Any:
    return jsonpath_parse(path)


class WebProvider(PooledHttp):
    """Thread-safe; one pooled HTTP client per provider (close it when done)."""

    name = NAME

    def fetch(self, metric: MetricSpec, scope: Scope) -> Samples:
        source = metric.source
        if not isinstance(source, WebSource):
            raise TypeError(f"metric {metric.name!r}: not a web source")
        values = scope.placeholders()
        url = fill(source.url, {k: quote(v, safe="") for k, v in values.items()})
        body = fill(source.body, values) if source.body is not None else None
        try:  # "${NAME}" in a header: a secret read from the environment now, never kept in the estate
            headers = expand_headers({k: fill(v, values) for k, v in source.headers.items()}, "source.headers")
        except SecretUnavailable as exc:
            raise error(metric, NAME, str(exc)) from None
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        sent = f"{source.method} {url}" + (f" {body}" if body is not None else "")
        what = f"{NAME} {source.method} {url}"

        document = with_retries(lambda: self._get(metric, source, url, body, headers, what),
                                retries=source.retries)
        if metric.kind is MetricKind.proportion:
            if source.total_jsonpath is None:  # the model's validator prevents this
                raise error(metric, what, "a proportion metric needs total_jsonpath")
            events = _count(metric, what, document, source.jsonpath, "jsonpath (bad events)")
            total = _count(metric, what, document, source.total_jsonpath, "total_jsonpath (all events)")
            if events > total:
                raise error(metric, what, f"bad events ({events}) exceed all events ({total})",
                            "check that jsonpath and total_jsonpath pick the right numbers")
            return Samples(events=events, total=total, source=sent)
        return Samples(values=_numbers(metric, what, document, source.jsonpath), source=sent)

    def _get(self, metric: MetricSpec, source: WebSource, url: str, body: str | None,
             headers: dict[str, str], what: str) -> Any:
        try:
            resp = self._http().request(source.method, url, content=body, headers=headers, timeout=source.timeout)
        except httpx.TimeoutException as exc:
            raise error(metric, what, f"no answer within {source.timeout:g} s ({type(exc).__name__})",
                        "raise the source's timeout or check the endpoint", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise error(metric, what, f"request failed: {type(exc).__name__}: {exc}",
                        "check the source's url and that the endpoint is up", retryable=True) from exc
        if not 200 <= resp.status_code < 300:
            retryable = resp.status_code >= 500 or resp.status_code == 429
            raise error(metric, what, f"answered HTTP {resp.status_code}: {resp.text[:200]!r}",
                        "check the url, method, headers and body", retryable=retryable)
        try:
            return json.loads(resp.content)
        except ValueError as exc:
            raise error(metric, what, f"answered non-JSON: {resp.text[:200]!r} ({exc})",
                        "the endpoint must answer JSON") from exc


def _find(metric: MetricSpec, what: str, document: Any, path: str) -> list[Any]:
    try:
        expr = _compile(path)
    except Exception as exc:  # the lexer and parser raise several types
        raise error(metric, what, f"invalid jsonpath {path!r}: {exc}", "fix the jsonpath") from None
    matches = [match.value for match in expr.find(document)]
    if not matches:
        raise error(metric, what, f"jsonpath {path!r} matched nothing in {json.dumps(document)[:200]}",
                    "fix the jsonpath or check what the endpoint answers")
    return matches


def _number(value: Any, *, null_ok: bool) -> float | None:
    """A float from a JSON number or numeric string; None when it is not one."""
    if value is None:
        return math.nan if null_ok else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _numbers(metric: MetricSpec, what: str, document: Any, path: str) -> list[float]:
    matches = _find(metric, what, document, path)
    items = matches[0] if len(matches) == 1 and isinstance(matches[0], list) else matches
    lone = len(matches) == 1 and not isinstance(matches[0], list)
    out: list[float] = []
    for item in items:
        number = _number(item, null_ok=not lone)
        if number is None:
            raise error(metric, what, f"jsonpath {path!r} picked {json.dumps(item)[:100]}, not a number",
                        "point the jsonpath at a number or a list of numbers")
        out.append(number)
    return out


def _count(metric: MetricSpec, what: str, document: Any, path: str, role: str) -> int:
    matches = _find(metric, what, document, path)
    if len(matches) != 1:
        raise error(metric, what, f"{role} {path!r} picked {len(matches)} values, need one number",
                    "point it at a single number")
    number = _number(matches[0], null_ok=False)
    count = as_count(number) if number is not None else None
    if count is None:
        raise error(metric, what, f"{role} {path!r} picked {json.dumps(matches[0])[:100]}, not a count",
                    "it must pick a number >= 0")
    return count

