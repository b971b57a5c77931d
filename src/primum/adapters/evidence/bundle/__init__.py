"""Audit bundles: one .tar.gz holding a release's signed evidence, verifiable offline with only a public key.

Layout (one top directory, ``primum-evidence-<release id>/``)::

    manifest.dsse.json           DSSE envelope of an in-toto Statement: every other file is a subject (sha256)
    manifest.json                release (with artifacts), log, entries, and the sha256 of every other file
    checkpoint.txt               the signed C2SP checkpoint every proof is checked against
    envelopes/<index>.dsse.json  the exact stored DSSE envelope of each entry (none for purged entries)
    proofs/<index>.json          the RFC 9162 inclusion proof of each entry in the checkpoint's tree
    keys/<keyid>.pem             the public keys, for reference only: a verifier trusts only the keys it is given
    report.md, report.html       the human-readable report (covered by the signed manifest too)
    previous-checkpoint.txt      optional: an earlier signed checkpoint of the log that the auditor kept
    consistency.json             with it: the RFC 9162 consistency proof from that checkpoint to checkpoint.txt

The package has one module per seam: ``write`` (export), ``read`` (members and manifest, in memory),
``verify`` (offline verification and its report), and ``base`` (names, errors, keys and the binding
rule all three share). No database here: the store reads the log and passes :class:`LogEntry` values
in. Verification reads the tarball in memory, never extracts it, and fails closed: every check that
cannot run is a problem. The read limits (``MAX_MEMBERS``, ``MAX_UNCOMPRESSED``) live in ``read``.
"""

from __future__ import annotations

from primum.adapters.evidence.bundle.base import (
    AUDIT_BUNDLE_V1,
    CHECKPOINT,
    CONSISTENCY,
    FORMAT,
    MANIFEST,
    MANIFEST_DSSE,
    PREVIOUS_CHECKPOINT,
    REPORT_HTML,
    REPORT_MD,
    TOP_PREFIX,
    BundleError,
    BundleFormatError,
    envelope_name,
    load_public_key,
    note_signer,
    proof_name,
    verifier_key,
)
from primum.adapters.evidence.bundle.read import read_members
from primum.adapters.evidence.bundle.verify import IN_TOTO_MISSING, BundleVerification, verify_bundle
from primum.adapters.evidence.bundle.write import BundleSummary, LogEntry, write_bundle

__all__ = [
    "AUDIT_BUNDLE_V1", "CHECKPOINT", "CONSISTENCY", "FORMAT", "IN_TOTO_MISSING", "MANIFEST", "MANIFEST_DSSE",
    "PREVIOUS_CHECKPOINT", "REPORT_HTML", "REPORT_MD", "TOP_PREFIX",
    "BundleError", "BundleFormatError", "BundleSummary", "BundleVerification", "LogEntry", "envelope_name",
    "load_public_key", "note_signer", "proof_name", "read_members", "verifier_key", "verify_bundle",
    "write_bundle",
]
