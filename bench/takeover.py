"""Takeover after a controller crash: SIGKILL a `primum controller` mid-rollout, start another at once, and
read the takeover's duration from the evidence it records (`lease_taken_over`: from the killed holder's
last renewal to the new holder's first tick), on SQLite and PostgreSQL. Figures, not assertions.

    .venv/bin/python bench/takeover.py --kills 4 --ttl 2
    .venv/bin/python bench/takeover.py --kills 4 --ttl 2 --database postgresql+psycopg://postgres@127.0.0.1:5432/test

The release waits in a long pause on the no-op target, so each kill lands mid-rollout; `kill to takeover`
is the wall time from the SIGKILL to the recorded takeover (the new process's start-up included).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

PRIMUM = str(Path(sys.executable).parent / "primum")


def files(root: Path) -> tuple[Path, Path]:
    estate = {"apiVersion": "primum/v1", "kind": "Estate", "name": "takeover-bench",
              "environments": [{"name": "staging", "class": "nonprod"}],
              "services": {"api": {"owner": "t", "tier": "internal", "data_class": "none", "target": {"type": "noop"},
                                   "strategy": {"type": "canary", "steps": [{"set_weight": 20},
                                                                            {"pause": {"duration": 3600}}]}}}}
    (root / "estate.yaml").write_text(yaml.safe_dump(estate))
    for version in ("1.0", "2.0"):  # a first deployment skips the canary: 1.0 is the base 2.0 pauses over
        art = root / f"api-{version}.bin"
        art.write_bytes(f"api {version}".encode())
        digest = "sha256:" + hashlib.sha256(art.read_bytes()).hexdigest()
        release = {"apiVersion": "primum/v1", "kind": "Release", "id": f"rel-{version}", "ticket": "CHG-BENCH-1",
                   "services": {"api": {"artifact": art.name, "digest": digest, "version": version}}}
        (root / f"rel-{version}.yaml").write_text(yaml.safe_dump(release))
    return root / "estate.yaml", root / "rel-2.0.yaml"


def takeovers(url: str) -> list[float]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT data FROM rollout_events WHERE kind = 'lease_taken_over' ORDER BY id"))
            out = []
            for (data,) in rows:
                doc = data if isinstance(data, dict) else __import__("json").loads(data)
                out.append(float(doc["takeover_s"]))
            return out
    finally:
        engine.dispose()


def run(database: str | None, kills: int, ttl: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="primum-takeover-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMUM_")}
    env.update(PRIMUM_HOME=str(root / "home"), PRIMUM_USER="bench", NO_COLOR="1")
    schema = None
    if database:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(make_url(database), poolclass=NullPool)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
        env["PRIMUM_DATABASE_URL"] = url
    else:
        url = f"sqlite:///{root / 'home' / 'primum.db'}"
    estate, release = files(root)
    try:
        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen([PRIMUM, "controller", "--lease-ttl", str(ttl)], env=env, cwd=root,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        proc = start()
        subprocess.run([PRIMUM, "release", "apply", str(root / "rel-1.0.yaml"), "--estate", str(estate),
                        "--timeout", "60"], env=env, check=True, capture_output=True, cwd=root)
        subprocess.run([PRIMUM, "release", "apply", str(release), "--estate", str(estate), "--no-wait"], env=env,
                       check=True, capture_output=True, cwd=root)
        time.sleep(ttl + 2)  # the first controller holds the lease and renews it
        walls: list[float] = []
        for _ in range(kills):
            before = len(takeovers(url))
            time.sleep(ttl * 0.7)  # kill at some point within a renewal period
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = time.time()
            proc = start()
            while len(takeovers(url)) == before:
                if time.time() - killed > ttl + 60:
                    raise SystemExit("no takeover recorded within a minute")
                time.sleep(0.05)
            walls.append(time.time() - killed)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        recorded = takeovers(url)
        name = "postgresql" if database else "sqlite"
        print(f"{name}: lease ttl {ttl:g} s, {kills} kills")
        print("  recorded takeover_s (last renewal -> new holder's first tick): "
              + ", ".join(f"{t:.2f}" for t in recorded)
              + f"; median {statistics.median(recorded):.2f} s, max {max(recorded):.2f} s")
        print("  wall time kill -> takeover recorded: " + ", ".join(f"{w:.2f}" for w in walls)
              + f"; median {statistics.median(walls):.2f} s")
    finally:
        if database and schema:
            admin = create_engine(make_url(database), poolclass=NullPool)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (default: SQLite in a temp home)")
    args = parser.parse_args()
    run(args.database, args.kills, args.ttl)


if __name__ == "__main__":
    main()
