"""Fault profiles for the accuracy benches, as demo artifacts with an overlay.

A profile says how a canary version of a demo service behaves on every
non-health request: its latency distribution (the demo's own uniform 2-12 ms,
or a wider one), an added delay, a delayed fraction of requests (a tail), an
error rate, the tenants the fault hits, a fault that grows with time since the
version's first request (a slow burn), and whether ``/healthz`` ever passes
(dead on arrival).

The demo's renderer (``primum.demo.render``) only knows a constant delay, an
error rate and fault tenants. Rather than grow the demo's artifacts for the
bench, :func:`write_faulty` renders the demo service unchanged and appends an
overlay just before its ``if __name__ == "__main__":`` line that replaces
``injected_failure`` (and, for a dead-on-arrival version, wraps the handler's
dispatch so ``/healthz`` answers 503). The demo's own files and digests do not
change; every profile is a distinct file with its own digest.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from primum.demo.render import render_artifact

MAIN_GUARD = '\nif __name__ == "__main__":\n'


@dataclass(frozen=True)
class FaultProfile:
    """How a version serves a non-health request (all times in milliseconds).

    ``spread_sd_ms`` > 0: the service time is normal(7, sd) clipped to [0.5, 7 + 4 sd] instead of the
    demo's uniform(2, 12) (the same median, a wider spread). ``jitter_fraction`` of requests get
    uniform(0, ``jitter_ms``) more (occasional noise); ``tail_fraction`` of requests get ``tail_ms`` more
    (a tail regression). ``ramp_s`` > 0: the delay, tail and error rate grow linearly from 0 at the
    version's first request to their full value ``ramp_s`` seconds later (a slow burn).
    ``health_ok`` False: ``/healthz`` answers 503 forever.
    """

    extra_ms: float = 0.0
    error_rate: float = 0.0
    tail_fraction: float = 0.0
    tail_ms: float = 0.0
    jitter_fraction: float = 0.0
    jitter_ms: float = 0.0
    spread_sd_ms: float = 0.0
    fault_tenants: tuple[str, ...] = ()
    ramp_s: float = 0.0
    health_ok: bool = True


OVERLAY = '''
# --- bench fault overlay (bench/accuracy_faults.py; never part of the demo) ---
_FAULT = {fault!r}
_FIRST_REQUEST = []


def injected_failure(tenant: str) -> bool:
    """The bench's fault profile in place of the demo's (see bench/accuracy_faults.py)."""
    sd = _FAULT["spread_sd_ms"]
    if sd > 0:
        delay = min(max(random.gauss(7.0, sd), 0.5), 7.0 + 4 * sd)
    else:
        delay = random.uniform(2.0, 12.0)
    if _FAULT["jitter_fraction"] > 0 and random.random() < _FAULT["jitter_fraction"]:
        delay += random.uniform(0.0, _FAULT["jitter_ms"])
    fail = False
    if not _FAULT["fault_tenants"] or tenant in _FAULT["fault_tenants"]:
        grow = 1.0
        if _FAULT["ramp_s"] > 0:
            if not _FIRST_REQUEST:
                _FIRST_REQUEST.append(time.monotonic())
            grow = min(1.0, (time.monotonic() - _FIRST_REQUEST[0]) / _FAULT["ramp_s"])
        delay += grow * _FAULT["extra_ms"]
        if _FAULT["tail_fraction"] > 0 and random.random() < grow * _FAULT["tail_fraction"]:
            delay += _FAULT["tail_ms"]
        fail = _FAULT["error_rate"] > 0 and random.random() < grow * _FAULT["error_rate"]
    time.sleep(delay / 1000.0)
    return fail


if not _FAULT["health_ok"]:
    _demo_dispatch = Handler._dispatch

    def _dead_on_arrival(self) -> None:
        if "/" + urlsplit(self.path).path.strip("/") == "/healthz":
            self.close_connection = True
            self._send(error_reply(503, "not ready (injected: dead on arrival)"), "", self.command == "HEAD")
            return
        _demo_dispatch(self)

    Handler._dispatch = _dead_on_arrival
# --- end bench fault overlay ---
'''


def overlay_source(service: str, version: str, fault: FaultProfile) -> str:
    """The demo service's source at ``version`` with ``fault``'s overlay before its main guard."""
    source = render_artifact(service, version)
    if source.count(MAIN_GUARD) != 1:
        raise ValueError(f"the {service} template has no single main guard; update bench/accuracy_faults.py")
    values = {
        "extra_ms": float(fault.extra_ms), "error_rate": float(fault.error_rate),
        "tail_fraction": float(fault.tail_fraction), "tail_ms": float(fault.tail_ms),
        "jitter_fraction": float(fault.jitter_fraction), "jitter_ms": float(fault.jitter_ms),
        "spread_sd_ms": float(fault.spread_sd_ms), "fault_tenants": tuple(sorted(set(fault.fault_tenants))),
        "ramp_s": float(fault.ramp_s), "health_ok": bool(fault.health_ok),
    }
    return source.replace(MAIN_GUARD, OVERLAY.format(fault=values) + MAIN_GUARD)


def write_faulty(directory: Path, service: str, version: str, fault: FaultProfile) -> tuple[Path, str]:
    """Write ``<directory>/<service>-<version>.py`` with ``fault``; (path, ``sha256:<hex>``)."""
    data = overlay_source(service, version, fault).encode("utf-8")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{service}-{version}.py"
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
    return path, "sha256:" + hashlib.sha256(data).hexdigest()
