"""Synthetic probes: one check of a running service, usable as a release gate.

:func:`run_probe` runs one probe spec (``primum.core.model.analysis``: http, fhir,
mllp, tcp, tls) and answers a :class:`~primum.core.analysis.data.ProbeResult`:
ok or not, one sentence naming the target and what was expected and seen,
the latency and the details. It never raises for a network problem: a
timeout, a refused connection, a failed TLS verification or a garbled
answer are all ``ok=False`` (fail closed). :func:`run_gate` runs a
:class:`~primum.core.model.analysis.ProbeGate` with its attempts. See
``docs/PROBES.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from primum.adapters.probes.context import ProbeContext
from primum.adapters.probes.registry import PROBES
from primum.core.analysis.data import ProbeResult
from primum.core.model.analysis import ProbeGate, ProbeSpec

__all__ = ["ProbeContext", "run_gate", "run_probe", "target_of"]


def target_of(spec: ProbeSpec, ctx: ProbeContext) -> str:
    """What ``spec`` probes in ``ctx``: a URL or ``host:port`` (as far as it is known)."""
    return PROBES.get(spec.type).target(spec, ctx)


def run_probe(spec: ProbeSpec, ctx: ProbeContext | None = None) -> ProbeResult:
    """Run one probe; never raises (an unexpected error is a failed probe too)."""
    ctx = ctx or ProbeContext()
    try:
        return PROBES.get(spec.type).run(spec, ctx)
    except Exception as exc:  # fail closed: a probe that could not run did not pass
        kind = getattr(spec, "type", type(spec).__name__)
        target = _safe_target(spec, ctx)
        return ProbeResult(probe=str(kind), target=target, ok=False,
                           reason=f"{kind} probe of {target} could not run: {type(exc).__name__}: {exc}")


def _safe_target(spec: ProbeSpec, ctx: ProbeContext) -> str:
    try:
        return target_of(spec, ctx)
    except Exception:
        return "?"


def run_gate(
    gate: ProbeGate,
    ctx: ProbeContext | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> ProbeResult:
    """Run ``gate.probe`` up to ``gate.attempts`` times, ``gate.interval`` apart, stopping at the
    first pass. The answer is that pass, or the last failure; ``details`` gain ``gate``,
    ``attempt`` (1-based) and ``attempts``, and a failure's reason says how many attempts failed."""
    ctx = ctx or ProbeContext()
    outcome: ProbeResult | None = None
    for attempt in range(1, gate.attempts + 1):
        if attempt > 1:
            sleep(gate.interval)
        outcome = run_probe(gate.probe, ctx)
        outcome = outcome.model_copy(
            update={"details": {**outcome.details, "gate": gate.name, "attempt": attempt, "attempts": gate.attempts}}
        )
        if outcome.ok:
            return outcome
    assert outcome is not None  # attempts >= 1
    if gate.attempts > 1:
        outcome = outcome.model_copy(
            update={"reason": f"{outcome.reason} (gate {gate.name}: all {gate.attempts} attempts failed)"}
        )
    return outcome
