"""Keys: key ids, rotation (old envelopes still verify, a retired key never signs), key files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from primum.adapters.evidence.keys import (
    SIGNING_KEY_FILE,
    KeyFileError,
    Keyring,
    NoSigningKeyError,
    RetiredKeyError,
    SigningKey,
    init_keyring,
    key_id,
    keys_dir,
    load_keyring,
    load_public_keyring,
    rotate_keyring,
    save_keyring,
)
from primum.core.evidence.dsse import PAYLOAD_TYPE_IN_TOTO, VerificationError, sign, verify
from primum.core.model.errors import InputError

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def test_key_id_is_the_sha256_of_the_raw_public_key() -> None:
    # RFC 8032 section 7.1 TEST 1
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert key_id(public) == hashlib.sha256(raw).hexdigest()
    assert SigningKey(Ed25519PrivateKey.from_private_bytes(seed)).keyid == key_id(public)


def test_rotation_keeps_old_envelopes_verifiable() -> None:
    keyring = Keyring.generate()
    first = keyring.current
    old = sign(b"before", PAYLOAD_TYPE_IN_TOTO, first)
    second = keyring.rotate()
    new = sign(b"after", PAYLOAD_TYPE_IN_TOTO, keyring.current)
    assert second is keyring.current and second.keyid != first.keyid
    assert old.signatures[0].keyid == first.keyid and new.signatures[0].keyid == second.keyid
    assert verify(old, keyring) == b"before"
    assert verify(new, keyring) == b"after"
    assert keyring.retired_keyids() == [first.keyid]
    assert keyring.keyids() == sorted([first.keyid, second.keyid])


def test_a_retired_key_never_signs() -> None:
    keyring = Keyring.generate()
    first = keyring.current
    keyring.rotate()
    assert first.retired
    with pytest.raises(RetiredKeyError, match="retired"):
        first.sign(b"anything")
    with pytest.raises(RetiredKeyError):
        sign(b"anything", PAYLOAD_TYPE_IN_TOTO, first)
    with pytest.raises(RetiredKeyError):
        first.private_pem()
    with pytest.raises(RetiredKeyError):
        Keyring(first)


def test_a_key_from_another_keyring_does_not_verify() -> None:
    ours, theirs = Keyring.generate(), Keyring.generate()
    with pytest.raises(VerificationError):
        verify(sign(b"x", PAYLOAD_TYPE_IN_TOTO, theirs.current), ours)


def test_verification_only_keyring_verifies_but_cannot_sign() -> None:
    keyring = Keyring.generate()
    env = sign(b"x", PAYLOAD_TYPE_IN_TOTO, keyring.current)
    auditor = keyring.verification_only()
    assert not auditor.can_sign
    assert verify(env, auditor) == b"x"
    with pytest.raises(NoSigningKeyError):
        auditor.current  # noqa: B018


# --- files -------------------------------------------------------------------------------------


def test_keys_dir_follows_primum_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMUM_HOME", str(tmp_path))
    assert keys_dir() == tmp_path.resolve() / "keys"
    assert keys_dir(tmp_path / "other") == (tmp_path / "other").resolve() / "keys"


@posix_only
def test_init_writes_a_0600_private_key_and_public_keys(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    keyring = init_keyring(directory)
    private = directory / SIGNING_KEY_FILE
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert b"BEGIN PRIVATE KEY" in private.read_bytes()
    public = directory / "public" / f"{keyring.current.keyid}.pem"
    assert b"BEGIN PUBLIC KEY" in public.read_bytes()
    loaded = load_keyring(directory)
    assert loaded.current.keyid == keyring.current.keyid
    with pytest.raises(KeyFileError, match="already exists"):
        init_keyring(directory)


@posix_only
def test_private_key_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        init_keyring(tmp_path / "keys")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "keys" / SIGNING_KEY_FILE).stat().st_mode) == 0o600


def test_rotation_on_disk_old_entries_still_verify(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    first = init_keyring(directory)
    old = sign(b"entry 1", PAYLOAD_TYPE_IN_TOTO, first.current)
    old_private = (directory / SIGNING_KEY_FILE).read_bytes()

    rotated = rotate_keyring(directory)
    new = sign(b"entry 2", PAYLOAD_TYPE_IN_TOTO, rotated.current)
    assert rotated.current.keyid != first.current.keyid
    assert (directory / SIGNING_KEY_FILE).read_bytes() != old_private  # the old private key is gone

    for keyring in (load_keyring(directory), load_public_keyring(directory)):
        assert verify(old, keyring) == b"entry 1"
        assert verify(new, keyring) == b"entry 2"
        assert keyring.retired_keyids() == ([first.current.keyid] if keyring.can_sign
                                            else sorted([first.current.keyid, rotated.current.keyid]))
    assert load_keyring(directory).current.keyid == rotated.current.keyid
    assert sorted(p.stem for p in (directory / "public").glob("*.pem")) == sorted(
        [first.current.keyid, rotated.current.keyid])


def test_missing_private_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no signing key") as caught:
        load_keyring(tmp_path / "keys")
    assert isinstance(caught.value, InputError)
    assert str(tmp_path / "keys" / SIGNING_KEY_FILE) in str(caught.value)
    assert "fix:" in str(caught.value)


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_private_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "keys"
    init_keyring(directory)
    os.chmod(directory / SIGNING_KEY_FILE, mode)
    with pytest.raises(KeyFileError, match=f"permissions {mode:04o}") as caught:
        load_keyring(directory)
    assert f"chmod 600 {directory / SIGNING_KEY_FILE}" in str(caught.value)


def test_corrupt_private_key_is_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    init_keyring(directory)
    (directory / SIGNING_KEY_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    os.chmod(directory / SIGNING_KEY_FILE, 0o600)
    with pytest.raises(KeyFileError, match="not a readable unencrypted PEM private key"):
        load_keyring(directory)


def test_a_non_ed25519_private_key_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    init_keyring(directory)
    pem = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (directory / SIGNING_KEY_FILE).write_bytes(pem)
    with pytest.raises(KeyFileError, match="not an Ed25519 private key"):
        load_keyring(directory)


def test_corrupt_or_misnamed_public_key_is_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    keyring = init_keyring(directory)
    public = directory / "public" / f"{keyring.current.keyid}.pem"
    good = public.read_bytes()
    public.write_bytes(b"not a key")
    with pytest.raises(KeyFileError, match="not a readable PEM public key"):
        load_public_keyring(directory)
    public.unlink()
    (directory / "public" / f"{'0' * 64}.pem").write_bytes(good)
    with pytest.raises(KeyFileError, match="does not match the key's id"):
        load_public_keyring(directory)


def test_signing_key_without_its_public_key_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    keyring = init_keyring(directory)
    (directory / "public" / f"{keyring.current.keyid}.pem").unlink()
    with pytest.raises(KeyFileError, match="public key is missing"):
        load_keyring(directory)
    with pytest.raises(KeyFileError, match="no public keys"):
        load_public_keyring(directory)
    save_keyring(load_keyring_ignoring_public(directory), directory)
    assert load_keyring(directory).current.keyid == keyring.current.keyid


def load_keyring_ignoring_public(directory: Path) -> Keyring:
    key = serialization.load_pem_private_key((directory / SIGNING_KEY_FILE).read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return Keyring(SigningKey(key))
