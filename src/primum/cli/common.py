"""What every command module shares: exit codes, the ``--output`` option, the error handler and the
process's :class:`~primum.app.bootstrap.Primum`.

Kept light on purpose: ``primum --help`` imports every command module, so nothing here (or at the top of a
command module) may import the store, pydantic models or the policy engine; a command imports what it needs
when it runs.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape

from primum.cli.output import err_console
from primum.core.errors import UserError

if TYPE_CHECKING:
    from primum.app.bootstrap import Primum

EXIT_OK, EXIT_RELEASE_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table for people, json for programs")]
WideOption = Annotated[bool, typer.Option("--wide", help="one full table instead of one block per row "
                                          "(needs a wide terminal; nothing is cut)")]
As = Annotated[str | None, typer.Option("--as", help="who you say you are: must be the user your key is "
                                        "enrolled for (your identity comes from the key)")]
KeyOption = Annotated[Path | None, typer.Option("--key", help="your personal signing key (default: $PRIMUM_KEY, "
                                                "else ~/.config/primum/key.pem)")]
EstateOption = Annotated[str | None, typer.Option(help="estate file (default: the one `primum up` runs)")]


def handled(fn: F) -> F:
    """Map errors to exit codes: a user's mistake 2 (its message, never a traceback), internal 3."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            for line in exc.lines():
                err_console.print(f"[red]{exc.label}:[/] {escape(line)}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:
            err_console.print(f"[red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}")
            if os.environ.get("PRIMUM_DEBUG"):
                raise
            raise typer.Exit(EXIT_INTERNAL) from None
        finally:
            close()

    return wrapper  # type: ignore[return-value]


_primum: Primum | None = None


def primum() -> Primum:
    """This process's composition root, built from the environment on first use."""
    global _primum
    if _primum is None:
        from primum.app.bootstrap import Primum

        _primum = Primum.from_environment()
    return _primum


def close() -> None:
    """Close what the command opened (the store's connections, the targets' clients)."""
    global _primum
    if _primum is not None:
        _primum.close()
        _primum = None


def long_running() -> None:
    """Called by a command that runs for more than a moment (`up`, `controller`, following a release, the
    demo): the garbage collector, off during start-up (``main``), works again, and what start-up allocated
    is frozen out of its scans."""
    gc.freeze()
    gc.enable()


def caller(key: Path | None, asserted: str | None) -> Any:
    """The person running a state-changing command (``app.identity.Caller``): their key, and ``--as``."""
    return primum().caller(key, asserted)


def home() -> Path:
    return primum().home
