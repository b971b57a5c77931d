"""TLS probe: the handshake verifies (chain and host name) and the certificate lasts long enough.

The chain is verified against the system's CA store, or ``ca_file`` instead;
the host name checked (and sent as SNI) is ``server_name``, else ``host``.
The peer certificate's ``notAfter`` gives ``days_left``; fewer than
``min_days`` fails the probe. When verification fails the certificate is
fetched once more without verification, only to report what it is.
"""

from __future__ import annotations

import socket
import ssl
import time
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from primum.adapters.probes.context import ProbeContext, elapsed_text, host_port, os_error_text, result, seconds
from primum.core.analysis.data import ProbeResult
from primum.core.model.analysis import TlsProbe

DAY = 86400.0


def handshake(host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float) -> dict[str, Any]:
    """Connect and complete a TLS handshake; the peer certificate (DER), TLS version and cipher."""
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        cipher = tls.cipher()
        return {
            "der": tls.getpeercert(binary_form=True),
            "tls_version": tls.version(),
            "cipher": cipher[0] if cipher else None,
        }


def describe(der: bytes, now: float) -> dict[str, Any]:
    """Subject, issuer, validity and days left (from ``now``, epoch seconds) of a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [str(name.value) for name in names]
    except x509.ExtensionNotFound:
        san = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": round((not_after.timestamp() - now) / DAY, 2),
        "san": san,
    }


def _day(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _peek(host: str, port: int, server_name: str, timeout: float, now: float) -> dict[str, Any]:
    """The certificate without verifying it, to explain a verification failure (best effort)."""
    if timeout <= 0:
        return {}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        seen = handshake(host, port, server_name, context, timeout)
        return describe(seen["der"], now) if seen["der"] else {}
    except (OSError, ValueError):
        return {}


def probe_tls(spec: TlsProbe, ctx: ProbeContext) -> ProbeResult:
    target = host_port(spec.host, spec.port)
    server_name = spec.server_name or spec.host
    what = f"TLS {target}" + (f" (SNI {server_name})" if server_name != spec.host else "")
    try:
        context = ssl.create_default_context(cafile=spec.ca_file) if spec.ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        return result("tls", target, False, f"TLS probe of {target} cannot load the CA file {spec.ca_file}: "
                      f"{os_error_text(exc)}")
    now = ctx.clock()
    base: dict[str, Any] = {"server_name": server_name, "ca_file": spec.ca_file}
    began = time.monotonic()
    try:
        seen = handshake(spec.host, spec.port, server_name, context, spec.timeout)
    except ssl.SSLCertVerificationError as exc:
        elapsed = time.monotonic() - began
        why = exc.verify_message or exc.reason or str(exc)
        cert = _peek(spec.host, spec.port, server_name, spec.timeout - elapsed, now)
        note = ""
        if cert:
            days = cert["days_left"]
            expiry = f"expired {-days:.1f} days ago" if days < 0 else f"{days:.1f} days left"
            note = (f" (certificate {cert['subject']} issued by {cert['issuer']}, "
                    f"not after {_day(cert['not_after'])}, {expiry})")
        trust = spec.ca_file or "the system CA store"
        return result("tls", target, False,
                      f"{what} failed certificate verification against {trust}: {why}{note}", elapsed,
                      **base, verify_error=why, verify_code=exc.verify_code, **cert)
    except TimeoutError:
        return result("tls", target, False,
                      f"{what} did not complete a TLS handshake within {seconds(spec.timeout)}",
                      time.monotonic() - began, **base)
    except ssl.SSLError as exc:
        return result("tls", target, False, f"{what} TLS handshake failed: {exc.reason or exc}",
                      time.monotonic() - began, **base)
    except OSError as exc:
        return result("tls", target, False, f"{what} could not connect: {os_error_text(exc)}",
                      time.monotonic() - began, **base)
    elapsed = time.monotonic() - began
    if not seen["der"]:
        return result("tls", target, False, f"{what} presented no certificate", elapsed, **base)
    try:
        cert = describe(seen["der"], now)
    except ValueError as exc:
        return result("tls", target, False, f"{what} presented a certificate that cannot be parsed: {exc}",
                      elapsed, **base)
    details = {**base, "tls_version": seen["tls_version"], "cipher": seen["cipher"], **cert}
    days = cert["days_left"]
    until = _day(cert["not_after"])
    if days < 0:
        return result("tls", target, False, f"{what} certificate expired on {until}, {-days:.1f} days ago", elapsed,
                      **details)
    if days < spec.min_days:
        return result("tls", target, False,
                      f"{what} certificate expires on {until}, in {days:.1f} days, under the minimum of "
                      f"{spec.min_days:g} days", elapsed, **details)
    return result("tls", target, True,
                  f"{what} verified for {server_name}, certificate valid until {until} ({days:.1f} days left) "
                  f"in {elapsed_text(elapsed)}", elapsed, **details)


def target_tls(spec: TlsProbe, ctx: ProbeContext) -> str:
    return host_port(spec.host, spec.port)
