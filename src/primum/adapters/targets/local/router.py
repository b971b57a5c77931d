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

Version choice for a proxied request (preview, tenant affinity, weighted
random) is the pure :class:`~primum.adapters.targets.local.routes.RouteConfig`
of ``routes.py``, with the configuration's validation; its docstring tells the
algorithm and why.

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
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

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

from primum.adapters.targets.local.routes import NO_VERSION, ConfigError, RouteConfig

ADMIN_PREFIX = "/_primum/"
VERSION_HEADER = "x-primum-version"
UPSTREAM_TIMEOUT_S = 10.0
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)
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
        key, tenant_label = config.choose(request.headers)
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
