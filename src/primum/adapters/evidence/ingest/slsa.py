"""SLSA provenance v1, as a bare Statement, a DSSE envelope or a Sigstore bundle -> a provenance statement.

The artifact digest must be one of the provenance's subjects. A DSSE signature is checked only when
``trusted_keys`` (Ed25519 public keys) are given; the summary says ``verified`` or ``unverified``,
and a signature that does not verify under the given keys is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from primum.adapters.evidence.ingest.base import Format, IngestError, Source, TrustedKeys, parse_json, required_field
from primum.adapters.evidence.keys import key_id
from primum.core.evidence import statements as st
from primum.core.evidence.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, EnvelopeFormatError, Signature, VerificationError
from primum.core.evidence.dsse import verify as dsse_verify

_SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle"


def detect(doc: dict[str, Any]) -> bool:
    """An in-toto statement, a Sigstore bundle or a bare DSSE envelope (another predicate is refused by name)."""
    statement_type = doc.get("_type")
    if isinstance(statement_type, str) and statement_type.startswith("https://in-toto.io/Statement/"):
        return True  # the only statements ingested; another predicate type is refused with its name
    if "dsseEnvelope" in doc:
        return True
    if isinstance(doc.get("mediaType"), str) and doc["mediaType"].startswith(_SIGSTORE_BUNDLE):
        return True
    return {"payload", "payloadType", "signatures"} <= set(doc)


def _trusted_key_map(keys: TrustedKeys) -> dict[str, Ed25519PublicKey]:
    """The trusted keys by primum key id: a key id map, a list of keys or a ``Keyring``."""
    if isinstance(keys, Mapping):
        values: Iterable[Ed25519PublicKey] = keys.values()
    elif hasattr(keys, "public_keys"):
        values = keys.public_keys().values()
    else:
        values = keys
    return {key_id(k): k for k in values}


def ingest(src: Source) -> tuple[st.Statement, dict[str, Any]]:
    """A provenance statement about the artifact, after checking the signature (with keys) and the subject."""
    path, doc, subject, sha256, trusted_keys = src.path, src.doc, src.subject, src.artifact_sha256, src.trusted_keys
    fix_stmt = "give CI's SLSA provenance v1 (a Statement, a DSSE envelope or a Sigstore bundle)"
    signature = "unverified"
    envelope_doc: Any = None
    if isinstance(doc, dict) and "dsseEnvelope" in doc:
        envelope_doc = doc["dsseEnvelope"]
    elif isinstance(doc, dict) and "payloadType" in doc:
        envelope_doc = doc
    if envelope_doc is not None:
        try:
            envelope = Envelope.from_dict(envelope_doc)
        except EnvelopeFormatError as exc:
            raise IngestError(path, f"not a valid DSSE envelope: {exc}", fix_stmt, field="dsseEnvelope") from exc
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
            raise IngestError(path, f"payload type {envelope.payload_type!r} is not {PAYLOAD_TYPE_IN_TOTO!r}",
                              fix_stmt, field="payloadType")
        if trusted_keys is not None:
            # Foreign key ids follow the signer's own scheme (or are empty): they are hints only, so
            # every trusted key is tried; what counts is the key the signature verifies under.
            unhinted = Envelope(envelope.payload_type, envelope.payload,
                                tuple(Signature("", s.sig) for s in envelope.signatures))
            keys = _trusted_key_map(trusted_keys)
            if not keys:
                raise IngestError(path, "no trusted key was given to verify the signature",
                                  "pass CI's Ed25519 public key, or none to ingest the provenance unverified")
            try:
                dsse_verify(unhinted, keys, PAYLOAD_TYPE_IN_TOTO)
            except VerificationError as exc:
                raise IngestError(path, f"the DSSE signature does not verify under the trusted keys ({exc})",
                                  "check that the file is CI's own output and that the trusted key is CI's "
                                  "signing key", field="signatures") from exc
            signature = "verified"
        try:
            payload = envelope.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(path, "the DSSE payload is not UTF-8 JSON", fix_stmt, field="payload") from exc
        doc = parse_json(path, payload)
    if not isinstance(doc, dict) or doc.get("_type") != st.STATEMENT_TYPE:
        raise IngestError(path, f"not an in-toto Statement v1 (_type must be {st.STATEMENT_TYPE})", fix_stmt,
                          field="_type")
    if doc.get("predicateType") != st.SLSA_PROVENANCE_V1:
        raise IngestError(path, f"predicateType is {doc.get('predicateType')!r}, not {st.SLSA_PROVENANCE_V1}",
                          "give SLSA provenance v1 (older v0.2 provenance is not ingested; upgrade the generator)",
                          field="predicateType")
    subjects = required_field(path, doc, "subject", list, "must be a list of subjects", fix_stmt)
    covered = {s["digest"]["sha256"].lower() for s in subjects
               if isinstance(s, dict) and isinstance(s.get("digest"), dict)
               and isinstance(s["digest"].get("sha256"), str)}
    if sha256 not in covered:
        raise IngestError(path, f"provenance in {path} does not cover sha256:{sha256}",
                          "give the provenance of this artifact's build, or check the artifact's digest",
                          field="subject")
    predicate = required_field(path, doc, "predicate", dict, "must be an object", fix_stmt)
    try:
        stmt = st.provenance_statement([dict(subject)], predicate)
    except st.StatementError as exc:
        field = str(exc).split(":", 1)[0]
        raise IngestError(path, str(exc), "give complete SLSA provenance v1 (see https://slsa.dev/provenance/v1)",
                          field="predicate." + field.removeprefix("provenance.")) from exc
    summary = {
        "builder": predicate["runDetails"]["builder"]["id"],
        "build_type": predicate["buildDefinition"]["buildType"],
        "signature": signature,
    }
    return stmt, summary



FORMAT = Format(name="slsa", syntax="json", slot="provenance", detect=detect, ingest=ingest, rank=10)
