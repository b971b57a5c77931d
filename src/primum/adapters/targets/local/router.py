"""The data-plane HTTP router of one service in one environment.

Run as ``python -m primum.adapters.targets.local.router --port PORT --name ENV/SERVICE
--admin-socket PATH --fence-key FILE`` (``--host`` defaults to 127.0.0.1;
``--timeout`` overrides the 10 s upstream budget, for tests; ``--samples-max``
sizes the per-request ring buffer, default 200000; ``--port 0`` picks a free
port and the listening line tells which; ``--min-fence``/``--min-seq`` start
the replay guard where the previous router of this service left it;
``--metrics-port`` with ``--metrics-token FILE`` opens a loopback listener for
Prometheus). Once serving it prints ``primum-router listening on HOST:PORT``.

Why a separate process: the controller may die (or be SIGKILLed) at any
moment, and user traffic must not notice. The router therefore keeps routing
at the last configuration it accepted, for as long as it lives, and the
controller only ever *pushes* level-triggered configuration to it. Nothing
here reads the primum store or imports the heavy parts of primum, so the
router starts quickly and its hot path stays small.

Three listeners, so that nobody who can reach the service can steer it:

* the **data port** (``--host``/``--port``) proxies patient traffic and
  nothing else: every path under ``/_primum`` answers 404 there and is never
  proxied;
* the **admin socket** (``--admin-socket``), a Unix domain socket created with
  mode 0600 in a directory the router checks is its owner's alone (0700); only
  processes of the runtime's user can connect, and only the holder of the fence
  key can change anything (see ``fencing.py``):

  * ``GET /_primum/health``  -> ``{"ok": true, "name", "started_at", "pid"}``
  * ``GET /_primum/config``  -> the configuration, ``fence``, ``seq``, ``started_at`` and the
    failover state (``effective`` weights, ``failed_over`` versions, ``down_instances``)
  * ``PUT /_primum/config``  -> a signed envelope: verify, check fence and seq, swap atomically
  * ``GET /_primum/metrics`` -> Prometheus text exposition
  * ``GET /_primum/samples?since=T&until=T[&version=KEY]`` -> per-request records
    (see *Per-request records* below)

* the optional **metrics listener** (``--metrics-port``, loopback): ``GET /metrics``
  with ``Authorization: Bearer <the token in --metrics-token>`` (Prometheus'
  ``authorization: {credentials_file: ...}``), nothing else; counts only, no
  per-request records.

Fencing: a push is accepted only when its envelope's MAC verifies with the
fence key, it is addressed to this router, its fence is not above the largest
a lease can issue, its fence is not below the highest accepted (a lower one
comes from a controller that has lost its lease: 409 ``stale fence``) and its
``seq`` is above the last accepted (else it is a replay: 409 ``replayed``).
An equal fence with a higher ``seq`` is accepted, so a controller can re-push
the same configuration after a crash.

Failover, on the router's own: every instance is probed once a second
(``GET`` on the configuration's ``health_path``, or a TCP connect without one);
three failed probes in a row, or one refused connection (probing or proxying),
mark it down. A version with weight whose instances are all down gives its
weight to the versions with weight that are still up (``RouteConfig.failover``), and gets it back once an
instance answers again; a request whose connection was refused is sent once to
the version that took over. ``GET /_primum/config`` shows it all.

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
* ``primum_router_failed_over{version}`` -- 1 while a version's weight is
  given to others because none of its instances answers.

Per-request records: every counted request (admin calls never are) is kept in a
bounded ring buffer and served by ``GET /_primum/samples``; ``router_samples.py`` tells the format.
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
import hmac
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

from primum.adapters.targets.local.fencing import EnvelopeError, open_envelope
from primum.adapters.targets.local.router_samples import samples_answer
from primum.adapters.targets.local.router_setup import (
    PROBE_INTERVAL_S,
    SAMPLES_MAX,
    UPSTREAM_TIMEOUT_S,
    InstanceHealth,
    RouterSetupError,
    check_settings,
    parse_args,
    probe,
    remove_socket,
    start_unix_site,
)
from primum.adapters.targets.local.routes import NO_VERSION, ConfigError, RouteConfig

ADMIN_PREFIX = "/_primum/"
RESERVED = "/_primum"  # this path and everything under it never reaches a backend
VERSION_HEADER = "x-primum-version"
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)
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
        self,
        name: str,
        *,
        key: bytes,
        timeout_s: float = UPSTREAM_TIMEOUT_S,
        samples_max: int = SAMPLES_MAX,
        min_fence: int = 0,
        min_seq: int = 0,
        metrics_token: str | None = None,
    ) -> None:
        if samples_max < 1:
            raise ValueError(f"samples_max must be at least 1, got {samples_max}")
        self.name = name
        self.key = key
        self.metrics_token = metrics_token
        self.timeout_s = timeout_s
        self.started_at = time.time()
        # (end epoch s, version, status, tenant label, latency s), oldest first.
        self.samples: deque[tuple[float, str, int, str, float]] = deque(maxlen=samples_max)
        self.base = RouteConfig.empty()  # as pushed
        self.config = self.base  # as applied: the pushed one minus what is down (failover)
        self.fence = min_fence  # the highest fence accepted so far
        self.seq = min_seq  # the seq of the last accepted push
        self.health = InstanceHealth()  # which pushed instances answer
        self.failed: list[str] = []  # versions whose weight went to others (failover)
        self._gauged: set[str] = set()  # versions with a primum_router_failed_over sample
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
        self.failed_over_gauge = Gauge(
            "primum_router_failed_over",
            "1 while a version's weight goes to other versions because none of its instances answers.",
            ("version",),
            registry=self.registry,
        )
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
        """The data port: patient traffic only; the admin prefix is neither served nor proxied."""
        path = request.path
        if path == RESERVED or path.startswith(ADMIN_PREFIX):
            return _json_response(404, {"error": "not found"})
        return await self.proxy(request)

    async def handle_metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        """The metrics listener: ``GET /metrics`` with the bearer token, nothing else."""
        if request.path != "/metrics":
            return _json_response(404, {"error": "not found"})
        if request.method != "GET":
            return _json_response(405, {"error": "method not allowed"})
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {self.metrics_token}"
        if self.metrics_token is None or not hmac.compare_digest(given.encode(), expected.encode()):
            return web.Response(
                status=401,
                text=json.dumps({"error": "a bearer token is required (the router's --metrics-token file)"}),
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="primum-router"'},
            )
        return self._metrics_response()

    def _metrics_response(self) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

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
                return self._config_response(self.base)
            if method == "PUT":
                return await self._put_config(request)
            return _json_response(405, {"error": "method not allowed"})
        if path == "/_primum/metrics":
            if method != "GET":
                return _json_response(405, {"error": "method not allowed"})
            return self._metrics_response()
        if path == "/_primum/samples":
            if method != "GET":
                return _json_response(405, {"error": "method not allowed"})
            return self._samples_response(request)
        return _json_response(404, {"error": f"no admin endpoint {path}"})

    def _samples_response(self, request: web.BaseRequest) -> web.Response:
        status, payload = samples_answer(self.samples, self.started_at, request.query)
        if status != 200:
            return _json_response(status, payload)
        return web.Response(text=json.dumps(payload, separators=(",", ":")), content_type="application/json")

    def _config_response(self, config: RouteConfig) -> web.Response:
        payload = config.to_json()
        payload["fence"] = self.fence  # the highest accepted, even if content was unchanged
        payload["seq"] = self.seq
        payload["started_at"] = self.started_at
        applied = self.config
        payload["effective"] = {k: v.weight for k, v in applied.versions.items()}
        payload["failed_over"] = self.failed
        payload["down_instances"] = sorted(self.health.down)
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
            seq, payload = open_envelope(self.key, self.name, body)
        except EnvelopeError as exc:
            status = 400 if exc.field in ("body", "payload") else 403
            return _json_response(status, {"error": str(exc), "field": exc.field})
        try:
            new = RouteConfig.from_json(payload)
        except ConfigError as exc:
            return _json_response(400, {"error": str(exc), "field": exc.field})
        # No await between the check and the swap: the compare-and-set is atomic.
        if new.fence < self.fence:
            return _json_response(
                409, {"error": "stale fence", "reason": "stale fence", "fence": self.fence, "seq": self.seq}
            )
        if seq <= self.seq:
            return _json_response(409, {
                "error": f"replayed configuration: seq {seq} is not above {self.seq}, the last accepted",
                "reason": "replayed", "fence": self.fence, "seq": self.seq,
            })
        current = self.base
        new_json, current_json = new.to_json(), current.to_json()
        new_json.pop("fence")
        current_json.pop("fence")
        self.fence, self.seq = new.fence, seq
        if new_json == current_json:
            # An idempotent re-push (controllers reconcile periodically): keep the
            # live object with its round-robin positions and caches.
            return self._config_response(self.base)
        self.base = new
        self.health.pushed(frozenset(u for v in new.versions.values() for u in v.instances))
        self._apply_failover(quiet=True)
        weights = {k: v.weight for k, v in new.versions.items()}
        print(
            f"primum-router {self.name}: fence {new.fence} seq {seq} weights {weights} "
            f"preview {new.preview} effective {self._effective_text()}",
            file=sys.stderr,
            flush=True,
        )
        return self._config_response(new)

    # ------------------------------------------------------------ failover

    def _effective_text(self) -> str:
        return str({k: v.weight for k, v in self.config.versions.items()})

    def _apply_failover(self, quiet: bool = False) -> None:
        """Recompute the applied configuration from the pushed one and what is down."""
        before = self.failed
        self.config = self.base.failover(frozenset(self.health.down))
        after = self.failed = self.base.failed_over(self.config)
        for key in self._gauged - set(self.base.versions):
            self.failed_over_gauge.remove(key)  # a version no longer pushed is not failed over either
        self._gauged = set(self.base.versions)
        for key in self._gauged:
            self.failed_over_gauge.labels(key).set(1 if key in after else 0)
        if not quiet and after != before:
            print(
                f"primum-router {self.name}: failover: {after or 'none'} down, effective {self._effective_text()}",
                file=sys.stderr,
                flush=True,
            )

    def _mark(self, url: str, ok: bool, refused: bool = False) -> None:
        """Record one probe (or a refused connection) of an instance; fail over if that changes anything."""
        if self.health.mark(url, ok, refused):
            self._apply_failover()

    async def probe_forever(self, interval: float = PROBE_INTERVAL_S) -> None:
        """Probe every pushed instance each ``interval`` seconds, concurrently (the failover's eyes)."""
        while True:
            base = self.base
            urls = sorted({u for v in base.versions.values() for u in v.instances})
            if urls and self.session is not None:
                results = await asyncio.gather(
                    *(probe(self.session, u, base.health_path, min(1.0, interval)) for u in urls)
                )
                if self.base is base:  # a push meanwhile: its instances start afresh
                    for url, (ok, refused) in zip(urls, results, strict=True):
                        self._mark(url, ok, refused)
            await asyncio.sleep(interval)

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

        key, response = await self._forward(request, config, key, instances)
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
    ) -> tuple[str, web.Response]:
        """Send the request to an instance of ``key``; the version that answered and the response.

        A refused connection marks the instance down; if that fails the version
        over, the one retry goes to the version that took its traffic.
        """
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
                    now = self.config
                    was, cur = config.versions.get(key), now.versions.get(key)
                    if attempt == 1 and was is not None and cur is not None and cur.weight < was.weight:
                        # the refused connection failed this version over (or a push moved its
                        # traffic meanwhile): choose again from what applies now
                        config = now
                        new_key, _ = config.choose(request.headers)
                        if new_key is not None and new_key != key and config.instances.get(new_key):
                            key, instances = new_key, config.instances[new_key]
                            base = instances[config.next_instance_index(key) % len(instances)]
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
                            return key, web.Response(
                                status=upstream.status, body=payload or None, headers=out_headers
                            )
                    except aiohttp.ClientConnectionError as exc:
                        could_not_connect = isinstance(exc, aiohttp.ClientConnectorError)
                        if could_not_connect:
                            self._mark(base, ok=False, refused=True)
                        if attempt == 0 and (could_not_connect or method in IDEMPOTENT):
                            continue
                        return key, _json_response(
                            502, {"error": f"upstream {base} failed: {exc.__class__.__name__}"}
                        )
                    except aiohttp.ClientError as exc:  # malformed upstream response etc.
                        return key, _json_response(
                            502, {"error": f"upstream {base} failed: {exc.__class__.__name__}"}
                        )
        except TimeoutError:
            return key, _json_response(
                504, {"error": f"upstream did not answer within {self.timeout_s:g} s"}
            )
        raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------ process


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    try:
        settings = check_settings(args)
    except RouterSetupError as exc:
        print(f"primum-router: {exc}", file=sys.stderr)
        return 2
    router = Router(
        args.name,
        key=settings.key,
        timeout_s=args.timeout,
        samples_max=args.samples_max,
        min_fence=args.min_fence,
        min_seq=args.min_seq,
        metrics_token=settings.metrics_token,
    )
    await router.start()

    def make_request(
        message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=CLIENT_MAX_BODY
        )

    # Low-level servers: no URL dispatcher or middleware chain on the hot path. One
    # per listener, so a request can only ever reach the handler of the door it came in by.
    runners: list[web.ServerRunner] = []
    for handler in (router.handle, router.admin, router.handle_metrics):
        server = web.Server(handler, request_factory=make_request, access_log=None)
        runners.append(web.ServerRunner(server, shutdown_timeout=5.0))
    for runner in runners:
        await runner.setup()
    data, admin, metrics = runners
    try:
        await web.TCPSite(data, args.host, args.port, reuse_address=True).start()
        what = f"the admin socket {args.admin_socket}"
        await start_unix_site(admin, args.admin_socket)
        if args.metrics_port is not None:
            what = f"the metrics port 127.0.0.1:{args.metrics_port}"
            await web.TCPSite(metrics, "127.0.0.1", args.metrics_port, reuse_address=True).start()
    except OSError as exc:
        print(f"primum-router: cannot listen on {args.host}:{args.port} or {what}: {exc}", file=sys.stderr)
        for runner in runners:
            await runner.cleanup()
        await router.close()
        return 1
    port = data.addresses[0][1] if data.addresses else args.port
    prober = asyncio.create_task(router.probe_forever(args.probe_interval))

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics_text = ""
    if args.metrics_port is not None:
        metrics_text = f" metrics on 127.0.0.1:{metrics.addresses[0][1] if metrics.addresses else args.metrics_port}"
    print(f"primum-router listening on {args.host}:{port} admin on {args.admin_socket}{metrics_text}", flush=True)
    try:
        await stop.wait()
    finally:
        prober.cancel()
        for runner in runners:
            await runner.cleanup()  # stop accepting; requests in flight finish
        await router.close()
        remove_socket(args.admin_socket)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Process-wide switch; the router is its own process, so this affects nothing else.
    disable_created_metrics()
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
