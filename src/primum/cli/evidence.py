"""`primum evidence ...`: CI evidence, the transparency log, audit bundles, legal holds and retention
(``app.evidence``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from primum.adapters.evidence.ingest.registry import INGEST_FORMATS
from primum.adapters.evidence.pem import load_public_keys
from primum.cli.common import (
    EXIT_OK,
    EXIT_RELEASE_FAILED,
    As,
    EstateOption,
    KeyOption,
    Output,
    OutputOption,
    caller,
    handled,
    home,
    primum,
)
from primum.cli.output import console, err_console, print_json
from primum.core.model.errors import InputError

evidence_app = typer.Typer(no_args_is_help=True, help="Signed evidence: CI ingest, the transparency log, audit "
                           "bundles, legal holds and retention.")


@evidence_app.command("add")
@handled
def evidence_add(
    artifact: Annotated[str, typer.Argument(metavar="ARTIFACT", help="sha256:<hex> or NAME@sha256:<hex>")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="SLSA provenance, JUnit XML, SARIF, Trivy/Grype "
                                         "JSON or a CycloneDX SBOM")],
    fmt: Annotated[str | None, typer.Option("--format", help=f"{'|'.join(INGEST_FORMATS.names())} "
                                            "(default: detected)")] = None,
    trust_key: Annotated[list[Path] | None, typer.Option("--trust-key", help="a builder's public key (PEM) to "
                                                         "verify signed provenance with")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Attach CI evidence to an artifact digest, signed into the log (policy can then require it)."""
    trusted = load_public_keys(trust_key) if trust_key else None
    added = primum().evidence.add(artifact, file, fmt=fmt, trusted_keys=trusted)
    if output is Output.json:
        print_json({"index": added.index, "kind": added.kind, "artifact": added.artifact, "summary": added.summary})
        return
    console.print(f"recorded {added.kind} evidence for {added.artifact[:19]}… as log entry {added.index}: "
                  + ", ".join(f"{k} {v}" for k, v in added.summary.items()), highlight=False)


@evidence_app.command("verify")
@handled
def evidence_verify(
    bundle: Annotated[Path | None, typer.Argument(metavar="[FILE.tar.gz]", help="an audit bundle; without "
                                                  "it, the whole local log is verified")] = None,
    key: Annotated[list[Path] | None, typer.Option("--key", help="public key PEM (or a directory of them); "
                                                   "repeat for rotated keys")] = None,
    witness: Annotated[list[Path] | None, typer.Option("--witness", metavar="DIR", help="also compare the log "
                                                       "with the checkpoint this witness directory holds "
                                                       "(repeatable; the configured one is always checked)")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Verify an audit bundle with only a public key, or the whole log: its entries, the store's rows and the
    witnesses; names the first bad entry or row (exit 1)."""
    if bundle is not None:
        from primum.app.evidence import verify_audit_bundle

        result = verify_audit_bundle(bundle, load_public_keys(key) if key else [])
        previous = None if result.previous_size is None else {
            "tree_size": result.previous_size, "root_hash": result.previous_root_hash}
        if output is Output.json:
            print_json({"ok": result.ok, "problems": result.problems, "release": result.release_id,
                        "digest": result.release_digest, "entries": result.entries, "purged": result.purged,
                        "tree_size": result.tree_size, "root_hash": result.root_hash.hex()
                        if isinstance(result.root_hash, bytes) else result.root_hash, "previous": previous})
        elif result.ok:
            since = ("" if previous is None else f"; the log extends the previous checkpoint at tree size "
                     f"{result.previous_size} (consistency proof verified)")
            console.print(f"[green]verified[/] {bundle}: release {result.release_id} ({result.release_digest[:19]}…),"
                          f" {result.entries} signed statements ({result.purged} purged) included in the log at "
                          f"tree size {result.tree_size}{since}", highlight=False)
        else:
            err_console.print(f"[red]NOT verified[/] {bundle}: {escape(result.problems[0])}", highlight=False)
            for problem in result.problems[1:5]:
                err_console.print(f"  also: {escape(problem)}", highlight=False)
        raise typer.Exit(EXIT_OK if result.ok else EXIT_RELEASE_FAILED)
    report = primum().evidence.verify_log(load_public_keys(key) if key else None, witness or ())
    if output is Output.json:
        print_json({"ok": report.ok, "problem": report.problem, "problems": list(report.problems),
                    "bad_index": report.bad_index, "origin": report.origin, "size": report.size,
                    "entries": report.entries, "purged": report.purged, "checkpoints": report.checkpoints,
                    "rows_checked": report.rows_checked, "witnesses": list(report.witnesses),
                    "root_hash": report.root_hash.hex()})
    elif report.ok:
        witnessed = f"; witness {', '.join(report.witnesses)}" if report.witnesses else "; no witness"
        console.print(f"[green]verified[/] log {report.origin}: {report.entries} entries ({report.purged} purged), "
                      f"{report.checkpoints} signed checkpoints, root {report.root_hash.hex()[:16]}…, "
                      f"{report.rows_checked} store rows evidenced{witnessed}", highlight=False)
    else:
        err_console.print(f"[red]NOT verified[/] log {report.origin}: {escape(report.problem or '')}",
                          highlight=False)
        for problem in report.problems[1:]:
            err_console.print(f"  also: {escape(problem)}", highlight=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_RELEASE_FAILED)


@evidence_app.command("export")
@handled
def evidence_export(
    release_id: Annotated[str, typer.Argument(metavar="RELEASE")],
    out: Annotated[Path, typer.Option("--output", "-o", help="the .tar.gz to write")],
    since: Annotated[Path | None, typer.Option("--since", metavar="OLD_CHECKPOINT",
                                               help="an earlier checkpoint of this log (from `primum evidence "
                                               "checkpoint -o FILE`): include it and the consistency proof from "
                                               "it")] = None,
) -> None:
    """Write a release's audit bundle: envelopes, inclusion proofs, checkpoint, public keys, report."""
    summary = primum().evidence.export(release_id, out, since=since)
    extends = ("" if summary.previous_size is None else
               f", consistency proof from the checkpoint at size {summary.previous_size} in {since}")
    console.print(f"wrote {out}: {summary.entries} statements, checkpoint at tree size {summary.tree_size}"
                  f"{extends}; verify anywhere with `primum evidence verify {out} --key PUB.pem`", highlight=False)


@evidence_app.command("checkpoint")
@handled
def evidence_checkpoint(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="write the checkpoint to this file "
                                             "(default: print it)")] = None,
) -> None:
    """The log's newest signed checkpoint, exactly as stored: keep it to check the log later."""
    origin, latest = primum().evidence.checkpoint()
    if out is None:
        sys.stdout.write(latest.note)
        sys.stdout.flush()
        return
    try:
        out.write_bytes(latest.note.encode())
    except OSError as exc:
        raise InputError.single(str(out), f"cannot write the checkpoint ({exc.strerror or exc})",
                                "pass a writable file path to --output") from None
    console.print(f"wrote {out}: checkpoint of {origin} at tree size {latest.size}; later, `primum evidence "
                  f"consistency {out}` checks that the log still extends it", highlight=False)


@evidence_app.command("consistency")
@handled
def evidence_consistency(
    old: Annotated[Path, typer.Argument(metavar="OLD_CHECKPOINT_FILE", help="a checkpoint of this log kept "
                                        "earlier (`primum evidence checkpoint -o FILE`)")],
    key: Annotated[list[Path] | None, typer.Option("--key", help="public key PEM (or a directory of them) to "
                                                   "open the checkpoints with; default: the local keyring")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Check that the log extends a checkpoint kept earlier (RFC 9162 consistency proof); exit 1 if rewritten."""
    result = primum().evidence.consistency(old, load_public_keys(key) if key else None)
    if output is Output.json:
        print_json({"ok": result.ok, "problem": result.problem, "origin": result.origin,
                    "old_size": result.old_size, "old_root": result.old_root.hex(), "new_size": result.new_size,
                    "new_root": None if result.new_root is None else result.new_root.hex(),
                    "proof": [h.hex() for h in result.proof]})
    elif result.ok:
        console.print(f"log {result.origin}\n"
                      f"  kept:    tree size {result.old_size}, root {result.old_root.hex()}\n"
                      f"  current: tree size {result.new_size}, root {(result.new_root or b'').hex()}\n"
                      f"[green]consistent[/]: the current log extends the checkpoint you kept "
                      f"(RFC 9162 consistency proof of {len(result.proof)} hashes verified)", highlight=False)
    else:
        err_console.print(f"[red]NOT consistent[/] {old}: {escape(result.problem or '')}", highlight=False)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_RELEASE_FAILED)


@evidence_app.command("witness")
@handled
def evidence_witness(
    directory: Annotated[Path | None, typer.Option("--dir", metavar="DIR", help="the witness's directory "
                                                   "(default: PRIMUM_WITNESS_DIR); keep it elsewhere: another "
                                                   "disk, host or user")] = None,
    key: Annotated[list[Path] | None, typer.Option("--key", help="the log's public key PEM (or a directory); "
                                                   "default: the local keyring")] = None,
) -> None:
    """Witness the log: check it extends the checkpoint DIR holds, refuse a rollback, cosign and keep it."""
    done = primum().evidence.witness(directory, load_public_keys(key) if key else None)
    if not done.verdict.ok:
        err_console.print(f"[red]refused[/]: {escape(done.verdict.problem or '')}; the witness keeps its "
                          f"checkpoint at size {done.held_size}", highlight=False)
        raise typer.Exit(EXIT_RELEASE_FAILED)
    since = "first checkpoint" if done.held_size is None else f"extends the size {done.held_size} it held"
    console.print(f"witnessed tree size {done.new_size} ({since}); cosigned by {done.key.encode()}",
                  highlight=False)


@evidence_app.command("list")
@handled
def evidence_list(
    release_id: Annotated[str | None, typer.Argument(metavar="[RELEASE]")] = None,
    output: OutputOption = Output.table,
) -> None:
    """The log's entries (of one release and its artifacts' CI evidence, or all)."""
    rows = primum().evidence.entries(release_id)
    if output is Output.json:
        print_json(rows)
        return
    for r in rows:
        what = r["release"] or (r["artifact"] or "")[:19]
        console.print(f"{r['index']:>7}  {r['kind']:<20} {what:<24} {r['predicate_type']}"
                      + ("  (purged)" if r["purged"] else ""), highlight=False)


def _identities(estate: str | None) -> str | None:
    """The identities file in force now: the estate's (--estate, else $PRIMUM_ESTATE, else the one `primum up`
    runs, else ./estate.yaml)."""
    from primum.app.releases import resolve_estate

    est, _ = resolve_estate(estate, home())
    return est.governance.identities


@evidence_app.command("hold")
@handled
def evidence_hold(
    release_id: Annotated[str, typer.Argument(metavar="RELEASE")],
    reason: Annotated[str, typer.Option("--reason", help="the matter or ticket the hold is for")],
    as_: As = None,
    key: KeyOption = None,
    estate: EstateOption = None,
) -> None:
    """Place a legal hold: nothing of this release's evidence is purged until the hold is released (signed;
    release-manager or platform-admin)."""
    hold_id = primum().evidence.hold(release_id, reason, caller=caller(key, as_), identities=_identities(estate))
    console.print(f"legal hold {hold_id} on {release_id}: its evidence is kept until `primum evidence unhold "
                  f"{release_id}`", highlight=False)


@evidence_app.command("unhold")
@handled
def evidence_unhold(release_id: Annotated[str, typer.Argument(metavar="RELEASE")], as_: As = None,
                    key: KeyOption = None, estate: EstateOption = None) -> None:
    """Release the legal holds on a release; its evidence follows the retention period again (signed;
    platform-admin)."""
    count = primum().evidence.unhold(release_id, caller=caller(key, as_), identities=_identities(estate))
    console.print(f"released {count} legal hold(s) on {release_id}", highlight=False)


@evidence_app.command("purge")
@handled
def evidence_purge(
    retention: Annotated[str, typer.Option("--retention", help="keep this long: 6y (default) or days, 2190d")] = "6y",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would be purged (needs no key)")] = False,
    allow_short: Annotated[bool, typer.Option("--allow-short-retention",
                                              help="allow less than 6 years (test installations)")] = False,
    as_: As = None,
    key: KeyOption = None,
    estate: EstateOption = None,
) -> None:
    """Purge evidence older than the retention period (legal holds excepted); the log stays verifiable
    (signed; platform-admin)."""
    if dry_run:
        purged = primum().evidence.purge(retention, dry_run=True, allow_short=allow_short)
    else:
        from primum.app.evidence import retention_cutoff

        retention_cutoff(retention, time.time(), allow_short=allow_short)  # a bad --retention first: no estate needed
        purged = primum().evidence.purge(retention, allow_short=allow_short, caller=caller(key, as_),
                                         identities=_identities(estate))
    verb = "would purge" if dry_run else "purged"
    console.print(f"{verb} {len(purged)} entries older than {retention}"
                  + (f" (indices {purged[0]}..{purged[-1]})" if purged else ""), highlight=False)
