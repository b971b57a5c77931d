"""No PHI or secrets at rest (issue 13.5): a whole governed release, with patient identifiers and a secret planted
in every piece of text a person or a CI system gives primum (the release's description, the estate, approval and
rejection comments, a break-glass justification and its review, a legal hold's reason, JUnit test names, SARIF
messages, log lines), then every column of every table, the database file itself, the signed envelopes and the
exported audit bundle (report.md included) are searched for them: none may be found.

Every value is synthetic: 943 476 5919 is the NHS's published test number, 1EG4-TE5-MK73 is CMS's example MBI,
078-05-1120 is the voided Woolworth SSN, AKIAIOSFODNN7EXAMPLE is AWS's documentation key, phones are in the
Ofcom drama range and the 555 range.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import tarfile
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from primum.adapters.logs import configure_logging
from primum.adapters.store.tables import RedactedDoc, RedactedText, metadata
from primum.app.evidence import EvidenceService
from tests.controller.noop_estate import write_release
from tests.governance.test_flow import Clock, World, at, waiting

# in files (the release's secret scan would rightly deny a release whose files hold a key) ...
IN_FILES = (
    "NHS 943 476 5919, MRN SYN00123456, mbi 1EG4-TE5-MK73, ssn 078-05-1120, Jane Synthetic DOB 1961-03-07, "
    "tel 020 7946 0018, mail jane.synthetic@example.org"
)
# ... and in what people type
PLANTED = f"{IN_FILES}, key AKIAIOSFODNN7EXAMPLE"
LEAKS = ("943 476 5919", "9434765919", "SYN00123456", "1EG4-TE5-MK73", "078-05-1120", "1961-03-07",
         "020 7946 0018", "jane.synthetic", "AKIAIOSFODNN7EXAMPLE", "Jane Synthetic", "7700123")

JUNIT = """<?xml version="1.0"?>
<testsuite name="ehr" tests="2" failures="0">
  <testcase classname="ehr.Admit" name="test_admit_9434765919_returns_200"/>
  <testcase classname="ehr.Lookup" name="test_lookup_mrn_7700123_SYN00123456"/>
</testsuite>
"""


def _sarif() -> str:
    return json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "synthetic-scanner"}}, "results": [
        {"ruleId": "phi-in-log", "level": "note", "message": {"text": f"fixture leaks {PLANTED}"}}]}]})


def _texts(value: Any) -> list[str]:
    """Every text a cell holds: strings, JSON, and the decoded payload of a DSSE envelope."""
    if value is None or isinstance(value, int | float):
        return []
    if isinstance(value, bytes | memoryview):
        raw = bytes(value).decode("utf-8", errors="replace")
        out = [raw]
        with contextlib.suppress(ValueError, KeyError, TypeError):  # not an envelope
            out.append(base64.b64decode(json.loads(raw)["payload"]).decode("utf-8", errors="replace"))
        return out
    return [value if isinstance(value, str) else json.dumps(value)]


def _found(texts: list[str]) -> list[str]:
    return [leak for text in texts for leak in LEAKS if leak in text]


def _bundle_texts(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                out[member.name] = _texts(handle.read())
                for line in out[member.name][0].splitlines():  # envelopes one per line, as JSON Lines
                    out[member.name] += _texts(line.encode()) if line.startswith("{") else []
    return out


def test_a_governed_release_leaves_no_planted_identifier_anywhere(tmp_path: Path) -> None:
    logs = io.StringIO()
    handler = configure_logging(logs, logging.INFO)
    w = World(tmp_path, Clock(at("2026-11-24T15:00:00")))
    try:
        raw = yaml.safe_load((tmp_path / "estate.yaml").read_text())
        raw["services"]["api"]["description"] = f"booking; escalation contact {IN_FILES}"
        (tmp_path / "estate.yaml").write_text(yaml.safe_dump(raw))
        from primum.core.model.validate import load_estate

        w.estate = load_estate(tmp_path / "estate.yaml")
        path = write_release(tmp_path, "rel-phi", ["api"])
        doc = yaml.safe_load(path.read_text())
        doc["description"] = f"fixes the admission of {IN_FILES}"
        path.write_text(yaml.safe_dump(doc))
        rid = w.releases.submit(path, w.estate, caller=w.people("alice")).record.id

        record = w.store.get_rollout(rid)
        assert record is not None
        evidence = EvidenceService(w.store, clock=w.clock)
        digest = record.artifacts["api"]["digest"]
        (tmp_path / "junit.xml").write_text(JUNIT)
        (tmp_path / "scan.sarif").write_text(_sarif())
        evidence.add(f"api@{digest}", tmp_path / "junit.xml")
        evidence.add(f"api@{digest}", tmp_path / "scan.sarif")

        status = w.run(rid, until=waiting("staging"))
        assert status.phase.value != "denied", [e.message for e in w.store.events(rid)]
        w.gov.record_decision(rid, "approve", caller=w.people("owen"), comment=f"checked with {PLANTED}")
        w.run(rid, until=waiting("prod"))
        w.gov.record_decision(rid, "reject", caller=w.people("carol"), comment=f"not yet: {PLANTED}")
        use = w.gov.break_glass(rid, caller=w.people("kim"), justification=f"outage for {PLANTED}")
        w.run(rid)
        w.gov.complete_review(use.id, caller=w.people("carol"), notes=f"reviewed, {PLANTED}")
        evidence.hold(rid, f"litigation about {PLANTED}", caller=w.people("rita"),
                      identities=w.estate.governance.identities)
        logging.getLogger("primum.test").warning("admitted %s", PLANTED)
        bundle = evidence.export(rid, tmp_path / "bundle.tar.gz")

        leaks: dict[str, list[str]] = {}
        with w.store._engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    for column, value in row._mapping.items():
                        if found := _found(_texts(value)):
                            leaks.setdefault(f"{table.name}.{column}", []).extend(found)
        bundle_path = Path(getattr(bundle, "path", tmp_path / "bundle.tar.gz"))
        for name, texts in _bundle_texts(bundle_path).items():
            if found := _found(texts):
                leaks[f"bundle:{name}"] = found
        if found := _found([logs.getvalue()]):
            leaks["log"] = found
    finally:
        logging.getLogger("primum").removeHandler(handler)
        w.store.close()
    for db_file in tmp_path.glob("p.db*"):  # the file itself, WAL included: nothing raw in any page
        if found := _found([db_file.read_bytes().decode("latin-1")]):
            leaks[db_file.name] = found
    assert leaks == {}
    assert "admitted NHS [REDACTED:nhs_number], MRN [REDACTED:mrn]" in logs.getvalue()


# Columns whose text is written by primum itself from names, digests and numbers, or redacted on their own
# path: the events (``events.redact_events``, with notes of what was cut) and CI summaries (the ingest pipeline).
MACHINE_TEXT = {
    "rollouts.services", "rollouts.status", "approvals.roles", "approvals.owned_services",
    "rollout_events.message", "rollout_events.data",
    "evidence_head.nodes", "evidence_entries.summary", "evidence_checkpoints.note",
    # a person's signed DSSE statement: ids, digests, the decision and the time, never free text (a comment or
    # justification is left out of it on purpose, core/governance/signatures.py); redacting it would break
    # its signature
    "approvals.envelope", "break_glass.envelope",
}


def test_every_free_text_column_redacts_on_write() -> None:
    """A new Text or JSON column must either redact (RedactedText, RedactedDoc) or say here why it need not."""
    from sqlalchemy import JSON, Text

    from primum.adapters.store.tables import JSONDoc

    unguarded = sorted(
        f"{table.name}.{column.name}" for table in metadata.sorted_tables for column in table.columns
        if isinstance(column.type, Text | JSON | JSONDoc) and not isinstance(column.type, RedactedText | RedactedDoc)
        and f"{table.name}.{column.name}" not in MACHINE_TEXT)
    assert unguarded == []
