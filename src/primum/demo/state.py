"""Where `primum demo` keeps its last run, so the ordinary commands can explore it afterwards.

The demo's store, keys, runtime records, logs, files and audit bundles go to one per-user
directory, ``$XDG_STATE_HOME/primum/last-demo`` (``~/.local/state/primum/last-demo`` when
``XDG_STATE_HOME`` is unset or not absolute, as the XDG base directory specification says).
Each run replaces it, and it is never the user's own ``PRIMUM_HOME``: ``export
PRIMUM_HOME=<it>`` then makes `primum history`, `primum analysis show` and `primum evidence
verify` read the demo's state, because the CLI derives its database and keys from
``PRIMUM_HOME`` exactly as :func:`demo_settings` does.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from primum.adapters.targets.local.runtime import LocalRuntime
from primum.app.bootstrap import Settings
from primum.core.model.errors import InputError
from primum.demo.files import ESTATE_NAME

MARKER = ".primum-demo"  # in every directory this module made; only such a directory is ever replaced
# Settings that, when set, win over PRIMUM_HOME for the store and the keys (Settings.from_environment).
OVERRIDES = ("PRIMUM_DATABASE_URL", "PRIMUM_KEYS_DIR")


def last_demo_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The well-known directory of the last demo run (see the module docstring)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return (root / "primum" / "last-demo").resolve()


def demo_settings(home: Path) -> Settings:
    """The settings the CLI has with ``PRIMUM_HOME=home`` and no database or keys override (the actor
    is the demo's): the demo builds its store and keys from these, so the printed hint reaches the
    same database and keys."""
    return Settings.from_environment({"PRIMUM_HOME": str(home), "PRIMUM_USER": "primum-demo"})


@contextmanager
def fresh_last_demo(path: Path) -> Iterator[Path]:
    """Hold the last demo's directory for one run: replace it by an empty one, marked as the demo's.

    Fails closed rather than delete what the demo did not make (a directory without the marker) or
    the state of a demo still running (its lock is held)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError.single(str(path), "another `primum demo` is running with this directory",
                                    "wait for it to finish, or run this one with --keep DIR") from None
        _replace(path)
        yield path


def _replace(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).is_file():
            raise InputError.single(str(path), "this directory was not made by `primum demo`; it is not replaced",
                                    "move it away, or run the demo with --keep DIR")
        if (path / "runtime").is_dir():
            # a previous run killed before its clean-up: stop what it recorded (pid and start time checked)
            runtime = LocalRuntime(path, ESTATE_NAME)
            try:
                runtime.stop_all()
            finally:
                runtime.close()
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("The last `primum demo` run; the next run replaces this directory.\n")


def explore_hint(home: Path, release_id: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The shell lines that point the ordinary commands at a demo's state."""
    env = os.environ if environ is None else environ
    lines = [f"export PRIMUM_HOME={shlex.quote(str(home))}"]
    overridden = [name for name in OVERRIDES if env.get(name)]
    if overridden:
        lines.append(f"unset {' '.join(overridden)}   # they would point primum at your own store")
    lines += ["primum history", f"primum analysis list {release_id}", f"primum analysis show {release_id}",
              "primum evidence verify"]
    return lines
