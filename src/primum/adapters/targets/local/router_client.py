"""Synchronous client for the admin API of one local router process, over its Unix socket.

The admin API is not on the router's data port: it listens on a Unix domain
socket (0600, in the runtime's 0700 directory), and this client speaks HTTP over
it (``httpx.HTTPTransport(uds=...)``). Configuration pushes are sealed with the
runtime's fence key (``fencing.py``); without the key a client can read
(health, config, metrics, samples) but not steer.

The controller talks to a router only through this class, so that every way a
call can go wrong (connection refused, timeout, bad JSON, a 4xx/5xx answer,
unparsable metrics) becomes a :class:`TargetError` with a message a person can
act on. Nothing here ever returns an empty or zero result in place of a
failure: an empty :class:`MetricsSnapshot` would read as "no errors" to the
analysis, which is exactly the silent pass primum must never produce.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.local.fencing import seal
from primum.core.model.actions import LatencyHistogram, MetricsSnapshot, VersionMetrics

ADMIN = "/_primum"

REQUESTS_SAMPLE = "primum_router_requests_total"
DURATION = "primum_router_request_duration_seconds"
STARTED_AT_SAMPLE = "primum_router_started_at_seconds"
NO_TENANT = ("", "-")  # tenant label values meaning "request carried no tenant"


@dataclass(frozen=True, slots=True)
class RouterSamples:
    """The router's per-request records of one window (``GET /_primum/samples``).

    Columns of equal length, oldest first: ``t`` (epoch seconds the response was
    ready), ``version`` (key, ``"-"`` when none could be chosen), ``status``,
    ``tenant`` (the metrics label: the tenant, ``"other"`` or ``"-"``) and
    ``latency`` (seconds). ``complete`` is the router's word that no record of
    the window is missing (it started before ``since`` and evicted nothing of
    the window); ``now`` is the router's clock when it answered.
    """

    started_at: float
    now: float
    since: float
    until: float
    oldest: float | None
    complete: bool
    t: tuple[float, ...]
    version: tuple[str, ...]
    status: tuple[int, ...]
    tenant: tuple[str, ...]
    latency: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.t)


class RouterClient:
    """Admin client for the router whose admin socket is ``socket_path``.

    ``key`` (the runtime's fence key) is needed to push a configuration, and
    ``name`` (``ENV/SERVICE``) is the router it is addressed to.
    """

    def __init__(
        self, socket_path: str, timeout: float = 2.0, *, key: bytes | None = None, name: str | None = None
    ) -> None:
        self.socket_path = str(socket_path)
        self.base_url = f"unix:{self.socket_path}"  # for messages: where the router was asked
        self.key = key
        self.name = name
        # trust_env=False: an HTTP(S)_PROXY in the environment must never capture admin traffic.
        self._http = httpx.Client(
            base_url="http://router",
            timeout=timeout,
            trust_env=False,
            transport=httpx.HTTPTransport(uds=self.socket_path),
        )

    @classmethod
    def at(cls, address: str, timeout: float = 2.0) -> RouterClient:
        """A read-only client for an admin address ``unix:PATH`` (what ``LocalTarget.router_admin`` gives)."""
        if not address.startswith("unix:") or len(address) == len("unix:"):
            raise TargetError(f"{address!r} is not a router admin address (unix:PATH): the router's admin API"
                              " is on its Unix socket, not on its data port")
        return cls(address.removeprefix("unix:"), timeout=timeout)

    # ------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{ADMIN}{path}"
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TargetError(f"router {self.base_url}: {method} {url} timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise TargetError(
                f"router {self.base_url} unreachable: {method} {url}: {type(exc).__name__}: {exc}"
            ) from exc

    def _json(self, resp: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError as exc:
            raise TargetError(
                f"router {self.base_url}: {what} answered {resp.status_code} with non-JSON body: {resp.text[:200]!r}"
            ) from exc
        if not isinstance(body, dict):
            raise TargetError(f"router {self.base_url}: {what} answered a non-object: {body!r}")
        return body

    def _ok_json(self, resp: httpx.Response, what: str) -> dict[str, Any]:
        if resp.status_code != 200:
            raise TargetError(
                f"router {self.base_url}: {what} failed with HTTP {resp.status_code}: {_error_text(resp)}"
            )
        return self._json(resp, what)

    # ---------------------------------------------------------------- API

    def health(self) -> dict[str, Any]:
        """``{"ok": true, "name", "started_at", "pid"}``; raises unless the router says ok."""
        body = self._ok_json(self._request("GET", "/health"), "GET health")
        if body.get("ok") is not True:
            raise TargetError(f"router {self.base_url} reports not ok: {body!r}")
        return body

    def get_config(self) -> dict[str, Any]:
        """The routing configuration the router currently applies."""
        return self._ok_json(self._request("GET", "/config"), "GET config")

    def put_config(self, config: dict[str, Any], seq: int) -> dict[str, Any]:
        """Replace the routing configuration: push ``seq`` (above the router's last), sealed with the key.

        A 409 ``stale fence`` means the router has accepted a higher fencing
        token: the caller has lost its lease and must stop acting, hence
        :class:`StaleFenceError`; a 409 ``replayed`` (``seq`` not above the
        last accepted) is a :class:`TargetError` like any other refusal.
        """
        if self.key is None or self.name is None:
            raise TargetError(f"router {self.base_url}: cannot push a configuration without the fence key")
        resp = self._request("PUT", "/config", json=seal(self.key, self.name, seq, config))
        if resp.status_code == 409 and _reason(resp) == "stale fence":
            raise StaleFenceError(f"router {self.base_url} rejected fence {config.get('fence')}: {_error_text(resp)}")
        if resp.status_code not in (200, 201, 204):
            raise TargetError(f"router {self.base_url} rejected config (HTTP {resp.status_code}): {_error_text(resp)}")
        if resp.status_code == 204 or not resp.content:
            return {}
        return self._json(resp, "PUT config")

    def metrics(self) -> MetricsSnapshot:
        """Parse the router's Prometheus text into a :class:`MetricsSnapshot`."""
        resp = self._request("GET", "/metrics")
        if resp.status_code != 200:
            raise TargetError(
                f"router {self.base_url}: GET metrics failed with HTTP {resp.status_code}: {_error_text(resp)}"
            )
        taken_at = time.time()
        try:
            return parse_metrics(resp.text, taken_at)
        except TargetError as exc:
            raise TargetError(f"router {self.base_url}: {exc}") from exc

    def samples(self, since: float, until: float, version: str | None = None) -> RouterSamples:
        """Per-request records with ``since <= t <= until`` (optionally of one version).

        Raises :class:`TargetError` when the router cannot answer or answers
        something malformed; an *incomplete* window is returned as such
        (``complete`` false) for the caller to refuse.
        """
        params: dict[str, str] = {"since": repr(float(since)), "until": repr(float(until))}
        if version is not None:
            params["version"] = version
        body = self._ok_json(self._request("GET", "/samples", params=params), "GET samples")
        try:
            return parse_samples(body)
        except TargetError as exc:
            raise TargetError(f"router {self.base_url}: GET samples: {exc}") from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RouterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return str(body.get("reason")) if isinstance(body, dict) else None


def _error_text(resp: httpx.Response) -> str:
    """The router's ``{"error": ...}`` message if it sent one, else the raw body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or "(empty body)"
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)[:300]


def parse_samples(body: dict[str, Any]) -> RouterSamples:
    """Validate the columnar ``/_primum/samples`` answer; raises :class:`TargetError`."""

    def number(name: str, optional: bool = False) -> float | None:
        value = body.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TargetError(f"field {name!r} must be a number, got {value!r}")
        return float(value)

    def column(name: str, kind: type | tuple[type, ...]) -> list[Any]:
        values = body.get(name)
        if not isinstance(values, list):
            raise TargetError(f"column {name!r} must be a list, got {type(values).__name__}")
        for value in values:
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TargetError(f"column {name!r} holds a non-{getattr(kind, '__name__', 'number')} {value!r}")
        return values

    complete = body.get("complete")
    if not isinstance(complete, bool):
        raise TargetError(f"field 'complete' must be a boolean, got {complete!r}")
    t = column("t", (int, float))
    columns = {
        "version": column("version", str),
        "status": column("status", int),
        "tenant": column("tenant", str),
        "latency": column("latency", (int, float)),
    }
    uneven = {name: len(values) for name, values in columns.items() if len(values) != len(t)}
    if uneven:
        raise TargetError(f"columns differ in length: t has {len(t)}, {uneven}")
    started_at, now, since, until = (number(n) for n in ("started_at", "now", "since", "until"))
    assert started_at is not None and now is not None and since is not None and until is not None
    return RouterSamples(
        started_at=started_at,
        now=now,
        since=since,
        until=until,
        oldest=number("oldest", optional=True),
        complete=complete,
        t=tuple(float(x) for x in t),
        version=tuple(columns["version"]),
        status=tuple(columns["status"]),
        tenant=tuple(columns["tenant"]),
        latency=tuple(float(x) for x in columns["latency"]),
    )


def parse_metrics(text: str, taken_at: float) -> MetricsSnapshot:
    """Turn router Prometheus text into a snapshot; raises :class:`TargetError` if unusable.

    Samples are matched by sample name rather than family name so that the
    parse does not depend on whether the exposition declares the counter as
    ``..._total`` or without the suffix. ``_created`` samples are ignored.
    Requests without a tenant (the router labels them ``"-"``; an empty label
    is treated alike) count towards the version totals but are not a tenant
    slice of their own; the router's ``"other"`` bucket (tenants not in the
    configured list) is kept as a slice. Requests the router could not give
    to any version appear under the pseudo-version ``"-"``: they are real
    failures and must stay visible. Histogram buckets are handed over with
    ``+Inf`` as ``float("inf")``; :class:`LatencyHistogram` keeps only the
    finite ones (its ``count`` is the ``+Inf`` bucket) so snapshots survive JSON.
    """
    requests: dict[str, dict[str, int]] = {}
    tenants: dict[str, dict[str, dict[str, int]]] = {}
    buckets: dict[str, dict[float, int]] = {}
    counts: dict[str, int] = {}
    sums: dict[str, float] = {}
    started_at: float | None = None
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises bare ValueError/TypeError/...
        raise TargetError(f"unparsable metrics: {type(exc).__name__}: {exc}") from exc
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == STARTED_AT_SAMPLE:
                started_at = float(value)
                continue
            version = labels.get("version")
            if version is None:
                continue
            if name == REQUESTS_SAMPLE:
                status = labels.get("status", "")
                n = _count(value, name)
                per = requests.setdefault(version, {})
                per[status] = per.get(status, 0) + n
                tenant = labels.get("tenant", "")
                if tenant not in NO_TENANT:
                    t = tenants.setdefault(version, {}).setdefault(tenant, {})
                    t[status] = t.get(status, 0) + n
            elif name == f"{DURATION}_bucket":
                le = _bound(labels.get("le"))
                per_b = buckets.setdefault(version, {})
                per_b[le] = per_b.get(le, 0) + _count(value, name)
            elif name == f"{DURATION}_count":
                counts[version] = counts.get(version, 0) + _count(value, name)
            elif name == f"{DURATION}_sum":
                sums[version] = sums.get(version, 0.0) + float(value)
    if started_at is None:
        # Without the start time the analysis cannot tell a counter reset from
        # a quiet period, so the snapshot is unusable.
        raise TargetError(f"metrics lack {STARTED_AT_SAMPLE}")
    versions: dict[str, VersionMetrics] = {}
    for version in sorted(set(requests) | set(buckets) | set(counts)):
        hist = LatencyHistogram(
            buckets=tuple(sorted(buckets.get(version, {}).items())),
            count=counts.get(version, 0),
            sum=sums.get(version, 0.0),
        )
        versions[version] = VersionMetrics(
            requests=requests.get(version, {}),
            latency=hist,
            by_tenant=tenants.get(version, {}),
        )
    return MetricsSnapshot(taken_at=taken_at, router_started_at=started_at, versions=versions)


def _bound(le: str | None) -> float:
    if le is None:
        raise TargetError(f"{DURATION}_bucket sample without 'le' label")
    try:
        return float(le)  # float("+Inf") == inf
    except ValueError as exc:
        raise TargetError(f"bad histogram bound le={le!r}") from exc


def _count(value: float, name: str) -> int:
    if math.isnan(value) or value < 0:
        raise TargetError(f"bad counter value {value!r} for {name}")
    return round(value)
