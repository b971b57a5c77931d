"""HTTP headers of metric sources and probes refer to secrets, ``Bearer ${NAME}``, read from the environment when
the request is sent, never kept in the estate (issue 13.5). Against a real local HTTP server; values are
synthetic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from primum.adapters.probes.context import ProbeContext
from primum.adapters.probes.http import probe_http
from primum.adapters.providers.base import ProviderError
from primum.adapters.providers.web import WebProvider
from primum.core.evidence.redact import redact
from primum.core.model.analysis import HttpProbe, MetricKind, MetricSpec, WebSource
from primum.core.model.errors import InputError
from primum.core.model.validate import load_estate

from . import Server, json_answer, scope

TOKEN = "syn-token-0123456789-not-real"


def handle(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
    return json_answer({"value": 1.0 if headers.get("authorization") == f"Bearer {TOKEN}" else 0.0})


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server(handle)
    try:
        yield s
    finally:
        s.close()


def test_a_web_source_sends_the_secret_its_header_refers_to(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYN_PROM_TOKEN", TOKEN)
    spec = MetricSpec(name="m", kind=MetricKind.value, source=WebSource(
        url=f"{server.url}/v", headers={"Authorization": "Bearer ${SYN_PROM_TOKEN}"}, jsonpath="$.value"))
    provider = WebProvider()
    try:
        assert provider.fetch(spec, scope()).values == [1.0]
        monkeypatch.delenv("SYN_PROM_TOKEN")
        with pytest.raises(ProviderError, match=r"headers.Authorization: the variable SYN_PROM_TOKEN is not set"):
            provider.fetch(spec, scope())
    finally:
        provider.close()
    # what the store keeps of this source is the reference, not the value
    stored, notes = redact(spec.model_dump(mode="json"))
    assert stored["source"]["headers"] == {"Authorization": "Bearer ${SYN_PROM_TOKEN}"} and notes == []


def test_an_http_probe_reads_its_header_secret_when_it_runs(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = HttpProbe(url=f"{server.url}/v", headers={"Authorization": "Bearer ${SYN_PROBE_TOKEN}"})
    missing = probe_http(probe, ProbeContext())
    assert not missing.ok and "probe.headers.Authorization: the variable SYN_PROBE_TOKEN is not set" in missing.reason
    monkeypatch.setenv("SYN_PROBE_TOKEN", TOKEN)
    assert probe_http(probe, ProbeContext()).ok


def test_a_literal_secret_in_a_header_is_a_validation_error(tmp_path: Path) -> None:
    def estate(header: str) -> Path:
        doc = {"apiVersion": "primum/v1", "kind": "Estate", "name": "h", "environments": [
            {"name": "staging", "class": "nonprod"}], "services": {"api": {
                "owner": "t", "tier": "internal", "data_class": "none", "target": {"type": "noop"},
                "analysis": {"metrics": [{"name": "m", "kind": "value", "source": {
                    "type": "web", "url": "http://127.0.0.1:1/x", "headers": {"Authorization": header}}}]}}}}
        path = tmp_path / "estate.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    with pytest.raises(InputError) as caught:
        load_estate(estate(f"Bearer {TOKEN}"))
    [problem] = caught.value.problems
    assert problem.path == "services.api.analysis.metrics[0].source.headers.Authorization" and problem.line
    assert "a literal secret" in problem.message and "${NAME}" in problem.fix and TOKEN not in problem.render()
    load_estate(estate("Bearer ${SYN_PROM_TOKEN}"))
