"""The `primum` command line: a thin front end over ``primum.app``, one module per command group.

Exit codes: 0 success; 1 the release failed or was rolled back (or the demo saw primum misbehave); 2 a
user's mistake (a bad file or flag, an unknown id, a refused action: every :class:`~primum.core.errors.UserError`);
3 an internal error; 130 interrupted.

Start-up matters (`bench/cli_startup.py`): this module and the command modules import only typer, rich and
light primum modules at the top; each command imports the use case it runs when it runs.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Annotated

import typer

from primum import __version__
from primum.cli import analysis, demo, evidence, files, governance, keys, policy, probe, releases, runtime
from primum.cli.common import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, EXIT_RELEASE_FAILED

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERNAL", "EXIT_OK", "EXIT_RELEASE_FAILED", "app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="primum: a governed release control plane (first, do no harm).")


def _version(value: bool) -> None:
    if value:
        print(f"primum {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print primum's version and exit")] = False,
) -> None:
    """primum: a governed release control plane (first, do no harm)."""


# Top-level commands, in the order `primum --help` lists them, then the command groups.
for module in (files, runtime, releases, probe, governance, demo):
    app.add_typer(module.commands)
app.add_typer(releases.release_app, name="release")
app.add_typer(analysis.analysis_app, name="analysis")
app.add_typer(policy.policy_app, name="policy")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(evidence.evidence_app, name="evidence")


def main() -> None:  # pragma: no cover - run as a process by the CLI tests
    """The `primum` console script and `python -m primum`.

    A short command spends more time in the garbage collector (scanning the objects that importing
    SQLAlchemy and building the pydantic models create) and in tearing the interpreter down than in its
    own work. So the collector is off until a command says it runs long (``common.long_running``), and
    the process ends with ``os._exit`` once its output is flushed and the command has closed what it
    opened (``handled`` closes the store and the targets; long-running commands stop their processes
    before they return). Both save about a tenth of a second each (``bench/cli_startup.py``).
    """
    gc.disable()
    from primum.adapters.logs import configure_logging

    configure_logging()  # every log line passes redaction: no secret or PHI-like value reaches a log
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
