"""Policy bundles: org override and extension, fail closed, decision log, compiled once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from primum.adapters.policy import (
    BASELINE_DIR,
    DECISION_PATH,
    PolicyBundle,
    PolicyDecision,
    PolicyError,
    evaluate,
    policy_input,
)
from primum.core.model.estate import Estate
from primum.core.model.release import Release, canonical_digest, canonical_json

NOW = 1_798_761_600.0
HEADER = "package primum.release\n\nimport rego.v1\n\n"


def make_estate() -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "bundle-tests",
        "environments": [{"name": "staging", "class": "nonprod"}, {"name": "prod", "class": "prod"}],
        "services": {
            "erp": {"owner": "team-erp", "tier": "business", "data_class": "pii"},
            "sched": {"owner": "team-sched", "tier": "clinical-critical", "data_class": "phi",
                      "strategy": {"type": "canary", "steps": [{"set_weight": 50}, {"pause": {"duration": 5}}]}},
        },
    })


def make_release(services: tuple[str, ...] = ("erp",), **fields: Any) -> Release:
    return Release.model_validate({
        "apiVersion": "primum/v1", "kind": "Release", "id": "rel-9", "description": "erp connector 2.0",
        "ticket": "CHG-9", "source_commit": "abcdef1",
        "services": {s: {"artifact": f"{s}.py", "digest": "sha256:" + "3" * 64} for s in services}, **fields,
    })


def doc(env: str = "prod", services: tuple[str, ...] = ("erp",), **fields: Any) -> dict[str, Any]:
    release = make_release(services, **fields)
    return policy_input(make_estate(), release, canonical_digest(release), env, now=NOW,
                        checks={"previous_environment_passed": True})


def org(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "org-policy"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def assert_denied(d: PolicyDecision, *needles: str) -> None:
    assert not d.allowed
    assert d.error is not None
    assert d.deny == [f"policy error: {d.error}"]
    for needle in needles:
        assert needle in d.error, d.error
    assert d.log.error == d.error


# ----------------------------------------------------------------- baseline


def test_baseline_allows_and_denies() -> None:
    bundle = PolicyBundle.load()
    ok = bundle.evaluate(doc())
    assert ok.allowed and ok.error is None and ok.change_class == "normal"
    no_ticket = bundle.evaluate(doc(ticket=""))
    assert not no_ticket.allowed and no_ticket.error is None
    assert no_ticket.deny == ["prod is a production environment: the release needs a change ticket (release.ticket)"]
    assert no_ticket.violations[0]["rule"] == "prod-ticket"


def test_clinical_critical_without_analysis_is_denied_in_prod_only() -> None:
    bundle = PolicyBundle.load()
    prod = bundle.evaluate(doc("prod", ("sched",)))
    assert prod.deny == ["sched is clinical-critical: its canary strategy has no analysis step, which prod requires"]
    assert bundle.evaluate(doc("staging", ("sched",))).allowed


def test_files_and_revision() -> None:
    bundle = PolicyBundle.load()
    names = [f.name for f in bundle.files]
    assert names == sorted(names)
    shipped = {"classify.rego", "requirements.rego", "deny.rego", "warn.rego", "params.rego", "decision.rego"}
    assert shipped <= set(names)
    assert not any(n.endswith("_test.rego") for n in names)  # tests are not part of decisions
    assert all(f.origin == "baseline" for f in bundle.files)
    assert bundle.revision.startswith("sha256:") and len(bundle.revision) == 71
    assert bundle.problems == ()


# ----------------------------------------------------------- organisation


def test_org_file_with_the_same_path_replaces_the_baseline_file(tmp_path: Path) -> None:
    params = (BASELINE_DIR / "params.rego").read_text()
    stricter = params.replace('"prod": {"standard": 0, "normal": 1, "high-impact": 2, "emergency": 0}',
                              '"prod": {"standard": 0, "normal": 3, "high-impact": 3, "emergency": 0}')
    assert stricter != params
    bundle = PolicyBundle.load(org(tmp_path, {"params.rego": stricter}))
    origins = {f.name: f.origin for f in bundle.files}
    assert origins["params.rego"] == "org" and origins["classify.rego"] == "baseline"
    assert len(bundle.files) == len(PolicyBundle.load().files)  # replaced, not added
    d = bundle.evaluate(doc())
    assert d.requirements is not None and d.requirements.approvals == 3
    assert bundle.revision != PolicyBundle.load().revision


def test_org_file_adds_a_deny(tmp_path: Path) -> None:
    freeze = HEADER + (
        "# Change freeze over the holidays: no production releases.\n"
        "deny contains msg if {\n"
        "\tinput.environment.class == \"prod\"\n"
        "\tinput.now_ns >= time.parse_rfc3339_ns(\"2026-12-20T00:00:00+00:00\")\n"
        "\tinput.now_ns < time.parse_rfc3339_ns(\"2027-01-04T00:00:00+00:00\")\n"
        "\tmsg := \"production change freeze until 4 January\"\n"
        "}\n\n"
        "warn contains \"an org warning\" if true\n\n"
        "violation contains {\"msg\": \"erp needs the finance sign-off\", \"rule\": \"finance\"} if {\n"
        "\tinput.services.erp\n"
        "}\n"
    )
    bundle = PolicyBundle.load(org(tmp_path, {"freeze.rego": freeze}))
    assert [f.origin for f in bundle.files].count("org") == 1
    d = bundle.evaluate(doc())  # NOW is 2027-01-01: inside the freeze
    assert not d.allowed and d.error is None
    assert d.deny == ["erp needs the finance sign-off", "production change freeze until 4 January"]
    assert "an org warning" in d.warn
    assert {"msg": "erp needs the finance sign-off", "rule": "finance"} in d.violations
    # the baseline rules still add up with the organisation's
    assert "prod is a production environment: the release needs a change ticket (release.ticket)" in \
        bundle.evaluate(doc(ticket="")).deny
    staging = bundle.evaluate(doc("staging"))
    assert staging.deny == ["erp needs the finance sign-off"]


def test_org_directory_may_nest_and_must_exist(tmp_path: Path) -> None:
    bundle = PolicyBundle.load(org(tmp_path, {"team/extra.rego": HEADER + 'warn contains "nested" if true\n'}))
    assert "nested" in bundle.evaluate(doc()).warn
    assert "team/extra.rego" in [f.name for f in bundle.files]
    with pytest.raises(PolicyError, match="does not exist"):
        PolicyBundle.load(tmp_path / "missing")


# ------------------------------------------------------------- fail closed


def test_syntax_error_fails_load_naming_file_and_line(tmp_path: Path) -> None:
    root = org(tmp_path, {"broken.rego": HEADER + "deny contains msg if {\n\tmsg := \"x\"\n\n"})
    with pytest.raises(PolicyError) as info:
        PolicyBundle.load(root)
    err = info.value
    assert err.file == str(root / "broken.rego")
    assert err.line == 5
    assert f"{root / 'broken.rego'}:5:" in str(err)
    assert "does not compile" in str(err)


def test_invalid_expression_fails_load(tmp_path: Path) -> None:
    root = org(tmp_path, {"bad.rego": HEADER + "x if {\n\t1 = = 2\n}\n"})
    with pytest.raises(PolicyError) as info:
        PolicyBundle.load(root)
    assert info.value.line == 6 and info.value.file == str(root / "bad.rego")


def test_unknown_builtin_denies_naming_the_rule(tmp_path: Path) -> None:
    root = org(tmp_path, {"extra.rego": HEADER + "deny contains msg if {\n\tcrypto.frobnicate(input.release.id)\n"
                                                 "\tmsg := \"never\"\n}\n"})
    d = PolicyBundle.load(root).evaluate(doc())
    assert_denied(d, "data.primum.release.deny", "crypto.frobnicate", f"{root / 'extra.rego'}:6", "rule deny")
    assert d.change_class is None and d.requirements is None


def test_builtin_error_denies_under_strict_mode(tmp_path: Path) -> None:
    root = org(tmp_path, {"extra.rego": HEADER + "warn contains msg if {\n\tregex.match(\"[unclosed\", "
                                                 "input.release.id)\n\tmsg := \"x\"\n}\n"})
    d = PolicyBundle.load(root).evaluate(doc())
    assert_denied(d, "data.primum.release.warn", "missing closing ]", f"{root / 'extra.rego'}:6")


def test_to_number_error_denies(tmp_path: Path) -> None:
    root = org(tmp_path, {"extra.rego": HEADER + "warn contains msg if {\n\tto_number(input.release.id) > 1\n"
                                                 "\tmsg := \"x\"\n}\n"})
    assert_denied(PolicyBundle.load(root).evaluate(doc()), "data.primum.release.warn failed")


def test_conflicting_values_deny(tmp_path: Path) -> None:
    root = org(tmp_path, {"extra.rego": HEADER + "class := \"standard\" if input.release.id\n"})
    assert_denied(PolicyBundle.load(root).evaluate(doc()), "data.primum.release.class")


def test_empty_classification_override_denies_naming_class(tmp_path: Path) -> None:
    bundle = PolicyBundle.load(org(tmp_path, {"classify.rego": "package primum.release\n"}))
    assert any("data.primum.release.class is not defined" in p for p in bundle.problems)
    d = bundle.evaluate(doc())
    assert_denied(d, "rule data.primum.release.class is not defined by any module", "baseline/decision.rego")
    assert d.log.result is None


def test_undefined_class_for_an_input_denies_naming_class(tmp_path: Path) -> None:
    source = (BASELINE_DIR / "classify.rego").read_text()
    narrowed = source.replace("class := risk_class if not emergency",
                              "class := risk_class if {\n\tnot emergency\n\tinput.release.ticket == \"never\"\n}")
    assert narrowed != source
    d = PolicyBundle.load(org(tmp_path, {"classify.rego": narrowed})).evaluate(doc())
    assert_denied(d, "rule data.primum.release.class is undefined for this input")


def test_unknown_change_class_denies(tmp_path: Path) -> None:
    source = (BASELINE_DIR / "decision.rego").read_text()
    renamed = source.replace('"class": class,', '"class": "urgent",')
    assert renamed != source
    d = PolicyBundle.load(org(tmp_path, {"decision.rego": renamed})).evaluate(doc())
    assert_denied(d, 'returned "urgent"', "one of standard, normal, high-impact, emergency")
    assert d.log.result["class"] == "urgent"  # the raw result is logged as the policy returned it


def test_class_without_requirements_denies(tmp_path: Path) -> None:
    source = (BASELINE_DIR / "classify.rego").read_text()
    renamed = source.replace('class := "emergency" if emergency', 'class := "urgent" if emergency')
    d = PolicyBundle.load(org(tmp_path, {"classify.rego": renamed})).evaluate(doc() | {"emergency": True})
    assert_denied(d, "rule data.primum.release.requirements is undefined")


def test_malformed_requirements_deny(tmp_path: Path) -> None:
    params = (BASELINE_DIR / "params.rego").read_text()
    bad = params.replace('"normal": 1, "high-impact": 2', '"normal": "one", "high-impact": 2')
    d = PolicyBundle.load(org(tmp_path, {"params.rego": bad})).evaluate(doc())
    assert_denied(d, "data.primum.release.requirements returned an invalid value", "approvals")


def test_unknown_environment_class_denies() -> None:
    bad = doc() | {"environment": {"name": "lab", "class": "lab", "index": 0, "first": True, "last": True}}
    assert_denied(PolicyBundle.load().evaluate(bad), "rule data.primum.release.requirements is undefined")


def test_input_that_is_not_json_denies() -> None:
    assert_denied(PolicyBundle.load().evaluate({"now_ns": object()}), "not JSON")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the compiler crash guard needs fork")
def test_compiler_crash_is_a_policy_error(tmp_path: Path) -> None:
    # rego-cpp 1.5 aborts the process compiling `with input as {...}` over some rules
    root = org(tmp_path, {"crash_test.rego": HEADER + "test_whole_input if {\n"
                                                      "\tclass == \"standard\" with input as {\"services\": {}}\n}\n"})
    with pytest.raises(PolicyError, match="crashed") as info:
        PolicyBundle.load(root, include_tests=True)
    assert str(root / "crash_test.rego") in str(info.value)


# ------------------------------------------------------------ decision log


def test_decision_log_entry() -> None:
    bundle = PolicyBundle.load()
    document = doc()
    first, second = bundle.evaluate(document, now=123.5), bundle.evaluate(document)
    log = first.log
    assert log.path == DECISION_PATH == "data.primum.release.decision"
    assert log.bundle_revision == bundle.revision
    assert log.time == 123.5
    assert len(log.decision_id) == 36 and log.decision_id != second.log.decision_id
    assert log.input_digest == "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()
    assert log.input_digest == second.log.input_digest  # stable for the same input
    assert log.input_digest != bundle.evaluate(doc(ticket="CHG-10")).log.input_digest
    assert isinstance(log.result, dict) and log.result["class"] == "normal"
    assert set(log.result) >= {"class", "requirements", "deny", "warn", "violation"}
    assert log.error is None
    dumped = first.model_dump(mode="json")
    assert dumped["log"]["result"]["requirements"]["approvals"] == 1


def test_revision_changes_when_a_file_changes(tmp_path: Path) -> None:
    root = org(tmp_path, {"extra.rego": HEADER + 'warn contains "one" if true\n'})
    before = PolicyBundle.load(root)
    assert PolicyBundle.load(root).revision == before.revision
    (root / "extra.rego").write_text(HEADER + 'warn contains "two" if true\n')
    after = PolicyBundle.load(root)
    assert after.revision != before.revision
    assert after.evaluate(doc()).log.bundle_revision == after.revision
    assert "two" in after.evaluate(doc()).warn


# ---------------------------------------------------------------- reuse


def test_bundle_is_compiled_once_and_reused(tmp_path: Path) -> None:
    root = org(tmp_path, {"extra.rego": HEADER + 'warn contains "reuse" if true\n'})
    before = PolicyBundle.compiles
    bundle = PolicyBundle.load(root)
    assert PolicyBundle.compiles == before + 1
    for env in ("staging", "prod"):
        for _ in range(20):
            bundle.evaluate(doc(env))
    assert PolicyBundle.load(root) is bundle  # cached by revision
    assert PolicyBundle.compiles == before + 1
    PolicyBundle.load(root, cache=False)
    assert PolicyBundle.compiles == before + 2


def test_evaluate_every_environment_in_promotion_order(tmp_path: Path) -> None:
    estate, release = make_estate(), make_release(ticket="")
    before = PolicyBundle.compiles
    decisions = evaluate(estate, release, canonical_digest(release), now=NOW)
    assert list(decisions) == ["staging", "prod"]
    assert decisions["staging"].allowed and not decisions["prod"].allowed
    one = evaluate(estate, release, canonical_digest(release), "staging", now=NOW)
    assert list(one) == ["staging"]
    assert PolicyBundle.compiles == before  # the baseline was already compiled and cached
    root = org(tmp_path, {"extra.rego": HEADER + 'deny contains "org says no" if true\n'})
    via_dir = evaluate(estate, release, canonical_digest(release), "staging", policy_dir=root, now=NOW)
    assert via_dir["staging"].deny == ["org says no"]
    with pytest.raises(KeyError):
        evaluate(estate, release, canonical_digest(release), "nowhere", now=NOW)
