"""The SSH target against a real sshd (Debian openssh-server) started here on a loopback port, driven
through the engine with the apply strategy: promoted, rolled back with revert run, held for a person when
there is no revert, and every fault (host key mismatch, wrong key, timeout, non-zero exit) a clear reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

import primum.adapters.targets.registry  # noqa: F401 - registers the ssh kind with the estate model
from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.ssh.target import SshTarget
from primum.core.engine.decide import Observations, decide, wanted_observations
from primum.core.engine.planner import plan
from primum.core.model.actions import EnsureInstances, SetRoute, VersionRef
from primum.core.model.errors import InputError
from primum.core.model.release import ArtifactPin, Release, canonical_digest
from primum.core.model.rollout import TERMINAL, Gate, ItemPhase, RolloutPhase, RolloutStatus
from primum.core.model.validate import estate_from_document, runtime_spec
from primum.core.model.yamlfile import parse_yaml

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Host:
    port: int
    key_file: Path  # the client's private key (the secret the estate refers to)
    known_hosts: Path
    root: Path  # where the "host" keeps its files (the commands write here)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    if not os.access(SSHD, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SSHD} is missing: install openssh-server (.ci/run does)")
        pytest.skip(f"{SSHD} is missing (apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(d / "host_key"))
    os.chmod(d / "host_key", 0o600)
    client = asyncssh.generate_private_key("ssh-ed25519")
    client.write_private_key(str(d / "client_key"))
    (d / "authorized_keys").write_bytes(client.export_public_key())
    port = _free_port()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} " + host_key.export_public_key().decode())
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nLogLevel ERROR\n")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    why = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"sshd exited: {why}") from None
                time.sleep(0.05)
        root = d / "host"
        root.mkdir()
        yield Host(port=port, key_file=d / "client_key", known_hosts=d / "known_hosts", root=root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _key(path: Path) -> str:
    return f"{{from_file: {path}}}" if path.is_absolute() else str(path)


def _estate(host: Host, verify: str = "grep -q healthy {artifact}", revert: bool = True,
            deploy: str = "cp {artifact} $R/current && echo deployed {version}",
            deploy_timeout: str = "10s", key: Path | None = None, known_hosts: Path | None = None):
    r = host.root
    revert_run = f"R={r}; cp $R/was $R/current; echo {{version}} >> $R/reverts"
    revert_line = f"      revert: {{run: '{revert_run}', timeout: 10s}}\n" if revert else ""
    text = f"""
apiVersion: primum/v1
kind: Estate
name: ssh-hospital
environments: [{{name: staging, class: nonprod}}]
services:
  legacy:
    owner: integration
    tier: business
    data_class: none
    strategy: {{type: apply}}
    target:
      type: ssh
      host: 127.0.0.1
      port: {host.port}
      user: {os.environ.get('USER', 'root') if os.getuid() else 'root'}
      key: {_key(key or host.key_file)}
      known_hosts: {known_hosts or host.known_hosts}
      deploy: {{run: 'R={r}; cp $R/current $R/was 2>/dev/null; {deploy}', timeout: {deploy_timeout}}}
      verify: {{run: '{verify}', timeout: 10s}}
{revert_line}"""
    return estate_from_document(parse_yaml(text, "estate.yaml"))


def _version(host: Host, label: str, body: str) -> VersionRef:
    path = host.root / f"legacy-{label}.txt"
    path.write_text(body)
    return VersionRef(digest="sha256:" + hashlib.sha256(body.encode()).hexdigest(), artifact=str(path), label=label)


def _drive(estate, target: SshTarget, new: VersionRef, deadline: float = 60.0) -> RolloutStatus:
    release = Release.model_validate({
        "apiVersion": "primum/v1", "kind": "Release", "id": f"rel-{new.label}",
        "services": {"legacy": ArtifactPin(artifact=new.artifact, digest=new.digest, version=new.label).model_dump()}})
    status = plan(estate, release, canonical_digest(release), {"legacy": new}, ["staging"], time.time())
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        services = {}
        gates = {}
        for w in wanted_observations(status, time.time()):
            services[f"{w.env}/{w.service}"] = target.observe(runtime_spec(estate, w.env, w.service))
            if w.gate_env:
                gates[w.gate_env] = Gate(allowed=True, reason="test: allowed")
        decision = decide(status, Observations(now=time.time(), services=services, gates=gates))
        status = decision.status
        for action in decision.actions:
            target.apply(action, runtime_spec(estate, action.env, action.service), 1)
        if status.phase in TERMINAL or status.phase is RolloutPhase.paused:
            return status
        time.sleep(min(0.1, decision.next_due_in or 0.1))
    raise AssertionError(f"not finished: {status.phase} {status.items[0].steps} {status.items[0].step_index}")


def _install(estate, target: SshTarget, v: VersionRef) -> None:
    """The stable version, deployed as a first release would (and its file in place on the host)."""
    shutil.copy(v.artifact, Path(v.artifact).parent / "current")
    assert _drive(estate, target, v).phase is RolloutPhase.promoted


def test_a_release_is_applied_verified_and_promoted(sshd: Host, tmp_path: Path) -> None:
    estate = _estate(sshd)
    target = SshTarget(tmp_path, estate.name)
    _install(estate, target, _version(sshd, "1.0", "healthy v1\n"))
    v2 = _version(sshd, "2.0", "healthy v2\n")
    status = _drive(estate, target, v2)
    assert status.phase is RolloutPhase.promoted, status.reason
    assert (sshd.root / "current").read_text() == "healthy v2\n"
    # a restarted controller (a new target over the same home) sees v2 applied and does not deploy again
    again = SshTarget(tmp_path, estate.name)
    seen = again.observe(runtime_spec(estate, "staging", "legacy"))
    assert seen.stable() == v2
    (sshd.root / "current").write_text("sentinel")
    again.apply(EnsureInstances(env="staging", service="legacy", version=v2, count=1),
                runtime_spec(estate, "staging", "legacy"), 2)
    time.sleep(0.5)
    assert (sshd.root / "current").read_text() == "sentinel"


def test_a_failing_verify_rolls_back_with_revert_run(sshd: Host, tmp_path: Path) -> None:
    estate = _estate(sshd)
    target = SshTarget(tmp_path, estate.name)
    _install(estate, target, _version(sshd, "1.1", "healthy v1.1\n"))
    bad = _version(sshd, "2.1", "bad\n")
    status = _drive(estate, target, bad)
    assert status.phase is RolloutPhase.rolled_back
    assert "verify command exited 1" in (status.reason or "")
    assert status.items[0].phase is ItemPhase.rolled_back
    assert (sshd.root / "current").read_text() == "healthy v1.1\n"
    assert "1.1" in (sshd.root / "reverts").read_text()


def test_no_revert_command_holds_for_a_person(sshd: Host, tmp_path: Path) -> None:
    estate = _estate(sshd, revert=False)
    assert estate.services["legacy"].target.forward_only
    target = SshTarget(tmp_path, estate.name)
    _install(estate, target, _version(sshd, "1.2", "healthy v1.2\n"))
    status = _drive(estate, target, _version(sshd, "2.2", "bad v2.2\n"))
    assert status.phase is RolloutPhase.paused
    assert "forward-only" in (status.pause_reason or "") and "verify command exited 1" in (status.pause_reason or "")


def test_non_zero_exit_reports_its_redacted_output(sshd: Host, tmp_path: Path) -> None:
    # a synthetic NHS number (the well-known test number) in the output must not reach the reason
    estate = _estate(sshd, deploy="echo patient NHS 943 476 5919 not found >&2; exit 3")
    target = SshTarget(tmp_path, estate.name)
    status = _drive(estate, target, _version(sshd, "3.0", "healthy v3\n"))
    assert status.phase is RolloutPhase.rolled_back  # a first deployment that failed: nothing to keep
    reason = status.reason or ""
    assert "deploy command exited 3" in reason and "not found" in reason
    assert "943 476 5919" not in reason and "9434765919" not in reason


def test_a_command_timeout_is_a_failure_with_the_timeout(sshd: Host, tmp_path: Path) -> None:
    estate = _estate(sshd, deploy="sleep 30", deploy_timeout="1s")
    target = SshTarget(tmp_path, estate.name)
    start = time.monotonic()
    status = _drive(estate, target, _version(sshd, "4.0", "healthy v4\n"))
    assert time.monotonic() - start < 20
    assert status.phase is RolloutPhase.rolled_back
    assert "deploy command timed out after 1s" in (status.reason or "")


def _one_job(estate, tmp_path: Path, sshd: Host) -> str:
    target = SshTarget(tmp_path, estate.name)
    spec = runtime_spec(estate, "staging", "legacy")
    v = _version(sshd, "5.0", "healthy v5\n")
    target.apply(EnsureInstances(env="staging", service="legacy", version=v, count=1), spec, 1)
    target.apply(SetRoute(env="staging", service="legacy", weights={v.key: 100}), spec, 1)
    for _ in range(200):
        o = target.observe(spec).versions[v.key]
        if o.failed or o.ready:
            assert o.failed and o.error
            return o.error
        time.sleep(0.05)
    raise AssertionError("no answer")


def test_a_host_key_mismatch_is_refused(sshd: Host, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other}")
    error = _one_job(_estate(sshd, known_hosts=wrong), tmp_path, sshd)
    assert "host key does not match known_hosts" in error and "refused" in error


def test_a_wrong_key_is_permission_denied(sshd: Host, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    error = _one_job(_estate(sshd, key=stranger), tmp_path, sshd)
    assert "permission denied" in error and "authorized_keys" in error


def test_a_relative_known_hosts_or_a_key_value_is_an_estate_error(sshd: Host) -> None:
    with pytest.raises(InputError) as caught:
        _estate(sshd, known_hosts=Path("known_hosts"))
    assert "known_hosts" in caught.value.problems[0].render()
    with pytest.raises(InputError) as caught:  # the key itself, not a reference to it: refused
        _estate(sshd, key=Path("SYNTHETIC-NOT-A-KEY"))
    assert "key" in caught.value.problems[0].render()


def _command_estate(root: Path, verify: str = "grep -q healthy {artifact}", deploy_timeout: str = "10s",
                    deploy: str = "cp {artifact} $R/current"):
    text = f"""
apiVersion: primum/v1
kind: Estate
name: command-hospital
environments: [{{name: staging, class: nonprod}}]
services:
  legacy:
    owner: integration
    tier: business
    data_class: none
    strategy: {{type: apply}}
    target:
      type: command
      deploy: {{run: 'R={root}; cp $R/current $R/was 2>/dev/null; {deploy}', timeout: {deploy_timeout}}}
      verify: {{run: '{verify}', timeout: 10s}}
      revert: {{run: 'R={root}; cp $R/was $R/current', timeout: 10s}}
"""
    return estate_from_document(parse_yaml(text, "estate.yaml"))


def _local_version(root: Path, label: str, body: str) -> VersionRef:
    path = root / f"legacy-{label}.txt"
    path.write_text(body)
    return VersionRef(digest="sha256:" + hashlib.sha256(body.encode()).hexdigest(), artifact=str(path), label=label)


def test_the_command_variant_promotes_and_reverts_locally(tmp_path: Path) -> None:
    root = tmp_path / "host"
    root.mkdir()
    estate = _command_estate(root)
    target = SshTarget(tmp_path, estate.name, kind="command")
    assert _drive(estate, target, _local_version(root, "1.0", "healthy v1\n")).phase is RolloutPhase.promoted
    assert _drive(estate, target, _local_version(root, "2.0", "healthy v2\n")).phase is RolloutPhase.promoted
    status = _drive(estate, target, _local_version(root, "3.0", "bad\n"))
    assert status.phase is RolloutPhase.rolled_back and "verify command exited 1" in (status.reason or "")
    assert (root / "current").read_text() == "healthy v2\n"


def test_the_command_variant_kills_a_command_past_its_timeout(tmp_path: Path) -> None:
    root = tmp_path / "host"
    root.mkdir()
    estate = _command_estate(root, deploy="sleep 30", deploy_timeout="1s")
    target = SshTarget(tmp_path, estate.name, kind="command")
    start = time.monotonic()
    status = _drive(estate, target, _local_version(root, "1.0", "healthy v1\n"))
    assert time.monotonic() - start < 15
    assert "deploy command timed out after 1s (killed)" in (status.reason or "")


def test_a_restarted_controller_finishes_a_deploy_that_was_in_flight(tmp_path: Path) -> None:
    root = tmp_path / "host"
    root.mkdir()
    estate = _command_estate(root, deploy="sleep 1; cp {artifact} $R/current; echo x >> $R/deploys")
    spec = runtime_spec(estate, "staging", "legacy")
    v = _local_version(root, "1.0", "healthy v1\n")
    first = SshTarget(tmp_path, estate.name, kind="command")
    first.apply(EnsureInstances(env="staging", service="legacy", version=v, count=1), spec, 1)
    # a new controller over the same home, while the job runs: it knows the job, and runs it (idempotent)
    second = SshTarget(tmp_path, estate.name, kind="command")
    assert second.observe(spec).versions[v.key].starting == 1
    second.apply(EnsureInstances(env="staging", service="legacy", version=v, count=1), spec, 2)
    for _ in range(100):
        if second.observe(spec).versions[v.key].ready:
            break
        time.sleep(0.05)
    assert second.observe(spec).versions[v.key].ready == 1
    time.sleep(1.2)
    deploys = (root / "deploys").read_text().count("x")
    second.apply(EnsureInstances(env="staging", service="legacy", version=v, count=1), spec, 2)  # finished: no-op
    time.sleep(1.2)
    assert (root / "deploys").read_text().count("x") == deploys
    with pytest.raises(StaleFenceError):  # the old controller lost its lease
        first.apply(EnsureInstances(env="staging", service="legacy", version=v, count=1), spec, 1)


def test_unreadable_state_is_a_target_error_never_a_guess(tmp_path: Path) -> None:
    estate = _command_estate(tmp_path)
    target = SshTarget(tmp_path, estate.name, kind="command")
    path = tmp_path / "targets" / "command" / estate.name / "staging--legacy.json"
    path.parent.mkdir(parents=True)
    path.write_text("{half")
    with pytest.raises(TargetError, match="cannot be read"):
        target.observe(runtime_spec(estate, "staging", "legacy"))
