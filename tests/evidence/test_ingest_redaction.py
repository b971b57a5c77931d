"""CI evidence is redacted before it is signed or summarised (issue 13.5): patient identifiers in JUnit test names
and class names, and in SARIF results, never reach the statement or the policy summary. Values are synthetic
(943 476 5919 is the NHS test number, 1EG4-TE5-MK73 CMS's example MBI)."""

from __future__ import annotations

import json
from pathlib import Path

from primum.adapters.evidence.ingest import ingest_file

SUBJECT = {"name": "ehr-api", "digest": {"sha256": "ab" * 32}}
LEAKS = ("9434765919", "943 476 5919", "7700123", "SYN00123456", "1EG4TE5MK73", "jane.synthetic")


def _everything(ingested) -> str:  # type: ignore[no-untyped-def]
    return json.dumps(ingested.statement) + json.dumps(ingested.summary, default=str)


def test_junit_test_names_with_identifiers_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text("""<?xml version="1.0"?>
<testsuites><testsuite name="ehr" tests="4" failures="0">
  <testcase classname="ehr.Admit" name="test_admit_9434765919_returns_200"/>
  <testcase classname="ehr.Lookup" name="test_lookup_mrn_7700123"/>
  <testcase classname="ehr.Records_SYN00123456" name="test_merge"/>
  <testcase classname="ehr.Claims" name="test_claim_for_1EG4TE5MK73 emails jane.synthetic@example.org"/>
</testsuite></testsuites>
""")
    ingested = ingest_file(path, subject=SUBJECT, now=1_800_000_000.0)
    text = _everything(ingested)
    assert not [leak for leak in LEAKS if leak in text], text
    assert "test_admit_[REDACTED:nhs_number]_returns_200" in text
    assert "test_lookup_mrn_[REDACTED:mrn]" in text
    assert {"nhs_number", "mrn", "mbi", "email"} <= {r.kind for r in ingested.redactions}


def test_sarif_results_with_identifiers_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "scan.sarif"
    path.write_text(json.dumps({"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "phi-linter", "rules": [{"id": "fixture-9434765919"}]}},
        "results": [{"ruleId": "fixture-9434765919", "level": "warning",
                     "message": {"text": "fixture holds MRN: SYN00123456 for jane.synthetic@example.org"}},
                    {"ruleId": "hardcoded/mrn_7700123", "level": "note", "message": {"text": "NHS 943 476 5919"}}],
    }]}))
    text = _everything(ingest_file(path, subject=SUBJECT, now=1_800_000_000.0))
    assert not [leak for leak in LEAKS if leak in text], text
    assert "fixture-[REDACTED:nhs_number]" in text
