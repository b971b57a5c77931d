"""TLS probe against local TLS servers with certificates made in the test."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from primum.adapters.probes import ProbeContext, run_probe
from primum.core.model.analysis import TlsProbe

from .conftest import Issuer, Pki, RawStarter, TlsServer, free_port

Serve = Callable[[Path, Path], TlsServer]
DAY = 86400.0


@pytest.fixture
def ca(pki: Pki) -> Issuer:
    return pki.ca("primum-test-ca")


def test_valid_certificate_passes(pki: Pki, ca: Issuer, tls_server: Serve) -> None:
    server = tls_server(*pki.server(ca, "fresh", valid_from=timedelta(days=-1), valid_until=timedelta(days=90)))
    result = run_probe(TlsProbe(host="127.0.0.1", port=server.port, ca_file=str(ca.file)), ProbeContext())
    assert result.ok, result.reason
    assert result.probe == "tls"
    assert result.target == f"127.0.0.1:{server.port}"
    details = result.details
    assert 89.9 < details["days_left"] <= 90
    assert "CN=fresh" in details["subject"]
    assert "CN=primum-test-ca" in details["issuer"]
    assert details["not_after"]
    assert details["tls_version"].startswith("TLS")
    assert details["san"] == ["localhost", "127.0.0.1"]
    assert "days left" in result.reason


def test_server_name_is_checked(pki: Pki, ca: Issuer, tls_server: Serve) -> None:
    server = tls_server(*pki.server(ca, "named", valid_from=timedelta(days=-1), valid_until=timedelta(days=90)))
    spec = TlsProbe(host="127.0.0.1", port=server.port, server_name="localhost", ca_file=str(ca.file))
    assert run_probe(spec, ProbeContext()).ok
    wrong = run_probe(spec.model_copy(update={"server_name": "fhir.example.org"}), ProbeContext())
    assert not wrong.ok
    assert "(SNI fhir.example.org) failed certificate verification" in wrong.reason
    assert "mismatch" in wrong.reason.lower()


def test_expiring_soon_fails_on_min_days(pki: Pki, ca: Issuer, tls_server: Serve) -> None:
    server = tls_server(*pki.server(ca, "short", valid_from=timedelta(days=-80), valid_until=timedelta(days=3)))
    spec = TlsProbe(host="127.0.0.1", port=server.port, ca_file=str(ca.file))
    result = run_probe(spec, ProbeContext())
    assert not result.ok
    assert "in 3.0 days, under the minimum of 14 days" in result.reason
    assert 2.9 < result.details["days_left"] <= 3
    assert run_probe(spec.model_copy(update={"min_days": 2}), ProbeContext()).ok


def test_clock_comes_from_the_context(pki: Pki, ca: Issuer, tls_server: Serve) -> None:
    server = tls_server(*pki.server(ca, "later", valid_from=timedelta(days=-1), valid_until=timedelta(days=90)))
    spec = TlsProbe(host="127.0.0.1", port=server.port, ca_file=str(ca.file))
    in_80_days = run_probe(spec, ProbeContext(now=time.time() + 80 * DAY))
    assert not in_80_days.ok
    assert "under the minimum of 14 days" in in_80_days.reason
    in_100_days = run_probe(spec, ProbeContext(now=time.time() + 100 * DAY))
    assert not in_100_days.ok
    assert "certificate expired on" in in_100_days.reason


def test_expired_certificate_fails(pki: Pki, ca: Issuer, tls_server: Serve) -> None:
    server = tls_server(*pki.server(ca, "old", valid_from=timedelta(days=-90), valid_until=timedelta(days=-2)))
    result = run_probe(TlsProbe(host="127.0.0.1", port=server.port, ca_file=str(ca.file)), ProbeContext())
    assert not result.ok
    assert "failed certificate verification" in result.reason
    assert "certificate has expired" in result.reason
    assert "expired 2.0 days ago" in result.reason
    assert result.details["verify_error"] == "certificate has expired"
    assert -2.1 < result.details["days_left"] < -1.9


def test_untrusted_ca_fails(pki: Pki, ca: Issuer, tls_server: Serve) -> None:
    stranger = pki.ca("someone-elses-ca")
    server = tls_server(*pki.server(stranger, "foreign", valid_from=timedelta(days=-1), valid_until=timedelta(days=90)))
    result = run_probe(TlsProbe(host="127.0.0.1", port=server.port, ca_file=str(ca.file)), ProbeContext())
    assert not result.ok
    assert f"failed certificate verification against {ca.file}" in result.reason
    # the server sends its CA along: OpenSSL says so ("self-signed certificate in certificate chain")
    assert result.details["verify_error"] in {"self-signed certificate in certificate chain",
                                              "unable to get local issuer certificate"}
    assert result.details["verify_error"] in result.reason
    assert "CN=someone-elses-ca" in result.details["issuer"]
    # nor is a private CA trusted by the system store
    system = run_probe(TlsProbe(host="127.0.0.1", port=server.port), ProbeContext())
    assert not system.ok
    assert "failed certificate verification against the system CA store" in system.reason


def test_missing_ca_file_fails(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    result = run_probe(TlsProbe(host="127.0.0.1", port=443, ca_file=str(missing)), ProbeContext())
    assert not result.ok
    assert f"cannot load the CA file {missing}" in result.reason


def test_refused_and_plain_tcp_fail(raw_server: RawStarter) -> None:
    port = free_port()
    refused = run_probe(TlsProbe(host="127.0.0.1", port=port, timeout=1), ProbeContext())
    assert not refused.ok
    assert refused.reason == f"TLS 127.0.0.1:{port} could not connect: connection refused"
    plain = raw_server(lambda _: b"HTTP/1.1 400 Bad Request\r\n\r\n", b"")
    result = run_probe(TlsProbe(host="127.0.0.1", port=plain.port, timeout=2), ProbeContext())
    assert not result.ok
    assert "TLS handshake failed" in result.reason


def test_silent_server_times_out(raw_server: RawStarter) -> None:
    silent = raw_server(lambda _: None, b"\x00never")
    result = run_probe(TlsProbe(host="127.0.0.1", port=silent.port, timeout=0.3), ProbeContext())
    assert not result.ok
    assert result.reason == f"TLS 127.0.0.1:{silent.port} did not complete a TLS handshake within 300 ms"
