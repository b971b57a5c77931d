"""The Rego unit tests shipped with the baseline, and the test runner behind `primum policy test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from primum.adapters.policy import BASELINE_DIR, PolicyBundle, PolicyError, run_tests

HEADER = "package primum.release\n\nimport rego.v1\n\n"


def test_shipped_rego_tests_pass() -> None:
    summary = run_tests(None)
    failures = [f"{r.name} ({r.file}:{r.line}): {r.message}" for r in summary.failures]
    assert summary.ok, "\n".join(failures)
    assert summary.passed >= 50 and summary.failed == 0
    files = {r.file for r in summary.results}
    assert {"baseline/classify_test.rego", "baseline/requirements_test.rego", "baseline/deny_test.rego",
            "baseline/warn_test.rego"} <= files
    assert all(r.name.startswith("data.primum.release.test_") for r in summary.results)


def test_every_shipped_test_file_has_tests() -> None:
    counted = {r.file for r in run_tests(None).results}
    for path in BASELINE_DIR.glob("*_test.rego"):
        if path.name != "fixtures_test.rego":
            assert f"baseline/{path.name}" in counted


def test_org_tests_run_with_the_baseline_tests(tmp_path: Path) -> None:
    (tmp_path / "org_test.rego").write_text(HEADER + (
        "test_org_passes if {\n\tfx_decision(fx_base).class == \"standard\"\n}\n\n"
        "test_org_false if {\n\tfalse\n}\n\n"
        "test_org_undefined if {\n\tinput.nothing == 1\n}\n\n"
        "test_org_not_true := 1\n\n"
        "test_org_error if {\n\tregex.match(\"[\", \"x\")\n}\n\n"
        "# functions are not tests\ntest_helper(x) := x\n"))
    summary = run_tests(tmp_path)
    by_name = {r.name.rsplit(".", 1)[1]: r for r in summary.results}
    assert by_name["test_org_passes"].passed
    assert not by_name["test_org_false"].passed and "undefined" in by_name["test_org_false"].message
    assert not by_name["test_org_undefined"].passed
    assert not by_name["test_org_not_true"].passed and "returned 1" in by_name["test_org_not_true"].message
    error = by_name["test_org_error"]
    assert not error.passed and error.message.startswith("error:") and "missing closing ]" in error.message
    assert error.file == str(tmp_path / "org_test.rego") and error.line == 19
    assert "test_helper" not in by_name
    assert summary.failed == 4 and not summary.ok
    assert summary.passed == len(summary.results) - 4


def test_org_override_that_breaks_a_baseline_test_is_reported(tmp_path: Path) -> None:
    params = (BASELINE_DIR / "params.rego").read_text()
    (tmp_path / "params.rego").write_text(params.replace('"normal": 1, "high-impact": 2',
                                                         '"normal": 2, "high-impact": 2'))
    summary = run_tests(tmp_path)
    assert [r.name for r in summary.failures] == [
        "data.primum.release.test_prod_normal_needs_one_approval_and_analysis"]


def test_org_can_replace_a_baseline_test_file(tmp_path: Path) -> None:
    (tmp_path / "warn_test.rego").write_text(HEADER + "test_only_this if {\n\ttrue\n}\n")
    names = {r.name for r in run_tests(tmp_path).results}
    assert "data.primum.release.test_only_this" in names
    assert "data.primum.release.test_short_description_warns" not in names


def test_tests_in_another_package(tmp_path: Path) -> None:
    (tmp_path / "mine_test.rego").write_text(
        "package acme.checks\n\nimport rego.v1\n\n"
        "test_other_package if {\n\tdata.primum.release.severity.normal == 1\n}\n")
    result = next(r for r in run_tests(tmp_path).results if r.name == "data.acme.checks.test_other_package")
    assert result.passed, result.message


def test_runner_accepts_a_loaded_bundle() -> None:
    bundle = PolicyBundle.load(include_tests=True)
    assert bundle.tests and run_tests(bundle).passed == len(bundle.tests)
    assert run_tests(PolicyBundle.load()).results == []  # loaded without tests


def test_a_test_file_that_does_not_compile_raises(tmp_path: Path) -> None:
    (tmp_path / "bad_test.rego").write_text(HEADER + "test_x if {\n")
    with pytest.raises(PolicyError, match=r"bad_test\.rego"):
        run_tests(tmp_path)
