"""`primum demo`: its fast mode meets its own policy, and its last run is explorable with the ordinary commands."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from primum.adapters.policy import PolicyBundle, analysis_seconds, policy_input
from primum.core.model.errors import InputError
from primum.core.model.estate import AnalysisStep
from primum.core.model.validate import load_estate, load_release
from primum.demo.files import DEMO_MIN_ANALYSIS_S, DEMO_POLICY_TEST, analysis_window, demo_policy_params, write_demo
from primum.demo.state import MARKER, explore_hint, fresh_last_demo, last_demo_dir

NOW = 1_798_761_600.0
RELEASE_IDS = {"rel-2026-11-baseline", "rel-2026-11-sched-2.0.0", "rel-2026-11-sched-2.0.2",
               "rel-2026-11-sched-2.0.1", "rel-2026-11-billing-1.1.0"}


def prod_rules(root: Path, estate_path: Path, release: Path) -> set[str]:
    """The demo policy's prod violations of ``release`` (CI evidence aside: nothing is ingested here)."""
    estate = load_estate(estate_path)
    loaded = load_release(release, estate)
    doc = policy_input(estate, loaded.release, loaded.digest, "prod", now=NOW,
                       checks={"previous_environment_passed": True})
    decision = PolicyBundle.load(root / "policy").evaluate(doc, now=NOW)
    return {v["rule"] for v in decision.violations} - {"evidence-required"}


@pytest.mark.parametrize("fast", [False, True])
def test_every_window_meets_the_demo_prod_minimum(fast: bool, tmp_path: Path) -> None:
    files = write_demo(tmp_path, fast=fast)
    estate = load_estate(files.estate)
    for name, service in estate.services.items():
        seconds = analysis_seconds(service.strategy, service.target.replicas)
        assert seconds >= DEMO_MIN_ANALYSIS_S, (name, seconds)
    # the expected outcomes hold in both modes: the releases that should reach prod are not denied by timing
    for release in (files.baseline, files.regression, files.one_tenant, files.healthy):
        assert "min-analysis" not in prod_rules(files.root, files.estate, release), release.name


def test_fast_mode_shortens_windows_without_weakening_the_policy(tmp_path: Path) -> None:
    files = write_demo(tmp_path, fast=True)
    # the windows are shorter only where a service is analysed more than once
    assert analysis_window(2, fast=True) == "3.5s" and analysis_window(1, fast=True) == "4s"
    assert analysis_window(1) == analysis_window(2) == "4s"
    scheduling = load_estate(files.estate).services["scheduling-api"].strategy
    assert [s.analysis.duration for s in scheduling.steps if isinstance(s, AnalysisStep)] == [3.5, 3.5]
    # the minimum is the demo policy's, in its params and in its own rego tests
    assert f'"high-impact": {DEMO_MIN_ANALYSIS_S}}}' in demo_policy_params()
    assert f'"analysis_seconds": {DEMO_MIN_ANALYSIS_S}}}' in DEMO_POLICY_TEST
    # a shorter single window (the old --fast) is still denied in prod: the fix is in the windows, not the rule
    doc = yaml.safe_load(files.estate.read_text())
    doc["services"]["fhir-gateway"]["strategy"]["steps"][1]["analysis"]["duration"] = "3.5s"
    shorter = tmp_path / "shorter-estate.yaml"
    shorter.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert "min-analysis" in prod_rules(files.root, shorter, files.baseline)


def test_the_last_demo_directory_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert last_demo_dir({"XDG_STATE_HOME": str(tmp_path / "state")}) == tmp_path / "state" / "primum" / "last-demo"
    default = tmp_path / "home" / ".local" / "state" / "primum" / "last-demo"
    assert last_demo_dir({}) == default
    assert last_demo_dir({"XDG_STATE_HOME": "relative/state"}) == default  # the spec: ignore a relative path


def test_fresh_last_demo_replaces_only_a_demo_directory(tmp_path: Path) -> None:
    path = tmp_path / "primum" / "last-demo"
    with fresh_last_demo(path) as home:
        assert home == path and (path / MARKER).is_file()
        (path / "primum.db").write_text("the previous run")
    with fresh_last_demo(path):
        assert sorted(p.name for p in path.iterdir()) == [MARKER]  # replaced by an empty, marked one
    (path / MARKER).unlink()
    (path / "notes.txt").write_text("someone's own file")
    with pytest.raises(InputError, match="not made by `primum demo`"), fresh_last_demo(path):
        pass
    assert (path / "notes.txt").read_text() == "someone's own file"


def test_fresh_last_demo_refuses_while_another_demo_runs(tmp_path: Path) -> None:
    path = tmp_path / "last-demo"
    with fresh_last_demo(path):
        (path / "primum.db").write_text("a running demo's store")
        with pytest.raises(InputError, match="another `primum demo` is running"), fresh_last_demo(path):
            pass
        assert (path / "primum.db").exists()
    with open(tmp_path / "last-demo.lock", "w") as lock:  # the lock is released after the run
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_hint_unsets_what_would_override_primum_home(tmp_path: Path) -> None:
    home = tmp_path / "a dir"
    plain = explore_hint(home, "rel-x", {})
    assert plain == [f"export PRIMUM_HOME='{home}'", "primum history", "primum analysis list rel-x",
                     "primum analysis show rel-x", "primum evidence verify"]
    overridden = explore_hint(home, "rel-x", {"PRIMUM_DATABASE_URL": "postgresql://db/primum"})
    assert overridden[1].startswith("unset PRIMUM_DATABASE_URL ")


def primum(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "primum", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow  # over 60 s: real processes and traffic (about 2 min on a shared 2-core machine)
@pytest.mark.timeout(900)
def test_fast_demo_passes_and_its_state_is_explorable(tmp_path: Path) -> None:
    cwd, user_home = tmp_path / "cwd", tmp_path / "users-own-primum-home"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRIMUM_", "XDG_"))}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), HOME=str(tmp_path / "home"), PRIMUM_HOME=str(user_home),
               NO_COLOR="1", COLUMNS="120")
    demo = primum(["demo", "--fast"], env, cwd, timeout=800)
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    assert "primum behaved correctly" in demo.stdout
    expected = tmp_path / "state" / "primum" / "last-demo"
    closing = demo.stdout.split("explore this run")[-1]
    assert f"export PRIMUM_HOME={expected}" in closing
    for line in ("primum history", "primum analysis show rel-2026-11-sched-2.0.0", "primum evidence verify"):
        assert line in closing
    # nothing was written into the user's own PRIMUM_HOME, nor into the working directory
    assert not user_home.exists()
    assert list(cwd.iterdir()) == []

    match = re.search(r"export PRIMUM_HOME=(\S+)", closing)
    assert match
    env["PRIMUM_HOME"] = match.group(1)  # what the hint says, nothing else
    history = primum(["history", "-o", "json"], env, cwd)
    assert history.returncode == 0, history.stderr
    rows = {row["id"]: row for row in json.loads(history.stdout)}
    assert set(rows) == RELEASE_IDS
    assert rows["rel-2026-11-sched-2.0.0"]["state"] == "rolled_back"
    assert rows["rel-2026-11-sched-2.0.1"]["state"] == "promoted"
    verify = primum(["evidence", "verify", "-o", "json"], env, cwd)
    assert verify.returncode == 0, verify.stderr
    log = json.loads(verify.stdout)
    assert log["ok"] and log["entries"] > 0 and log["checkpoints"] > 0
    analysis = primum(["analysis", "show", "rel-2026-11-sched-2.0.0", "-o", "json"], env, cwd)
    assert analysis.returncode == 0, analysis.stderr
    assert json.loads(analysis.stdout)["release"] == "rel-2026-11-sched-2.0.0"
