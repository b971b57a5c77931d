"""Committed-secret scanning of a release's files. Secrets are synthetic; the AWS key is AWS's documentation example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from primum.adapters.evidence.scan import ScanError, scan_paths

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PEM_BODY = "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu"


def _terraform(tmp_path: Path) -> Path:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "main.tf").write_text(
        'provider "aws" {\n'
        '  region     = "us-east-1"\n'
        f'  access_key = "{AWS_KEY}"\n'
        "}\n"
        'resource "tls_private_key" "k" {\n'
        '  pem = <<EOT\n'
        "-----BEGIN RSA PRIVATE KEY-----\n"
        f"{PEM_BODY}\n"
        "-----END RSA PRIVATE KEY-----\n"
        "EOT\n"
        "}\n"
    )
    return infra


def test_finds_committed_aws_key_and_private_key_by_file_and_line(tmp_path: Path) -> None:
    infra = _terraform(tmp_path)
    report = scan_paths([infra], root=tmp_path)
    found = {(f.file, f.line, f.type) for f in report.findings}
    assert ("infra/main.tf", 3, "AWS Access Key") in found
    assert ("infra/main.tf", 7, "Private Key") in found
    assert not report.clean
    assert report.scanned == ("infra/main.tf",)
    evidence = json.dumps(report.as_policy_input())
    assert AWS_KEY not in evidence and PEM_BODY not in evidence and "hashed_secret" not in evidence
    assert all(len(f.hashed_secret) == 40 and AWS_KEY not in f.hashed_secret for f in report.findings)


def test_policy_input_shape(tmp_path: Path) -> None:
    infra = _terraform(tmp_path)
    data = scan_paths([infra / "main.tf"], root=tmp_path).as_policy_input()
    assert set(data) == {"secrets", "scanned", "skipped"}
    assert {"file": "infra/main.tf", "line": 3, "type": "AWS Access Key"} in data["secrets"]


def test_clean_release_files_have_no_findings(tmp_path: Path) -> None:
    (tmp_path / "release.yaml").write_text(
        "release: rel-2024-06-01\nservices:\n  scheduling-api:\n    version: 1.4.2\n"
        "    digest: sha256:" + "ab" * 32 + "\n    password: ${DB_PASSWORD}\n"
    )
    report = scan_paths([tmp_path / "release.yaml"], root=tmp_path)
    assert report.clean and report.as_policy_input()["secrets"] == []


def test_env_and_helm_values_in_a_directory_skipping_binary_and_vcs(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DB_PASSWORD=Zq8rT2vLx9wKSyn\n")
    (tmp_path / "values.yaml").write_text("image:\n  tag: 1.4.2\n")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text(f"aws {AWS_KEY}\n")
    report = scan_paths([tmp_path], root=tmp_path)
    assert [(f.file, f.line) for f in report.findings] == [(".env", 1)]
    assert report.skipped[0].file == "logo.png" and report.skipped[0].reason == "binary"
    assert ".git/config" not in report.scanned


def test_oversized_file_fails_closed_naming_the_file(tmp_path: Path) -> None:
    big = tmp_path / "big.tfvars"
    big.write_text("x = 1\n" * 100)
    with pytest.raises(ScanError, match=r"big\.tfvars: 600 bytes, over the 100-byte limit"):
        scan_paths([big], max_bytes=100)


def test_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=r"nope\.yaml: no such file"):
        scan_paths([tmp_path / "nope.yaml"])
