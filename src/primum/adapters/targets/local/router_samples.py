"""The router's per-request records and the answer of ``GET /_primum/samples``, without I/O.

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

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

Record = tuple[float, str, int, str, float]  # (end epoch s, version, status, tenant label, latency s)


def samples_answer(
    samples: deque[Record], started_at: float, query: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON payload) for a samples query over the ring buffer ``samples``."""
    bounds: dict[str, float] = {}
    for name in ("since", "until"):
        raw = query.get(name)
        if raw is None:
            return 400, {"error": f"{name}: is required (epoch seconds)", "field": name}
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if value != value or value in (float("inf"), float("-inf")):
            return 400, {"error": f"{name}: must be a finite number of epoch seconds, got {raw!r}", "field": name}
        bounds[name] = value
    since, until = bounds["since"], bounds["until"]
    if until < since:
        return 400, {"error": f"until ({until}) is before since ({since})", "field": "until"}
    version = query.get("version")
    t: list[float] = []
    versions: list[str] = []
    statuses: list[int] = []
    tenants: list[str] = []
    latencies: list[float] = []
    # Newest first, stopping at the first record older than the window: a
    # recent window costs only its own records. No await in this loop, so
    # no request can append to the deque while it is iterated (the caller
    # runs on the event loop).
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
    payload: dict[str, Any] = {
        "started_at": started_at,
        "now": time.time(),
        "since": since,
        "until": until,
        "oldest": oldest,
        "complete": since >= started_at and not evicted,
        "count": len(t),
        "t": t,
        "version": versions,
        "status": statuses,
        "tenant": tenants,
        "latency": latencies,
    }
    return 200, payload

