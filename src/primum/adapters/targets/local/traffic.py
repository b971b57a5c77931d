"""Synthetic traffic for routers where no real users exist.

Run as ``python -m primum.adapters.targets.local.traffic --config FILE.json``.

Why: release analysis compares versions by what the router observed (status
codes, latency, per tenant). On a laptop or in a staging estate nobody is
using the service, so without this process a canary would be "healthy" by
absence of evidence. This is a data-plane process like the router: it
survives the controller and simply keeps sending.

The config file::

    {"targets": [{"name": "staging/scheduling-api",
                  "url": "http://127.0.0.1:PORT",
                  "rate": 10.0,
                  "paths": ["/appointments", "/healthz"],
                  "tenants": ["clinic-north", "clinic-south"],
                  "tenant_header": "x-tenant-id",
                  "preview_share": 0.2}]}

Only ``name`` and ``url`` are required (``rate`` 10, ``paths`` ``["/"]``,
no tenants, ``x-tenant-id``, ``preview_share`` 0). The file is re-read when
its mtime (or size) changes, so the controller adds targets without a
restart; targets are matched by ``name`` and only changed ones restart.

For each target, requests are a Poisson process at ``rate`` per second: a GET
of a random path, with a random tenant header when tenants are given and with
``x-primum-preview: 1`` on a ``preview_share`` fraction. At most
``MAX_IN_FLIGHT`` requests per target are outstanding; a tick that finds the
target saturated is dropped rather than queued, so a slow router sees a
bounded load instead of a growing backlog. Each request has a 5 s budget and
failures are ignored here (the router is what records them).

Safety: this process only ever sends to loopback (127.0.0.0/8, ::1,
``localhost``), never follows redirects and ignores proxy environment
variables, so a mistaken config cannot load-test somebody else's system. A
non-loopback URL at start-up makes it exit with status 2 before sending
anything; one appearing in a later re-read makes it refuse that whole file
(logged) and keep the previous targets.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import re
import signal
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

MAX_IN_FLIGHT = 20
REQUEST_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.5
MAX_BEHIND_S = 1.0  # after a stall, skip the missed ticks instead of bursting
PREVIEW_HEADER = "x-primum-preview"
EXIT_CONFIG_ERROR = 2

_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_TARGET_FIELDS = frozenset(
    {"name", "url", "rate", "paths", "tenants", "tenant_header", "preview_share"}
)


class TrafficConfigError(ValueError):
    """The config file is unusable (bad JSON, bad field or a non-loopback URL)."""


def is_loopback_host(host: str | None) -> bool:
    """True only for 127.0.0.0/8, ::1 and ``localhost`` (no DNS lookups)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_loopback_url(url: str) -> None:
    """Raise ``TrafficConfigError`` unless ``url`` is http(s) to a loopback host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- validates the port
    except ValueError as exc:
        raise TrafficConfigError(f"not a valid URL: {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise TrafficConfigError(f"not an http(s) URL: {url!r}")
    if not is_loopback_host(parts.hostname):
        raise TrafficConfigError(
            f"refusing non-loopback URL {url!r}: synthetic traffic only goes to "
            "127.0.0.0/8, ::1 or localhost"
        )


@dataclass(frozen=True)
class TargetSpec:
    """One router to exercise and how."""

    name: str
    url: str
    rate: float = 10.0
    paths: tuple[str, ...] = ("/",)
    tenants: tuple[str, ...] = ()
    tenant_header: str = "x-tenant-id"
    preview_share: float = 0.0


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_config(data: object) -> dict[str, TargetSpec]:
    """Validate the whole file; return targets by name. Any problem rejects the file."""
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise TrafficConfigError('config must be an object {"targets": [...]}')
    extra = sorted(set(data) - {"targets"})
    if extra:
        raise TrafficConfigError(f"unknown field {extra[0]!r}")
    targets: dict[str, TargetSpec] = {}
    for i, raw in enumerate(data["targets"]):
        where = f"targets[{i}]"
        if not isinstance(raw, dict):
            raise TrafficConfigError(f"{where}: must be an object")
        extra = sorted(set(raw) - _TARGET_FIELDS)
        if extra:
            raise TrafficConfigError(f"{where}.{extra[0]}: unknown field")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise TrafficConfigError(f"{where}.name: must be a non-empty string")
        if name in targets:
            raise TrafficConfigError(f"{where}.name: duplicate target {name!r}")
        url = raw.get("url")
        if not isinstance(url, str):
            raise TrafficConfigError(f"{where}.url: must be a string")
        check_loopback_url(url)
        rate = raw.get("rate", 10.0)
        if not _number(rate) or not 0 <= rate <= 10_000:
            raise TrafficConfigError(f"{where}.rate: must be a number 0..10000")
        paths = raw.get("paths", ["/"])
        if (
            not isinstance(paths, list)
            or not paths
            or not all(isinstance(p, str) and p.startswith("/") for p in paths)
        ):
            raise TrafficConfigError(f"{where}.paths: must be a non-empty list of '/...' paths")
        tenants = raw.get("tenants", [])
        if not isinstance(tenants, list) or not all(isinstance(t, str) and t for t in tenants):
            raise TrafficConfigError(f"{where}.tenants: must be a list of non-empty strings")
        tenant_header = raw.get("tenant_header", "x-tenant-id")
        if not isinstance(tenant_header, str) or not _HEADER_RE.match(tenant_header):
            raise TrafficConfigError(f"{where}.tenant_header: must be a header name")
        share = raw.get("preview_share", 0.0)
        if not _number(share) or not 0 <= share <= 1:
            raise TrafficConfigError(f"{where}.preview_share: must be a number 0..1")
        targets[name] = TargetSpec(
            name=name,
            url=url.rstrip("/"),
            rate=float(rate),
            paths=tuple(paths),
            tenants=tuple(tenants),
            tenant_header=tenant_header,
            preview_share=float(share),
        )
    return targets


def load_config(path: str) -> dict[str, TargetSpec]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise TrafficConfigError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise TrafficConfigError(f"{path} is not valid JSON: {exc}") from None
    return parse_config(data)


def _log(message: str) -> None:
    print(f"primum-traffic: {message}", file=sys.stderr, flush=True)


@dataclass
class TargetStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    dropped: int = 0


@dataclass
class TargetLoop:
    """The request schedule of one target; replaced wholesale when its spec changes."""

    spec: TargetSpec
    session: aiohttp.ClientSession
    stats: TargetStats = field(default_factory=TargetStats)
    in_flight: int = 0
    requests: set[asyncio.Task[None]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"traffic {self.spec.name}")

    def stop(self, *, abort_in_flight: bool = False) -> None:
        if self.task is not None:
            self.task.cancel()
        if abort_in_flight:
            for request in list(self.requests):
                request.cancel()

    async def _run(self) -> None:
        spec = self.spec
        if spec.rate <= 0:
            return  # an idle target: kept in the config, sends nothing
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += random.expovariate(spec.rate)
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -MAX_BEHIND_S:
                next_at = loop.time()
            if self.in_flight >= MAX_IN_FLIGHT:
                self.stats.dropped += 1
                continue
            self.in_flight += 1
            request = asyncio.create_task(self._send())
            self.requests.add(request)
            request.add_done_callback(self.requests.discard)

    async def _send(self) -> None:
        spec = self.spec
        headers = {"User-Agent": "primum-traffic"}
        if spec.tenants:
            headers[spec.tenant_header] = random.choice(spec.tenants)
        if spec.preview_share > 0 and random.random() < spec.preview_share:
            headers[PREVIEW_HEADER] = "1"
        url = spec.url + random.choice(spec.paths)
        self.stats.sent += 1
        try:
            async with self.session.get(
                url,
                headers=headers,
                allow_redirects=False,  # a redirect could point off the box
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            ) as response:
                await response.read()
            self.stats.ok += 1
        except (aiohttp.ClientError, TimeoutError, OSError):
            self.stats.failed += 1  # the router has recorded it; nothing to do here
        finally:
            self.in_flight -= 1


class TrafficGenerator:
    """Owns the shared client session, the target loops and the config watch."""

    def __init__(self, path: str, initial: dict[str, TargetSpec], signature: object) -> None:
        self.path = path
        self.specs = initial
        self.signature = signature
        self.loops: dict[str, TargetLoop] = {}
        self.session: aiohttp.ClientSession | None = None

    def _apply(self, specs: dict[str, TargetSpec]) -> None:
        assert self.session is not None
        for name in list(self.loops):
            if name not in specs or specs[name] != self.loops[name].spec:
                self.loops.pop(name).stop()
        for name, spec in specs.items():
            if name not in self.loops:
                loop = TargetLoop(spec, self.session)
                loop.start()
                self.loops[name] = loop
        self.specs = specs

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            signature = _signature(self.path)
            if signature == self.signature:
                continue
            self.signature = signature
            if signature is None:
                _log(f"{self.path} is gone; keeping the current targets")
                continue
            try:
                specs = load_config(self.path)
            except TrafficConfigError as exc:
                _log(f"ignoring new config, keeping the current targets: {exc}")
                continue
            self._apply(specs)
            _log(f"reloaded {self.path}: targets {sorted(specs)}")

    async def run(self, stop: asyncio.Event) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # never through a proxy: the loopback check must be the truth
        )
        try:
            self._apply(self.specs)
            watcher = asyncio.create_task(self._watch())
            print("primum-traffic started", flush=True)
            await stop.wait()
            watcher.cancel()
            for loop in self.loops.values():
                loop.stop(abort_in_flight=True)
            tasks = [loop.task for loop in self.loops.values() if loop.task is not None]
            pending = [r for loop in self.loops.values() for r in loop.requests]
            await asyncio.gather(watcher, *tasks, *pending, return_exceptions=True)
            for name, loop in sorted(self.loops.items()):
                s = loop.stats
                _log(f"{name}: sent {s.sent} ok {s.ok} failed {s.failed} dropped {s.dropped}")
        finally:
            await self.session.close()


def _signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


async def _main_async(path: str, specs: dict[str, TargetSpec], signature: object) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await TrafficGenerator(path, specs, signature).run(stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m primum.adapters.targets.local.traffic",
        description="primum synthetic traffic generator (loopback only)",
    )
    parser.add_argument("--config", required=True, help="JSON file; re-read when it changes")
    args = parser.parse_args(argv)
    signature = _signature(args.config)
    try:
        specs = load_config(args.config)
    except TrafficConfigError as exc:
        _log(str(exc))
        return EXIT_CONFIG_ERROR
    return asyncio.run(_main_async(args.config, specs, signature))


if __name__ == "__main__":
    sys.exit(main())
