"""`primum policy eval` and `policy test`: the release policy (Rego) outside a rollout (``app.policy``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from primum.cli.common import EXIT_OK, EXIT_RELEASE_FAILED, EstateOption, Output, OutputOption, handled, home, primum
from primum.cli.output import console, print_json

policy_app = typer.Typer(no_args_is_help=True, help="Evaluate and test release policy (Rego).")


@policy_app.command("eval")
@handled
def policy_eval(
    release: Annotated[Path, typer.Argument(help="the release file")],
    env: Annotated[str | None, typer.Option(help="one environment (default: every one)")] = None,
    estate: EstateOption = None,
    policy: Annotated[Path | None, typer.Option(help="organisation policy directory (default: the estate's)")] = None,
    emergency: Annotated[bool, typer.Option(help="as if break-glass were used")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Show a release's change class, requirements, denials and warnings per environment."""
    from primum.app.policy import evaluate_release

    app = primum()
    decisions = evaluate_release(app.store, release, home(), estate=estate, env=env, emergency=emergency,
                                 policy_dir=policy, now=app.clock())
    if output is Output.json:
        print_json({name: d.model_dump(mode="json") for name, d in decisions.items()})
    else:
        for name, d in decisions.items():
            verdict = "[green]allowed[/]" if d.allowed else "[red]denied[/]"
            console.print(f"[bold]{name}[/]: class [bold]{d.change_class}[/] {verdict}")
            if d.requirements:
                r = d.requirements
                console.print(f"  requires: {r.approvals} approval(s) ({r.cab_approvals} from CAB), at least "
                              f"{r.min_analysis_seconds}s of analysis" + (f", gates: {', '.join(r.gates)}"
                                                                          if r.gates else "")
                              + (", break-glass only" if r.break_glass_only else ""))
            for svc, why in d.reasons.items():
                console.print(f"  {escape(svc)}: {escape('; '.join(why))}")
            for msg in d.deny:
                console.print(f"  [red]deny:[/] {escape(msg)}")
            for msg in d.warn:
                console.print(f"  [yellow]warn:[/] {escape(msg)}")
            console.print(f"  [dim]decision {d.log.decision_id}, bundle {d.log.bundle_revision[:19]}, input "
                          f"{d.log.input_digest[:19]}[/]")
    raise typer.Exit(EXIT_OK if all(d.allowed for d in decisions.values()) else EXIT_RELEASE_FAILED)


@policy_app.command("test")
@handled
def policy_test(
    directory: Annotated[Path | None, typer.Argument(help="organisation policy directory")] = None,
    baseline: Annotated[bool, typer.Option(help="with DIR: run the baseline's own tests too")] = False,
) -> None:
    """Run Rego unit tests (rules named test_*): DIR's tests against the baseline extended by DIR, or
    without DIR the baseline's own; exit 0 only if all pass."""
    from primum.app.policy import run_policy_tests

    summary = run_policy_tests(directory)
    results = [r for r in summary.results
               if directory is None or baseline or not r.file.startswith("baseline/")]
    if not results:
        console.print(f"no test_* rules in {directory}; `primum policy test` runs the baseline's own tests")
    for result in results:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        console.print(f"{mark} {escape(result.name)} ({escape(result.file)}:{result.line})"
                      + (f": {escape(result.message)}" if result.message else ""))
    failed = sum(1 for r in results if not r.passed)
    console.print(f"{len(results) - failed} passed, {failed} failed (bundle {summary.bundle_revision[:19]})")
    raise typer.Exit(EXIT_OK if failed == 0 and results else EXIT_RELEASE_FAILED)

