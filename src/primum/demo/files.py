"""The demo's editable files: a fictional hospital estate, its releases and artifacts.

``primum init DIR`` writes them so a new user starts from a working example;
``primum demo`` writes them to a scratch directory and runs them.
All names are fictional; every tenant is a synthetic clinic.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from primum.demo.ci import BUILDER, write_ci_evidence
from primum.demo.render import write_artifact

ESTATE_NAME = "st-elsewhere-general"
TENANTS = [
    ("clinic-north", "North Family Clinic (synthetic)"),
    ("clinic-south", "South Pediatrics (synthetic)"),
    ("st-elsewhere-ed", "Emergency Department (synthetic)"),
    ("cardio-east", "East Cardiology (synthetic)"),
]


@dataclass(frozen=True)
class DemoFiles:
    root: Path
    estate: Path
    baseline: Path
    regression: Path  # release A: scheduling-api with an injected regression
    healthy: Path  # release B: a healthy scheduling-api, portal and HL7 interface
    one_tenant: Path  # release C: scheduling-api that regresses for one clinic only
    vulnerable: Path  # release D: billing-sync whose scan finds a critical vulnerability
    # release file -> its artifacts' CI evidence: (ARTIFACT for `primum evidence add`, file)
    ci: dict[Path, list[tuple[str, Path]]] = field(default_factory=dict)
    people: dict[str, Path] = field(default_factory=dict)  # person -> their private key file


# The clinic whose traffic release C breaks (a synthetic tenant).
FAULT_TENANT = "clinic-south"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


IDENTITIES_HEAD = """\
# Who is who at St Elsewhere General (fictional people; synthetic only).
# Each person is known by the key they hold: `primum approve ID --key THEIR_KEY` is checked against the
# key enrolled below (keys: public halves only). The private keys are made at run time, never committed:
# `primum init` writes them to .primum/people/, `primum demo` to its state directory's people/.
apiVersion: primum/v1
kind: Identities
groups:
  team-scheduling: {roles: [release-author, service-owner-approver], services: [scheduling-api]}
  team-integration: {roles: [release-author, service-owner-approver], services: [fhir-gateway, hl7-interface]}
  team-digital-front-door: {roles: [release-author, service-owner-approver], services: [patient-portal]}
  team-revenue-cycle: {roles: [release-author, service-owner-approver], services: [billing-sync]}
  cab: {roles: [cab]}
  release-managers: {roles: [release-manager]}
  platform: {roles: [platform-admin]}
  on-call:
    roles: [operator, break-glass]
    services: [scheduling-api, fhir-gateway, hl7-interface, patient-portal, billing-sync]
  audit: {roles: [auditor]}
users:
"""
PEOPLE = (  # id, name, groups
    ("sam-rivera", "Sam Rivera (synthetic)", "team-scheduling"),
    ("dr-okafor", "Dr Ada Okafor (synthetic)", "team-integration"),
    ("lee-chen", "Lee Chen (synthetic)", "release-managers"),
    ("cab-chair", "Morgan Blake (synthetic)", "cab"),
    ("pat-admin", "Pat Admin (synthetic)", "platform"),
    ("kim-oncall", "Kim Osei (synthetic)", "on-call"),
    ("ngozi-audit", "Ngozi Eze (synthetic)", "audit"),
)


def identities_text(keys: dict[str, str]) -> str:
    """The demo's identities file, each person with the public key line enrolled for them."""
    lines = [IDENTITIES_HEAD]
    for user, name, group in PEOPLE:
        enrolled = f", keys: ['{keys[user]}']" if user in keys else ""
        lines.append(f"  - {{id: {user}, name: {name}, groups: [{group}]{enrolled}}}\n")
    return "".join(lines)


def enrol_people(people_dir: Path) -> dict[str, Path]:
    """A fresh key for every fictional person, written (0600) under ``people_dir``: never committed, made
    on each run. Returns each person's key file."""
    from primum.adapters.evidence.personal import generate_personal_key

    return {user: (generate_personal_key(people_dir / f"{user}.pem"), people_dir / f"{user}.pem")[1]
            for user, _, _ in PEOPLE}


AUTHOR = "sam-rivera"  # submits the demo's releases
APPROVERS = ("lee-chen", "cab-chair")  # a release manager and the CAB chair approve them
OPERATOR = "kim-oncall"  # aborts a release the demo did not expect to pause


# The demo's prod minimum of analysis (seconds) for normal and high-impact changes: its policy's
# params.rego says so, and every service's analysis windows, in both modes, add up to at least this.
DEMO_MIN_ANALYSIS_S = 4
WINDOW_S = 4.0  # one analysis window of `primum demo`
# The shortest window `--fast` uses: the judge still gets its minimum samples with margin at the
# demo's traffic rates, so the judgement stays real.
FAST_WINDOW_S = 3.5


def analysis_window(windows: int, fast: bool = False) -> str:
    """One analysis window of a service its strategy analyses ``windows`` times per rollout.

    ``--fast`` shortens a window only as far as the demo's own prod policy allows: the windows of a
    service still add up to ``DEMO_MIN_ANALYSIS_S``, so a service analysed once keeps a full window
    (the policy is never weakened for the fast mode; the same releases meet the same rules)."""
    if windows < 1:
        raise ValueError(f"a service with analysis has at least one window, got {windows}")
    seconds = max(FAST_WINDOW_S, DEMO_MIN_ANALYSIS_S / windows) if fast else WINDOW_S
    return f"{seconds:g}s"


def demo_policy_params() -> str:
    """The baseline's parameters with St Elsewhere's demo timing: the demo's analysis windows are
    seconds long, so the minimum analysis time in prod is lowered (an organisation's own
    ``params.rego`` replaces the baseline's, which is how any estate tunes these numbers)."""
    from importlib import resources

    text = resources.files("primum.adapters.policy").joinpath("baseline/params.rego").read_text()
    lowered, n = re.subn(r'"prod": \{"standard": 0, "normal": \d+, "high-impact": \d+\}',
                         f'"prod": {{"standard": 0, "normal": {DEMO_MIN_ANALYSIS_S}, '
                         f'"high-impact": {DEMO_MIN_ANALYSIS_S}}}', text)
    if n != 1:
        raise RuntimeError("the baseline params.rego changed shape; update primum.demo.files.demo_policy_params")
    # St Elsewhere's CI attaches provenance, tests and a scan to every artifact; prod requires all three,
    # built by its own builder.
    for old, new in ((r'evidence_required := \{\n\t"prod": \[\],',
                      'evidence_required := {\n\t"prod": ["provenance", "tests", "vulns"],'),
                     (r"allowed_builders := \[\]", f'allowed_builders := ["{BUILDER}"]')):
        lowered, n = re.subn(old, new, lowered)
        if n != 1:
            raise RuntimeError("the baseline params.rego changed shape; update primum.demo.files.demo_policy_params")
    return (f"# St Elsewhere General: the baseline parameters with demo timing (min analysis "
            f"{DEMO_MIN_ANALYSIS_S} s in prod)\n"
            "# and its CI evidence required in prod.\n" + lowered)


DEMO_POLICY_TEST = """\
# St Elsewhere's own policy tests (`primum policy test policy`): the demo timing, and that the
# baseline's approval rules still hold. They use the baseline's test fixtures (fx_*).
package primum.release

import rego.v1

ci_evidence := fx_evidence({
	"provenance": {"present": true, "builders": ["https://ci.st-elsewhere.example/builders/hosted-runner@v2"]},
	"tests": {"present": true, "passed": true, "failed": 0, "total": 4},
	"vulns": {"present": true, "critical": 0, "high": 0},
})

test_demo_timing_lets_a_4_second_analysis_into_prod if {
	svc := fx_service_with("clinical-critical", "phi", [], {"analysis_seconds": 4})
	d := fx_decision(fx_input({"services": {"scheduling-api": svc}, "evidence": {"scheduling-api": ci_evidence}}))
	d.requirements.min_analysis_seconds == 4
	d.deny == set()
}

test_prod_requires_the_ci_evidence if {
	svc := fx_service_with("clinical-critical", "phi", [], {"analysis_seconds": 4})
	d := fx_decision(fx_input({"services": {"scheduling-api": svc}, "evidence": {"scheduling-api": fx_evidence({})}}))
	"evidence-required" in fx_rules(d)
}

test_another_builder_is_denied if {
	svc := fx_service_with("clinical-critical", "phi", [], {"analysis_seconds": 4})
	other := object.union(ci_evidence, {"provenance": {"present": true, "builders": ["https://laptop.example/me"]}})
	d := fx_decision(fx_input({"services": {"scheduling-api": svc}, "evidence": {"scheduling-api": other}}))
	"evidence-builder" in fx_rules(d)
}

test_a_shorter_analysis_is_still_denied_in_prod if {
	svc := fx_service_with("clinical-critical", "phi", [], {"analysis_seconds": 2})
	d := fx_decision(fx_input({"services": {"scheduling-api": svc}, "evidence": {"scheduling-api": ci_evidence}}))
	count(d.deny) == 1
}

test_high_impact_still_needs_two_approvals_one_from_cab_in_prod if {
	d := fx_decision(fx_input({"services": {"scheduling-api": fx_service("clinical-critical", "phi", [])}}))
	d.requirements.approvals == 2
	d.requirements.cab_approvals == 1
}
"""


def estate_document(fast: bool = False, mllp_ports: dict[str, int] | None = None) -> dict:
    once, twice = analysis_window(1, fast), analysis_window(2, fast)  # services analysed once or twice
    analysis = {"initial_delay": "0.5s", "min_samples": 15 if fast else 20}
    mllp_ports = mllp_ports or {"staging": 12575, "prod": 12576}
    return {
        "apiVersion": "primum/v1",
        "kind": "Estate",
        "name": ESTATE_NAME,
        "environments": [
            {"name": "staging", "class": "nonprod", "description": "integration test environment"},
            {"name": "prod", "class": "prod", "description": "serves the clinics"},
        ],
        "tenants": [{"id": tid, "name": name} for tid, name in TENANTS],
        "governance": {"policy_dir": "policy", "identities": "identities.yaml"},
        "services": {
            "fhir-gateway": {
                "template": "fhir-integration", "owner": "team-integration",
                "description": "FHIR R4 facade over the EHR",
                "strategy": {"type": "canary", "steps": [{"set_weight": 25}, {"analysis": {"duration": once}}]},
                "analysis": dict(analysis),
                "traffic": {"rate": 6, "paths": ["/metadata", "/Patient/example-0001"]},
                "probes": [{"name": "capability-statement", "when": ["before", "after"],
                            "probe": {"type": "fhir", "resources": {"Patient": ["read", "search-type"]}}}],
            },
            "scheduling-api": {
                "template": "web-api", "owner": "team-scheduling", "tier": "clinical-critical",
                "data_class": "phi", "depends_on": ["fhir-gateway"],
                "description": "appointments and slots for every clinic",
                "strategy": {"type": "canary", "steps": [
                    {"set_weight": 25}, {"analysis": {"duration": twice}},
                    {"set_weight": 50}, {"analysis": {"duration": twice}}]},
                "slo": {"error_rate": 0.01, "p95_ms": 250},
                "analysis": dict(analysis),
                # every clinic's traffic is split between versions, so each tenant slice has a baseline
                "affinity": "none",
                "traffic": {"rate": 40, "paths": ["/appointments", "/slots"]},
                "probes": [{"name": "slots-answer", "when": ["before"],
                            "probe": {"type": "http", "path": "/slots", "expect_status": [200],
                                      "max_latency": "1s"}}],
            },
            "patient-portal": {
                "template": "patient-portal", "owner": "team-digital-front-door",
                "depends_on": ["scheduling-api"],
                "description": "patients book and see appointments",
                "strategy": {"type": "blue_green", "preview_analysis": twice, "post_analysis": twice,
                             "scale_down_delay": "2s"},
                "analysis": dict(analysis),
                # enough preview traffic that the pre-switch analysis has its minimum samples with margin
                "traffic": {"rate": 30, "paths": ["/", "/appointments"], "preview_share": 0.5},
            },
            "hl7-interface": {
                "template": "hl7-interface", "owner": "team-integration", "depends_on": ["fhir-gateway"],
                "description": "HL7 v2 ADT feed to downstream systems",
                # a rolling batch compares one new instance with one old one, ~8 requests a second each: twice
                # the window, so a burst of CPU contention on a shared 2-core machine in a ~30-request window
                # does not read as a latency regression of a critical service (latency samples within a
                # second are correlated; the rank test assumes they are not: docs/JUDGE.md, "Known limit:
                # correlated samples")
                "strategy": {"type": "rolling", "max_unavailable": 1, "batch_analysis": f"{2 * WINDOW_S:g}s"},
                "analysis": dict(analysis),
                "traffic": {"rate": 16, "paths": ["/stats", "/messages"]},
                # 2 replicas, one at a time: one batch analysis (after the first batch)
                # HL7 v2 over MLLP: every instance of an environment shares its port (SO_REUSEPORT)
                "target": {"command": ["{python}", "{artifact}", "--port", "{port}", "--mllp-port", "{mllp_port}"],
                           "mllp_ports": mllp_ports},
                "probes": [{"name": "adt-ack", "when": ["after"], "probe": {"type": "mllp"}}],
            },
            "billing-sync": {
                "template": "erp-connector", "owner": "team-revenue-cycle", "depends_on": ["scheduling-api"],
                "description": "sends charges to the ERP",
                "analysis": dict(analysis),
                "traffic": {"rate": 4, "paths": ["/invoices", "/sync/status"]},
            },
        },
    }


def _release(release_id: str, description: str, ticket: str, pins: dict[str, tuple[Path, str, str]],
             root: Path, strategy: dict | None = None) -> dict:
    doc = {
        "apiVersion": "primum/v1",
        "kind": "Release",
        "id": release_id,
        "description": description,
        "ticket": ticket,
        "source_commit": "fa2a37de739a6c3b694b14f35a673b4c90f88465",
        "services": {
            name: {"artifact": os.path.relpath(path, root / "releases"), "digest": digest, "version": version}
            for name, (path, digest, version) in pins.items()
        },
    }
    if strategy:
        for pin in doc["services"].values():  # type: ignore[attr-defined]
            pin["strategy"] = strategy
    return doc


def write_demo(root: Path, fast: bool = False, people_dir: Path | None = None) -> DemoFiles:
    """Write the demo estate, three releases and their artifacts under ``root``, and a key for each person
    under ``people_dir`` (default ``root/.primum/people``, the example's state directory)."""
    root.mkdir(parents=True, exist_ok=True)
    artifacts = root / "artifacts"
    releases = root / "releases"
    releases.mkdir(exist_ok=True)

    def art(service: str, version: str, **faults: object) -> tuple[Path, str, str]:
        path, digest = write_artifact(artifacts, service, version, **faults)  # type: ignore[arg-type]
        return path, digest, version

    baseline = {name: art(name, "1.0.0") for name in
                ("fhir-gateway", "scheduling-api", "patient-portal", "hl7-interface", "billing-sync")}
    regression = {"scheduling-api": art("scheduling-api", "2.0.0", extra_latency_ms=300, error_rate=0.15)}
    one_tenant = {"scheduling-api": art("scheduling-api", "2.0.2", extra_latency_ms=150, error_rate=0.4,
                                        fault_tenants=(FAULT_TENANT,))}
    healthy = {
        "scheduling-api": art("scheduling-api", "2.0.1"),
        "patient-portal": art("patient-portal", "1.1.0"),
        "hl7-interface": art("hl7-interface", "1.1.0"),
    }
    vulnerable = {"billing-sync": art("billing-sync", "1.1.0")}
    files = DemoFiles(
        root=root,
        estate=root / "estate.yaml",
        baseline=releases / "0-baseline.yaml",
        regression=releases / "1-scheduling-2.0.0.yaml",
        healthy=releases / "3-scheduling-2.0.1.yaml",
        one_tenant=releases / "2-scheduling-2.0.2.yaml",
        vulnerable=releases / "4-billing-1.1.0.yaml",
    )
    header = "# Written by `primum init`. Edit freely; `primum validate FILE` checks it.\n"
    mllp_ports = {"staging": free_port(), "prod": free_port()}
    files.estate.write_text(header + yaml.safe_dump(estate_document(fast, mllp_ports), sort_keys=False))
    docs = [
        (files.baseline, _release("rel-2026-11-baseline", "first deployment of the estate", "CHG-1000", baseline,
                                  root)),
        (files.regression, _release("rel-2026-11-sched-2.0.0", "scheduling-api 2.0.0: new slot search "
                                    "(carries an injected regression: added latency and errors)", "CHG-1001",
                                    regression, root)),
        (files.one_tenant, _release("rel-2026-11-sched-2.0.2", "scheduling-api 2.0.2: clinic calendar sync "
                                    f"(carries an injected regression for one clinic only: {FAULT_TENANT})",
                                    "CHG-1002", one_tenant, root,
                                    strategy={"type": "canary", "steps": [{"set_weight": 50},
                                                                          {"analysis": {"duration": "5s"}}]})),
        (files.healthy, _release("rel-2026-11-sched-2.0.1", "scheduling-api 2.0.1 (fixed), patient-portal "
                                 "1.1.0, hl7-interface 1.1.0", "CHG-1003", healthy, root)),
        (files.vulnerable, _release("rel-2026-11-billing-1.1.0", "billing-sync 1.1.0: ERP batch export (its "
                                    "image scan finds a critical vulnerability)", "CHG-1004", vulnerable, root)),
    ]
    for path, doc in docs:
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    pins = {files.baseline: baseline, files.regression: regression, files.one_tenant: one_tenant,
            files.healthy: healthy, files.vulnerable: vulnerable}
    script = ["#!/bin/sh",
              "# What St Elsewhere's CI does after each build: attach its evidence to the artifact digest.",
              "# (The demo's policy requires provenance, tests and a scan in prod.) Run from this directory.",
              "set -e"]
    for path, services in pins.items():
        files.ci[path] = []
        for name, (_, digest, version) in services.items():
            ref = f"{name}@{digest}"
            for ci_file in write_ci_evidence(root, name, version, digest, critical=path == files.vulnerable):
                files.ci[path].append((ref, ci_file))
                script.append(f"primum evidence add {ref} {ci_file.relative_to(root)}")
    (root / "ci" / "add-evidence.sh").write_text("\n".join(script) + "\n")
    (root / "primum.env").write_text(SETTINGS)
    people = enrol_people(people_dir or root / ".primum" / "people")
    files.people.update(people)
    from primum.adapters.evidence.personal import load_personal_key, public_line

    (root / "identities.yaml").write_text(identities_text(
        {user: public_line(load_personal_key(path).public_key, user) for user, path in people.items()}))
    (root / "policy").mkdir(exist_ok=True)
    (root / "policy" / "params.rego").write_text(demo_policy_params())
    (root / "policy" / "st_elsewhere_test.rego").write_text(DEMO_POLICY_TEST)
    return files


SETTINGS = """\
# primum settings for this example. Load them into your shell with:
#   set -a; . ./primum.env; set +a
# Where primum keeps its database, runtime state and logs:
PRIMUM_HOME=./.primum
# The estate `primum release apply` and `primum validate` use when --estate is not given:
PRIMUM_ESTATE=./estate.yaml
# Who you are: the personal key that signs promote / abort / retry / approve (see identities.yaml;
# each fictional person's key is in .primum/people/, e.g. --key ./.primum/people/lee-chen.pem to approve):
PRIMUM_KEY=./.primum/people/sam-rivera.pem
# Several controller replicas share one PostgreSQL database instead of SQLite:
# PRIMUM_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/primum
"""
