"""The bundle report: every section, in Markdown and HTML, escaped, from the statements alone."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from primum.core.evidence import statements as st
from primum.core.evidence.report import BundleInfo, outcome, render_html, render_markdown

RELEASE_DIGEST = "sha256:" + hashlib.sha256(b"rel-42").hexdigest()
API_DIGEST = "sha256:" + hashlib.sha256(b"api").hexdigest()
AT = 1_741_942_800.0
SUBJECTS = st.release_subjects("rel-42", RELEASE_DIGEST, {"scheduling-api": {"digest": API_DIGEST, "version": "1.4.2"}})
ARTIFACT_SUBJECTS = SUBJECTS[1:]
INFO = BundleInfo(
    release_id="rel-42", release_digest=RELEASE_DIGEST, origin="primum.example/evidence", tree_size=40,
    root_hash="ab" * 32, generated_at="2025-03-14T10:00:00Z",
    artifacts={"scheduling-api": {"digest": API_DIGEST, "version": "1.4.2"}}, entries=13,
    purged=[(30, "2025-04-01T00:00:00Z")], key_ids=["cd" * 32],
)


def event(kind: str, minute: int, actor: str = "", message: str = "", **kw: Any) -> dict[str, Any]:
    return st.event_statement(SUBJECTS, kind=kind, message=message or f"{kind} happened", at=AT + 60 * minute,
                              actor=actor, **kw)


def statements() -> list[dict[str, Any]]:
    return [
        event("submitted", 0, "ana", "release rel-42 submitted by ana <script>alert(1)</script> | x"),
        st.gate_statement(SUBJECTS, gate="policy", passed=True, outcome="allow", at=AT + 60,
                          reasons=["change class standard: 1 approval required"]),
        event("approval", 2, "ben", "approved by ben", env="prod"),
        event("break_glass", 3, "dr.ada", "break-glass: outage INC-7", env="prod"),
        st.provenance_statement(ARTIFACT_SUBJECTS, {
            "buildDefinition": {"buildType": "https://example.org/build/v1", "externalParameters": {}},
            "runDetails": {"builder": {"id": "https://ci.example.org/builder/7"},
                           "metadata": {"startedOn": "2025-03-14T08:00:00Z"}},
        }),
        st.suite_result_statement(SUBJECTS, result="PASSED", configuration=[], passed_tests=["unit", "fhir"]),
        st.vulns_statement(SUBJECTS, scanner_uri="pkg:github/aquasecurity/trivy@0.50.0", db_last_update=AT,
                           scan_started=AT, scan_finished=AT,
                           results=[{"id": "CVE-1", "severity": [{"method": "nvd", "score": "HIGH"}]},
                                    {"id": "CVE-2", "severity": [{"method": "nvd", "score": "medium"}]},
                                    {"id": "CVE-3", "severity": [{"method": "nvd", "score": "high"}]}]),
        st.statement(ARTIFACT_SUBJECTS, "https://cyclonedx.org/bom", {
            "bomFormat": "CycloneDX", "specVersion": "1.5",
            "components": [{"name": "a"}, {"name": "b", "components": [{"name": "b1"}]}]}),
        event("step", 10, env="prod", service="scheduling-api", message="canary 10%"),
        st.gate_statement(SUBJECTS, gate="analysis", passed=False, outcome="Failed", at=AT + 660, env="prod",
                          service="scheduling-api", reasons=["error rate 4.1% > 1%"]),
        event("rollback_started", 12, env="prod", service="scheduling-api", message="rolling back: analysis failed"),
        event("item_rolled_back", 13, env="prod", service="scheduling-api"),
        event("rolled_back", 14, message="release rel-42 rolled back"),
    ]


INDICES = [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14]


def section(text: str, title: str) -> str:
    """The Markdown between the heading ``## title`` and the next heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no section {title!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows[2:]]


@pytest.fixture(scope="module")
def markdown() -> str:
    return render_markdown(INFO, statements(), INDICES)


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(INFO, statements(), INDICES)


def test_title_summary_and_artifacts(markdown: str) -> None:
    assert markdown.startswith("# Release evidence: rel-42\n")
    assert f"Release `rel-42`, digest `{RELEASE_DIGEST}`." in markdown
    summary = dict((r[0], r[1]) for r in table_rows(section(markdown, "Summary")))
    assert summary["Outcome"] == "rolled back"
    assert summary["Log entries"] == "13, 1 purged under retention"
    assert summary["Checkpoint"] == f"tree size 40, root hash {'ab' * 32}"
    assert table_rows(section(markdown, "Artifacts")) == [["scheduling-api", "1.4.2", f"`{API_DIGEST}`"]]


def test_timeline_has_one_row_per_statement_in_order(markdown: str) -> None:
    rows = table_rows(section(markdown, "Timeline"))
    assert [r[0] for r in rows] == [str(i) for i in INDICES]
    assert all(len(r) == 7 for r in rows)  # an escaped '|' in a message does not add a cell
    assert rows[0][1:6] == ["2025-03-14T09:00:00Z", "submitted", "", "", "ana"]
    assert rows[1][2] == "gate: policy"
    assert rows[8][1:] == ["2025-03-14T09:10:00Z", "step", "prod", "scheduling-api", "", "canary 10%"]
    assert rows[-1][2] == "rolled_back"


def test_approvals_gates_verdicts_rollbacks(markdown: str) -> None:
    assert [(r[2], r[4]) for r in table_rows(section(markdown, "Approvals"))] == [
        ("approval", "ben"), ("break_glass", "dr.ada")]
    gates = table_rows(section(markdown, "Gates"))
    assert [(g[2], g[5], g[6]) for g in gates] == [("policy", "yes", "allow"), ("analysis", "no", "Failed")]
    assert gates[1][7] == "error rate 4.1% > 1%".replace(">", "\\>")
    assert table_rows(section(markdown, "Verdicts")) == [
        ["11", "2025-03-14T09:11:00Z", "prod", "scheduling-api", "Failed", "error rate 4.1% \\> 1%"]]
    assert [r[2] for r in table_rows(section(markdown, "Rollbacks"))] == [
        "rollback_started", "item_rolled_back", "rolled_back"]


def test_ci_evidence(markdown: str) -> None:
    ci = {r[1]: r for r in table_rows(section(markdown, "CI evidence"))}
    assert set(ci) == {"provenance", "test-result", "vulns", "sbom"}
    assert "built by https://ci.example.org/builder/7" in ci["provenance"][3]
    assert ci["provenance"][2] == "scheduling-api@1.4.2"
    assert ci["test-result"][3] == "tests PASSED (2 passed, 0 warned, 0 failed)"
    assert ci["vulns"][3].startswith("3 vulnerabilities (2 high, 1 medium)")
    assert ci["sbom"][3] == "CycloneDX SBOM with 3 components"


def test_purged_entries_and_how_to_verify(markdown: str, page: str) -> None:
    assert table_rows(section(markdown, "Purged entries")) == [["30", "2025-04-01T00:00:00Z"]]
    for text in (markdown, page):
        assert "primum evidence verify FILE.tar.gz --key PUB.pem" in text
    assert "```\nprimum evidence verify FILE.tar.gz --key PUB.pem\n```" in section(markdown, "How to verify")


def test_markdown_escapes_markup_and_html(markdown: str) -> None:
    assert "<script>" not in markdown
    assert "\\<script\\>alert(1)\\</script\\> \\| x" in markdown


def test_html_is_escaped_and_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | x" in page
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=|\bhref=|@import|url\(", page)
    assert "default-src 'none'" in page  # no script or remote load runs even if escaping ever failed
    assert "<h2>Timeline</h2>" in page and "<h2>Approvals</h2>" in page and "<h2>Rollbacks</h2>" in page
    assert "<td>break_glass</td>" in page and "<td>rollback_started</td>" in page
    assert page.count("<tr>") == len(re.findall(r"^\| ", render_markdown(INFO, statements(), INDICES), re.M))


def test_a_custom_title_is_escaped() -> None:
    info = BundleInfo(**{**INFO.__dict__, "title": "Audit <Q1> & more"})
    assert "<title>Audit &lt;Q1&gt; &amp; more</title>" in render_html(info, [])
    assert render_markdown(info, []).startswith("# Audit \\<Q1\\> & more\n")


def test_empty_sections_say_so() -> None:
    text = render_markdown(INFO, [event("submitted", 0)])
    assert section(text, "Rollbacks").strip() == "None recorded."
    assert table_rows(section(text, "Timeline"))[0][0] == ""  # no index given


@pytest.mark.parametrize(("kinds", "expected"), [
    ([], "in progress (no terminal event recorded)"),
    (["submitted", "started"], "in progress (no terminal event recorded)"),
    (["submitted", "promoted"], "promoted"),
    (["submitted", "denied"], "denied"),
    (["started", "rollback_started", "rolled_back"], "rolled back"),
    (["started", "promoted", "rollback_started", "rolled_back"], "rolled back"),
    (["started", "aborted"], "aborted"),
    (["started", "rollback_started", "rollback_failed"], "rollback failed"),
])
def test_outcome_is_the_last_terminal_event(kinds: list[str], expected: str) -> None:
    assert outcome([event(k, i) for i, k in enumerate(kinds)]) == expected


def test_odd_statements_do_not_break_the_report() -> None:
    odd: list[dict[str, Any]] = [
        {"_type": st.STATEMENT_TYPE, "subject": "nope", "predicateType": "https://example.org/x", "predicate": []},
        {"predicateType": st.SVR_V0_1, "predicate": {"verifier": {"id": "https://primum.dev/verifiers/probe/v1"},
                                                    "properties": ["PRIMUM_PROBE_PASSED"]}},
        {"predicateType": st.VULNS_V0_2, "predicate": {"scanner": {"result": [{"id": "x"}]}}},
    ]
    text = render_markdown(INFO, odd)
    rows = table_rows(section(text, "Gates"))
    assert rows == [["", "", "probe", "", "", "yes", "", ""]]
    assert "1 vulnerabilities (1 unknown)" in text
    render_html(INFO, odd)


def test_indices_must_match_statements() -> None:
    with pytest.raises(ValueError, match="2 indices for 1 statements"):
        render_markdown(INFO, [event("submitted", 0)], [0, 1])


def test_the_report_redacts_what_older_statements_still_carry() -> None:
    """Statements signed before a detector existed (an NHS number was not detected before issue 13.5) reach the
    report as they are; the report redacts every text it shows, in Markdown and HTML."""
    leaky = [*statements(), event("approval", 20, "ben", "approved for patient 943 476 5919, MRN SYN00123456",
                                  env="prod")]
    info = BundleInfo(**{**INFO.__dict__, "title": "Release for Jane Synthetic DOB 1961-03-07"})
    for text in (render_markdown(info, leaky), render_html(info, leaky)):
        for value in ("943 476 5919", "SYN00123456", "1961-03-07", "Jane Synthetic"):
            assert value not in text
        assert "REDACTED:nhs" in text.replace("\\", "")
    assert "approved for patient" in render_markdown(info, leaky)
