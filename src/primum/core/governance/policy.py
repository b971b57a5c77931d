"""A policy decision as a value (pure): the shape of the ``decision`` rule's result, checked.

The adapter (``primum.adapters.policy``) reads the files, compiles the bundle and
evaluates the rule; what the result *means* is decided here, with no I/O, clock or
randomness: the caller passes the time and the decision id. Fail closed: an
evaluation error, an undefined result or a malformed one is a denial that names
the rule.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PACKAGE = "primum.release"
DECISION_PATH = f"data.{PACKAGE}.decision"
CLASSES = ("standard", "normal", "high-impact", "emergency")

# decision key -> the rule of package primum.release that produces it
PARTS = {
    "class": "class",
    "risk_class": "risk_class",
    "service_classes": "service_class",
    "reasons": "service_reasons",
    "requirements": "requirements",
    "deny": "deny",
    "warn": "warn",
    "violation": "violation",
}
REQUIRED_PARTS = ("class", "requirements", "deny", "warn")


class Requirements(BaseModel):
    """What a release's change class requires in one environment."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    approvals: int = Field(ge=0)
    cab_approvals: int = Field(ge=0)
    min_analysis_seconds: int = Field(ge=0)
    gates: list[str]
    break_glass_only: bool


class DecisionLogEntry(BaseModel):
    """One decision, as an OPA decision log records it."""

    model_config = ConfigDict(frozen=True)

    decision_id: str
    path: str
    input_digest: str
    result: Any
    bundle_revision: str
    time: float
    error: str | None = None


class PolicyDecision(BaseModel):
    """The policy's verdict on one release in one environment."""

    model_config = ConfigDict(frozen=True)

    change_class: str | None
    risk_class: str | None = None
    service_classes: dict[str, str] = Field(default_factory=dict)
    reasons: dict[str, list[str]] = Field(default_factory=dict)
    requirements: Requirements | None
    deny: list[str]
    warn: list[str]
    violations: list[dict[str, Any]] = Field(default_factory=list)
    allowed: bool
    error: str | None = None
    log: DecisionLogEntry


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in items]


def interpret(value: Any) -> tuple[dict[str, Any], str | None]:
    """Check the shape of a decision; a malformed one is an error (which denies)."""
    if not isinstance(value, dict):
        return {}, f"rule {DECISION_PATH} returned {json.dumps(value)}, not an object"
    missing = [k for k in REQUIRED_PARTS if k not in value]
    if missing:
        return {}, f"rule {DECISION_PATH} has no {', '.join(missing)}"
    change_class = value["class"]
    if change_class not in CLASSES:
        return {}, (f"rule data.{PACKAGE}.class returned {json.dumps(change_class)}; "
                    f"a change class is one of {', '.join(CLASSES)}")
    try:
        requirements = Requirements.model_validate(value["requirements"])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        return {}, f"rule data.{PACKAGE}.requirements returned an invalid value ({problems})"
    violations = value.get("violation") or []
    if not isinstance(violations, list):
        violations = [violations]
    violations = [v if isinstance(v, dict) else {"msg": v} for v in violations]
    deny = set(_strings(value["deny"] or []))
    deny.update(_strings([v.get("msg", v) for v in violations]))
    service_classes = value.get("service_classes")
    reasons = value.get("reasons")
    return {
        "change_class": change_class,
        "risk_class": value.get("risk_class") if isinstance(value.get("risk_class"), str) else None,
        "service_classes": {str(k): str(v) for k, v in service_classes.items()}
        if isinstance(service_classes, dict) else {},
        "reasons": {str(k): _strings(v) for k, v in reasons.items()} if isinstance(reasons, dict) else {},
        "requirements": requirements,
        "deny": sorted(deny),
        "warn": sorted(set(_strings(value["warn"] or []))),
        "violations": sorted(violations, key=lambda v: json.dumps(v, sort_keys=True)),
    }, None


def decision_from(result: Any, error: str | None, *, decision_id: str, input_digest: str, bundle_revision: str,
                  at: float) -> PolicyDecision:
    """The decision for one evaluation: ``result`` is the rule's value (None when undefined), ``error`` why
    the evaluation failed, if it did. Never raises: whatever is wrong denies."""
    fields: dict[str, Any] = {}
    if error is None:
        fields, error = interpret(result)
    log = DecisionLogEntry(decision_id=decision_id, path=DECISION_PATH, input_digest=input_digest, result=result,
                           bundle_revision=bundle_revision, time=at, error=error)
    if error is not None:
        return PolicyDecision(change_class=None, requirements=None, deny=[f"policy error: {error}"],
                              warn=[], allowed=False, error=error, log=log)
    return PolicyDecision(**fields, allowed=not fields["deny"], log=log)
