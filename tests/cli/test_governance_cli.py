"""The governance commands as a person uses them: policy eval/test, approve, reject, approvals,
break-glass and reviews, on the example `primum init` writes (synthetic people)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from .test_cli import Cli
from .test_cli import cli as cli


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("gov")
    result = Cli(home=base / "home", cwd=base)("init", base / "ex")
    assert result.code == 0, result
    return base / "ex"


def test_policy_eval_shows_class_requirements_and_denials(cli: Cli, example: Path, tmp_path: Path) -> None:
    without = cli("policy", "eval", example / "releases" / "1-scheduling-2.0.0.yaml", "--estate",
                  example / "estate.yaml")
    # the demo's prod requires CI evidence
    assert without.code == 1 and "no build provenance" in without.flat_out, without
    for line in (example / "ci" / "add-evidence.sh").read_text().splitlines():
        if line.startswith("primum evidence add") and "/scheduling-api-2.0.0/" in line:
            *_, ref, path = line.split()
            added = cli("evidence", "add", ref, example / path)
            assert added.code == 0, added
    ok = cli("policy", "eval", example / "releases" / "1-scheduling-2.0.0.yaml", "--estate", example / "estate.yaml")
    assert ok.code == 0, ok
    assert "prod: class high-impact allowed" in ok.flat_out
    assert "requires: 2 approval(s) (1 from CAB), at least 4s of analysis" in ok.flat_out
    assert "scheduling-api: data class phi; tier clinical-critical" in ok.flat_out
    doc = yaml.safe_load((example / "releases" / "1-scheduling-2.0.0.yaml").read_text())
    doc["ticket"] = ""
    doc["services"]["scheduling-api"]["artifact"] = str(
        (example / "releases" / doc["services"]["scheduling-api"]["artifact"]).resolve())
    no_ticket = tmp_path / "no-ticket.yaml"
    no_ticket.write_text(yaml.safe_dump(doc))
    denied = cli("policy", "eval", no_ticket, "--estate", example / "estate.yaml", "--output", "json")
    assert denied.code == 1, denied
    decisions = json.loads(denied.out)
    assert decisions["staging"]["allowed"] is True
    assert decisions["prod"]["allowed"] is False
    assert decisions["prod"]["deny"] == ["prod is a production environment: the release needs a change ticket "
                                         "(release.ticket)"]
    assert decisions["prod"]["log"]["bundle_revision"].startswith("sha256:")


def test_policy_test_runs_the_rego_tests_and_a_broken_file_is_a_clear_error(cli: Cli, example: Path,
                                                                            tmp_path: Path) -> None:
    ok = cli("policy", "test", example / "policy")
    assert ok.code == 0 and "5 passed, 0 failed" in ok.out, ok
    base = cli("policy", "test")
    assert base.code == 0 and " 0 failed" in base.out, base
    broken = tmp_path / "policy"
    shutil.copytree(example / "policy", broken)
    (broken / "extra.rego").write_text("package primum.release\n\ndeny contains msg if {\n  msg := \n}\n")
    bad = cli("policy", "test", broken)
    assert bad.code == 2 and "policy error" in bad.err and "extra.rego" in bad.flat_err, bad


def test_approve_reject_approvals_break_glass_and_reviews(cli: Cli, example: Path, tmp_path: Path) -> None:
    estate = example / "estate.yaml"
    people = example / ".primum" / "people"  # `primum init` made a key for each fictional person

    def key(user: str) -> tuple[str, str]:
        return "--key", str(people / f"{user}.pem")

    submitted = cli("release", "apply", example / "releases" / "1-scheduling-2.0.0.yaml", "--estate", estate,
                    "--no-wait", *key("sam-rivera"))
    assert submitted.code == 0, submitted
    rid = "rel-2026-11-sched-2.0.0"
    made = cli("keys", "personal", "init", "--key", tmp_path / "stranger.pem", "--comment", "stranger")
    assert made.code == 0 and made.out.startswith("ssh-ed25519 AAAA") and made.out.strip().endswith(" stranger"), made
    stranger = cli("approve", rid, "--key", tmp_path / "stranger.pem")  # a key nobody enrolled
    assert stranger.code == 2 and "is not enrolled in the identities in force" in stranger.flat_err, stranger
    unsigned = cli("approve", rid, "--as", "lee-chen", "--key", tmp_path / "missing.pem")  # a name is not enough
    assert unsigned.code == 2 and "no personal signing key" in unsigned.flat_err, unsigned
    impostor = cli("approve", rid, "--as", "lee-chen", *key("sam-rivera"))
    assert impostor.code == 2 and "--as lee-chen does not match your key" in impostor.flat_err, impostor
    admin = cli("approve", rid, *key("pat-admin"))
    assert admin.code == 2 and "holds none of the approving roles" in admin.flat_err, admin
    unknown_abort = cli("abort", rid, "--as", "mallory", "--key", tmp_path / "stranger.pem")
    assert unknown_abort.code == 2 and "not enrolled" in unknown_abort.flat_err, unknown_abort
    ok = cli("approve", rid, "--as", "lee-chen", *key("lee-chen"), "--comment", "tested in the demo")
    assert ok.code == 0 and "lee-chen (release-manager) approved" in ok.flat_out and "for staging" in ok.out, ok
    no_reason = cli("reject", rid, *key("cab-chair"), "--comment", " ")
    assert no_reason.code == 2 and "needs a reason" in no_reason.flat_err, no_reason
    rejected = cli("reject", rid, *key("cab-chair"), "--comment", "no rollback plan")
    assert rejected.code == 0, rejected
    waiting = cli.json("approvals")
    [row] = waiting
    assert row["release"] == rid and row["env"] == "staging" and row["blocked_by"] == "approvals"
    assert row["reason"] == "rejected by cab-chair: no rollback plan"
    assert [(a["actor"], a["decision"]) for a in row["approvals"]] == [("lee-chen", "approve"),
                                                                       ("cab-chair", "reject")]
    refused = cli("break-glass", rid, *key("lee-chen"), "--justification", "the booking outage needs this now")
    assert refused.code == 2 and "break-glass role" in refused.flat_err, refused
    used = cli("break-glass", rid, *key("kim-oncall"), "--justification", "the booking outage needs this now")
    assert used.code == 0 and "break-glass #1 recorded" in used.out and "no webhook configured" in used.out, used
    reviews = cli.json("reviews")
    assert [(r["id"], r["state"], r["actor"]) for r in reviews] == [(1, "open", "kim-oncall")]
    own = cli("review", "1", *key("kim-oncall"), "--notes", "fine")
    assert own.code == 2 and "cannot review their own use" in own.flat_err, own
    done = cli("review", "1", *key("cab-chair"), "--notes", "outage fix confirmed")
    assert done.code == 0, done
    assert cli.json("reviews")[0]["state"] == "done"
    assert cli.json("approvals")[0]["blocked_by"] is None  # break-glass: approvals bypassed


def test_a_secret_committed_in_the_release_file_is_denied(cli: Cli, example: Path, tmp_path: Path) -> None:
    text = (example / "releases" / "1-scheduling-2.0.0.yaml").read_text()
    artifact = yaml.safe_load(text)["services"]["scheduling-api"]["artifact"]
    text = text.replace(artifact, str((example / "releases" / artifact).resolve()))
    leaked = tmp_path / "leaked.yaml"
    # AWS's documented example key: a synthetic secret, pasted into the description
    doc = yaml.safe_load(text)
    doc["description"] = "deploy with key AKIAIOSFODNN7EXAMPLE"
    leaked.write_text(yaml.safe_dump(doc))
    denied = cli("policy", "eval", leaked, "--estate", example / "estate.yaml", "--output", "json")
    assert denied.code == 1, denied
    decisions = json.loads(denied.out)
    for env in ("staging", "prod"):
        [msg] = [m for m in decisions[env]["deny"] if "committed" in m]
        assert "leaked.yaml line" in msg and "AKIA" not in msg


def test_keys_init_rotate_list(cli: Cli) -> None:
    first = cli("keys", "init")
    assert first.code == 0 and "current (signs)" in first.out, first
    again = cli("keys", "init")
    assert again.code == 2 and "a signing key already exists" in again.flat_err, again
    rotated = cli("keys", "rotate")
    assert rotated.code == 0 and rotated.out.count("retired (verifies old evidence only)") == 1, rotated
    listed = cli("keys", "list")
    assert listed.code == 0 and listed.out.count("current (signs)") == 1 and "retired" in listed.out, listed
    assert oct((cli.home / "keys" / "signing.pem").stat().st_mode & 0o777) == "0o600"
