"""DSSE: PAE against the spec's vectors, sign/verify, and tampering that must fail closed."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from primum.adapters.evidence.keys import Keyring, SigningKey
from primum.core.evidence.dsse import (
    PAYLOAD_TYPE_IN_TOTO,
    Envelope,
    EnvelopeFormatError,
    Signature,
    VerificationError,
    pae,
    sign,
    verify,
)

# --- DSSE protocol.md "Test Vectors" (secure-systems-lab/dsse, v1.0.0) ------------------------

SPEC_PAYLOAD_TYPE = "http://example.com/HelloWorld"
SPEC_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
# ECDSA P-256 / SHA-256, raw r||s; the spec's public key and its example envelope's signature.
SPEC_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
SPEC_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
SPEC_ENVELOPE = {
    "payload": "aGVsbG8gd29ybGQ=",
    "payloadType": "http://example.com/HelloWorld",
    "signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="}],
}

# --- Ed25519 vectors (secure-systems-lab/dsse testvectors/vectors.json); keys A and B are the
# RFC 8032 section 7.1 TEST 1 and TEST 2 keys. Ed25519 is deterministic, so our own signatures
# must equal these byte for byte.
SEED_A = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
SEED_B = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
PUBLIC_A = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
STATEMENT_B64 = "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ=="
SIG_A = "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA=="
SIG_B = "c1+67/aT0yqEpwx8PsVY3MLHsj9D0CZ014/Fv/QlG59P+9CobUZ7xECJ/V3USG0Ob9CiE5LjReEZUzNF2l7eBw=="
PAE_VECTORS = [
    ("application/vnd.in-toto+json", base64.b64decode(STATEMENT_B64),
     "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203433207b225f74797065"
     "223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d"),
    ("application/vnd.in-toto+json", b"\xfb\xff\xbf>?",
     "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203520fbffbf3e3f"),
    # LEN(type) counts UTF-8 bytes: 29, not the 28 characters.
    ("application/vnd.exämple+json", base64.b64decode(STATEMENT_B64),
     "445353457631203239206170706c69636174696f6e2f766e642e6578c3a46d706c652b6a736f6e203433207b225f74797065"
     "223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d"),
    # An empty body still ends with a space.
    ("application/vnd.in-toto+json", b"",
     "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203020"),
    ("", base64.b64decode(STATEMENT_B64),
     "445353457631203020203433207b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d65"
     "6e742f7631227d"),
]


def vector_key(seed: str) -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed)))


def vector_keys() -> dict[str, Ed25519PublicKey]:
    return {"A": vector_key(SEED_A).public_key, "B": vector_key(SEED_B).public_key}


def vector_envelope(*sigs: tuple[str | None, str], payload_type: str = PAYLOAD_TYPE_IN_TOTO,
                    payload: str = STATEMENT_B64) -> dict[str, object]:
    signatures = [{"sig": sig} if keyid is None else {"keyid": keyid, "sig": sig} for keyid, sig in sigs]
    return {"payload": payload, "payloadType": payload_type, "signatures": signatures}


def test_pae_matches_the_spec_example() -> None:
    assert pae(SPEC_PAYLOAD_TYPE, b"hello world") == SPEC_PAE


def test_spec_example_signature_verifies_over_our_pae() -> None:
    # The spec's example envelope is ECDSA; checking its signature over our PAE proves the encoding.
    public = ec.EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, ec.SECP256R1()).public_key()
    env = Envelope.from_dict(SPEC_ENVELOPE)
    raw = env.signatures[0].sig
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, pae(env.payload_type, env.payload), ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(("payload_type", "payload", "expected_hex"), PAE_VECTORS)
def test_pae_vectors(payload_type: str, payload: bytes, expected_hex: str) -> None:
    assert pae(payload_type, payload).hex() == expected_hex


def test_ed25519_signature_matches_the_vector_byte_for_byte() -> None:
    key = vector_key(SEED_A)
    assert key.public_key.public_bytes_raw().hex() == PUBLIC_A
    env = sign(base64.b64decode(STATEMENT_B64), PAYLOAD_TYPE_IN_TOTO, key)
    assert base64.b64encode(env.signatures[0].sig).decode() == SIG_A
    assert env.to_dict()["payload"] == STATEMENT_B64


@pytest.mark.parametrize(("envelope", "keys", "threshold", "accept"), [
    pytest.param(vector_envelope(("A", SIG_A)), ["A"], 1, True, id="single-signature"),
    pytest.param(vector_envelope(("A", "P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWc"
                                       "CmX5twLrAw=="), payload="-_-_Pj8="), ["A"], 1, True, id="url-safe-base64"),
    pytest.param(vector_envelope(("A", SIG_A), payload_type="application/vnd.example.other+json"), ["A"], 1, False,
                 id="payload-type-swapped"),
    pytest.param(vector_envelope(("A", SIG_A), ("B", SIG_B)), ["A", "B"], 2, True, id="threshold-two-distinct-keys"),
    pytest.param(vector_envelope(("A", SIG_A), ("A", SIG_A)), ["A", "B"], 2, False, id="threshold-two-one-key-twice"),
    pytest.param(vector_envelope((None, SIG_A), (None, SIG_B)), ["A", "B"], 2, True, id="threshold-two-no-keyids"),
    pytest.param(vector_envelope(("A", SIG_A)), ["B"], 1, False, id="untrusted-key"),
])
def test_verification_vectors(envelope: dict[str, object], keys: list[str], threshold: int, accept: bool) -> None:
    trusted = {k: v for k, v in vector_keys().items() if k in keys}
    payload_type = str(envelope["payloadType"])
    if payload_type != PAYLOAD_TYPE_IN_TOTO:
        # The verifier supports only in-toto; the type the signature covers was changed.
        with pytest.raises(VerificationError):
            verify(envelope, trusted, payload_type, threshold)
        return
    if accept:
        assert verify(envelope, trusted, PAYLOAD_TYPE_IN_TOTO, threshold) == base64.urlsafe_b64decode(
            str(envelope["payload"]))
    else:
        with pytest.raises(VerificationError):
            verify(envelope, trusted, PAYLOAD_TYPE_IN_TOTO, threshold)


def test_empty_payload_type_is_never_supported() -> None:
    sig = "iC3q/+3Rm0+lpAJRueDmDh15PnwCfxKmS0NAfKsbv+zgulXQC/WM9trc+j1XEqlwDIg/vf/uNfebeD6sxInrDg=="
    env = vector_envelope(("A", sig), payload_type="")  # validly signed, yet meaningless
    with pytest.raises(VerificationError, match="payload type"):
        verify(env, vector_keys())
    with pytest.raises(VerificationError, match="payload type is empty"):
        verify(env, vector_keys(), payload_type="")


# --- round trip and tampering ------------------------------------------------------------------

PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1","subject":[]}'


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


def test_round_trip_through_json(keyring: Keyring) -> None:
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current)
    data = json.loads(env.to_json())
    assert set(data) == {"payloadType", "payload", "signatures"}
    assert data["signatures"] == [{"keyid": keyring.current.keyid, "sig": base64.b64encode(env.signatures[0].sig)
                                   .decode()}]
    assert Envelope.from_json(env.to_json()) == env
    assert verify(env.to_json(), keyring) == PAYLOAD
    assert verify(data, keyring) == PAYLOAD


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def test_payload_byte_flip_fails(keyring: Keyring) -> None:
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current)
    tampered = Envelope(env.payload_type, flip(env.payload, 3), env.signatures)
    with pytest.raises(VerificationError, match="does not verify"):
        verify(tampered, keyring)


def test_payload_type_change_fails_even_when_the_verifier_expects_it(keyring: Keyring) -> None:
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current)
    other = "application/vnd.in-toto.provenance+json"
    tampered = Envelope(other, env.payload, env.signatures)
    with pytest.raises(VerificationError, match="payload type"):
        verify(tampered, keyring)
    with pytest.raises(VerificationError, match="does not verify"):
        verify(tampered, keyring, payload_type=other)


def test_signature_swapped_from_another_envelope_fails(keyring: Keyring) -> None:
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current)
    other = sign(PAYLOAD + b" ", PAYLOAD_TYPE_IN_TOTO, keyring.current)
    with pytest.raises(VerificationError):
        verify(Envelope(env.payload_type, env.payload, other.signatures), keyring)


def test_keyid_changed_to_unknown_or_other_key_fails(keyring: Keyring) -> None:
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current)
    sig = env.signatures[0].sig
    with pytest.raises(VerificationError, match="unknown key id"):
        verify(Envelope(env.payload_type, env.payload, (Signature("f" * 64, sig),)), keyring)
    other = SigningKey.generate()
    both = Keyring(keyring.current, [other.public_key])
    with pytest.raises(VerificationError, match="does not verify"):
        verify(Envelope(env.payload_type, env.payload, (Signature(other.keyid, sig),)), both)


def test_signature_by_an_untrusted_key_fails(keyring: Keyring) -> None:
    stranger = SigningKey.generate()
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, stranger)
    with pytest.raises(VerificationError, match="unknown key id"):
        verify(env, keyring)
    anonymous = Envelope(env.payload_type, env.payload, (Signature("", env.signatures[0].sig),))
    with pytest.raises(VerificationError, match="does not verify"):
        verify(anonymous, keyring)


def test_truncated_signature_fails(keyring: Keyring) -> None:
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current)
    short = Signature(env.signatures[0].keyid, env.signatures[0].sig[:-1])
    with pytest.raises(VerificationError):
        verify(Envelope(env.payload_type, env.payload, (short,)), keyring)


def test_no_signatures_and_zero_threshold_are_refused(keyring: Keyring) -> None:
    with pytest.raises(VerificationError, match="no signature"):
        verify(Envelope(PAYLOAD_TYPE_IN_TOTO, PAYLOAD, ()), keyring)
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current)
    with pytest.raises(ValueError, match="threshold"):
        verify(env, keyring, threshold=0)


def test_one_good_signature_is_enough_next_to_an_unknown_one(keyring: Keyring) -> None:
    env = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current)
    extra = Signature("0" * 64, b"\x00" * 64)
    assert verify(Envelope(env.payload_type, env.payload, (extra, *env.signatures)), keyring) == PAYLOAD


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(payload="not base64!"), "envelope.payload: not valid base64"),
    (lambda d: d.update(payload=d["payload"][:-1]), "envelope.payload: not valid base64"),
    (lambda d: d.update(payload=d["payload"] + "\n"), "envelope.payload: not valid base64"),
    (lambda d: d["signatures"][0].update(sig="%%%"), r"envelope.signatures\[0\].sig: not valid base64"),
    (lambda d: d["signatures"][0].update(sig=d["signatures"][0]["sig"].replace("=", "")), "not valid base64"),
    (lambda d: d.update(payload="aGVsbG8gd29ybGR="), "non-canonical base64"),
    (lambda d: d.update(payload="ab+_"), "mixes"),
    (lambda d: d.update(payload=None), "envelope.payload: expected a base64 string"),
    (lambda d: d.update(payloadType=7), "envelope.payloadType: expected a string"),
    (lambda d: d.update(signatures=[]), "envelope.signatures: expected a non-empty list"),
    (lambda d: d["signatures"][0].update(keyid=5), r"envelope.signatures\[0\].keyid: expected a string"),
    (lambda d: d.update(extra=1), "unknown field"),
    (lambda d: d.pop("payloadType"), "envelope.payloadType"),
])
def test_malformed_envelopes_fail_closed(keyring: Keyring, mutate: object, message: str) -> None:
    data = sign(PAYLOAD, PAYLOAD_TYPE_IN_TOTO, keyring.current).to_dict()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(EnvelopeFormatError, match=message):
        verify(data, keyring)


def test_bad_json_fails_closed(keyring: Keyring) -> None:
    with pytest.raises(EnvelopeFormatError, match="not valid JSON"):
        verify(b"{not json", keyring)
    with pytest.raises(EnvelopeFormatError, match="JSON object"):
        verify(b"[]", keyring)


def test_sign_refuses_an_empty_payload_type(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="payload_type"):
        sign(PAYLOAD, "", keyring.current)


_KEYRING = Keyring.generate()


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_single_byte_change_in_the_payload_fails(payload: bytes, data: st.DataObject) -> None:
    env = sign(payload, PAYLOAD_TYPE_IN_TOTO, _KEYRING.current)
    assert verify(env, _KEYRING) == payload
    index = data.draw(st.integers(0, len(payload) - 1), label="index")
    delta = data.draw(st.integers(1, 255), label="xor")
    changed = payload[:index] + bytes([payload[index] ^ delta]) + payload[index + 1:]
    with pytest.raises(VerificationError):
        verify(Envelope(env.payload_type, changed, env.signatures), _KEYRING)
    with pytest.raises(VerificationError):
        verify(Envelope(env.payload_type, changed, env.signatures).to_json(), _KEYRING)
