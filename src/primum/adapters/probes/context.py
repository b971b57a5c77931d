"""What a probe takes from the environment it runs in, and small shared helpers."""

from __future__ import annotations

import errno
import math
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from primum.core.analysis.data import ProbeResult

SpecT = TypeVar("SpecT")


@dataclass(frozen=True)
class ProbeContext:
    """Defaults a probe spec leaves to the environment.

    ``base_url``: the service's router in the environment (``http://host:port``),
    used when ``HttpProbe.url`` / ``FhirProbe.base`` is None. ``mllp_port``: used
    when ``MllpProbe.port`` is None. ``headers``: extra HTTP headers of HTTP and
    FHIR probes (e.g. ``x-primum-preview: 1`` to reach a new version's preview);
    a probe's own ``headers`` win. ``now``: the time (epoch seconds) TLS expiry is
    counted from; None means ``time.time()``.
    """

    base_url: str | None = None
    mllp_port: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    now: float | None = None

    def clock(self) -> float:
        return time.time() if self.now is None else self.now


def host_port(host: str, port: int | None) -> str:
    """``host:port``, with IPv6 literals in brackets; ``?`` for an unknown port."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{shown}:{'?' if port is None else port}"


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def seconds(value: float) -> str:
    """A duration for a sentence: ``5 s``, ``0.25 s``, ``800 ms``."""
    if value < 1.0:
        return f"{value * 1000:.0f} ms"
    return f"{value:g} s"


def elapsed_text(value: float) -> str:
    """A measured duration for a sentence: ``12 ms``, ``2.31 s``."""
    if value < 1.0:
        return f"{max(value, 0.0) * 1000:.0f} ms"
    return f"{value:.2f} s"


def os_error_text(exc: BaseException) -> str:
    """A short, readable cause of a socket-level failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed ({exc.verify_message or exc.reason or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "host unreachable"
        return (exc.strerror or str(exc) or type(exc).__name__).rstrip(".").lower()
    return str(exc) or type(exc).__name__


def root_cause(exc: BaseException) -> BaseException:
    """The innermost OSError in an exception's cause/context chain (httpx wraps them), else ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    found: BaseException = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            found = current
        current = current.__cause__ or current.__context__
    return found


def result(
    probe: str,
    target: str,
    ok: bool,
    reason: str,
    elapsed: float | None = None,
    **details: Any,
) -> ProbeResult:
    """A ProbeResult; ``elapsed`` (seconds) becomes latency_ms."""
    latency = None if elapsed is None or not math.isfinite(elapsed) else ms(elapsed)
    return ProbeResult(probe=probe, target=target, ok=ok, reason=reason, latency_ms=latency, details=details)


@dataclass(frozen=True)
class Probe(Generic[SpecT]):
    """One kind of probe: ``run`` checks once (it may raise; the caller fails closed), ``target`` says what it
    checks (a URL or ``host:port``) for the reason and the evidence."""

    run: Callable[[SpecT, ProbeContext], ProbeResult]
    target: Callable[[SpecT, ProbeContext], str]
