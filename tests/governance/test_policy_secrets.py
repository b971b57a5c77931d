"""The committed-secret rule on real release files: a real commit SHA and real digests pass, a token denies.

Issue 12: every release with a real 40-hex ``source_commit`` was denied as "a Hex High Entropy String is
committed … rotate it". The release file, its artifacts and the estate are written here; the scan and the
baseline policy are the ones ``primum release apply`` and ``primum policy eval`` use.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from primum.adapters.policy import PolicyBundle, evaluate
from primum.app.releases import scan_for_secrets
from primum.core.model.estate import Estate
from primum.core.model.validate import load_release

COMMIT = hashlib.sha1(b"st elsewhere scheduling 1.4.2").hexdigest()
TOKEN = base64.b64encode(hashlib.sha512(b"a session signing key").digest()).decode()
NOW = 1_798_761_600.0


def _estate() -> Estate:
    return Estate.model_validate({
        "apiVersion": "primum/v1", "kind": "Estate", "name": "secret-rule",
        "environments": [{"name": "staging", "class": "nonprod"}, {"name": "prod", "class": "prod"}],
        "services": {"sched": {"owner": "team-sched", "tier": "business", "data_class": "pii"},
                     "labs": {"owner": "team-labs", "tier": "business", "data_class": "pii"}},
    })


def _release(tmp_path: Path, description: str = "Scheduling and lab results, June") -> Path:
    pins = ""
    for service in ("sched", "labs"):
        artifact = tmp_path / f"{service}.py"
        artifact.write_text(f"print('{service} 1.4.2')\n")
        pins += (f"  {service}:\n    artifact: {artifact.name}\n"
                 f"    digest: sha256:{hashlib.sha256(artifact.read_bytes()).hexdigest()}\n    version: 1.4.2\n")
    path = tmp_path / "release.yaml"
    path.write_text(f"apiVersion: primum/v1\nkind: Release\nid: rel-2024-06-01\ndescription: {description}\n"
                    f"ticket: CHG-1042\nsource_commit: {COMMIT}\nservices:\n{pins}")
    return path


def _committed_secret_denials(path: Path) -> dict[str, list[str]]:
    estate = _estate()
    loaded = load_release(path, estate)
    decisions = evaluate(estate, loaded.release, loaded.digest, bundle=PolicyBundle.load(), now=NOW,
                         checks={"previous_environment_passed": True}, secrets=scan_for_secrets([path]))
    return {env: [v["msg"] for v in d.violations if v.get("rule") == "committed-secret"]
            for env, d in decisions.items()}


def test_a_release_with_a_real_commit_sha_and_digests_is_not_denied_as_a_committed_secret(tmp_path: Path) -> None:
    assert _committed_secret_denials(_release(tmp_path)) == {"staging": [], "prod": []}


def test_a_token_in_the_description_is_still_denied_in_every_environment(tmp_path: Path) -> None:
    denials = _committed_secret_denials(_release(tmp_path, description=TOKEN))
    assert denials == {env: ["a Base64 High Entropy String is committed in "
                             f"{(tmp_path / 'release.yaml').as_posix()} line 4: remove it from the file and rotate it"]
                       for env in ("staging", "prod")}
