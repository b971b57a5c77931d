"""Committed-secret scanning of a release's files. Secrets are synthetic; the AWS key is AWS's documentation example."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from primum.adapters.evidence.scan import ScanError, ScanReport, is_digest_or_commit, scan_paths

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


# --- digests and commit SHAs are not secrets; secrets beside them still are ---------------------------
# Realistic values, made here rather than pasted: a git SHA-1 commit, sha256 artifact digests, a token.
COMMIT = hashlib.sha1(b"primum test commit").hexdigest()
COMMIT_256 = hashlib.sha256(b"primum test commit in a sha256 repository").hexdigest()
DIGEST = hashlib.sha256(b"scheduling-api 1.4.2").hexdigest()
DIGEST_2 = hashlib.sha256(b"lab-results 2.0.1").hexdigest()
SHA512 = hashlib.sha512(b"scheduling-api 1.4.2").hexdigest()
TOKEN = base64.b64encode(hashlib.sha512(b"a session signing key").digest()).decode()
HEX_40 = hashlib.sha1(b"a webhook signing key").hexdigest()  # a 40-hex secret, e.g. an old GitHub token


def _hex_findings(report: ScanReport) -> list[tuple[str, int]]:
    return [(f.file, f.line) for f in report.findings if f.type == "Hex High Entropy String"]


def test_real_commit_sha_and_digests_in_a_release_are_not_secrets(tmp_path: Path) -> None:
    release = tmp_path / "release.yaml"
    release.write_text(
        "apiVersion: primum/v1\nkind: Release\nid: rel-2024-06-01\n"
        "description: Scheduling and lab results, June\nticket: CHG-1042\n"
        f"source_commit: {COMMIT}\n"
        "services:\n"
        f"  scheduling-api:\n    artifact: ../artifacts/scheduling-api.tar.gz\n    digest: sha256:{DIGEST}\n"
        f'  "lab-results":\n    artifact: "../artifacts/lab-results.tar.gz"\n    digest: "sha256:{DIGEST_2}"\n'
    )
    provenance = tmp_path / "provenance.json"  # an in-toto statement: subject digests and the source commit
    provenance.write_text(json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "scheduling-api", "digest": {"sha256": DIGEST, "sha512": SHA512}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"resolvedDependencies": [
            {"uri": "git+https://git.example/scheduling", "digest": {"gitCommit": COMMIT}}]}},
    }, indent=1) + "\n" + json.dumps({"subject": [{"digest": {"sha256": DIGEST_2, "gitCommit": COMMIT_256}}]}))
    (tmp_path / "values.yaml").write_text(
        f"image:\n  repository: registry.example/scheduling-api\n  digest: {DIGEST}\n"
        f"  ref: registry.example/scheduling-api@sha256:{DIGEST}\n"
        f"annotations:\n  org.opencontainers.image.revision: '{COMMIT}'\n  build.commit: {COMMIT[:12]}\n"
    )
    (tmp_path / "build.env").write_text(f"GIT_COMMIT={COMMIT}\nIMAGE_SHA256={DIGEST}\n")
    (tmp_path / "main.tf").write_text(f'locals {{\n  source_commit = "{COMMIT}"\n  image_digest  = "{DIGEST}"\n}}\n')
    report = scan_paths([tmp_path], root=tmp_path)
    assert report.clean, report.findings
    assert len(report.scanned) == 5


def test_a_real_commit_sha_is_not_denied_by_the_baseline_policy(tmp_path: Path) -> None:
    """The issue's symptom: a release with a real 40-hex source_commit was denied as a committed secret."""
    release = tmp_path / "release.yaml"
    release.write_text(f"source_commit: {COMMIT}\nticket: CHG-1042\n")
    assert scan_paths([release]).as_policy_input()["secrets"] == []
    release.write_text(f"source_commit: {COMMIT}\nticket: CHG-1042\nwebhook_key: {HEX_40}\n")
    assert scan_paths([release]).as_policy_input()["secrets"] == [
        {"file": release.as_posix(), "line": 3, "type": "Hex High Entropy String"}]


def test_secrets_beside_digests_are_still_found(tmp_path: Path) -> None:
    (tmp_path / "release.yaml").write_text(
        f"id: rel-2024-06-01\ndescription: {TOKEN}\nsource_commit: {COMMIT}\n"
        f"services:\n  scheduling-api:\n    digest: sha256:{DIGEST}\n    note: {HEX_40}\n"
    )
    (tmp_path / "deploy.env").write_text(f"GIT_COMMIT={COMMIT}\nSESSION_KEY={TOKEN}\n")
    (tmp_path / "main.tf").write_text(
        f'provider "aws" {{\n  access_key = "{AWS_KEY}"\n}}\nlocals {{\n  source_commit = "{COMMIT}"\n}}\n'
        f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n"
    )
    found = {(f.file, f.line, f.type) for f in scan_paths([tmp_path], root=tmp_path).findings}
    assert found == {
        ("release.yaml", 2, "Base64 High Entropy String"),  # a token as the description
        ("release.yaml", 7, "Hex High Entropy String"),  # 40 hex under a field that holds no commit or digest
        ("deploy.env", 2, "Base64 High Entropy String"),  # an environment variable's value
        ("main.tf", 2, "AWS Access Key"),
        ("main.tf", 7, "Private Key"),
    }


@pytest.mark.parametrize("line", [
    f'source_commit: "{hashlib.md5(b"x").hexdigest()}"',  # 32 hex is no commit length: an API key's, often
    f'digest: "{DIGEST[:48]}"',  # no digest algorithm has 48 hex digits
    f'sha256: "{COMMIT}"',  # a sha256 has 64, not 40
    f'gitCommit: "{DIGEST[:50]}"',
    f'source_commit: "{COMMIT.upper()}"',  # digests and commits are lower-case hex
    f'password_digest: "{DIGEST}"',  # a key naming a credential is never a digest field
    f'api_token_sha1: "{COMMIT}"',
    f'{{"sha256": "{DIGEST}", "token": "{DIGEST}"}}',  # the same value also under another key on the line
    f'notes: "{COMMIT}"',
    f'"{COMMIT}"',
])
def test_hex_outside_a_digest_field_or_of_the_wrong_length_is_still_a_secret(tmp_path: Path, line: str) -> None:
    path = tmp_path / "file.json"
    path.write_text(line + "\n")
    assert _hex_findings(scan_paths([path])) == [(path.as_posix(), 1)]


def test_the_filter_is_detect_secrets_own_mechanism_and_only_for_hex_entropy() -> None:
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString

    hex_plugin = HexHighEntropyString()
    assert is_digest_or_commit(COMMIT, f'source_commit: "{COMMIT}"', hex_plugin)
    assert is_digest_or_commit(DIGEST, f'"digest": {{"sha256": "{DIGEST}"}}', hex_plugin)
    assert not is_digest_or_commit(COMMIT, f'source_commit: "{COMMIT}"', Base64HighEntropyString())
    assert not is_digest_or_commit(COMMIT, f'source_commit: "{COMMIT}"', AWSKeyDetector())
    assert not is_digest_or_commit(COMMIT, f"source_commit: {COMMIT}", hex_plugin)  # unquoted: not the plugin's match
