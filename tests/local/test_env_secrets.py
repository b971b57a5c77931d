"""A started instance gets the secrets its estate refers to, read by the target at start (issue 13.5): the
value is in the process's environment and nowhere in the runtime's records; a variable that is not set fails the
version closed, with an error naming the setting and no value."""

from __future__ import annotations

from pathlib import Path

import pytest

from primum.adapters.targets.local.runtime import LocalRuntime
from primum.core.model.types import SecretRef

from . import helpers as H

home = H.home
runtime = H.runtime

SECRET = "Syn7hSecretValue-not-real"


def test_references_are_read_into_the_instance_environment_only(runtime: LocalRuntime, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYN_DB_PASSWORD", SECRET)
    key_file = tmp_path / "tls.key"
    key_file.write_text("synthetic-key-material\n")
    spec = H.make_spec(env_vars={"DB_PASSWORD": SecretRef(from_env="SYN_DB_PASSWORD"),
                                 "TLS_KEY": SecretRef(from_file=str(key_file)),
                                 "DSN": "postgresql://app:${SYN_DB_PASSWORD}@db.example.org/app",
                                 "LOG_LEVEL": "info"})
    v1 = H.write_artifact(tmp_path, "v1", label="1.0.0")
    runtime.ensure_instances(spec, v1, 1)
    H.wait_for(lambda: (o := runtime.observe(spec).get(v1.key)) is not None and o.ready == 1, what="1 ready")
    [inst] = runtime.instances(spec)[v1.key]
    env = Path(f"/proc/{inst.pid}/environ").read_bytes().split(b"\0")
    for var in (f"DB_PASSWORD={SECRET}", "TLS_KEY=synthetic-key-material", "LOG_LEVEL=info",
                f"DSN=postgresql://app:{SECRET}@db.example.org/app"):
        assert var.encode() in env
    for state in runtime.home.rglob("*.json"):
        assert SECRET not in state.read_text()


def test_a_missing_variable_fails_the_version_without_starting_it(runtime: LocalRuntime, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYN_UNSET_PASSWORD", raising=False)
    spec = H.make_spec(env_vars={"DB_PASSWORD": SecretRef(from_env="SYN_UNSET_PASSWORD")})
    v1 = H.write_artifact(tmp_path, "v1", label="1.0.0")
    runtime.ensure_instances(spec, v1, 1)
    obs = runtime.observe(spec)[v1.key]
    assert obs.failed >= 1 and obs.ready == 0
    assert obs.error is not None and "target.env.DB_PASSWORD: the variable SYN_UNSET_PASSWORD is not set" in obs.error
    assert runtime.instances(spec).get(v1.key, []) == []
