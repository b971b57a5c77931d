"""A person's own key file: made 0600, refused when readable by others, missing or not Ed25519; an
OpenSSH ed25519 key works too."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from primum.adapters.evidence.keys import KeyFileError
from primum.adapters.evidence.personal import generate_personal_key, load_personal_key, public_line
from primum.core.governance.identities import key_id, parse_public_key


def test_a_generated_key_is_private_loads_back_and_prints_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "primum" / "key.pem"
    made = generate_personal_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_personal_key(path).keyid == made.keyid
    line = public_line(made.public_key, "alice")
    assert line.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5") and line.endswith(" alice")
    assert key_id(parse_public_key(line)) == made.keyid  # the enrolled line names the same key id
    with pytest.raises(KeyFileError, match="already exists"):
        generate_personal_key(path)


def test_a_bad_key_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as missing:
        load_personal_key(tmp_path / "none.pem")
    assert "primum keys personal init" in " ".join(missing.value.lines())
    path = tmp_path / "key.pem"
    generate_personal_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="let other users read your key"):
        load_personal_key(path)
    other = tmp_path / "ec.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(other, 0o600)
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        load_personal_key(other)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    os.chmod(junk, 0o600)
    with pytest.raises(KeyFileError, match="not a readable unencrypted private key"):
        load_personal_key(junk)


def test_an_openssh_ed25519_key_from_ssh_keygen_works(tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ssh-keygen is missing")
        pytest.skip("ssh-keygen is not installed")
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", str(path)], check=True)
    key = load_personal_key(path)
    assert key_id(parse_public_key((tmp_path / "id_ed25519.pub").read_text())) == key.keyid
