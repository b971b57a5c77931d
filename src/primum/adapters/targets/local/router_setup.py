"""The router process's set-up: its arguments, the files it trusts, its admin socket, instance probes.

Split from ``router.py`` so that the request path stays readable there. What is
checked here, before the router listens, fails closed with exit code 2 and a
message naming the file and the fix:

* the admin socket's directory must be owned by the router's user and closed to
  everyone else (mode 0700), because the socket's own mode is only as good as
  the directory around it (and a directory others can write to lets them
  replace the socket);
* the fence key and the metrics token files must be the user's and 0600: a key
  anyone can read proves nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from yarl import URL

from primum.adapters.targets.local.fencing import KEY_BYTES
from primum.adapters.targets.local.routes import MAX_FENCE

UPSTREAM_TIMEOUT_S = 10.0
SAMPLES_MAX = 200_000  # per-request records kept (ring buffer)
PROBE_INTERVAL_S = 1.0
# Consecutive failed probes before an instance is down (a refused connection counts at once): as
# many as the runtime's own health check needs, so one slow probe on a loaded box moves nothing.
DOWN_AFTER = 3


class RouterSetupError(Exception):
    """The router cannot start safely; the message names the file or flag and the fix."""


@dataclass(frozen=True)
class Settings:
    key: bytes
    metrics_token: str | None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m primum.adapters.targets.local.router",
        description="primum data-plane HTTP router for one service in one environment",
    )
    parser.add_argument("--port", type=int, required=True, help="data port to listen on (0: any)")
    parser.add_argument("--name", required=True, help="ENV/SERVICE, for health and logs")
    parser.add_argument("--host", default="127.0.0.1", help="address of the data port")
    parser.add_argument("--admin-socket", required=True, help="Unix socket of the admin API (made 0600)")
    parser.add_argument("--fence-key", required=True, help="0600 file holding the runtime's fence key (hex)")
    parser.add_argument("--min-fence", type=int, default=0, help="refuse pushes with a lower fence")
    parser.add_argument("--min-seq", type=int, default=0, help="refuse pushes at --min-fence up to this seq")
    parser.add_argument("--metrics-port", type=int, default=None, help="loopback port for GET /metrics")
    parser.add_argument("--metrics-token", default=None, help="0600 file holding the metrics bearer token")
    parser.add_argument(
        "--probe-interval", type=float, default=PROBE_INTERVAL_S, help="seconds between instance probes"
    )
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




def _owner_only(path: str, what: str, *, directory: bool) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise RouterSetupError(f"{what} {path}: {exc.strerror}") from None
    kind_ok = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    if not kind_ok:
        raise RouterSetupError(f"{what} {path}: is not a {'directory' if directory else 'regular file'}")
    if st.st_uid != os.getuid():
        raise RouterSetupError(f"{what} {path}: is owned by uid {st.st_uid}, not by this user ({os.getuid()})")
    if st.st_mode & 0o077:
        mode = "700" if directory else "600"
        raise RouterSetupError(
            f"{what} {path}: mode {stat.S_IMODE(st.st_mode):o} lets other users in; chmod {mode} {path}"
        )


def _read_secret(path: str, what: str) -> str:
    _owner_only(path, what, directory=False)
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RouterSetupError(f"{what} {path}: unreadable: {exc}") from None


def check_settings(args: argparse.Namespace) -> Settings:
    """Validate the arguments and read the secrets; raise :class:`RouterSetupError`."""
    if args.samples_max < 1:
        raise RouterSetupError(f"--samples-max must be at least 1, got {args.samples_max}")
    if not 0 <= args.min_fence <= MAX_FENCE or not 0 <= args.min_seq <= MAX_FENCE:
        raise RouterSetupError(f"--min-fence and --min-seq must be integers 0..{MAX_FENCE}")
    if not args.probe_interval > 0:
        raise RouterSetupError(f"--probe-interval must be positive, got {args.probe_interval}")
    _owner_only(os.path.dirname(os.path.abspath(args.admin_socket)), "the admin socket's directory",
                directory=True)
    text = _read_secret(args.fence_key, "the fence key")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise RouterSetupError(f"the fence key {args.fence_key}: must hold {KEY_BYTES} bytes as hex"
                               f" ({2 * KEY_BYTES} hex digits); let primum up create it")
    token = None
    if args.metrics_port is not None:
        if args.metrics_token is None:
            raise RouterSetupError("--metrics-port needs --metrics-token FILE (the bearer token Prometheus sends)")
        token = _read_secret(args.metrics_token, "the metrics token")
        if len(token) < 16:
            raise RouterSetupError(f"the metrics token {args.metrics_token}: shorter than 16 characters")
    return Settings(key, token)


async def start_unix_site(runner: web.ServerRunner, path: str) -> None:
    """Listen on the Unix socket ``path``, created 0600 (a stale socket of a dead router is replaced)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(f"{path} exists and is not a socket")
        os.unlink(path)
    old = os.umask(0o177)  # the socket is born 0600: no window in which others may connect
    try:
        await web.UnixSite(runner, path).start()
    finally:
        os.umask(old)
    os.chmod(path, 0o600)


def remove_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


class InstanceHealth:
    """Which of the pushed instances (by URL) answer: the router's failover reads ``down``."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self._failures: dict[str, int] = {}  # consecutive failed probes per instance URL
        self._urls: frozenset[str] = frozenset()

    def pushed(self, urls: frozenset[str]) -> None:
        """A new configuration: its instances are up until they fail here; forget the others."""
        self._urls = urls
        self.down &= urls
        self._failures = {u: n for u, n in self._failures.items() if u in urls}

    def mark(self, url: str, ok: bool, refused: bool = False) -> bool:
        """Record one probe or one refused connection; True if the instance changed between up and down."""
        if url not in self._urls:
            return False  # a request that started before a push that dropped this instance
        if ok:
            self._failures.pop(url, None)
            if url in self.down:
                self.down.discard(url)
                return True
            return False
        failures = self._failures[url] = self._failures.get(url, 0) + 1
        if url not in self.down and (refused or failures >= DOWN_AFTER):
            self.down.add(url)
            return True
        return False


async def probe(
    session: aiohttp.ClientSession | None, url: str, path: str | None, timeout: float
) -> tuple[bool, bool]:
    """(answered healthily, the connection was refused) for the instance at ``url``.

    ``GET url+path`` must answer 2xx; without a path a TCP connection must be accepted.
    """
    if session is None:
        return False, False
    try:
        async with asyncio.timeout(timeout):
            if path is None:
                parts = URL(url)
                _, writer = await asyncio.open_connection(parts.host, parts.port)
                writer.close()
                return True, False
            async with session.get(URL(url + path, encoded=True), allow_redirects=False) as resp:
                await resp.read()
                return 200 <= resp.status < 300, False
    except (aiohttp.ClientConnectorError, ConnectionRefusedError):
        return False, True
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False, False
