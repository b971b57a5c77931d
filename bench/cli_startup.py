"""How long a `primum` command takes before it does anything, against `python3 -c pass` in the same run.

    .venv/bin/python bench/cli_startup.py [--runs 7]

Each command runs in a fresh process with a fresh, empty PRIMUM_HOME (so `status` and `history` find no
store, as a first call does: listing creates nothing); `--warm` reuses one migrated home that holds a few
releases (the case that matters: `status` and `history` then read the SQLite file with the standard
library, `adapters/store/listing.py`). The figure is the
median wall-clock time of the runs; the ratio is against the interpreter's own start-up measured here, so
it is comparable across machines. Goal (issue 11): `--help`, `status` and `history` under 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRIMUM = [sys.executable, "-m", "primum"]
COMMANDS = {
    "python3 -c pass": [sys.executable, "-c", "pass"],
    "python3 -c 'import typer'": [sys.executable, "-c", "import typer"],
    "primum --help": [*PRIMUM, "--help"],
    "primum status": [*PRIMUM, "status"],
    "primum history": [*PRIMUM, "history"],
}


def timed(argv: list[str], home: Path | None) -> float:
    env = {**os.environ, "PRIMUM_HOME": str(home or Path(tempfile.mkdtemp(prefix="primum-bench-")))}
    env.pop("PRIMUM_DATABASE_URL", None)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def seed(home: Path, releases: int = 20) -> None:
    """A migrated store holding ``releases`` releases of three services in two environments."""
    from primum.adapters.evidence.keys import Keyring
    from primum.adapters.store.records import NewRollout
    from primum.adapters.store.repository import Store

    store = Store(f"sqlite:///{home / 'primum.db'}", keys=Keyring.generate())
    digest = "sha256:" + "0" * 64
    for n in range(releases):
        items = [{"env": env, "service": service, "phase": "promoted" if n % 3 else "rolled_back",
                  "new": {"digest": digest, "artifact": f"/a/{service}.py", "label": f"1.{n}"},
                  "stable": {"digest": digest, "artifact": f"/a/{service}.py", "label": f"1.{n - 1}"},
                  "failure": None, "message": "", "verdicts": [{"result": "pass", "reason": "all checks passed"}]}
                 for env in ("staging", "prod") for service in ("scheduling-api", "fhir-gateway", "portal")]
        status = {"items": items, "reason": None if n % 3 else "error-rate 4.1% vs 0.2%", "pause_reason": None,
                  "finished_at": 1000.0 + n}
        store.create_rollout(NewRollout(id=f"rel-{n:03d}", digest=digest, estate_name="hospital",
                                        estate_digest=digest, services=("scheduling-api",), estate={}, release={},
                                        status=status, phase="promoted" if n % 3 else "rolled_back"),
                             now=1000.0 + n)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warm", action="store_true", help="reuse one migrated home for status and history")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="primum-bench-warm-")) if args.warm else None
    if home is not None:
        seed(home)
    results: dict[str, float] = {}
    for name, argv in COMMANDS.items():
        timed(argv, home)  # warm the OS file cache
        results[name] = statistics.median(timed(argv, home) for _ in range(args.runs))
    base = results["python3 -c pass"]
    print(f"CLI start-up, median of {args.runs} runs ({'warm' if args.warm else 'fresh'} home), "
          f"Python {sys.version.split()[0]}")
    for name, seconds in results.items():
        goal = "  (goal < 0.300 s)" if name in ("primum --help", "primum status", "primum history") else ""
        print(f"  {name:<28} {seconds:7.3f} s  {seconds / base:6.1f}x python3 -c pass{goal}")


if __name__ == "__main__":
    main()
