"""The `primum` command line, run as the real console script in subprocesses.

Every test has its own ``PRIMUM_HOME`` (so its own SQLite database); releases
run on estates whose services use the in-memory ``noop`` target, so no service
process is ever started. A background ``primum controller`` is stopped with
SIGTERM in a fixture finalizer, and killed if it does not stop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from primum.adapters.store.records import RolloutRecord
from primum.adapters.store.repository import Store
from primum.core.model.release import Release, canonical_digest
from tests.controller.noop_estate import estate_doc, write_release

PRIMUM = str(Path(sys.executable).parent / "primum")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
STATES = {"pending", "running", "paused", "promoted", "rolled_back", "failed"}
TERMINAL = {"promoted", "rolled_back", "failed"}
README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def flat_out(self) -> str:
        return " ".join(self.out.split())

    @property
    def flat_err(self) -> str:
        """stderr with Rich's line wrapping undone."""
        return " ".join(self.err.split())

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def cli_env(home: Path, key: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMUM_")}  # no DATABASE_URL, ESTATE, DEBUG
    env.update(PRIMUM_HOME=str(home), PRIMUM_USER="test-user", COLUMNS="200", NO_COLOR="1")
    if key is not None:
        env["PRIMUM_KEY"] = str(key)  # who runs the commands: the person holding this key
    return env


@dataclass
class Cli:
    home: Path
    cwd: Path
    key: Path | None = None

    def __call__(self, *args: str | Path, timeout: float = 60) -> Result:
        proc = subprocess.run([PRIMUM, *map(str, args)], cwd=self.cwd, env=cli_env(self.home, self.key),
                              capture_output=True, text=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def many(self, *commands: tuple[str | Path, ...]) -> list[Result]:
        """Run independent commands at the same time (each one pays Python's start-up); results in order."""
        with ThreadPoolExecutor(len(commands)) as pool:
            return list(pool.map(lambda args: self(*args), commands))

    def json(self, *args: str | Path) -> object:
        result = self(*args, "--output", "json")
        assert result.code == 0, result
        return json.loads(result.out)

    def wait_for(self, release_id: str, states: set[str], timeout: float = 30) -> dict:
        """Wait until the release is in one of ``states``; then `primum status ID --output json`.

        Polling reads the database directly: a CLI call costs over a second of start-up.
        """
        deadline = time.monotonic() + timeout
        while (phase := stored_rollout(self, release_id).phase) not in states:
            assert phase not in TERMINAL, f"{release_id} ended {phase}, wanted {states}"
            assert time.monotonic() < deadline, f"{release_id} still {phase} after {timeout}s"
            time.sleep(0.1)
        doc = self.json("status", release_id)
        assert isinstance(doc, dict) and doc["state"] in states, doc
        return doc


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    work = tmp_path / "work"
    work.mkdir()
    return Cli(home=tmp_path / "home", cwd=work)


class Controller:
    """`primum controller` in the background, with its output in a file."""

    def __init__(self, cli: Cli, log: Path):
        self.log = log
        self._fh = log.open("w")
        self.proc = subprocess.Popen([PRIMUM, "controller", "--lease-ttl", "3"], cwd=cli.cwd, env=cli_env(cli.home),
                                     stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then SIGKILL if it does not stop in time; the exit code."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            return self.proc.returncode
        finally:
            self._fh.close()

    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def controller(cli: Cli, tmp_path: Path) -> Iterator[Callable[[], Controller]]:
    started: list[Controller] = []

    def start() -> Controller:
        ctl = Controller(cli, tmp_path / f"controller-{len(started)}.log")
        started.append(ctl)
        return ctl

    yield start
    for ctl in started:  # even when the test failed: no controller outlives its test
        try:
            ctl.stop(timeout=10)
        except Exception:
            ctl.proc.kill()
            ctl.proc.wait(timeout=10)


def write_noop_estate(directory: Path, steps: list | None = None, identities: Path | None = None) -> Path:
    """The noop estate of the controller tests, with short pauses."""
    doc = estate_doc(steps=steps or [{"set_weight": 20}, {"pause": {"duration": 0.2}}])
    doc["services"]["web"]["strategy"]["steps"] = [{"set_weight": 50}, {"pause": {"duration": 0.2}}]
    if identities is not None:
        doc["governance"] = {"identities": str(identities)}
    path = directory / "estate.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def stored_rollout(cli: Cli, release_id: str) -> RolloutRecord:
    """The rollout as stored (for what no command prints, such as its lease)."""
    store = Store(f"sqlite:///{cli.home / 'primum.db'}", migrate=False)
    try:
        record = store.get_rollout(release_id)
    finally:
        store.close()
    assert record is not None, release_id
    return record


def digest_in(text: str) -> str:
    match = DIGEST.search(text)
    assert match, f"no digest in {text!r}"
    return match.group(0)


# ------------------------------------------------------------------ help, init


def test_help_lists_every_command_of_the_readme(cli: Cli) -> None:
    table = README.read_text().split("## Commands", 1)[1].split("**Exit codes:**", 1)[0]
    documented = re.findall(r"^\| `primum ([a-z-]+)", table, flags=re.MULTILINE)
    assert {"init", "validate", "release", "controller", "history", "abort", "retry"} <= set(documented), documented
    result, release = cli.many(("--help",), ("release", "--help"))
    assert result.code == 0, result
    listed = set(re.findall(r"^\W*([a-z-]+)\s{2,}", result.out, flags=re.MULTILINE))
    missing = [c for c in documented if c not in listed]
    assert not missing, f"--help does not list {missing}:\n{result.out}"
    assert release.code == 0 and re.search(r"^\W*apply\s", release.out, flags=re.MULTILINE), release


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`primum init DIR` once for the module; tests that change files copy it."""
    base = tmp_path_factory.mktemp("init")
    root = base / "example"
    result = Cli(home=base / "home", cwd=base)("init", root)
    assert result.code == 0, result
    assert "estate.yaml" in result.out and "primum up" in result.out
    return root


def test_init_writes_estate_releases_and_artifacts(example: Path) -> None:
    assert (example / "estate.yaml").is_file()
    releases = sorted(p.name for p in (example / "releases").glob("*.yaml"))
    assert releases == ["0-baseline.yaml", "1-scheduling-2.0.0.yaml", "2-scheduling-2.0.2.yaml",
                        "3-scheduling-2.0.1.yaml", "4-billing-1.1.0.yaml"]
    artifacts = list((example / "artifacts").iterdir())
    assert len(artifacts) == 11 and all(p.stat().st_size > 0 for p in artifacts)
    # CI evidence for every artifact, and the script that attaches it
    adds = [line.split() for line in (example / "ci" / "add-evidence.sh").read_text().splitlines()
            if line.startswith("primum evidence add")]
    assert len(adds) == 3 * len(artifacts)
    assert all(DIGEST.search(ref) and (example / path).is_file() for *_, ref, path in adds)
    assert yaml.safe_load((example / "estate.yaml").read_text())["kind"] == "Estate"


def test_init_refuses_a_non_empty_directory(cli: Cli, example: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in example.rglob("*")}
    result = cli("init", example)
    assert result.code == 2, result
    assert str(example) in result.flat_err and "not empty" in result.err
    assert "fix:" in result.err
    assert {p: p.stat().st_mtime_ns for p in example.rglob("*")} == before, "init changed the existing files"


# ---------------------------------------------------------------- validate


def test_validate_the_written_estate_and_releases(cli: Cli, example: Path) -> None:
    estate = example / "estate.yaml"
    releases = sorted((example / "releases").glob("*.yaml"))
    first, *rest = cli.many(("validate", estate), *(("validate", r, "--estate", estate) for r in releases))
    assert first.code == 0, first
    assert "ok" in first.out and "st-elsewhere-general" in first.out and "5 services" in first.out
    for release, result in zip(releases, rest, strict=True):
        assert result.code == 0, result
        doc = yaml.safe_load(release.read_text())
        assert doc["id"] in result.out
        assert digest_in(result.out) == canonical_digest(Release.model_validate(doc))


BROKEN_SERVICE = {"owner": "t", "tier": "internal", "data_class": "none", "target": {"type": "noop"}}


def _unknown_key_and_bad_tier(s: dict) -> None:
    s["a"]["colour"] = "blue"
    s["b"]["tier"] = "super-critical"


def _cycle(s: dict) -> None:
    s["a"]["depends_on"] = ["b"]
    s["b"]["depends_on"] = ["a"]


# file name, change, and per problem: the line it is on starts with, its field path, its message
BROKEN = [
    ("unknown-key-and-bad-tier", _unknown_key_and_bad_tier, [
        ("colour:", "services.a.colour", "unknown field 'colour'"),
        ("tier: super-critical", "services.b.tier", "'super-critical' is not allowed"),
    ]),
    ("dependency-cycle", _cycle, [("depends_on:", "services.a.depends_on", "dependency cycle: a -> b -> a")]),
]


def test_validate_a_broken_estate_names_file_line_field_and_fix(cli: Cli, tmp_path: Path) -> None:
    files = []
    for name, change, _ in BROKEN:
        services = {"a": dict(BROKEN_SERVICE), "b": dict(BROKEN_SERVICE)}
        change(services)
        doc = {"apiVersion": "primum/v1", "kind": "Estate", "name": "broken",
               "environments": [{"name": "staging", "class": "nonprod"}], "services": services}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        files.append(path)
    results = cli.many(*(("validate", path) for path in files))
    for (name, _, problems), path, result in zip(BROKEN, files, results, strict=True):
        assert result.code == 2, f"{name}: {result}"
        assert "Traceback" not in result.err, f"{name}: {result}"
        lines = path.read_text().splitlines()
        for line_of, field, words in problems:
            line = next(n for n, text in enumerate(lines, 1) if text.strip().startswith(line_of))
            assert f"{path}:{line}: {field}: {words}" in result.flat_err, f"{name}: {result}"
        assert result.err.count("fix:") == len(problems), f"{name}: one fix per problem: {result}"


def test_validate_a_release_whose_artifact_changed_after_pinning(cli: Cli, example: Path, tmp_path: Path) -> None:
    copy = tmp_path / "example"
    shutil.copytree(example, copy)
    release = copy / "releases" / "0-baseline.yaml"
    pinned = yaml.safe_load(release.read_text())["services"]["billing-sync"]
    artifact = (release.parent / pinned["artifact"]).resolve()
    artifact.write_text(artifact.read_text() + "\n# changed after pinning\n")
    result = cli("validate", release, "--estate", copy / "estate.yaml")
    assert result.code == 2, result
    assert f"{release}:" in result.err and "services.billing-sync.digest" in result.err
    assert pinned["digest"] in result.flat_err and "fix:" in result.err
    assert len(set(DIGEST.findall(result.err))) == 2, "names both the pinned and the actual digest"


def test_validate_a_file_of_unknown_kind_or_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("apiVersion: primum/v1\nkind: Pipeline\nname: x\n")
    missing = tmp_path / "nowhere.yaml"
    unknown, absent = cli.many(("validate", other), ("validate", missing))
    assert unknown.code == 2, unknown
    assert f"{other}:2: kind:" in unknown.err and "Pipeline" in unknown.err and "fix:" in unknown.err
    assert absent.code == 2, absent
    assert str(missing) in absent.err and "not found" in absent.err and "fix:" in absent.err


def test_user_text_in_an_error_is_printed_literally_not_as_markup(cli: Cli, tmp_path: Path) -> None:
    """User text in a problem (a field value, an id) must not be read as Rich markup."""
    doc = {"apiVersion": "primum/v1", "kind": "Estate", "name": "broken",
           "environments": [{"name": "staging", "class": "nonprod"}],
           "services": {"a": {**BROKEN_SERVICE, "tier": "[/]"}}}
    path = tmp_path / "markup.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    bad_tier, bad_id = cli.many(("validate", path), ("status", "[/x]"))
    assert bad_tier.code == 2, bad_tier
    assert "'[/]' is not allowed" in bad_tier.err and "Traceback" not in bad_tier.err
    assert bad_id.code == 2, bad_id
    assert "'[/x]'" in bad_id.err and "Traceback" not in bad_id.err


# ------------------------------------------------------------------ schema


def test_schema_prints_json_schema(cli: Cli) -> None:
    estate, release, other = cli.many(("schema", "estate"), ("schema", "release"), ("schema", "other"))
    for which, result, fields in (("estate", estate, {"environments", "services"}),
                                  ("release", release, {"id", "services"})):
        assert result.code == 0, result
        schema = json.loads(result.out)
        assert isinstance(schema, dict) and "properties" in schema, which
        assert fields <= set(schema["properties"]), which
    assert other.code == 2, other
    assert "other" in other.err and "estate" in other.err


# ---------------------------------------------------------------- releases


def test_apply_history_status_and_controllers_to_promotion(cli: Cli, controller, tmp_path: Path) -> None:
    estate = write_noop_estate(tmp_path)
    release = write_release(tmp_path, "rel-1", ["api", "web"], "2.0")

    first = cli("release", "apply", release, "--estate", estate, "--no-wait")
    assert first.code == 0, first
    assert "rel-1" in first.out and "submitted" in first.out and "already" not in first.out
    digest = digest_in(first.out)

    changed_doc = {**yaml.safe_load(release.read_text()), "description": "changed after submitting"}
    changed = tmp_path / "rel-1-changed.yaml"
    changed.write_text(yaml.safe_dump(changed_doc))
    changed_digest = canonical_digest(Release.model_validate(changed_doc))
    again, conflict = cli.many(("release", "apply", release, "--estate", estate, "--no-wait"),
                               ("release", "apply", changed, "--estate", estate, "--no-wait"))
    assert again.code == 0, again
    assert "already submitted" in again.out and digest in again.out
    assert conflict.code == 2, conflict
    assert "'rel-1'" in conflict.err and digest in conflict.flat_err and changed_digest in conflict.flat_err

    history, status = cli.many(("history", "--output", "json"), ("status", "rel-1", "--output", "json"))
    assert history.code == 0 and status.code == 0, (history, status)
    rows = json.loads(history.out)
    assert isinstance(rows, list) and [r["id"] for r in rows] == ["rel-1"]
    [row] = rows
    assert row["digest"] == digest and row["state"] in STATES and row["state"] == "pending"
    assert set(row["environments"]) == {"staging", "prod"}
    for env in ("staging", "prod"):
        assert set(row["environments"][env]) == {"api", "web"}
        for svc in ("api", "web"):
            item = row["environments"][env][svc]
            assert item["state"] == "pending" and item["version"] == "2.0" and DIGEST.fullmatch(item["digest"])
    one = json.loads(status.out)
    assert one["id"] == "rel-1" and one["digest"] == digest and one["state"] == "pending"
    assert one["environments"] == row["environments"] and one["status"]["release_id"] == "rel-1"

    once = cli("controller", "--once")
    assert once.code == 0, once
    assert "rel-1" in once.out and "started" in once.out
    record = stored_rollout(cli, "rel-1")
    assert record.phase == "running"
    assert record.lease_owner is None, "`primum controller --once` must not exit holding a lease"

    ctl = controller()  # takes over at once (the one-pass controller's noop instances died with it)
    done = cli.wait_for("rel-1", TERMINAL, timeout=40)
    assert done["state"] == "promoted", done
    assert all(item["state"] == "succeeded" for env in done["environments"].values() for item in env.values())
    assert ctl.stop() == 0, ctl.output()
    assert "rel-1 promoted" in " ".join(ctl.output().split())


def test_pause_abort_retry_env_and_refused_commands(cli: Cli, controller, tmp_path: Path, people) -> None:
    identities = tmp_path / "identities.yaml"
    identities.write_text(people.enrol("groups: {on-call: {roles: [operator, release-author], services: [api, web]}}\n"
                                       "users: [{id: alice, groups: [on-call]}, {id: bob}]\n"))
    cli.key = people.write_key("alice", tmp_path / "keys")
    estate = write_noop_estate(tmp_path, steps=[{"set_weight": 20}, {"pause": {}}], identities=identities)
    ctl = controller()  # one process for the whole test: its noop target remembers the baseline
    baseline = cli("release", "apply", write_release(tmp_path, "rel-base", ["api"], "1.0"), "--estate", estate,
                   "--timeout", "40")  # follows the release: exits 0 once promoted
    assert baseline.code == 0, baseline
    assert "submitted" in baseline.out and "rel-base promoted" in baseline.flat_out

    canary = write_release(tmp_path, "rel-canary", ["api"], "2.0")
    applied, unknown_env = cli.many(("release", "apply", canary, "--estate", estate, "--env", "staging", "--no-wait"),
                                    ("release", "apply", write_release(tmp_path, "rel-x", ["api"], "3.0"),
                                     "--estate", estate, "--env", "production", "--no-wait"))
    assert applied.code == 0, applied
    assert unknown_env.code == 2, unknown_env
    assert "production" in unknown_env.err and "staging, prod" in unknown_env.err and "fix:" in unknown_env.err
    paused = cli.wait_for("rel-canary", {"paused"})
    item = paused["environments"]["staging"]["api"]
    assert item["state"] == "paused" and item["previous"] == paused_previous(tmp_path), paused

    bob = people.write_key("bob", tmp_path / "keys")
    refused = cli("abort", "rel-canary", "--key", bob)  # enrolled, but not an operator
    assert refused.code == 2 and "bob may not abort rel-canary" in refused.flat_err, refused
    aborted = cli("abort", "rel-canary", "--as", "alice")
    assert aborted.code == 0, aborted
    assert "abort requested" in aborted.out
    done = cli.wait_for("rel-canary", TERMINAL)
    assert done["state"] == "rolled_back", done
    assert "alice" in (done["reason"] or ""), done
    assert done["environments"]["staging"]["api"]["state"] == "rolled_back", done

    retried = cli("retry", "rel-canary")
    assert retried.code == 0, retried
    assert "queued again" in retried.out
    status, history, unknown, finished = cli.many(
        ("status", "rel-canary", "--output", "json"), ("history", "--output", "json"), ("promote", "rel-nope"),
        ("abort", "rel-base", "--as", "alice"))
    assert status.code == 0, status
    again = json.loads(status.out)
    assert again["state"] in {"pending", "running", "paused"}, again  # the controller may have reached the pause
    assert again["environments"]["staging"]["api"]["state"] != "rolled_back", again
    assert history.code == 0, history
    rows = {row["id"]: row for row in json.loads(history.out)}
    assert list(rows) == ["rel-canary", "rel-base"], "newest first; rel-x was never submitted"
    assert set(rows["rel-canary"]["environments"]) == {"staging"}, "--env staging must not plan prod"
    assert set(rows["rel-base"]["environments"]) == {"staging", "prod"}
    assert unknown.code == 2, unknown
    assert "rel-nope" in unknown.err
    assert finished.code == 2, finished
    assert "rel-base" in finished.err and "promoted" in finished.err

    assert ctl.stop() == 0, ctl.output()


def paused_previous(directory: Path) -> str:
    """The digest of the baseline's artifact: the stable version the canary is compared with."""
    return yaml.safe_load((directory / "rel-base.yaml").read_text())["services"]["api"]["digest"]


# ----------------------------------------------------------------- runtime


def test_down_with_nothing_running(cli: Cli) -> None:
    result = cli("down")
    assert result.code == 0, result
    assert "stopped 0 runtime(s)" in result.out


def test_the_written_settings_file_is_what_the_commands_read(example: Path, tmp_path: Path) -> None:
    settings = {}
    for line in (example / "primum.env").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    assert settings == {"PRIMUM_HOME": "./.primum", "PRIMUM_ESTATE": "./estate.yaml",
                        "PRIMUM_KEY": "./.primum/people/sam-rivera.pem"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMUM_")}
    proc = subprocess.run([PRIMUM, "validate", "releases/0-baseline.yaml"], cwd=example, env={**env, **settings},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "estate.yaml" in proc.stdout


# ---------------------------------------------------------------- version and readable output


def test_version_is_the_package_version(cli: Cli) -> None:
    import importlib.metadata

    import primum

    result = cli("--version")
    assert result.code == 0, result
    assert result.out.strip() == f"primum {primum.__version__}"
    assert importlib.metadata.version("primum") == primum.__version__  # one version, pyproject reads it


def _narrow(cli: Cli, *args: str | Path) -> Result:
    """A command as a user with an 80-column terminal, or a pipe, sees it."""
    env = {**cli_env(cli.home), "COLUMNS": "80"}
    proc = subprocess.run([PRIMUM, *map(str, args)], cwd=cli.cwd, env=env, capture_output=True, text=True,
                          timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


LONG_REASON = ("canary p95 latency 0.412 s is 2.7 times the baseline's 0.151 s (Mann-Whitney U p=0.0004, "
               "effect 0.31 above the 0.2 threshold) for tenant clinic-north")


def _analysis_event(cli: Cli, release_id: str) -> None:
    """An analysis report as the controller records it, written to the store directly (noop targets have no
    telemetry); its texts are longer than 80 columns on purpose."""
    from primum.adapters.store.records import NewEvent

    result = {"metric": "appointment_booking_latency_p95", "slice": "clinic-north", "check": "shift",
              "classification": "High", "critical": True, "baseline_n": 412, "canary_n": 398,
              "baseline": {"median": 0.151, "p95": 0.2}, "canary": {"median": 0.412, "p95": 0.61},
              "statistics": {"u": 1234.0, "p_value": 0.0004}, "effect": 0.31, "effect_measure": "cliffs_delta",
              "thresholds": {"alpha": 0.05, "min_effect": 0.2}, "reason": LONG_REASON,
              "source": {"baseline": "builtin router samples of version 1.0 (stable) over 30 s"}}
    report = {"outcome": "Failed", "score": 0.0, "pass_score": 95, "marginal_score": 75, "mode": "canary",
              "start": 1000.0, "end": 1030.0, "baseline_version": "1.0", "canary_version": "2.0",
              "reason": LONG_REASON, "groups": [], "results": [result]}
    store = Store(f"sqlite:///{cli.home / 'primum.db'}", migrate=False)
    try:
        store.add_events(release_id, [NewEvent(kind="analysis", env="staging", service="api", message="analysis",
                                               data={"step": 1, "measurement": 1, "count": 3, "report": report})],
                         time.time())
    finally:
        store.close()


def test_history_status_and_analysis_are_readable_at_80_columns_and_wide_on_request(cli: Cli,
                                                                                    tmp_path: Path) -> None:
    estate = write_noop_estate(tmp_path)
    release = write_release(tmp_path, "rel-80", ["api", "web"], "2.0")
    assert cli("release", "apply", release, "--estate", estate, "--no-wait").code == 0
    _analysis_event(cli, "rel-80")

    narrow = {name: _narrow(cli, *args) for name, args in {
        "history": ("history",), "status": ("status", "rel-80"), "active": ("status",),
        "list": ("analysis", "list", "rel-80"), "show": ("analysis", "show", "rel-80")}.items()}
    for name, result in narrow.items():
        assert result.code == 0, (name, result)
        assert "…" not in result.out, (name, result.out)  # nothing is cut
        assert max(len(line) for line in result.out.splitlines()) <= 80, (name, result.out)
    assert "rel-80" in narrow["history"].out and "pending" in narrow["history"].out
    for env in ("staging", "prod"):
        for svc in ("api", "web"):
            assert f"{env}/{svc}" in narrow["status"].out, narrow["status"].out
    show = narrow["show"].flat_out
    assert LONG_REASON in show  # the whole reason, wrapped, not cut
    for text in ("appointment_booking_latency_p95", "clinic-north", "shift", "High", "critical", "412/398",
                 "p_value=0.0004", "0.31 cliffs_delta", "min_effect=0.2", "builtin router samples"):
        assert text in show, (text, narrow["show"].out)
    assert LONG_REASON in narrow["list"].flat_out

    wide = _narrow(cli, "analysis", "show", "rel-80", "--wide")
    assert wide.code == 0, wide
    header = next(line for line in wide.out.splitlines() if "metric" in line and "thresholds" in line)
    assert len(header) > 80  # one table as wide as its content
    assert LONG_REASON in wide.out  # on one line: nothing folded or cut
    status_wide = _narrow(cli, "status", "rel-80", "--wide")
    assert status_wide.code == 0 and "strategy" in status_wide.out and "…" not in status_wide.out, status_wide

    as_json = json.loads(_narrow(cli, "analysis", "show", "rel-80", "--output", "json").out)
    assert as_json["report"]["reason"] == LONG_REASON and as_json["release"] == "rel-80"


def test_pause_is_signed_and_refused_for_callers_who_may_not(cli: Cli, tmp_path: Path, people) -> None:
    """`primum pause ID` (issue 13 point 2): unknown, unsigned and wrong-role callers exit 2; a release that
    has not started has nothing to pause. (Pausing a running release: tests/governance/test_identity_attacks.)"""
    identities = tmp_path / "identities.yaml"
    identities.write_text(people.enrol("groups: {on-call: {roles: [operator, release-author], services: [api]}}\n"
                                       "users: [{id: alice, groups: [on-call]}, {id: bob}]\n"))
    cli.key = people.write_key("alice", tmp_path / "keys")
    estate = write_noop_estate(tmp_path, identities=identities)
    applied = cli("release", "apply", write_release(tmp_path, "rel-p", ["api"]), "--estate", estate, "--no-wait")
    assert applied.code == 0, applied
    stranger = people.write_key("mallory", tmp_path / "keys")
    unknown, wrong_role, impostor, pending, missing = cli.many(
        ("pause", "rel-p", "--key", stranger), ("pause", "rel-p", "--key", people.write_key("bob", tmp_path / "keys")),
        ("pause", "rel-p", "--as", "bob"), ("pause", "rel-p"), ("pause", "rel-nope"))
    assert unknown.code == 2 and "is not enrolled in the identities in force" in unknown.flat_err, unknown
    assert wrong_role.code == 2 and "bob may not pause rel-p" in wrong_role.flat_err, wrong_role
    assert impostor.code == 2 and "--as bob does not match your key" in impostor.flat_err, impostor
    assert pending.code == 2 and "has not started; nothing to pause" in pending.flat_err, pending
    assert missing.code == 2 and "rel-nope" in missing.err, missing
