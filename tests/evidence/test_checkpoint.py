"""Signed notes and checkpoints: Go sumdb/note vectors, real sum.golang.org checkpoints, round trips, rejection."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from primum.core.evidence.checkpoint import (
    Checkpoint,
    CheckpointError,
    InvalidSignatureError,
    KeyFormatError,
    MalformedNoteError,
    NoteSigner,
    UnverifiedNoteError,
    VerifierKey,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint_body,
    sign_checkpoint,
    sign_note,
)
from primum.core.evidence.tlog import CompactRange, SignedSize, leaf_hash, verify_log

# --- golang.org/x/mod/sumdb/note test vectors (note_test.go) -------------------------------------

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

# --- Real checkpoints signed by sum.golang.org (the Go checksum database) ------------------------
# Its verifier key is compiled into the go command; the notes were published by the log and are
# quoted in public repositories (e.g. the sigstore/witness test suites and Go tooling write-ups).
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_ORIGIN = "go.sum database tree"
SUMDB_CHECKPOINTS = [
    (
        6476701,
        "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=",
        "— sum.golang.org "
        "Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n",
    ),
    (
        3935567,
        "SapHtgdNCeF00Cx8kqztePV24kgzNg++Xovae42HAMw=",
        "— sum.golang.org "
        "Az3grsm7Wm4CVNR1RHq9BFnu9jzcRlU2uw7lr0gfUWgO6+rqPNjT+fUTl9gH0NRTgdwW9nItuQSMbhSaLCsk8YeYSAs=\n",
    ),
    (
        # Cosigned by a witness whose key we do not know: that signature must be ignored.
        15067302,
        "gJyioq6dwR9n+NjEWORfYmH+ubeYm3kH42BBQ0bTpYI=",
        "— sum.golang.org "
        "Az3grp1rvWOs5NKlr/xR4GLN/CDyzzakmt1o61uSxYKpK1SerqOP2ClbX/peKUZjYnyomH5Xz7GZG3TpB7OeKn4E2ww=\n"
        "— test.example.com "
        "qTGhC/xIPQ0AXKHK6Y+9ypRfuvMZWPjRXM8NiOg5M1WREn07VQXyuIXM3NRNav3ieVFLUqDRK77PWDmL6w8w84UqeAw=\n",
    ),
]


def test_go_signer_key_signs_the_reference_note_byte_for_byte() -> None:
    signer = NoteSigner.parse(PETER_SKEY)
    assert signer.key_id == 0xC74F20A3
    assert signer.verifier.encode() == PETER_VKEY
    assert sign_note(TEXT, [signer]) == TEXT + "\n" + PETER_SIG


def test_go_verifier_keys_parse_and_reencode() -> None:
    for vkey, kid in [(PETER_VKEY, 0xC74F20A3), (ENOCH_VKEY, 0xAF0CFE78), (SUMDB_VKEY, 0x033DE0AE)]:
        key = VerifierKey.parse(vkey)
        assert key.key_id == kid
        assert key.encode() == vkey == str(key)


def test_key_id_is_the_c2sp_ed25519_construction() -> None:
    key = VerifierKey.parse(PETER_VKEY)
    digest = hashlib.sha256(b"PeterNeumann" + b"\n" + b"\x01" + key.public_key).digest()
    assert key_id("PeterNeumann", key.public_key) == int.from_bytes(digest[:4], "big") == 0xC74F20A3


def test_open_reference_note_with_one_known_key() -> None:
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [VerifierKey.parse(PETER_VKEY)])
    assert note.text == TEXT
    assert [(s.name, s.key_id) for s in note.signatures] == [("PeterNeumann", 0xC74F20A3)]
    assert [(s.name, s.key_id) for s in note.unverified] == [("EnochRoot", 0xAF0CFE78)]


def test_open_reference_note_with_both_keys() -> None:
    keys = [VerifierKey.parse(PETER_VKEY), VerifierKey.parse(ENOCH_VKEY)]
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), keys)
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    assert note.unverified == ()


def test_note_without_a_known_signature_is_rejected() -> None:
    with pytest.raises(UnverifiedNoteError, match="PeterNeumann\\+c74f20a3"):
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])


def test_a_known_keys_bad_signature_rejects_the_note() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidSignatureError, match="PeterNeumann\\+c74f20a3"):
        open_note(TEXT + "\n" + bad, [VerifierKey.parse(PETER_VKEY)])


def test_duplicate_signatures_are_collapsed() -> None:
    note = open_note(TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG, [VerifierKey.parse(PETER_VKEY)])
    assert len(note.signatures) == 1
    assert len(note.unverified) == 1


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "— Bad "
        "Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
        TEXT + "\r\n" + PETER_SIG,
    ],
)
def test_malformed_notes_are_rejected(message: str) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(message, [VerifierKey.parse(PETER_VKEY)])


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(MalformedNoteError):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [VerifierKey.parse(PETER_VKEY)])


def test_every_mangled_verifier_key_is_rejected() -> None:
    """TestNewVerifier: every proper substring and every one-byte change of a vkey fails to parse."""
    b = PETER_VKEY
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if (i, j) != (0, len(b)):
                with pytest.raises(KeyFormatError):
                    VerifierKey.parse(b[i:j])
    for i in range(len(b)):
        with pytest.raises(KeyFormatError):
            VerifierKey.parse(b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :])
    with pytest.raises(KeyFormatError):  # wrong length key, with adjusted key hash
        VerifierKey.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(KeyFormatError):  # unknown algorithm, with adjusted key hash
        VerifierKey.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_every_mangled_signer_key_is_rejected() -> None:
    b = PETER_SKEY
    for i in range(len(b)):
        with pytest.raises(KeyFormatError):
            NoteSigner.parse(b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :])
        with pytest.raises(KeyFormatError):
            NoteSigner.parse(b[:i])


# --- Checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "root_b64", "sigs"), SUMDB_CHECKPOINTS)
def test_real_sum_golang_org_checkpoints_verify(size: int, root_b64: str, sigs: str) -> None:
    text = f"{SUMDB_ORIGIN}\n{size}\n{root_b64}\n\n{sigs}"
    cp = open_checkpoint(text, [SUMDB_VKEY], origin=SUMDB_ORIGIN)
    assert (cp.origin, cp.size, cp.root_hash) == (SUMDB_ORIGIN, size, base64.b64decode(root_b64))
    assert cp.key_ids == ("sum.golang.org+033de0ae",)
    with pytest.raises(InvalidSignatureError):  # one digit of the size changed
        open_checkpoint(text.replace(str(size), str(size + 1), 1), [SUMDB_VKEY])


def test_c2sp_example_checkpoint_body_parses() -> None:
    cp = parse_checkpoint_body("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")


ORIGIN = "primum.example/evidence"


def _checkpoint(entries: list[bytes], extensions: tuple[str, ...] = ()) -> Checkpoint:
    tree = CompactRange()
    for e in entries:
        tree.append_entry(e)
    return Checkpoint(ORIGIN, tree.size, tree.root(), extensions)


def test_sign_and_open_round_trip_with_key_id_on_every_signature_line() -> None:
    signer = NoteSigner.generate(ORIGIN)
    cp = _checkpoint([b"a", b"b", b"c"], extensions=("timestamp 1700000000",))
    text = sign_checkpoint(cp, [signer])
    body, _, sigs = text.rpartition("\n\n")
    assert body + "\n" == cp.body()
    assert cp.body().splitlines()[:2] == [ORIGIN, "3"]
    for line in sigs.splitlines():
        raw = base64.b64decode(line.split(" ")[2])
        assert raw[:4] == signer.key_id.to_bytes(4, "big")
    opened = open_checkpoint(text, [signer.verifier], origin=ORIGIN)
    assert (opened.origin, opened.size, opened.root_hash, opened.extensions) == (
        cp.origin,
        cp.size,
        cp.root_hash,
        cp.extensions,
    )
    assert opened.key_ids == (f"{ORIGIN}+{signer.key_id:08x}",)


def test_signature_cross_checks_against_plain_ed25519() -> None:
    private = Ed25519PrivateKey.generate()
    signer = NoteSigner.from_private_key(ORIGIN, private)
    cp = _checkpoint([b"x"])
    line = sign_checkpoint(cp, [signer]).rpartition("\n\n")[2]
    raw = base64.b64decode(line.split(" ")[2])
    public = private.public_key()
    public.verify(raw[4:], cp.body().encode())  # raises if not a plain Ed25519 signature over the body
    pub_raw = signer.public_key
    assert Ed25519PublicKey.from_public_bytes(pub_raw) is not None
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub_raw).digest()[:4]
    assert raw[:4] == expected_id
    key_data = base64.b64encode(b"\x01" + pub_raw).decode()
    assert signer.verifier.encode() == f"{ORIGIN}+{expected_id.hex()}+{key_data}"


def test_any_change_to_a_signed_checkpoint_is_rejected() -> None:
    signer = NoteSigner.generate(ORIGIN)
    cp = _checkpoint([b"a", b"b", b"c"])
    text = sign_checkpoint(cp, [signer])
    other_root = base64.b64encode(_checkpoint([b"a", b"b", b"X"]).root_hash).decode()
    for forged in [
        text.replace("\n3\n", "\n4\n", 1),
        text.replace(base64.b64encode(cp.root_hash).decode(), other_root, 1),
        text.replace(ORIGIN + "\n", "evil.example/log\n", 1),
    ]:
        with pytest.raises(InvalidSignatureError):
            open_checkpoint(forged, [signer.verifier])


def test_unknown_keys_and_wrong_origin_are_rejected() -> None:
    signer, stranger = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    text = sign_checkpoint(_checkpoint([b"a"]), [signer])
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(text, [stranger.verifier])
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(text, [])
    with pytest.raises(CheckpointError, match="origin"):
        open_checkpoint(text, [signer.verifier], origin="primum.example/other")


def test_key_rotation_old_checkpoints_still_open() -> None:
    old, new = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    before = sign_checkpoint(_checkpoint([b"a"]), [old])
    during = sign_checkpoint(_checkpoint([b"a", b"b"]), [old, new])  # overlap: signed by both
    after = sign_checkpoint(_checkpoint([b"a", b"b", b"c"]), [new])
    keyring: list[VerifierKey | str] = [old.verifier.encode(), new.verifier]
    assert open_checkpoint(before, keyring).key_ids == (f"{ORIGIN}+{old.key_id:08x}",)
    assert len(open_checkpoint(during, keyring).signatures) == 2
    assert open_checkpoint(during, [new.verifier]).size == 2  # the old signature is just unknown
    assert open_checkpoint(after, keyring).size == 3
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(after, [old.verifier])


def test_a_signer_can_wrap_any_ed25519_signing_function() -> None:
    private = Ed25519PrivateKey.generate()
    via_key = NoteSigner.from_private_key(ORIGIN, private)
    via_fn = NoteSigner(ORIGIN, via_key.public_key, private.sign)
    cp = _checkpoint([b"a"])
    assert sign_checkpoint(cp, [via_fn]) == sign_checkpoint(cp, [via_key])  # Ed25519 is deterministic


ROOT_B64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n3\n",  # too few lines
        f"\n3\n{ROOT_B64}\n",  # empty origin
        f"{ORIGIN}\n03\n{ROOT_B64}\n",  # leading zero
        f"{ORIGIN}\n-3\n{ROOT_B64}\n",
        f"{ORIGIN}\n3.0\n{ROOT_B64}\n",
        f"{ORIGIN}\n3\n{base64.b64encode(bytes(31)).decode()}\n",  # short root
        f"{ORIGIN}\n3\n{ROOT_B64.rstrip('=')}\n",  # missing padding
        f"{ORIGIN}\n3\n{ROOT_B64}\n\next\n",  # empty extension line (would also split the note)
        f"{ORIGIN}\n3\n{ROOT_B64}",  # no final newline
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(body: str) -> None:
    with pytest.raises(MalformedNoteError):
        parse_checkpoint_body(body)


def test_a_well_signed_note_that_is_not_a_checkpoint_is_rejected() -> None:
    signer = NoteSigner.generate(ORIGIN)
    with pytest.raises(MalformedNoteError):
        open_checkpoint(sign_note("just some text\n", [signer]), [signer.verifier])


@given(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF), min_size=1, max_size=30),
    st.integers(0, 2**64),
    st.binary(min_size=32, max_size=32),
    st.lists(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20), max_size=3
    ),
)
def test_checkpoint_body_round_trips(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint_body(cp.body()) == cp


def test_opened_checkpoint_drives_full_log_verification() -> None:
    signer = NoteSigner.generate(ORIGIN)
    entries = [f"envelope {i}".encode() for i in range(50)]
    text = sign_checkpoint(_checkpoint(entries), [signer])
    cp = open_checkpoint(text, [signer.verifier], origin=ORIGIN)
    leaves = [leaf_hash(e) for e in entries]
    assert verify_log(entries, leaves, cp).ok
    tampered = list(entries)
    tampered[17] = b"envelope 17 (edited)"
    result = verify_log(tampered, leaves, cp)
    assert result.fault is not None and result.fault.index == 17
    assert "17" in result.fault.reason
    assert not verify_log(entries, leaves, SignedSize(cp.size, bytes(32))).ok


def test_the_documented_example_checkpoint() -> None:
    """docs/EVIDENCE.md shows this exact checkpoint and verifier key; keep them true."""
    signer = NoteSigner.from_private_key(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    assert signer.verifier.encode() == "primum.example/evidence+74bb6085+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
    text = sign_checkpoint(_checkpoint([b"envelope 0", b"envelope 1", b"envelope 2"]), [signer])
    assert text == (
        "primum.example/evidence\n"
        "3\n"
        "o2UlJOnLNmA82+l1lNKre4RcdZB1efZpR1n671qnsTk=\n"
        "\n"
        "— primum.example/evidence "
        "dLtghWuqTypEPzMRiYhL7TGvMgxt4Kt9zmndK3+G4thzCSRb7eUk9mwvqYop5HWFvrIy19aJr1qKYxw+MnsTUaK0Rwg=\n"
    )
