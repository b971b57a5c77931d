"""Which in-toto statement records which primum event (pure).

Gate decisions become Simple Verification Results (the standard predicate for "a verifier checked
this and found ..."): policy decisions, analysis measurements and probe gates. Every other event
(submitted, approval, step, rollback, break-glass, review, ...) becomes the documented primum event
predicate. The mapping never drops an event and never turns a failure into a pass: a decision the
mapping cannot read is recorded as a failed gate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from primum.core.evidence.statements import Statement, Subject, event_statement, gate_statement

# Event kinds recorded as SVR gate decisions, and the gate each one is.
GATE_KINDS = {"policy_decision": "policy", "analysis": "analysis", "probe": "probe"}


def _policy(data: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    decision = data.get("decision")
    if not isinstance(decision, Mapping) or not isinstance(decision.get("allowed"), bool):
        return False, "unreadable", ["the decision could not be read, so it counts as a denial"]
    allowed = decision["allowed"]
    reasons = [str(r) for r in decision.get("deny") or []] + [f"warning: {w}" for w in decision.get("warn") or []]
    if decision.get("change_class"):
        reasons.insert(0, f"change class {decision['change_class']}")
    return allowed, "allow" if allowed else "deny", reasons


def _analysis(data: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    report = data.get("report")
    if not isinstance(report, Mapping) or not isinstance(report.get("outcome"), str):
        return False, "unreadable", ["the analysis report could not be read, so it counts as a failure"]
    outcome = report["outcome"]
    return outcome == "Successful", outcome, [str(report.get("reason") or "")]


def _probe(data: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    results = data.get("results")
    if not isinstance(results, Mapping) or not results:
        return False, "unreadable", ["no probe results, so the gate counts as failed"]
    ok = all(isinstance(r, Mapping) and r.get("ok") is True for r in results.values())
    reasons = [f"{name}: {'ok' if isinstance(r, Mapping) and r.get('ok') is True else 'failed'}"
               + (f" ({r.get('reason')})" if isinstance(r, Mapping) and r.get("reason") else "")
               for name, r in sorted(results.items())]
    return ok, "passed" if ok else "failed", reasons


_READERS = {"policy": _policy, "analysis": _analysis, "probe": _probe}


def plain(value: Any) -> Any:
    """``value`` with non-finite floats written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.

    Statements are canonical JSON, which has no NaN; an analysis report has them (a ratio with no
    baseline). The strings are protobuf's JSON mapping of the same doubles, so in-toto readers agree.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def event_to_statement(subjects: Sequence[Subject], *, kind: str, message: str, at: float,
                       env: str | None = None, service: str | None = None,
                       data: Mapping[str, Any] | None = None) -> Statement:
    """The statement recording one event about the release named by ``subjects``."""
    data = plain(dict(data or {}))
    actor = data.get("actor") if isinstance(data.get("actor"), str) else None
    gate = GATE_KINDS.get(kind)
    if gate is None:
        return event_statement(subjects, kind=kind, message=message, at=at, env=env, service=service,
                               actor=actor, data=data)
    passed, outcome, reasons = _READERS[gate](data)
    return gate_statement(subjects, gate=gate, passed=passed, outcome=outcome, at=at, reasons=reasons,
                          env=env, service=service, data={"kind": kind, "message": message, **data})
