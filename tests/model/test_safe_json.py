"""Strict JSON (core.model.jsonfile) for every JSON a user hands primum: CI reports, DSSE envelopes and their
payloads, audit bundle manifests. Each attack is a clear input error, never a RecursionError or an infinity."""

from __future__ import annotations

from pathlib import Path

import pytest

from primum.adapters.evidence.ingest.base import IngestError
from primum.adapters.evidence.ingest.pipeline import ingest_file
from primum.core.evidence.dsse import Envelope, EnvelopeFormatError
from primum.core.model.errors import InputError
from primum.core.model.jsonfile import MAX_INT_DIGITS, JsonRefused, loads, parse_json
from primum.core.model.yamlfile import MAX_DEPTH
from tests.evidence.test_ingest import FIXTURES, NOW, SUBJECT

ATTACKS = {
    "duplicate key": ('{"a": 1,\n "a": 2}', "appears twice"),
    "NaN": ('{"score": NaN}', "not JSON"),
    "Infinity": ('{"score": -Infinity}', "not JSON"),
    "overflowing number": ('{"score": 1e400}', "must be finite"),
    "long integer": ('{"count": ' + "9" * (MAX_INT_DIGITS + 1) + "}", f"limit {MAX_INT_DIGITS}"),
    "deep": ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"more than {MAX_DEPTH} levels deep"),
    "very deep": ("[" * 100_000 + "]" * 100_000, f"more than {MAX_DEPTH} levels deep"),
    "deep objects": ('{"a":' * 200 + "1" + "}" * 200, f"more than {MAX_DEPTH} levels deep"),
    "truncated": ('{"a": [1, 2', "line 1"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_each_json_attack_is_refused_with_its_reason(name):
    text, words = ATTACKS[name]
    with pytest.raises(JsonRefused) as info:
        loads(text)
    assert words in str(info.value)
    with pytest.raises(InputError) as err:
        parse_json(text, "report.json")
    assert err.value.problems[0].file == "report.json" and words in err.value.problems[0].message


def test_the_line_of_a_syntax_error_is_named():
    with pytest.raises(InputError) as err:
        parse_json('{\n  "a": 1,\n  "b": }', "report.json")
    assert err.value.problems[0].line == 3


def test_json_within_the_limits_still_parses():
    doc = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads(doc) is not None
    assert loads('{"a": 1.5, "b": -12, "c": "x"}') == {"a": 1.5, "b": -12, "c": "x"}


@pytest.mark.parametrize("name", ["very deep", "overflowing number", "duplicate key", "long integer"])
def test_ci_evidence_ingest_refuses_each_attack_as_an_input_error(tmp_path, name):
    text, words = ATTACKS[name]
    sarif = (FIXTURES / "codeql.sarif").read_text()
    # put the attack inside a real SARIF report, where a parser has to read it
    path = tmp_path / "scan.sarif"
    assert sarif.rstrip().endswith("}")
    path.write_text(sarif.rstrip()[:-1] + f', "x-attack": {text}}}')
    with pytest.raises(IngestError) as info:
        ingest_file(path, subject=SUBJECT, now=NOW)
    assert words in info.value.problems[0].message and info.value.problems[0].file == str(path)


def test_deep_junit_xml_is_refused(tmp_path: Path):
    path = tmp_path / "junit.xml"
    path.write_text("<testsuites>" + "<testsuite>" * 200 + "</testsuite>" * 200 + "</testsuites>")
    with pytest.raises(IngestError, match=f"more than {MAX_DEPTH} levels deep"):
        ingest_file(path, subject=SUBJECT, now=NOW)


def test_a_deep_dsse_envelope_is_a_format_error_not_a_recursion_error():
    with pytest.raises(EnvelopeFormatError, match="levels deep"):
        Envelope.from_json("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("marker", ["{not json", '{"pid": 1}', "[" * 5000 + "]" * 5000])
def test_a_damaged_up_marker_is_an_input_error(tmp_path: Path, marker: str, monkeypatch: pytest.MonkeyPatch):
    from primum.app.releases import resolve_estate

    monkeypatch.delenv("PRIMUM_ESTATE", raising=False)
    (tmp_path / "up.json").write_text(marker)
    with pytest.raises(InputError) as info:
        resolve_estate(None, tmp_path)
    assert info.value.problems[0].file == str(tmp_path / "up.json")
