"""The human-readable report of an audit bundle, in Markdown and in self-contained HTML. Pure: data in, text out.

Both renderings come from one list of blocks (headings, paragraphs, tables, code), so they always say
the same thing. The statements are the decoded in-toto statements of the bundle, in log order; anything
a statement does not carry is shown as empty, never guessed. The report is a view: what an auditor
relies on is the signed evidence next to it (``primum evidence verify`` checks both).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from primum.core.evidence.redact import redact_text
from primum.core.evidence.statements import PRIMUM_EVENT_V1, SLSA_PROVENANCE_V1, SVR_V0_1, TEST_RESULT_V0_1, VULNS_V0_2

CYCLONEDX_BOM = "https://cyclonedx.org/bom"
VERIFY_COMMAND = "primum evidence verify FILE.tar.gz --key PUB.pem"

# The last of these events decides the release's outcome.
TERMINAL_KINDS = {
    "promoted": "promoted",
    "rolled_back": "rolled back",
    "denied": "denied",
    "aborted": "aborted",
    "rollback_failed": "rollback failed",
}
APPROVAL_KINDS = ("approval", "rejection", "break_glass", "review", "freeze_override")
GATE_EVENT_KINDS = ("policy_decision", "analysis", "probe", "blocked")
ROLLBACK_KINDS = ("rollback_started", "item_rolled_back", "rolled_back", "rollback_failed")


@dataclass(frozen=True)
class BundleInfo:
    """What the report says about the bundle itself (everything but the statements)."""

    release_id: str
    release_digest: str
    origin: str
    tree_size: int
    root_hash: str  # hex
    generated_at: str  # RFC 3339
    artifacts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # service -> {digest, version}
    entries: int = 0
    purged: Sequence[tuple[int, str | None]] = ()  # (log index, purged at)
    key_ids: Sequence[str] = ()
    title: str | None = None
    since_size: int | None = None  # the tree size of the earlier checkpoint the bundle proves its log extends


# --- the document model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """Inline code: digests, ids, commands."""

    text: str


Inline = str | Code


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    parts: tuple[Inline, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Inline, ...], ...]
    empty: str = "None recorded."


@dataclass(frozen=True)
class Preformatted:
    text: str


Block = Heading | Paragraph | Table | Preformatted


# --- reading statements ----------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class _Row:
    """One statement, flattened for the timeline."""

    index: int | None
    time: str
    kind: str
    env: str
    service: str
    actor: str
    message: str
    statement: Mapping[str, Any]

    @property
    def predicate(self) -> Mapping[str, Any]:
        return _mapping(self.statement.get("predicate"))

    @property
    def predicate_type(self) -> str:
        return _text(self.statement.get("predicateType"))


def _artifact_names(stmt: Mapping[str, Any]) -> str:
    names = [_text(_mapping(s).get("name")) for s in _list(stmt.get("subject"))]
    return ", ".join(n for n in names if n and not n.startswith("release:"))


def _gate(predicate: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(predicate.get("primumGate"))


def _gate_name(predicate: Mapping[str, Any]) -> str:
    gate = _gate(predicate)
    if gate.get("gate"):
        return _text(gate["gate"])
    verifier = _text(_mapping(predicate.get("verifier")).get("id"))
    return verifier.rstrip("/").split("/")[-2] if verifier.count("/") >= 2 else verifier


def _gate_passed(predicate: Mapping[str, Any]) -> bool:
    """SVR semantics: only a ``PRIMUM_<GATE>_PASSED`` property says the gate passed."""
    name = _gate_name(predicate).upper()
    return f"PRIMUM_{name}_PASSED" in _list(predicate.get("properties"))


def _vuln_counts(predicate: Mapping[str, Any]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for result in _list(_mapping(predicate.get("scanner")).get("result")):
        severities = _list(_mapping(result).get("severity"))
        score = _text(_mapping(severities[0]).get("score")) if severities else ""
        counts[score.lower() or "unknown"] += 1
    return counts


def _components(bom: Mapping[str, Any]) -> int:
    return sum(1 + _components(_mapping(c)) for c in _list(bom.get("components")))


def _ci_summary(predicate_type: str, predicate: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, summary) for CI evidence, or None for other statements."""
    if predicate_type == SLSA_PROVENANCE_V1:
        builder = _text(_mapping(_mapping(predicate.get("runDetails")).get("builder")).get("id"))
        build_type = _text(_mapping(predicate.get("buildDefinition")).get("buildType"))
        return "provenance", f"built by {builder or 'an unnamed builder'}" + (f" ({build_type})" if build_type else "")
    if predicate_type == TEST_RESULT_V0_1:
        counts = ", ".join(f"{len(_list(predicate.get(k)))} {label}" for k, label in
                           (("passedTests", "passed"), ("warnedTests", "warned"), ("failedTests", "failed")))
        url = _text(predicate.get("url"))
        return "test-result", f"tests {_text(predicate.get('result')) or 'UNKNOWN'} ({counts})" + (
            f", {url}" if url else "")
    if predicate_type == VULNS_V0_2:
        severities = _vuln_counts(predicate)
        scanner = _text(_mapping(predicate.get("scanner")).get("uri"))
        by = ", ".join(f"{n} {severity}" for severity, n in sorted(severities.items())) or "none found"
        summary = f"{sum(severities.values())} vulnerabilities ({by})"
        return "vulns", summary + (f", scanned by {scanner}" if scanner else "")
    if predicate_type.startswith(CYCLONEDX_BOM):
        return "sbom", f"CycloneDX SBOM with {_components(predicate)} components"
    return None


def _row(index: int | None, stmt: Mapping[str, Any]) -> _Row:
    predicate_type = _text(stmt.get("predicateType"))
    p = _mapping(stmt.get("predicate"))
    if predicate_type == PRIMUM_EVENT_V1:
        return _Row(index, _text(p.get("at")), _text(p.get("kind")), _text(p.get("env")), _text(p.get("service")),
                    _text(p.get("actor")), _text(p.get("message")), stmt)
    if predicate_type == SVR_V0_1:
        gate = _gate(p)
        data = _mapping(gate.get("data"))
        verdict = "passed" if _gate_passed(p) else "failed"
        message = _text(data.get("message")) or f"{_gate_name(p)} gate {verdict}: {_text(gate.get('outcome'))}"
        return _Row(index, _text(p.get("timeCreated")), f"gate: {_gate_name(p)}", _text(gate.get("env")),
                    _text(gate.get("service")), _text(data.get("actor")), message, stmt)
    ci = _ci_summary(predicate_type, p)
    if ci is not None:
        run = _mapping(_mapping(p.get("runDetails")).get("metadata"))
        meta = _mapping(p.get("metadata"))
        time = _text(run.get("finishedOn") or run.get("startedOn") or meta.get("scanFinishedOn"))
        return _Row(index, time, ci[0], "", _artifact_names(stmt), "", ci[1], stmt)
    return _Row(index, "", predicate_type, "", _artifact_names(stmt), "", "", stmt)


def _rows(statements: Sequence[Mapping[str, Any]], indices: Sequence[int] | None) -> list[_Row]:
    if indices is not None and len(indices) != len(statements):
        raise ValueError(f"{len(indices)} indices for {len(statements)} statements")
    return [_row(indices[i] if indices is not None else None, s) for i, s in enumerate(statements)]


def outcome(statements: Sequence[Mapping[str, Any]]) -> str:
    """promoted, rolled back, denied, aborted, rollback failed: the last terminal event; else in progress."""
    result = "in progress (no terminal event recorded)"
    for s in statements:
        if s.get("predicateType") == PRIMUM_EVENT_V1:
            kind = _text(_mapping(s.get("predicate")).get("kind"))
            result = TERMINAL_KINDS.get(kind, result)
    return result


# --- the report's content --------------------------------------------------------------------


def _idx(row: _Row) -> str:
    return "" if row.index is None else str(row.index)


def _reasons(gate: Mapping[str, Any]) -> str:
    return "; ".join(_text(r) for r in _list(gate.get("reasons")) if _text(r))


def _blocks(info: BundleInfo, statements: Sequence[Mapping[str, Any]],
            indices: Sequence[int] | None) -> Iterator[Block]:
    rows = _rows(statements, indices)
    yield Heading(1, info.title or f"Release evidence: {info.release_id}")
    yield Paragraph(("Release ", Code(info.release_id), ", digest ", Code(info.release_digest), "."))

    yield Heading(2, "Summary")
    purged = f", {len(info.purged)} purged under retention" if info.purged else ""
    since: tuple[tuple[Inline, ...], ...] = () if info.since_size is None else (
        ("Since", f"extends the checkpoint at size {info.since_size} you kept: consistency proof included"),)
    yield Table(("Item", "Value"), (
        ("Outcome", outcome(statements)),
        ("Release", Code(info.release_id)),
        ("Release digest", Code(info.release_digest)),
        ("Log entries", f"{info.entries or len(rows) + len(info.purged)}{purged}"),
        ("Log", Code(info.origin)),
        ("Checkpoint", f"tree size {info.tree_size}, root hash {info.root_hash}"),
        *since,
        ("Bundle generated", info.generated_at),
        ("Signing keys", ", ".join(info.key_ids)),
    ))

    yield Heading(2, "Artifacts")
    yield Table(("Service", "Version", "Digest"), tuple(
        (service, _text(info.artifacts[service].get("version")), Code(_text(info.artifacts[service].get("digest"))))
        for service in sorted(info.artifacts)))

    yield Heading(2, "Timeline")
    yield Paragraph(("Every signed statement, in log order (#: the entry's index in the transparency log).",))
    yield Table(("#", "Time", "Kind", "Env", "Service", "Actor", "Message"), tuple(
        (_idx(r), r.time, r.kind, r.env, r.service, r.actor, r.message) for r in rows))

    yield Heading(2, "Approvals")
    yield Table(("#", "Time", "Kind", "Env", "Actor", "Message"), tuple(
        (_idx(r), r.time, r.kind, r.env, r.actor, r.message)
        for r in rows if r.predicate_type == PRIMUM_EVENT_V1 and r.kind in APPROVAL_KINDS))

    yield Heading(2, "Gates")
    gates: list[tuple[Inline, ...]] = []
    for r in rows:
        if r.predicate_type == SVR_V0_1:
            gate = _gate(r.predicate)
            gates.append((_idx(r), r.time, _gate_name(r.predicate), r.env, r.service,
                          "yes" if _gate_passed(r.predicate) else "no", _text(gate.get("outcome")), _reasons(gate)))
        elif r.predicate_type == PRIMUM_EVENT_V1 and r.kind in GATE_EVENT_KINDS:
            data = _mapping(r.predicate.get("data"))
            passed = "no" if r.kind == "blocked" else ""
            gates.append((_idx(r), r.time, r.kind, r.env, r.service, passed,
                          _text(data.get("outcome") or data.get("verdict")), r.message))
    yield Table(("#", "Time", "Gate", "Env", "Service", "Passed", "Outcome", "Reasons"), tuple(gates))

    yield Heading(2, "Verdicts")
    verdicts = tuple(
        (_idx(r), r.time, r.env, r.service, _text(_gate(r.predicate).get("outcome")), _reasons(_gate(r.predicate)))
        if r.predicate_type == SVR_V0_1 else (_idx(r), r.time, r.env, r.service, "", r.message)
        for r in rows
        if (r.predicate_type == SVR_V0_1 and _gate_name(r.predicate) == "analysis")
        or (r.predicate_type == PRIMUM_EVENT_V1 and r.kind == "analysis"))
    yield Table(("#", "Time", "Env", "Service", "Verdict", "Reasons"), verdicts)

    yield Heading(2, "Rollbacks")
    yield Table(("#", "Time", "Kind", "Env", "Service", "Actor", "Message"), tuple(
        (_idx(r), r.time, r.kind, r.env, r.service, r.actor, r.message)
        for r in rows if r.predicate_type == PRIMUM_EVENT_V1 and r.kind in ROLLBACK_KINDS))

    yield Heading(2, "CI evidence")
    yield Table(("#", "Kind", "Subject", "Summary"), tuple(
        (_idx(r), r.kind, r.service, r.message)
        for r in rows if _ci_summary(r.predicate_type, r.predicate) is not None))

    if info.purged:
        yield Heading(2, "Purged entries")
        yield Paragraph(("These entries' contents were deleted under the retention policy. Their leaf hashes and "
                         "inclusion proofs are still in the bundle, so the log around them still verifies.",))
        yield Table(("#", "Purged at"), tuple((str(i), at or "") for i, at in info.purged))

    yield Heading(2, "How to verify")
    yield Paragraph(("Get the release's public key(s) from a trusted channel (not from this bundle: its ",
                     Code("keys/"), " directory is for reference only), then run:"))
    yield Preformatted(VERIFY_COMMAND)
    yield Paragraph((
        "Give one --key per public key (keys retired by a rotation included). It checks the signature on ",
        Code("manifest.dsse.json"), " and the SHA-256 of every file in the bundle, this report included; the "
        "signed checkpoint in ", Code("checkpoint.txt"), "; each entry's leaf hash and RFC 9162 inclusion proof "
        "against it; and the DSSE signature of every envelope and that its statement is about this release. "
        "Without primum: decode each envelope's payload, rebuild the DSSE PAE, verify the Ed25519 signature, "
        "and check the proofs in ", Code("proofs/"), " with any RFC 9162 library."))
    if info.since_size is not None:
        yield Paragraph((
            "It also opens ", Code("previous-checkpoint.txt"), f" (the checkpoint at tree size {info.since_size} "
            "you kept; compare it with your own copy) with the same keys and checks the RFC 9162 consistency proof "
            "in ", Code("consistency.json"), " from it to ", Code("checkpoint.txt"), ": nothing in the log before "
            "it was changed, removed or reordered since."))


# --- redaction: the last step before text leaves as a report -------------------------------


def _clean(text: str) -> str:
    return redact_text(text)[0]


def _clean_inline(part: Inline) -> Inline:
    return Code(_clean(part.text)) if isinstance(part, Code) else _clean(part)


def _redacted(blocks: Iterator[Block]) -> Iterator[Block]:
    """Every text of every block redacted. The statements were redacted when they were written, but a bundle
    may hold statements from before a detector existed (an NHS number, say) and ``BundleInfo`` comes from the
    caller: the report is kept for years next to the evidence, so it is the choke point for what it shows."""
    for block in blocks:
        if isinstance(block, Heading):
            yield Heading(block.level, _clean(block.text))
        elif isinstance(block, Paragraph):
            yield Paragraph(tuple(_clean_inline(p) for p in block.parts))
        elif isinstance(block, Preformatted):
            yield Preformatted(_clean(block.text))
        else:
            yield Table(tuple(_clean(h) for h in block.headers),
                        tuple(tuple(_clean_inline(c) for c in row) for row in block.rows), _clean(block.empty))


# --- rendering -------------------------------------------------------------------------------

# Characters that could start markup, a raw HTML tag or a new table cell; an underscore only where it could
# open or close emphasis (``rollback_started`` stays readable).
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _md_text(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", text))


def _md_inline(part: Inline) -> str:
    if isinstance(part, Code):
        if not part.text:
            return ""
        if "`" in part.text or "\n" in part.text or "|" in part.text:
            return _md_text(part.text)
        return f"`{part.text}`"
    return _md_text(part)


def render_markdown(info: BundleInfo, statements: Sequence[Mapping[str, Any]],
                    indices: Sequence[int] | None = None) -> str:
    """The report as Markdown (GitHub-flavoured tables); ``indices`` are the statements' log indices."""
    out: list[str] = []
    for block in _redacted(_blocks(info, statements, indices)):
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md_text(block.text)}\n")
        elif isinstance(block, Paragraph):
            out.append("".join(_md_inline(p) for p in block.parts) + "\n")
        elif isinstance(block, Preformatted):
            out.append(f"```\n{block.text}\n```\n")
        elif not block.rows:
            out.append(f"{block.empty}\n")
        else:
            lines = ["| " + " | ".join(_md_text(h) for h in block.headers) + " |",
                     "|" + "---|" * len(block.headers)]
            lines += ["| " + " | ".join(_md_inline(c).strip() for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines) + "\n")
    return "\n".join(out)


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;margin:2rem auto;max-width:72rem;
padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
code,pre{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.9em;word-break:break-all}
pre{background:#f6f8fa;padding:.6rem;border:1px solid #d0d7de}
.empty{color:#57606a;font-style:italic}
""".strip()


def _html_inline(part: Inline) -> str:
    if isinstance(part, Code):
        return f"<code>{html.escape(part.text)}</code>" if part.text else ""
    return html.escape(part)


def render_html(info: BundleInfo, statements: Sequence[Mapping[str, Any]],
                indices: Sequence[int] | None = None) -> str:
    """The report as one self-contained HTML page: inline CSS, no script, no external resource."""
    title = _clean(info.title or f"Release evidence: {info.release_id}")
    body: list[str] = []
    for block in _redacted(_blocks(info, statements, indices)):
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append("<p>" + "".join(_html_inline(p) for p in block.parts) + "</p>")
        elif isinstance(block, Preformatted):
            body.append(f"<pre>{html.escape(block.text)}</pre>")
        elif not block.rows:
            body.append(f'<p class="empty">{html.escape(block.empty)}</p>')
        else:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            rows = "".join("<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    # The policy forbids scripts and remote loads even if some content escaped escaping.
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body) + "\n</body>\n</html>\n"
    )
