"""The policy input document: what a Rego policy sees about one release in one environment.

``policy_input`` is pure: the same estate, release, environment, checks and time
give the same document (and so the same input digest in the decision log).
The shape is the contract between primum and every policy; see docs/POLICY.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from primum.adapters.evidence.ingest import evidence_summary
from primum.core.model.estate import (
    AnalysisStep,
    ApplyStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    Estate,
    RollingStrategy,
    Service,
)
from primum.core.model.release import Release


def analysis_seconds(strategy: CanaryStrategy | BlueGreenStrategy | RollingStrategy | ApplyStrategy,
                     replicas: int = 1) -> float:
    """Total seconds of analysis the strategy runs (as the engine compiles it):
    canary: its analysis steps; blue-green: preview plus post analysis; rolling:
    the batch analysis after every batch but the last; apply: its post-apply analysis."""
    if isinstance(strategy, ApplyStrategy):
        return float(strategy.post_analysis)
    if isinstance(strategy, CanaryStrategy):
        return float(sum(step.analysis.duration for step in strategy.steps if isinstance(step, AnalysisStep)))
    if isinstance(strategy, BlueGreenStrategy):
        return float(strategy.preview_analysis + strategy.post_analysis)
    batches = math.ceil(max(1, replicas) / strategy.max_unavailable)
    return float(strategy.batch_analysis * max(0, batches - 1))


def _number(value: float) -> int | float:
    """Whole numbers as int, so messages say ``60s`` rather than ``60.0s``."""
    return int(value) if float(value).is_integer() else value


def _service(service: Service, release: Release, name: str) -> dict[str, Any]:
    pin = release.services[name]
    strategy = pin.strategy or service.strategy
    return {
        "tier": service.tier.value,
        "data_class": service.data_class.value,
        "touches": sorted(service.touches),
        "owner": service.owner,
        "template": service.template,
        "depends_on": list(service.depends_on),
        "strategy": strategy.model_dump(mode="json"),
        "analysis_seconds": _number(analysis_seconds(strategy, service.target.replicas)),
        "has_probe_gates": bool(service.probes),
    }


def _checks(checks: Mapping[str, Any] | None) -> dict[str, Any]:
    checks = checks or {}
    passed = checks.get("previous_environment_passed")
    return {
        "previous_environment_passed": None if passed is None else bool(passed),
        "required": sorted({str(c) for c in checks.get("required", ())}),
        "green": sorted({str(c) for c in checks.get("green", ())}),
    }


def _evidence(given: Mapping[str, Any] | None) -> dict[str, Any]:
    """One service's evidence summary: the all-absent summary with the given parts laid over it,
    so the policy always sees every kind and every field."""
    summary = evidence_summary([])
    for kind, part in (given or {}).items():
        if kind in summary and isinstance(part, Mapping):
            summary[kind] = {**summary[kind], **{k: v for k, v in part.items() if k in summary[kind]}}
    return summary


def policy_input(
    estate: Estate,
    release: Release,
    digest: str,
    env: str,
    *,
    emergency: bool = False,
    now: float,
    checks: Mapping[str, Any] | None = None,
    secrets: Sequence[Mapping[str, Any]] = (),
    evidence: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The input document for deciding ``release`` (``digest``) in environment ``env``.

    ``checks``: ``previous_environment_passed`` (bool, or None when unknown or
    not applicable), ``required`` and ``green`` (names of CI checks). ``now``:
    epoch seconds, passed to the policy as integer nanoseconds (``now_ns``).
    ``secrets``: committed secrets found in the release's files (``{file, line, type}``).
    ``evidence``: service name -> the ``primum.adapters.evidence.ingest.evidence_summary`` of the CI
    evidence ingested for that service's pinned artifact; it becomes ``input.evidence``, with an
    entry for every service the release changes (a service with none gets the all-absent
    summary ``evidence_summary([])``; so does every service when ``evidence`` is None). Entries
    for services the release does not change are left out.
    Raises ``KeyError`` for an unknown environment or service.
    """
    names = estate.environment_names()
    environment = estate.environment(env)
    index = names.index(env)
    services = {}
    for name in sorted(release.services):
        if name not in estate.services:
            raise KeyError(f"service {name!r} is not in estate {estate.name!r}")
        services[name] = _service(estate.services[name], release, name)
    return {
        "release": {
            "id": release.id,
            "digest": digest,
            "description": release.description,
            "ticket": release.ticket,
            "source_commit": release.source_commit,
            "services": {
                name: {
                    "digest": pin.digest,
                    "version": pin.version,
                    "strategy": None if pin.strategy is None else pin.strategy.model_dump(mode="json"),
                }
                for name, pin in sorted(release.services.items())
            },
        },
        "environment": {
            "name": environment.name,
            "class": environment.class_.value,
            "index": index,
            "first": index == 0,
            "last": index == len(names) - 1,
        },
        "estate": {"name": estate.name},
        "services": services,
        "checks": _checks(checks),
        # committed secrets found in the release's own files: {file, line, type}, never the value
        "secrets": [{"file": str(s.get("file", "")), "line": int(s.get("line", 0)), "type": str(s.get("type", ""))}
                    for s in secrets],
        # CI evidence about each changed service's artifact: provenance, tests, vulns, sbom
        "evidence": {name: _evidence((evidence or {}).get(name)) for name in services},
        "emergency": bool(emergency),
        "now_ns": round(now * 1_000_000) * 1000,  # microsecond precision, exact in a float
    }
