"""The data-plane HTTP router of one service in one environment.

Run as ``python -m primum.adapters.targets.local.router --port PORT --name ENV/SERVICE``
(``--host`` defaults to 127.0.0.1; ``--timeout`` overrides the 10 s upstream
budget, for tests; ``--samples-max`` sizes the per-request ring buffer, default
200000; ``--port 0`` picks a free port and the listening line tells which).
Once serving it prints ``primum-router listening on HOST:PORT``.

Why a separate process: the controller may die (or be SIGKILLed) at any
moment, and user traffic must not notice. The router therefore keeps routing
at the last configuration it accepted, for as long as it lives, and the
controller only ever *pushes* level-triggered configuration to it. Nothing
here reads the primum store or imports the heavy parts of primum, so the
router starts quickly and its hot path stays small.

Admin API (the reserved prefix ``/_primum/`` is never proxied):

* ``GET /_primum/health``  -> ``{"ok": true, "name", "started_at", "pid"}``
* ``GET /_primum/config``  -> the current configuration plus ``started_at``
* ``PUT /_primum/config``  -> validate, check the fence, swap atomically
* ``GET /_primum/metrics`` -> Prometheus text exposition
* ``GET /_primum/samples?since=T&until=T[&version=KEY]`` -> per-request records
  (see *Per-request records* below)

Fencing: the router remembers the highest ``fence`` it accepted. A push with a
lower fence comes from a controller that has lost its lease, so it is refused
with 409 and changes nothing; an equal fence is accepted so that a controller
can re-push the same configuration idempotently after a crash.

Version choice for a proxied request, in order:

1. ``x-primum-preview: 1`` and a configured ``preview`` -> the preview version
   (blue-green verification traffic, whatever the weights).
2. ``affinity == "tenant"`` and the tenant header present -> deterministic.
   ``salt`` is the sorted keys of the versions with weight > 0 joined by ``","``.
   A *known* tenant (listed in ``tenants``) is ranked among the known tenants
   by ``sha256(salt + "|" + tenant)`` (hex digest, ascending) and its point is
   ``(rank + 0.5) / len(tenants)``; an *unknown* tenant's point is the first 8
   bytes of that digest as a fraction of 2**64. The versions with weight > 0,
   sorted by key, are laid out on [0, 1) by cumulative ``weight / 100`` and
   the first one whose cumulative share exceeds the point wins.

   Why: a tenant (a clinic, a ward) stays on one version while the weights
   are unchanged, which matters when a canary changes a workflow, and known
   tenants are spread as evenly as the weights allow instead of clumping by
   hash luck. The spread is quantised, though: with ``n`` known tenants a
   version gets exactly the tenants whose points ``(k + 0.5) / n`` fall in its
   interval, so small weights may get *no* known tenant. With 3 tenants
   (points 1/6, 1/2, 5/6) a version needs a weight above ~16.7 % to be sure
   of one; at 20 % a two-version canary gets exactly one tenant, at 10 % it
   gets none (it still gets untenanted and unknown-tenant traffic). That is
   intended: it is the honest consequence of routing whole tenants. While
   the set of versions taking traffic is unchanged (so the salt is too),
   growing one of two versions' weight only ever moves tenants *onto* it.
3. Otherwise a weighted random choice.

Then an instance of the chosen version is picked round-robin. A connection
error is retried once on the next instance of the same version (always when
the connection could not be made, otherwise only for idempotent methods, so a
POST that may have reached a backend is never sent twice), then 502. Bodies
are buffered, not streamed: the services behind a primum router answer small
API payloads, and buffering keeps the retry and the accounting simple. The whole
upstream exchange has a 10 s budget (-> 504). Responses carry
``x-primum-version: <key>``.

Metrics (a dedicated registry; counters are cumulative since ``started_at``,
which lets a reader detect a router restart as a counter reset):

* ``primum_router_requests_total{version, status, tenant}`` -- ``version`` is
  ``"-"`` when no version could be chosen; ``tenant`` is the tenant verbatim
  when it is in the configured list, ``"other"`` for any other value and
  ``"-"`` when the header is absent (bounded label cardinality).
* ``primum_router_request_duration_seconds{version}`` -- histogram, observed
  for every counted request (so its count per version equals the sum of the
  counter per version).
* ``primum_router_started_at_seconds`` -- epoch seconds.

Per-request records: every counted request (every proxied request; admin
calls are never recorded) is also appended, as one tuple ``(end, version,
status, tenant, latency)``, to a bounded ring buffer (a ``deque`` holding the
newest ``--samples-max`` records, 200000 by default: about 30 MB). ``end`` is
the epoch time the response was ready (``time.time()``), ``version`` and
``tenant`` are the same labels as in the metrics above, ``latency`` is in
seconds as observed by the histogram. The analysis' builtin metric provider
reads them, so it can rank-test per-request latencies and count errors per
tenant exactly, instead of estimating from histogram buckets.

``GET /_primum/samples?since=T&until=T[&version=KEY]`` answers the records with
``since <= end <= until`` (epoch seconds; ``version`` filters on the version
key) in columnar JSON, oldest first::

    {"started_at": 1700000000.1, "now": 1700000100.2, "since": T, "until": T,
     "oldest": 1700000050.0,          # end time of the oldest record held, or null
     "complete": true,                # every request answered in the window is here
     "count": 2,
     "t": [1700000060.5, 1700000061.0], "version": ["aaaaaaaaaaa1", "aaaaaaaaaaa1"],
     "status": [200, 503], "tenant": ["clinic-north", "-"], "latency": [0.0123, 0.0004]}

``complete`` is false when the window begins before this process started
(``since < started_at``: an earlier process's records are gone) or when the
buffer is full and its oldest record is not older than ``since`` (records in
the window may have been evicted). Readers must not judge an incomplete
window. Records are ordered by the wall clock at append time; a step of the
system clock can put them out of order, which the reader does not correct.
A missing, non-numeric or reversed ``since``/``until`` is a 400.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Start-up time. Importing aiohttp builds two TLS client contexts and so
    # parses the system CA bundle: ~0.1 s of a ~0.45 s start on a 2-core box.
    # This process only ever talks plain http:// (instances are validated to
    # be http URLs), so point OpenSSL at an empty bundle -- for the router
    # process only, not when this module is imported elsewhere.
    os.environ["SSL_CERT_FILE"] = os.devnull
    os.environ["SSL_CERT_DIR"] = os.devnull

import argparse
import asyncio
import bisect
import hashlib
import json
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from random import random
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from yarl import URL

ADMIN_PREFIX = "/_primum/"
PREVIEW_HEADER = "x-primum-preview"
VERSION_HEADER = "x-primum-version"
DEFAULT_TENANT_HEADER = "x-tenant-id"
UPSTREAM_TIMEOUT_S = 10.0
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)
NO_VERSION = "-"  # version label when no version could be chosen
NO_TENANT = "-"  # tenant label when the tenant header is absent
OTHER_TENANT = "other"  # tenant label for a tenant not in the configured list
UNKNOWN_TENANT_CACHE_MAX = 4096
SAMPLES_MAX = 200_000  # per-request records kept (ring buffer)
CLIENT_MAX_BODY = 64 * 1024 * 1024

# RFC 9110 section 7.6.1 hop-by-hop headers, plus those the proxy recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_DROP_REQUEST = HOP_BY_HOP | {"host", "content-length"}
_DROP_RESPONSE = HOP_BY_HOP | {"content-length"}
_DROP_RESPONSE_HEAD = HOP_BY_HOP  # a HEAD answer keeps the length of the body it omits
# Methods safe to send again when a pooled connection broke mid-request.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_TOP_LEVEL_FIELDS = frozenset(
    {"fence", "versions", "preview", "affinity", "tenant_header", "tenants", "started_at"}
)
_VERSION_FIELDS = frozenset({"label", "weight", "instances"})


class ConfigError(ValueError):
    """A pushed configuration is invalid; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class VersionConfig:
    """One routable version: its weight (percent) and its instances' base URLs."""

    key: str
    label: str
    weight: int
    instances: tuple[str, ...]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_instance(field: str, value: object) -> str:
    """Accept ``http://host[:port]`` (optionally a trailing ``/``); return it without it."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field, "must be a non-empty string URL")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(field, f"not a valid URL: {value!r} ({exc})") from None
    if parts.scheme != "http":
        raise ConfigError(field, f"must be an http:// URL, got {value!r}")
    if not parts.hostname:
        raise ConfigError(field, f"has no host: {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(field, f"must be just http://host[:port], got {value!r}")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(field, f"bad port in {value!r}")
    return value.rstrip("/")


class RouteConfig:
    """An immutable, validated routing configuration and its precomputed tables.

    Everything a request needs is computed here, once per push, so the hot
    path is a dict lookup or a bisect: cumulative shares for the weighted
    choices, and the version of every known tenant. Unknown tenants are
    hashed once and cached (bounded) for the life of this configuration.
    The router swaps whole ``RouteConfig`` objects, so a request in flight
    keeps using the configuration it started with.
    """

    __slots__ = (
        "_cum_keys",
        "_cum_shares",
        "_rr",
        "_unknown_cache",
        "affinity",
        "affinity_tenant",
        "fence",
        "instances",
        "known_tenant_versions",
        "preview",
        "salt",
        "tenant_header",
        "tenant_set",
        "tenants",
        "versions",
    )

    def __init__(
        self,
        *,
        fence: int,
        versions: Mapping[str, VersionConfig],
        preview: str | None,
        affinity: str,
        tenant_header: str,
        tenants: tuple[str, ...],
    ) -> None:
        self.fence = fence
        self.versions = dict(versions)
        self.preview = preview
        self.affinity = affinity
        self.affinity_tenant = affinity == "tenant"
        self.tenant_header = tenant_header
        self.tenants = tenants
        self.tenant_set = frozenset(tenants)
        self.instances = {k: v.instances for k, v in self.versions.items()}
        self._rr = dict.fromkeys(self.versions, 0)

        active = sorted(k for k, v in self.versions.items() if v.weight > 0)
        self.salt = ",".join(active)
        cumulative = 0
        self._cum_keys: list[str] = []
        self._cum_shares: list[float] = []
        for key in active:
            cumulative += self.versions[key].weight
            self._cum_keys.append(key)
            self._cum_shares.append(cumulative / 100)

        ranked = sorted(tenants, key=lambda t: self._digest(t).hex())
        count = len(ranked)
        self.known_tenant_versions: dict[str, str | None] = {
            tenant: self._at((rank + 0.5) / count) for rank, tenant in enumerate(ranked)
        }
        self._unknown_cache: dict[str, str | None] = {}

    # ------------------------------------------------------------ building

    @classmethod
    def empty(cls) -> RouteConfig:
        """The configuration before any push: no versions, so every request gets 503."""
        return cls(
            fence=0,
            versions={},
            preview=None,
            affinity="tenant",
            tenant_header=DEFAULT_TENANT_HEADER,
            tenants=(),
        )

    @classmethod
    def from_json(cls, body: object) -> RouteConfig:
        """Validate a pushed body strictly; raise ``ConfigError`` naming the field."""
        if not isinstance(body, dict):
            raise ConfigError("body", "must be a JSON object")
        unknown = sorted(set(body) - _TOP_LEVEL_FIELDS)
        if unknown:
            raise ConfigError(unknown[0], "unknown field")

        if "fence" not in body:
            raise ConfigError("fence", "is required")
        fence = body["fence"]
        if not _is_int(fence) or fence < 0:
            raise ConfigError("fence", "must be a non-negative integer")

        if "versions" not in body:
            raise ConfigError("versions", "is required")
        raw_versions = body["versions"]
        if not isinstance(raw_versions, dict):
            raise ConfigError("versions", "must be an object mapping version key to version")
        versions: dict[str, VersionConfig] = {}
        for key, spec in raw_versions.items():
            where = f"versions.{key}"
            if not _TOKEN_RE.match(key) or key == NO_VERSION:
                raise ConfigError(where, "version key must match [A-Za-z0-9._~-]{1,64}")
            if not isinstance(spec, dict):
                raise ConfigError(where, "must be an object")
            extra = sorted(set(spec) - _VERSION_FIELDS)
            if extra:
                raise ConfigError(f"{where}.{extra[0]}", "unknown field")
            label = spec.get("label", "")
            if not isinstance(label, str):
                raise ConfigError(f"{where}.label", "must be a string")
            if "weight" not in spec:
                raise ConfigError(f"{where}.weight", "is required")
            weight = spec["weight"]
            if not _is_int(weight) or not 0 <= weight <= 100:
                raise ConfigError(f"{where}.weight", "must be an integer 0..100")
            if "instances" not in spec:
                raise ConfigError(f"{where}.instances", "is required")
            raw_instances = spec["instances"]
            if not isinstance(raw_instances, list):
                raise ConfigError(f"{where}.instances", "must be a list of http URLs")
            instances = tuple(
                _validate_instance(f"{where}.instances[{i}]", url)
                for i, url in enumerate(raw_instances)
            )
            versions[key] = VersionConfig(key, label, weight, instances)
        total = sum(v.weight for v in versions.values())
        if total not in (0, 100):
            raise ConfigError("versions", f"weights must sum to 100 (or all be 0), got {total}")

        preview = body.get("preview")
        if preview is not None and (not isinstance(preview, str) or preview not in versions):
            raise ConfigError("preview", f"must be null or a key of versions, got {preview!r}")

        affinity = body.get("affinity", "tenant")
        if affinity not in ("tenant", "none"):
            raise ConfigError("affinity", f"must be 'tenant' or 'none', got {affinity!r}")

        tenant_header = body.get("tenant_header", DEFAULT_TENANT_HEADER)
        if not isinstance(tenant_header, str) or not _HEADER_RE.match(tenant_header):
            raise ConfigError("tenant_header", "must be a valid HTTP header name")

        raw_tenants = body.get("tenants", [])
        if not isinstance(raw_tenants, list):
            raise ConfigError("tenants", "must be a list of strings")
        tenants: list[str] = []
        for i, tenant in enumerate(raw_tenants):
            if not isinstance(tenant, str) or not tenant:
                raise ConfigError(f"tenants[{i}]", "must be a non-empty string")
            if tenant in (NO_TENANT, OTHER_TENANT):
                raise ConfigError(f"tenants[{i}]", f"{tenant!r} is a reserved metrics label")
            if tenant not in tenants:  # a set in meaning; duplicates would skew the ranks
                tenants.append(tenant)

        return cls(
            fence=fence,
            versions=versions,
            preview=preview,
            affinity=affinity,
            tenant_header=tenant_header,
            tenants=tuple(tenants),
        )

    def to_json(self) -> dict[str, Any]:
        """The configuration in the same shape as it is pushed."""
        return {
            "fence": self.fence,
            "versions": {
                key: {"label": v.label, "weight": v.weight, "instances": list(v.instances)}
                for key, v in self.versions.items()
            },
            "preview": self.preview,
            "affinity": self.affinity,
            "tenant_header": self.tenant_header,
            "tenants": list(self.tenants),
        }

    # ------------------------------------------------------------ choosing

    def _digest(self, tenant: str) -> bytes:
        return hashlib.sha256(f"{self.salt}|{tenant}".encode()).digest()

    def _at(self, point: float) -> str | None:
        """The version whose cumulative share first exceeds ``point`` in [0, 1)."""
        index = bisect.bisect_right(self._cum_shares, point)
        if index >= len(self._cum_keys):
            return None
        return self._cum_keys[index]

    def for_tenant(self, tenant: str) -> str | None:
        """Deterministic choice for a tenant (known tenants precomputed, others cached)."""
        known = self.known_tenant_versions
        if tenant in known:
            return known[tenant]
        cache = self._unknown_cache
        if tenant in cache:
            return cache[tenant]
        point = int.from_bytes(self._digest(tenant)[:8], "big") / 2**64
        choice = self._at(point)
        if len(cache) >= UNKNOWN_TENANT_CACHE_MAX:
            cache.clear()
        cache[tenant] = choice
        return choice

    def weighted_random(self) -> str | None:
        """A version drawn with probability weight / 100 (None: nothing takes traffic)."""
        if not self._cum_keys:
            return None
        return self._at(random())

    def next_instance_index(self, key: str) -> int:
        """Round-robin position for ``key`` (per configuration; resets on a push)."""
        index = self._rr[key]
        self._rr[key] = index + 1
        return index


def _json_response(status: int, payload: Mapping[str, Any]) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(payload), content_type="application/json"
    )


class Router:
    """The router's state: current configuration, metrics, the upstream client."""

    def __init__(
        self, name: str, *, timeout_s: float = UPSTREAM_TIMEOUT_S, samples_max: int = SAMPLES_MAX
    ) -> None:
        if samples_max < 1:
            raise ValueError(f"samples_max must be at least 1, got {samples_max}")
        self.name = name
        self.timeout_s = timeout_s
        self.started_at = time.time()
        # (end epoch s, version, status, tenant label, latency s), oldest first.
        self.samples: deque[tuple[float, str, int, str, float]] = deque(maxlen=samples_max)
        self.config = RouteConfig.empty()
        self.fence = 0  # the highest fence accepted so far
        self.session: aiohttp.ClientSession | None = None

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests_total = Counter(
            "primum_router_requests",
            "Requests answered by the router, by version, HTTP status and tenant.",
            ("version", "status", "tenant"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "primum_router_request_duration_seconds",
            "Time from receiving a request to having its response, by version.",
            ("version",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        started = Gauge(
            "primum_router_started_at_seconds",
            "When this router process started (epoch seconds); counters reset then.",
            registry=self.registry,
        )
        started.set(self.started_at)
        # Label children cached so the hot path skips prometheus_client's lock + lookup.
        self._count_children: dict[tuple[str, int, str], Any] = {}
        self._duration_children: dict[str, Any] = {}

    async def start(self) -> None:
        """Create the one pooled upstream client (needs a running loop)."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, limit_per_host=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,  # pass bodies through byte for byte
            cookie_jar=aiohttp.DummyCookieJar(),  # never mix one user's cookies into another's
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            trust_env=False,
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    # ------------------------------------------------------------- metrics

    def _record(self, version: str, status: int, tenant: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        key = (version, status, tenant)
        child = self._count_children.get(key)
        if child is None:
            child = self.requests_total.labels(version, str(status), tenant)
            self._count_children[key] = child
        child.inc()
        hist = self._duration_children.get(version)
        if hist is None:
            hist = self.duration.labels(version)
            self._duration_children[version] = hist
        hist.observe(elapsed)
        self.samples.append((time.time(), version, status, tenant, elapsed))

    # --------------------------------------------------------------- entry

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return await self.admin(request)
        return await self.proxy(request)

    # --------------------------------------------------------------- admin

    async def admin(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        method = request.method
        if path == "/_primum/health":
            if method != "GET":
                return _json_response(405, {"error": "method not allowed"})
            return _json_response(
                200,
                {"ok": True, "name": self.name, "started_at": self.started_at, "pid": os.getpid()},
            )
        if path == "/_primum/config":
            if method == "GET":
                return self._config_response(self.config)
            if method == "PUT":
                return await self._put_config(request)
            return _json_response(405, {"error": "method not allowed"})
        if path == "/_primum/metrics":
            if method != "GET":
                return _json_response(405, {"error": "method not allowed"})
            return web.Response(
                body=generate_latest(self.registry),
                headers={"Content-Type": CONTENT_TYPE_LATEST},
            )
        if path == "/_primum/samples":
            if method != "GET":
                return _json_response(405, {"error": "method not allowed"})
            return self._samples_response(request)
        return _json_response(404, {"error": f"no admin endpoint {path}"})

    def _samples_response(self, request: web.BaseRequest) -> web.Response:
        query = request.query
        bounds: dict[str, float] = {}
        for name in ("since", "until"):
            raw = query.get(name)
            if raw is None:
                return _json_response(400, {"error": f"{name}: is required (epoch seconds)", "field": name})
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if value != value or value in (float("inf"), float("-inf")):
                return _json_response(
                    400, {"error": f"{name}: must be a finite number of epoch seconds, got {raw!r}", "field": name}
                )
            bounds[name] = value
        since, until = bounds["since"], bounds["until"]
        if until < since:
            return _json_response(400, {"error": f"until ({until}) is before since ({since})", "field": "until"})
        version = query.get("version")
        samples = self.samples
        t: list[float] = []
        versions: list[str] = []
        statuses: list[int] = []
        tenants: list[str] = []
        latencies: list[float] = []
        # Newest first, stopping at the first record older than the window: a
        # recent window costs only its own records. No await in this loop, so
        # no request can append to the deque while it is iterated.
        for end, key, status, tenant, latency in reversed(samples):
            if end < since:
                break
            if end > until or (version is not None and key != version):
                continue
            t.append(end)
            versions.append(key)
            statuses.append(status)
            tenants.append(tenant)
            latencies.append(latency)
        for column in (t, versions, statuses, tenants, latencies):
            column.reverse()
        oldest = samples[0][0] if samples else None
        evicted = len(samples) == samples.maxlen and oldest is not None and oldest >= since
        payload = {
            "started_at": self.started_at,
            "now": time.time(),
            "since": since,
            "until": until,
            "oldest": oldest,
            "complete": since >= self.started_at and not evicted,
            "count": len(t),
            "t": t,
            "version": versions,
            "status": statuses,
            "tenant": tenants,
            "latency": latencies,
        }
        return web.Response(text=json.dumps(payload, separators=(",", ":")), content_type="application/json")

    def _config_response(self, config: RouteConfig) -> web.Response:
        payload = config.to_json()
        payload["fence"] = self.fence  # the highest accepted, even if content was unchanged
        payload["started_at"] = self.started_at
        return _json_response(200, payload)

    async def _put_config(self, request: web.BaseRequest) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return _json_response(
                400, {"error": f"body: not valid JSON ({exc})", "field": "body"}
            )
        try:
            new = RouteConfig.from_json(body)
        except ConfigError as exc:
            return _json_response(400, {"error": str(exc), "field": exc.field})
        # No await between the check and the swap: the compare-and-set is atomic.
        current = self.config
        if new.fence < self.fence:
            return _json_response(409, {"error": "stale fence", "fence": self.fence})
        new_json, current_json = new.to_json(), current.to_json()
        new_json.pop("fence")
        current_json.pop("fence")
        self.fence = new.fence
        if new_json == current_json:
            # An idempotent re-push (controllers reconcile periodically): keep the
            # live object with its round-robin positions and caches.
            return self._config_response(self.config)
        self.config = new
        weights = {k: v.weight for k, v in new.versions.items()}
        print(
            f"primum-router {self.name}: fence {new.fence} weights {weights} "
            f"preview {new.preview}",
            file=sys.stderr,
            flush=True,
        )
        return self._config_response(new)

    # --------------------------------------------------------------- proxy

    async def proxy(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        config = self.config  # one snapshot for the whole request
        headers = request.headers
        tenant = headers.get(config.tenant_header)
        if not tenant:
            tenant_label = NO_TENANT
        elif tenant in config.tenant_set:
            tenant_label = tenant
        else:
            tenant_label = OTHER_TENANT

        key: str | None
        if config.preview is not None and headers.get(PREVIEW_HEADER) == "1":
            key = config.preview
        elif tenant and config.affinity_tenant:
            key = config.for_tenant(tenant)
        else:
            key = config.weighted_random()

        if key is None:
            self._record(NO_VERSION, 503, tenant_label, started)
            return _json_response(503, {"error": "no version is taking traffic"})
        instances = config.instances[key]
        if not instances:
            self._record(key, 503, tenant_label, started)
            response = _json_response(503, {"error": f"version {key} has no instances"})
            response.headers[VERSION_HEADER] = key
            return response

        response = await self._forward(request, config, key, instances)
        response.headers[VERSION_HEADER] = key
        self._record(key, response.status, tenant_label, started)
        return response

    def _upstream_headers(self, request: web.BaseRequest) -> CIMultiDict[str]:
        """Request headers minus hop-by-hop ones, plus the X-Forwarded-* set."""
        incoming = request.headers
        drop = _DROP_REQUEST
        connection = incoming.get("Connection")
        if connection:
            drop = drop | {token.strip().lower() for token in connection.split(",")}
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in incoming.items():
            if name.lower() not in drop:
                out.add(name, value)
        remote = request.remote or ""
        previous = incoming.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{previous}, {remote}" if previous else remote
        host = incoming.get("Host")
        if host and "X-Forwarded-Host" not in out:
            out["X-Forwarded-Host"] = host
        return out

    async def _forward(
        self,
        request: web.BaseRequest,
        config: RouteConfig,
        key: str,
        instances: tuple[str, ...],
    ) -> web.Response:
        session = self.session
        assert session is not None, "Router.start() was not awaited"
        method = request.method
        headers = self._upstream_headers(request)
        body = await request.read() if request.body_exists else None
        tail = request.raw_path
        first = config.next_instance_index(key)
        count = len(instances)
        try:
            async with asyncio.timeout(self.timeout_s):
                for attempt in range(2):
                    base = instances[(first + attempt) % count]
                    try:
                        async with session.request(
                            method,
                            URL(base + tail, encoded=True),
                            headers=headers,
                            data=body,
                            allow_redirects=False,
                        ) as upstream:
                            payload = await upstream.read()
                            drop = _DROP_RESPONSE_HEAD if method == "HEAD" else _DROP_RESPONSE
                            out_headers: CIMultiDict[str] = CIMultiDict()
                            for name, value in upstream.headers.items():
                                if name.lower() not in drop:
                                    out_headers.add(name, value)
                            return web.Response(
                                status=upstream.status, body=payload or None, headers=out_headers
                            )
                    except aiohttp.ClientConnectionError as exc:
                        could_not_connect = isinstance(exc, aiohttp.ClientConnectorError)
                        if attempt == 0 and (could_not_connect or method in IDEMPOTENT):
                            continue
                        return _json_response(
                            502, {"error": f"upstream {base} failed: {exc.__class__.__name__}"}
                        )
                    except aiohttp.ClientError as exc:  # malformed upstream response etc.
                        return _json_response(
                            502, {"error": f"upstream {base} failed: {exc.__class__.__name__}"}
                        )
        except TimeoutError:
            return _json_response(
                504, {"error": f"upstream did not answer within {self.timeout_s:g} s"}
            )
        raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------ process


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m primum.adapters.targets.local.router",
        description="primum data-plane HTTP router for one service in one environment",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any)")
    parser.add_argument("--name", required=True, help="ENV/SERVICE, for health and logs")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--timeout",
        type=float,
        default=UPSTREAM_TIMEOUT_S,
        help="total upstream budget per request in seconds (-> 504)",
    )
    parser.add_argument(
        "--samples-max",
        type=int,
        default=SAMPLES_MAX,
        help="per-request records kept for GET /_primum/samples (ring buffer size)",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    if args.samples_max < 1:
        print(f"primum-router: --samples-max must be at least 1, got {args.samples_max}", file=sys.stderr)
        return 2
    router = Router(args.name, timeout_s=args.timeout, samples_max=args.samples_max)
    await router.start()

    def make_request(
        message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=CLIENT_MAX_BODY
        )

    # The low-level server: no URL dispatcher or middleware chain on the hot path.
    server = web.Server(router.handle, request_factory=make_request, access_log=None)
    runner = web.ServerRunner(server, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        print(f"primum-router: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        await runner.cleanup()
        await router.close()
        return 1
    port = runner.addresses[0][1] if runner.addresses else args.port

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"primum-router listening on {args.host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # stop accepting; requests in flight finish
        await router.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # Process-wide switch; the router is its own process, so this affects nothing else.
    disable_created_metrics()
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
