"""CI evidence in policy decisions: ingest -> evidence_summary -> policy_input -> the baseline's evidence rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from primum.adapters.evidence.ingest import evidence_summary, ingest_file
from primum.adapters.policy import BASELINE_DIR, PolicyBundle, evaluate, policy_input, run_tests
from primum.core.model.estate import Estate
from primum.core.model.release import Release, canonical_digest
from primum.demo.files import DEMO_POLICY_TEST, demo_policy_params

FIXTURES = Path(__file__).parent.parent / "evidence" / "fixtures" / "ingest"
ARTIFACT = "3429d4b1abfc8acf19079d51ac091f911f03d5d7aed9178cb99e30cd465d7eae"
NOW = 1_798_761_600.0
FIX = "`primum evidence add ARTIFACT FILE`"


def estate() -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "evidence-tests",
        "environments": [{"name": "preview", "class": "ephemeral"}, {"name": "staging", "class": "nonprod"},
                         {"name": "prod", "class": "prod"}],
        "services": {"scheduling-api": {"owner": "team-sched", "tier": "internal", "data_class": "none"}},
    })


def release() -> Release:
    return Release.model_validate({
        "apiVersion": "primum/v1", "kind": "Release", "id": "rel-ev", "description": "scheduling-api 1.4.2",
        "ticket": "CHG-12", "source_commit": "5eed00d",
        "services": {"scheduling-api": {"artifact": "scheduling-api.tgz", "digest": "sha256:" + ARTIFACT,
                                        "version": "1.4.2"}},
    })


def evidence(*files: str) -> dict[str, Any]:
    subject = {"name": "scheduling-api@1.4.2", "digest": {"sha256": ARTIFACT}}
    items = [ingest_file(FIXTURES / f, subject=subject, now=NOW) for f in files]
    return {"scheduling-api": evidence_summary((i.kind, i.summary) for i in items)}


def policy_decision(env: str, ev: dict[str, Any] | None, policy_dir: Path | None = None) -> Any:
    r = release()
    doc = policy_input(estate(), r, canonical_digest(r), env, now=NOW,
                       checks={"previous_environment_passed": True}, evidence=ev)
    return PolicyBundle.load(policy_dir).evaluate(doc, now=NOW)


def rules(decision: Any) -> set[str]:
    return {v["rule"] for v in decision.violations}


def test_no_evidence_is_allowed_by_default() -> None:
    for env in ("preview", "staging", "prod"):
        assert policy_decision(env, None).allowed
        assert policy_decision(env, evidence()).allowed


def test_failing_ci_tests_deny_everywhere() -> None:
    ev = evidence("slsa-statement.json", "junit-fail.xml", "cyclonedx.json")
    for env in ("preview", "staging", "prod"):
        d = policy_decision(env, ev)
        assert not d.allowed and rules(d) == {"evidence-tests-failed"}
    assert policy_decision("prod", ev).deny == [
        f"scheduling-api: CI tests failed (2/4); fix them and add the report of a green run with {FIX}"]


def test_a_later_green_run_supersedes_the_red_one() -> None:
    assert policy_decision("prod", evidence("junit-fail.xml", "junit-pass.xml")).allowed
    assert not policy_decision("prod", evidence("junit-pass.xml", "junit-fail.xml")).allowed


def test_a_run_without_tests_denies() -> None:
    d = policy_decision("staging", evidence("junit-empty.xml"))
    assert rules(d) == {"evidence-tests-failed"} and "no CI test ran" in d.deny[0]


def test_a_critical_vulnerability_denies_prod_and_nonprod_only() -> None:
    ev = evidence("junit-pass.xml", "trivy.json")
    assert rules(policy_decision("prod", ev)) == {"evidence-critical-vulns"}
    assert rules(policy_decision("staging", ev)) == {"evidence-critical-vulns"}
    assert policy_decision("preview", ev).allowed
    assert policy_decision("prod", evidence("junit-pass.xml", "grype.json")).allowed  # high, not critical


def org_params(tmp_path: Path, **replace: str) -> Path:
    text = (BASELINE_DIR / "params.rego").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "params.rego").write_text(text)
    return tmp_path


def test_an_organisation_requires_evidence_and_allows_builders(tmp_path: Path) -> None:
    policy = org_params(tmp_path, **{
        '"prod": [],\n\t"nonprod": [],': '"prod": ["provenance", "tests", "vulns", "sbom"],\n\t"nonprod": [],',
        "allowed_builders := []": 'allowed_builders := ["https://ci.st-elsewhere.example/builders/hosted@v1"]',
    })
    missing = policy_decision("prod", evidence("junit-pass.xml"), policy)
    assert rules(missing) == {"evidence-required"}
    assert {v["details"]["kind"] for v in missing.violations} == {"provenance", "vulns", "sbom"}
    assert policy_decision("staging", evidence("junit-pass.xml"), policy).allowed
    full = evidence("slsa-dsse.json", "junit-pass.xml", "grype.json", "cyclonedx.json")
    assert policy_decision("prod", full, policy).allowed
    stmt_dir = tmp_path / "other"
    stmt_dir.mkdir()
    foreign = org_params(stmt_dir, **{"allowed_builders := []": 'allowed_builders := ["https://ci.example/other"]'})
    d = policy_decision("prod", full, foreign)
    assert rules(d) == {"evidence-builder"}
    assert "built by https://ci.st-elsewhere.example/builders/hosted@v1" in d.deny[0]


def test_params_without_the_evidence_keys_deny(tmp_path: Path) -> None:
    text = (BASELINE_DIR / "params.rego").read_text()
    (tmp_path / "params.rego").write_text(text.split("# CI evidence")[0])  # an older org override
    d = policy_decision("prod", None, tmp_path)
    assert not d.allowed
    assert "evidence_required" in d.error and "max_critical_vulns" in d.error and "allowed_builders" in d.error


def test_an_environment_class_missing_from_the_params_denies(tmp_path: Path) -> None:
    policy = org_params(tmp_path, **{'"prod": 0,\n\t"nonprod": 0,': '"prod": 0,'})
    d = policy_decision("staging", None, policy)
    assert rules(d) == {"evidence-params"}
    assert "max_critical_vulns has no number" in d.deny[0]
    assert policy_decision("prod", None, policy).allowed


def test_evaluate_passes_evidence_through() -> None:
    r = release()
    decisions = evaluate(estate(), r, canonical_digest(r), now=NOW, evidence=evidence("junit-fail.xml"))
    assert [d.allowed for d in decisions.values()] == [False, False, False]


def test_the_demo_params_keep_the_evidence_keys_and_its_tests_pass(tmp_path: Path) -> None:
    params = demo_policy_params()
    for key in ('evidence_required := {\n\t"prod": ["provenance", "tests", "vulns"]',
                "allowed_builders := [\"https://ci.st-elsewhere.example/", "max_critical_vulns := {"):
        assert key in params
    (tmp_path / "params.rego").write_text(params)
    (tmp_path / "st_elsewhere_test.rego").write_text(DEMO_POLICY_TEST)
    summary = run_tests(tmp_path)
    # The demo's own tests pass; the only failures are baseline tests written for the baseline's
    # parameters, which the demo changes on purpose (a lower minimum analysis, evidence required in prod).
    mine = [r for r in summary.results if r.file.endswith("st_elsewhere_test.rego")]
    assert len(mine) == 5 and all(r.passed for r in mine), [r.message for r in mine if not r.passed]
    assert {r.file for r in summary.failures} <= {"baseline/requirements_test.rego", "baseline/warn_test.rego",
                                                  "baseline/evidence_test.rego", "baseline/deny_test.rego"}
    assert policy_decision("staging", None, tmp_path).allowed
    assert rules(policy_decision("prod", None, tmp_path)) == {"evidence-required"}  # prod requires CI evidence


def test_an_input_without_the_evidence_key_is_decided_as_no_evidence() -> None:
    r = release()
    doc = policy_input(estate(), r, canonical_digest(r), "prod", now=NOW, checks={"previous_environment_passed": True})
    del doc["evidence"]  # a document built by an older caller
    d = PolicyBundle.load().evaluate(doc, now=NOW)
    assert d.allowed and d.error is None
