"""The estate's ``target.env`` holds references to secrets, never their values (issue 13.5).

A literal that looks like a secret is a validation error naming the file, the line, the field and the fix;
``{from_env: NAME}``, ``{from_file: /path}`` and ``${NAME}`` are kept as references by the store and the
evidence and read only when an instance starts. Every secret here is synthetic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from primum.adapters.secrets import SecretUnavailable, resolve_env
from primum.adapters.store.repository import Store
from primum.app.releases import ReleaseService
from primum.core.model.errors import InputError
from primum.core.model.types import SecretRef
from primum.core.model.validate import load_estate, runtime_spec
from tests.controller.noop_estate import write_release

SECRET = "Syn7hPassw0rd-not-real"


def write_estate(tmp: Path, env: dict) -> Path:
    doc = {
        "apiVersion": "primum/v1", "kind": "Estate", "name": "env-hospital",
        "environments": [{"name": "staging", "class": "nonprod"}],
        "services": {"api": {"owner": "t", "tier": "internal", "data_class": "none",
                             "target": {"type": "local", "command": ["{python}", "{artifact}", "--port", "{port}"],
                                        "env": env}}},
    }
    path = tmp / "estate.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


REFUSED = [
    ({"DB_PASSWORD": SECRET}, "DB_PASSWORD", "says it holds a password"),
    ({"API_TOKEN": "x" + SECRET}, "API_TOKEN", "says it holds a secret"),
    ({"DATABASE_URL": f"postgresql://app:{SECRET}@db.example.org/app"}, "DATABASE_URL", "connection password"),
    ({"UPSTREAM": "AKIAIOSFODNN7EXAMPLE"}, "UPSTREAM", "aws key"),
    ({"SIGNING": "q8ZrT2vLk9XwB4nYp7HsD3mJc6FgA1eU"}, "SIGNING", "high entropy"),
    ({"SESSION": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"}, "SESSION", "hex string"),
]


@pytest.mark.parametrize(("env", "name", "why"), REFUSED)
def test_a_literal_secret_is_refused_naming_file_line_field_and_fix(tmp_path: Path, env: dict, name: str,
                                                                    why: str) -> None:
    path = write_estate(tmp_path, {"LOG_LEVEL": "info", **env})
    with pytest.raises(InputError) as caught:
        load_estate(path)
    [problem] = caught.value.problems
    assert problem.file == str(path) and problem.line is not None
    assert problem.path == f"services.api.target.env.{name}"
    assert why in problem.message and "literal secret" in problem.message
    assert "from_env" in problem.fix and "from_file" in problem.fix
    rendered = "\n".join(caught.value.lines()) if hasattr(caught.value, "lines") else str(caught.value)
    assert SECRET not in rendered and "AKIAIOSFODNN7EXAMPLE" not in rendered  # the error does not repeat it


ALLOWED = {
    "LOG_LEVEL": "info",
    "FEATURE_BOOKING": "on",
    "WORKERS": "4",
    "PUBLIC_URL": "https://booking.st-elsewhere.example/app",
    "DB_PASSWORD": {"from_env": "SYN_DB_PASSWORD"},
    "TLS_KEY": {"from_file": "/run/secrets/tls.key"},
    "API_TOKEN": "${SYN_API_TOKEN}",
    "DATABASE_URL": "postgresql://app:${SYN_DB_PASSWORD}@db.example.org/app",
    "EXPECTED_SHA": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
    "ARTIFACT": "{artifact}",
}


def test_references_and_plain_settings_are_accepted(tmp_path: Path) -> None:
    estate = load_estate(write_estate(tmp_path, ALLOWED))
    env = estate.services["api"].target.env  # type: ignore[attr-defined]
    assert env["DB_PASSWORD"] == SecretRef(from_env="SYN_DB_PASSWORD")
    assert env["TLS_KEY"] == SecretRef(from_file="/run/secrets/tls.key")
    assert env["LOG_LEVEL"] == "info"


@pytest.mark.parametrize(("value", "message"), [
    ({"from_file": "secrets/db"}, "is not an absolute path"),
    ({"from_env": "A", "from_file": "/x"}, "exactly one of from_env or from_file"),
    ({"from_env": "not a name"}, "is not a variable name"),
    ({"from_vault": "x"}, "(not from_vault)"),
    (["x"], "not list"),
])
def test_a_bad_reference_is_an_input_error(tmp_path: Path, value: dict, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_estate(write_estate(tmp_path, {"DB_PASSWORD": value}))
    [problem] = caught.value.problems
    assert problem.path == "services.api.target.env.DB_PASSWORD" and message in problem.message, problem.render()


def test_the_store_keeps_the_reference_and_never_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYN_DB_PASSWORD", SECRET)
    monkeypatch.setenv("SYN_API_TOKEN", "tok-" + SECRET)
    estate = load_estate(write_estate(tmp_path, ALLOWED))
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        rid = ReleaseService(store, clock=lambda: 1_800_000_000.0).submit(
            write_release(tmp_path, "rel-env", ["api"]), estate, actor="alice").record.id
        record = store.get_rollout(rid)
        assert record is not None
        stored = record.estate["services"]["api"]["target"]["env"]
        assert stored["DB_PASSWORD"] == {"from_env": "SYN_DB_PASSWORD", "from_file": None}
        assert stored["TLS_KEY"] == {"from_env": None, "from_file": "/run/secrets/tls.key"}
        assert stored["API_TOKEN"] == "${SYN_API_TOKEN}"
    finally:
        store.close()
    for db_file in tmp_path.glob("p.db*"):
        assert SECRET.encode() not in db_file.read_bytes()


def test_an_instance_gets_the_values_when_it_starts(tmp_path: Path) -> None:
    secret_file = tmp_path / "tls.key"
    secret_file.write_text("synthetic-key-material\n")
    env = {**ALLOWED, "TLS_KEY": {"from_file": str(secret_file)}}
    spec = runtime_spec(load_estate(write_estate(tmp_path, env)), "staging", "api")
    resolved = resolve_env(spec.env_vars, {"SYN_DB_PASSWORD": SECRET, "SYN_API_TOKEN": "tok"})
    assert resolved["DB_PASSWORD"] == SECRET
    assert resolved["TLS_KEY"] == "synthetic-key-material"
    assert resolved["API_TOKEN"] == "tok"
    assert resolved["DATABASE_URL"] == f"postgresql://app:{SECRET}@db.example.org/app"
    assert resolved["LOG_LEVEL"] == "info"


def test_a_missing_secret_fails_closed_without_saying_any_value(tmp_path: Path) -> None:
    spec = runtime_spec(load_estate(write_estate(tmp_path, ALLOWED)), "staging", "api")
    with pytest.raises(SecretUnavailable, match=r"target.env.DB_PASSWORD: the variable SYN_DB_PASSWORD is not set"):
        resolve_env(spec.env_vars, {"SYN_API_TOKEN": "tok"})
    with pytest.raises(SecretUnavailable, match=r"target.env.TLS_KEY: cannot read /run/secrets/tls.key"):
        resolve_env({"TLS_KEY": SecretRef(from_file="/run/secrets/tls.key")}, {})
