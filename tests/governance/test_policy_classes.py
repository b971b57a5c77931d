"""The baseline's classification matrix and requirements table, through primum's full policy path."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from primum.adapters.policy import PolicyBundle, PolicyDecision, policy_input
from primum.core.model.estate import Estate
from primum.core.model.release import Release

NOW = 1_798_761_600.0
TIERS = ["clinical-critical", "patient-facing", "business", "internal"]
DATA = ["phi", "pii", "none"]
TOUCHES: list[list[str]] = [[], ["identity"], ["integration-engine"], ["data-schema"]]
ENVS = {"preview": "ephemeral", "staging": "nonprod", "prod": "prod"}
GREEN = {"previous_environment_passed": True, "required": ["unit"], "green": ["unit"]}


def estate(services: dict[str, dict[str, Any]]) -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "matrix",
        "environments": [{"name": name, "class": cls} for name, cls in ENVS.items()],
        # 300 s of analysis: the longest minimum any class requires (the min-analysis rule is tested apart)
        "services": {name: {"owner": "team", "probes": [{"name": "ping", "probe": {"type": "http"}}],
                            "strategy": {"type": "canary", "steps": [{"set_weight": 20},
                                                                     {"analysis": {"duration": "300s"}}]}, **svc}
                     for name, svc in services.items()},
    })


def release(services: list[str], **pin: Any) -> Release:
    return Release.model_validate({
        "apiVersion": "primum/v1", "kind": "Release", "id": "rel-matrix", "description": "matrix release",
        "ticket": "CHG-1", "source_commit": "abcdef1",
        "services": {name: {"artifact": f"{name}.py", "digest": "sha256:" + "2" * 64, **pin} for name in services},
    })


def expected_class(tier: str, data_class: str, touches: list[str]) -> str:
    if touches or tier in ("clinical-critical", "patient-facing") or data_class == "phi":
        return "high-impact"
    return "normal" if data_class != "none" else "standard"


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle.load()


def policy_decision(bundle: PolicyBundle, services: dict[str, dict[str, Any]], env: str, *, emergency: bool = False,
           checks: dict[str, Any] | None = None, **pin: Any) -> PolicyDecision:
    doc = policy_input(estate(services), release(list(services), **pin), "sha256:" + "0" * 64, env,
                       emergency=emergency, now=NOW, checks=GREEN if checks is None else checks)
    decision = bundle.evaluate(doc)
    assert decision.error is None, decision.error
    return decision


@pytest.mark.parametrize(("tier", "data_class", "touches", "env"),
                         list(itertools.product(TIERS, DATA, TOUCHES, ENVS)))
def test_classification_matrix(bundle: PolicyBundle, tier: str, data_class: str, touches: list[str],
                               env: str) -> None:
    d = policy_decision(bundle, {"svc": {"tier": tier, "data_class": data_class, "touches": touches}}, env)
    assert d.change_class == expected_class(tier, data_class, touches)
    assert d.risk_class == d.change_class
    assert d.service_classes == {"svc": d.change_class}
    assert (d.reasons["svc"] == []) == (d.change_class == "standard")
    assert d.requirements is not None and d.requirements.break_glass_only is False
    assert d.allowed, d.deny


@pytest.mark.parametrize("env", list(ENVS))
def test_emergency_overrides_every_class(bundle: PolicyBundle, env: str) -> None:
    d = policy_decision(bundle, {"svc": {"tier": "internal", "data_class": "none"}}, env, emergency=True)
    assert d.change_class == "emergency" and d.risk_class == "standard"
    assert d.requirements is not None
    assert d.requirements.break_glass_only and d.requirements.approvals == 0
    assert any("break-glass" in w for w in d.warn)


def test_the_most_severe_service_wins(bundle: PolicyBundle) -> None:
    d = policy_decision(bundle, {"job": {"tier": "internal", "data_class": "none"},
                        "erp": {"tier": "business", "data_class": "pii"},
                        "portal": {"tier": "patient-facing", "data_class": "phi"}}, "prod")
    assert d.change_class == "high-impact"
    assert d.service_classes == {"job": "standard", "erp": "normal", "portal": "high-impact"}
    assert d.reasons["portal"] == ["data class phi", "tier patient-facing"]


def test_red_check_or_strategy_override_is_not_standard(bundle: PolicyBundle) -> None:
    svc = {"svc": {"tier": "internal", "data_class": "none"}}
    red = {"previous_environment_passed": True, "required": ["unit"], "green": []}
    assert policy_decision(bundle, svc, "staging", checks=red).change_class == "normal"
    override = {"type": "canary", "steps": [{"set_weight": 50}, {"analysis": {"duration": 60}}]}
    d = policy_decision(bundle, svc, "staging", strategy=override)
    assert d.change_class == "normal"
    assert d.reasons["svc"] == ["the release overrides the service's strategy"]


# env class -> change class -> (approvals, cab approvals, minimum analysis seconds, gates)
TABLE = {
    "prod": {"standard": (0, 0, 0, []), "normal": (1, 0, 60, ["analysis"]),
             "high-impact": (2, 1, 300, ["analysis", "probe"]), "emergency": (0, 0, 300, ["analysis", "probe"])},
    "staging": {"standard": (0, 0, 0, []), "normal": (0, 0, 0, []), "high-impact": (1, 0, 0, ["probe"]),
                "emergency": (0, 0, 0, ["probe"])},
    "preview": {"standard": (0, 0, 0, []), "normal": (0, 0, 0, []), "high-impact": (0, 0, 0, []),
                "emergency": (0, 0, 0, [])},
}
SERVICE_OF = {
    "standard": {"tier": "internal", "data_class": "none"},
    "normal": {"tier": "business", "data_class": "pii"},
    "high-impact": {"tier": "clinical-critical", "data_class": "phi", "touches": ["integration-engine"]},
    "emergency": {"tier": "clinical-critical", "data_class": "phi", "touches": ["integration-engine"]},
}


@pytest.mark.parametrize(("env", "change_class"), [(e, c) for e in TABLE for c in TABLE[e]])
def test_requirements_table(bundle: PolicyBundle, env: str, change_class: str) -> None:
    strategy = {"type": "canary", "steps": [{"set_weight": 10}, {"analysis": {"duration": "5m"}}]}
    d = policy_decision(bundle, {"svc": {**SERVICE_OF[change_class], "strategy": strategy}}, env,
               emergency=change_class == "emergency")
    assert d.change_class == change_class
    r = d.requirements
    assert r is not None
    assert (r.approvals, r.cab_approvals, r.min_analysis_seconds, r.gates) == TABLE[env][change_class]
    assert r.break_glass_only == (change_class == "emergency")
    assert d.allowed, d.deny
