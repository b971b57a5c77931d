"""`primum evidence checkpoint` / `consistency` / `export --since` end to end: an auditor keeps a signed
checkpoint, and later checks (with only the public key) that the log they are shown extends it."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from pathlib import Path

from primum.core.evidence.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from primum.core.evidence.tlog import leaf_hash
from tests.cli.test_cli import TERMINAL, Cli, write_noop_estate
from tests.cli.test_cli import cli as cli
from tests.cli.test_cli import controller as controller
from tests.cli.test_evidence_cli import auditor
from tests.controller.noop_estate import write_release


def rebuilt(bundle: Path, out: Path, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    """The bundle with one member's bytes changed (and nothing re-signed)."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.endswith("/" + name) and data is not None:
                data = change(data)
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def test_an_auditor_checks_the_log_extends_the_checkpoint_they_kept(cli: Cli, controller, tmp_path: Path) -> None:
    estate = write_noop_estate(tmp_path)
    ctl = controller()
    assert cli("release", "apply", write_release(tmp_path, "rel-a", ["api"], "2.0"), "--estate", estate,
               "--no-wait").code == 0
    assert cli.wait_for("rel-a", TERMINAL, timeout=40)["state"] == "promoted"

    # the auditor keeps today's signed checkpoint
    old = tmp_path / "auditor" / "old.txt"
    old.parent.mkdir()
    kept = cli("evidence", "checkpoint", "-o", old)
    assert kept.code == 0, kept
    printed = cli("evidence", "checkpoint")
    assert printed.code == 0 and old.read_text() == printed.out  # exactly the stored note
    origin, size, _root = old.read_text().split("\n")[:3]
    old_size = int(size)
    assert origin.startswith("primum.local/evidence/") and f"tree size {old_size}" in kept.flat_out

    # the log grows
    assert cli("release", "apply", write_release(tmp_path, "rel-b", ["api"], "3.0"), "--estate", estate,
               "--no-wait").code == 0
    assert cli.wait_for("rel-b", TERMINAL, timeout=40)["state"] == "promoted"
    assert ctl.stop() == 0

    ok = cli("evidence", "consistency", old)
    assert ok.code == 0, ok
    assert "consistent" in ok.out and f"tree size {old_size}" in ok.out
    doc = cli.json("evidence", "consistency", old)
    assert isinstance(doc, dict) and doc["ok"] and doc["problem"] is None
    assert doc["old_size"] == old_size < doc["new_size"] and doc["proof"]
    pub = tmp_path / "auditor" / "primum-evidence.pem"
    assert cli("keys", "export", "-o", pub).code == 0
    assert cli("evidence", "consistency", old, "--key", pub).code == 0

    # bad input: exit 2, naming the file
    missing = cli("evidence", "consistency", tmp_path / "nope.txt")
    assert missing.code == 2 and "nope.txt" in missing.flat_err and "not found" in missing.flat_err, missing
    junk = tmp_path / "junk.txt"
    junk.write_text("not a checkpoint\n")
    unreadable = cli("evidence", "consistency", junk)
    assert unreadable.code == 2 and "junk.txt" in unreadable.flat_err, unreadable
    stranger = NoteSigner.generate(origin)
    forged = tmp_path / "forged.txt"
    forged.write_text(sign_checkpoint(Checkpoint(origin, old_size, b"\x00" * 32), [stranger]))
    unsigned = cli("evidence", "consistency", forged)
    assert unsigned.code == 2 and "not signed by a key you trust" in unsigned.flat_err, unsigned
    foreign = tmp_path / "foreign.txt"
    foreign.write_text(sign_checkpoint(Checkpoint("other.example/log", 3, b"\x00" * 32),
                                       [NoteSigner.generate("other.example/log")]))
    other_log = cli("evidence", "consistency", foreign)
    assert other_log.code == 2 and "not of this log" in other_log.flat_err, other_log
    assert cli("evidence", "export", "rel-b", "-o", tmp_path / "x.tar.gz", "--since", foreign).code == 2

    # the bundle carries the kept checkpoint and the proof; the auditor verifies it elsewhere
    bundle = tmp_path / "auditor" / "rel-b.tar.gz"
    exported = cli("evidence", "export", "rel-b", "-o", bundle, "--since", old)
    assert exported.code == 0, exported
    assert f"consistency proof from the checkpoint at size {old_size}" in exported.flat_out
    verified = auditor(tmp_path, "evidence", "verify", bundle.name, "--key", pub.name)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"extends the previous checkpoint at tree size {old_size}" in " ".join(verified.stdout.split())
    audit = json.loads(auditor(tmp_path, "evidence", "verify", bundle.name, "--key", pub.name, "-o", "json").stdout)
    assert audit["ok"] and audit["previous"]["tree_size"] == old_size
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        report = tar.extractfile(next(n for n in names if n.endswith("report.md"))).read().decode()  # type: ignore[union-attr]
    assert any(n.endswith("/previous-checkpoint.txt") for n in names)
    assert f"extends the checkpoint at size {old_size} you kept" in report

    def alter(data: bytes) -> bytes:
        proof = json.loads(data)
        proof["hashes"][0] = "00" * 32
        return json.dumps(proof).encode()

    altered = rebuilt(bundle, tmp_path / "auditor" / "altered.tar.gz", "consistency.json", alter)
    bad = auditor(tmp_path, "evidence", "verify", altered.name, "--key", pub.name)
    assert bad.returncode == 1 and "consistency.json" in bad.stderr, bad.stdout + bad.stderr

    # the operator's log is rewritten below the kept size: the proof no longer verifies
    junk_envelope = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'
    db = sqlite3.connect(cli.home / "primum.db")
    db.execute("UPDATE evidence_entries SET envelope = ?, leaf_hash = ? WHERE idx = 1",
               (junk_envelope, leaf_hash(junk_envelope)))
    db.commit()
    db.close()
    rewritten = cli("evidence", "consistency", old)
    assert rewritten.code == 1, rewritten
    assert (f"the log was rewritten: the current log does not extend the checkpoint at size {old_size}"
            in rewritten.flat_err), rewritten
    as_json = cli("evidence", "consistency", old, "-o", "json")
    assert as_json.code == 1 and json.loads(as_json.out)["ok"] is False
    refused = cli("evidence", "export", "rel-b", "-o", tmp_path / "y.tar.gz", "--since", old)
    assert refused.code == 2 and "rewritten" in refused.flat_err, refused
    assert not (tmp_path / "y.tar.gz").exists()
