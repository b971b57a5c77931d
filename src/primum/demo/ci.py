"""The CI evidence St Elsewhere's (synthetic) pipeline produces for each artifact: SLSA provenance, a
JUnit report and a Trivy scan, in the formats real CI tools write, for `primum evidence add`.

Nothing here is real: the builder, repositories, tests and vulnerabilities are invented, and no
patient data or secret appears in any of it.
"""

from __future__ import annotations

import json
from pathlib import Path

BUILDER = "https://ci.st-elsewhere.example/builders/hosted-runner@v2"
BUILD_TYPE = "https://ci.st-elsewhere.example/buildtypes/release-pipeline/v1"


def provenance(service: str, version: str, digest: str) -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"{service}-{version}.py", "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"repository": f"https://git.st-elsewhere.example/platform/{service}",
                                       "ref": f"refs/tags/v{version}", "workflow": ".ci/release.yml"},
                "resolvedDependencies": [{"uri": f"git+https://git.st-elsewhere.example/platform/{service}"
                                                 f"@refs/tags/v{version}",
                                          "digest": {"gitCommit": "fa2a37de739a6c3b694b14f35a673b4c90f88465"}}],
            },
            "runDetails": {"builder": {"id": BUILDER},
                           "metadata": {"invocationId": f"https://ci.st-elsewhere.example/{service}/runs/{version}"}},
        },
    }


def junit(service: str, version: str) -> str:
    cases = ["books_a_slot", "refuses_a_double_booking", "answers_within_slo", "keeps_tenants_apart"]
    body = "".join(f'    <testcase classname="{service}.tests" name="{c}" time="0.{i + 1}"/>\n'
                   for i, c in enumerate(cases))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="{service} {version}">\n'
            f'  <testsuite name="{service}.tests" tests="{len(cases)}" failures="0" errors="0" skipped="0">\n'
            f"{body}  </testsuite>\n</testsuites>\n")


def trivy(service: str, version: str, digest: str, *, critical: bool) -> dict:
    vulns = [{"VulnerabilityID": "CVE-2024-2511", "PkgName": "libssl3", "InstalledVersion": "3.0.14-1~deb12u1",
              "FixedVersion": "", "Severity": "LOW"}]
    if critical:
        vulns.insert(0, {"VulnerabilityID": "CVE-2024-45491", "PkgName": "libexpat1", "InstalledVersion": "2.5.0-1",
                         "FixedVersion": "2.5.0-1+deb12u1", "Severity": "CRITICAL",
                         "CVSS": {"nvd": {"V3Score": 9.8}}})
    return {
        "SchemaVersion": 2,
        "ArtifactName": f"registry.st-elsewhere.example/{service}:{version}",
        "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": [f"registry.st-elsewhere.example/{service}@{digest}"]},
        "Results": [{"Target": f"{service}:{version} (debian 12)", "Class": "os-pkgs", "Type": "debian",
                     "Vulnerabilities": vulns}],
    }


def write_ci_evidence(root: Path, service: str, version: str, digest: str, *, critical: bool = False
                      ) -> list[Path]:
    """Write the three CI files of one artifact under ``root/ci/<service>-<version>/``."""
    directory = root / "ci" / f"{service}-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "provenance.intoto.json": json.dumps(provenance(service, version, digest), indent=2),
        "junit.xml": junit(service, version),
        "trivy.json": json.dumps(trivy(service, version, digest, critical=critical), indent=2),
    }
    paths = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text + ("" if text.endswith("\n") else "\n"))
        paths.append(path)
    return paths
