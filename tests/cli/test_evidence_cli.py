"""`primum evidence` end to end: a release run by a real controller process, its log verified, its audit
bundle exported and then verified by another process that has only the bundle and the public key
(a fresh PRIMUM_HOME, another working directory, no database, no key directory)."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

from primum.adapters.evidence.keys import Keyring
from tests.cli.test_cli import TERMINAL, Cli, write_noop_estate
from tests.cli.test_cli import cli as cli
from tests.cli.test_cli import controller as controller
from tests.controller.noop_estate import write_release


def auditor(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """`python -m primum ...` in a clean place: nothing of the operator's installation is reachable."""
    home = tmp_path / "auditor-home"
    where = tmp_path / "auditor"
    home.mkdir(exist_ok=True)
    where.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "PRIMUM_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "primum", *map(str, args)], cwd=where, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_release_bundle_verifies_elsewhere_with_only_the_public_key(cli: Cli, controller, tmp_path: Path) -> None:
    estate = write_noop_estate(tmp_path)
    release = write_release(tmp_path, "rel-ev", ["api", "web"], "2.0")
    assert cli("release", "apply", release, "--estate", estate, "--no-wait").code == 0
    ctl = controller()
    assert cli.wait_for("rel-ev", TERMINAL, timeout=40)["state"] == "promoted"
    assert ctl.stop() == 0

    log = cli("evidence", "verify")
    assert log.code == 0, log
    assert "verified" in log.out
    listed = cli.json("evidence", "list", "rel-ev")
    assert isinstance(listed, list)
    kinds = [row["kind"] for row in listed]
    for kind in ("submitted", "started", "item_started", "item_succeeded", "promoted"):
        assert kind in kinds, kinds

    pub = tmp_path / "auditor" / "primum-evidence.pem"
    pub.parent.mkdir()
    assert cli("keys", "export", "-o", pub).code == 0
    bundle = tmp_path / "auditor" / "rel-ev.tar.gz"
    exported = cli("evidence", "export", "rel-ev", "-o", bundle)
    assert exported.code == 0, exported

    ok = auditor(tmp_path, "evidence", "verify", bundle.name, "--key", pub.name)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verified" in ok.stdout and "rel-ev" in ok.stdout
    doc = json.loads(auditor(tmp_path, "evidence", "verify", bundle.name, "--key", pub.name, "-o", "json").stdout)
    assert doc["ok"] and doc["entries"] == len(listed)

    # the report is inside and is covered by the signed manifest
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        report = next(n for n in names if n.endswith("report.md"))
        text = tar.extractfile(report).read().decode()  # type: ignore[union-attr]
    assert "rel-ev" in text and "promoted" in text
    assert any(n.endswith("report.html") for n in names) and any(n.endswith("checkpoint.txt") for n in names)

    # a changed report, a wrong key: not verified, exit 1
    forged = tmp_path / "auditor" / "forged.tar.gz"
    with tarfile.open(bundle) as src, tarfile.open(forged, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == report and data is not None:
                data = data.replace(b"promoted", b"rolled_back")
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    bad = auditor(tmp_path, "evidence", "verify", forged.name, "--key", pub.name)
    assert bad.returncode == 1 and "report.md" in bad.stderr, bad.stderr
    other = tmp_path / "auditor" / "other.pem"
    from cryptography.hazmat.primitives import serialization
    other.write_bytes(Keyring.generate().current.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    wrong = auditor(tmp_path, "evidence", "verify", bundle.name, "--key", other.name)
    assert wrong.returncode == 1, wrong.stdout
    missing_key = auditor(tmp_path, "evidence", "verify", bundle.name)
    assert missing_key.returncode == 2 and "--key" in missing_key.stderr

    # tampering with the operator's log is named by `primum evidence verify`
    db = sqlite3.connect(cli.home / "primum.db")
    db.execute("UPDATE evidence_entries SET envelope = CAST(replace(CAST(envelope AS TEXT), 'a', 'b') AS BLOB) "
               "WHERE idx = 3")
    db.commit()
    db.close()
    broken = cli("evidence", "verify")
    assert broken.code == 1 and "entry 3" in broken.flat_err, broken


def test_legal_hold_and_purge_refuse_short_retention(cli: Cli, controller, tmp_path: Path, people) -> None:
    identities = tmp_path / "identities.yaml"
    identities.write_text(people.enrol(
        "groups: {authors: {roles: [release-author]}, rm: {roles: [release-manager]}, "
        "platform: {roles: [platform-admin]}, audit: {roles: [auditor]}}\n"
        "users: [{id: alice, groups: [authors]}, {id: rita, groups: [rm]}, {id: pat, groups: [platform]}, "
        "{id: audrey, groups: [audit]}]\n"))
    keys = {who: people.write_key(who, tmp_path / "keys") for who in ("alice", "rita", "pat", "audrey", "mallory")}
    estate = write_noop_estate(tmp_path, identities=identities)
    release = write_release(tmp_path, "rel-hold", ["api"], "2.1")
    assert cli("release", "apply", release, "--estate", estate, "--no-wait", "--key", keys["alice"]).code == 0
    at = ("--estate", estate)
    auditor_hold, stranger, unsigned, no_estate = cli.many(
        ("evidence", "hold", "rel-hold", "--reason", "matter LIT-2026-014", *at, "--key", keys["audrey"]),
        ("evidence", "hold", "rel-hold", "--reason", "matter LIT-2026-014", *at, "--key", keys["mallory"]),
        ("evidence", "hold", "rel-hold", "--reason", "matter LIT-2026-014", *at, "--key", tmp_path / "none.pem"),
        ("evidence", "hold", "rel-hold", "--reason", "matter LIT-2026-014", "--key", keys["rita"]))
    assert auditor_hold.code == 2 and "audrey may not evidence hold: it takes platform-admin or release-manager" \
        in auditor_hold.flat_err, auditor_hold
    assert stranger.code == 2 and "is not enrolled in the identities file" in stranger.flat_err, stranger
    assert unsigned.code == 2 and "no personal signing key" in unsigned.flat_err, unsigned
    assert no_estate.code == 2 and "estate file not found" in no_estate.flat_err, no_estate
    held = cli("evidence", "hold", "rel-hold", "--reason", "matter LIT-2026-014", *at, "--key", keys["rita"])
    assert held.code == 0, held
    short = cli("evidence", "purge", "--retention", "30d")
    assert short.code == 2 and "6 years" in short.flat_err, short
    dry = cli("evidence", "purge", "--retention", "0d", "--allow-short-retention", "--dry-run")
    assert dry.code == 0 and "would purge 0 entries" in dry.out, dry  # everything is held; a dry run needs no key
    rm_unhold, rm_purge = cli.many(("evidence", "unhold", "rel-hold", *at, "--key", keys["rita"]),
                                   ("evidence", "purge", "--retention", "0d", "--allow-short-retention", *at,
                                    "--key", keys["rita"]))
    assert rm_unhold.code == 2 and "rita may not evidence unhold: it takes platform-admin" in rm_unhold.flat_err
    assert rm_purge.code == 2 and "rita may not evidence purge: it takes platform-admin" in rm_purge.flat_err
    assert cli("evidence", "unhold", "rel-hold", *at, "--key", keys["pat"]).code == 0
    done = cli("evidence", "purge", "--retention", "0d", "--allow-short-retention", *at, "--key", keys["pat"])
    assert done.code == 0 and "purged" in done.out and "purged 0" not in done.out, done
    after = cli("evidence", "verify")
    assert after.code == 0 and "purged)" in after.out, after
    rows = cli.json("evidence", "list")
    assert isinstance(rows, list) and rows[-1]["kind"] == "purge"
