"""End to end through `primum up`: explained verdicts (`primum analysis list|show`) and probe gates
against real processes (the demo's FHIR gateway, a deliberately broken one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from primum.demo.render import write_artifact

from .test_crash import Primum, estate_doc, release
from .test_crash import primum as primum

pytestmark = pytest.mark.slow


def test_a_rolled_back_release_explains_its_verdict(primum: Primum, tmp_path: Path) -> None:
    primum.estate.write_text(yaml.safe_dump(estate_doc([{"set_weight": 50}, {"analysis": {"duration": "4s"}}])))
    base = release(tmp_path, "rel-base", "1.0.0")
    bad = release(tmp_path, "rel-bad", "2.0.0", error_rate=0.3)
    primum.up()
    primum.run("release", "apply", str(base), "--no-wait")
    primum.wait("rel-base", lambda s: s["state"] == "promoted")
    primum.run("release", "apply", str(bad), "--no-wait")
    final = primum.wait("rel-bad", lambda s: s["state"] in ("promoted", "rolled_back", "failed"))
    assert final["state"] == "rolled_back", final["reason"]
    assert "error-rate" in final["reason"]

    listed = primum.run("analysis", "list", "rel-bad", "--output", "json")
    rows = json.loads(listed.stdout)
    assert rows and rows[-1]["report"]["outcome"] == "Failed"
    shown = json.loads(primum.run("analysis", "show", str(rows[-1]["id"]), "--output", "json").stdout)
    report = shown["report"]
    assert report["mode"] == "primum" and report["outcome"] == "Failed"
    errors = [r for r in report["results"] if r["metric"] == "error-rate" and r["slice"] is None
              and r["classification"] == "High"]
    assert errors, report["results"]
    row = errors[0]
    assert row["canary_n"] > 0 and row["baseline_n"] > 0
    assert row["statistics"].get("p_value") is not None
    assert "/_primum/samples" in " ".join(row["source"].values())
    # the table a person reads: outcome, reason, the check rows, the sources
    text = primum.run("analysis", "show", "rel-bad").stdout
    assert "outcome: Failed" in text and "reason:" in text and "error-rate" in text and "sources" in text
    missing = primum.run("analysis", "show", "999999", check=False)
    assert missing.returncode == 2 and "no analysis with id" in missing.stderr


def fhir_estate(probe_when: list[str]) -> dict:
    doc = estate_doc([{"set_weight": 50}, {"analysis": {"duration": "2s"}}])
    svc = doc["services"].pop("scheduling-api")
    svc["traffic"] = {"rate": 20, "paths": ["/metadata"]}
    svc["probes"] = [{"name": "capability", "when": probe_when, "attempts": 2, "interval": "0.5s",
                      "probe": {"type": "fhir", "resources": {"Patient": ["read", "search-type"]}}}]
    doc["services"]["fhir-gateway"] = svc
    return doc


def fhir_release(root: Path, rid: str, version: str, **knobs: object) -> Path:
    path, digest = write_artifact(root / "artifacts", "fhir-gateway", version, **knobs)  # type: ignore[arg-type]
    doc = {"apiVersion": "primum/v1", "kind": "Release", "id": rid,
           "services": {"fhir-gateway": {"artifact": str(path), "digest": digest, "version": version}}}
    out = root / f"{rid}.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def test_a_before_probe_gate_stops_a_wrong_fhir_version_before_it_takes_traffic(primum: Primum,
                                                                                tmp_path: Path) -> None:
    primum.estate.write_text(yaml.safe_dump(fhir_estate(["before", "after"])))
    primum.up()
    primum.run("release", "apply", str(fhir_release(tmp_path, "rel-fhir-1", "1.0.0")), "--no-wait")
    first = primum.wait("rel-fhir-1", lambda s: s["state"] in ("promoted", "rolled_back", "failed"))
    assert first["state"] == "promoted", first["reason"]
    verdicts = first["environments"]["prod"]["fhir-gateway"]["verdicts"]
    assert any("probe gates capability passed" in v["reason"] for v in verdicts), verdicts
    adhoc = primum.run("probe", "fhir-gateway", "--env", "prod", "--estate", str(primum.estate), "-o", "json")
    [answer] = json.loads(adhoc.stdout)
    assert answer["gate"] == "capability" and answer["ok"] and answer["details"]["fhirVersion"] == "4.0.1"

    broken = fhir_release(tmp_path, "rel-fhir-stu3", "1.1.0", fhir_version="3.0.2")
    primum.run("release", "apply", str(broken), "--no-wait")
    final = primum.wait("rel-fhir-stu3", lambda s: s["state"] in ("promoted", "rolled_back", "failed"))
    assert final["state"] == "rolled_back", final["reason"]
    assert "probe gate capability failed" in final["reason"] and "3.0.2" in final["reason"]
    # stopped before its canary step: it never reached the analysis that follows `set_weight: 50`
    assert "has no analysis yet" in primum.run("analysis", "list", "rel-fhir-stu3").stdout
