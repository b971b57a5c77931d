"""HTTP probe: one request, no redirects followed; status, latency budget and body checked.

Also holds :func:`fetch`, the bounded HTTP exchange the FHIR probe uses too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from primum.adapters.probes.context import ProbeContext, elapsed_text, os_error_text, result, root_cause, seconds
from primum.adapters.secrets import SecretUnavailable, expand_headers
from primum.core.analysis.data import ProbeResult
from primum.core.model.analysis import HttpProbe

MAX_BODY = 1 << 20  # bytes of a body read; the rest is not needed by any check
USER_AGENT = "primum-probe/1"


@dataclass(frozen=True)
class Exchange:
    status: int
    headers: httpx.Headers
    body: bytes
    elapsed: float  # seconds, request sent to body read (or cut at MAX_BODY)
    truncated: bool


class FetchError(Exception):
    """The exchange did not complete; the message completes ``"<METHOD> <url> ..."``."""

    def __init__(self, message: str, elapsed: float) -> None:
        super().__init__(message)
        self.message = message
        self.elapsed = elapsed


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` with exactly one slash between them."""
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


def fetch(method: str, url: str, headers: dict[str, str], timeout: float, max_body: int = MAX_BODY) -> Exchange:
    """One HTTP exchange within ``timeout`` seconds overall; redirects are answers, not followed.

    Raises :class:`FetchError` on any transport problem (bad URL, refused,
    timeout, TLS, a garbled answer).
    """
    began = time.monotonic()
    sent = {"user-agent": USER_AGENT, **headers}
    try:
        # trust_env=False: no proxy from the environment between a probe and its target
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream(method, url, headers=sent) as response,
        ):
            body = bytearray()
            truncated = False
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_body:
                    del body[max_body:]
                    truncated = True
                    break
                if time.monotonic() - began > timeout:
                    raise httpx.ReadTimeout("overall timeout")
            return Exchange(response.status_code, response.headers, bytes(body), time.monotonic() - began, truncated)
    except httpx.TimeoutException:
        raise FetchError(f"got no answer within {seconds(timeout)}", time.monotonic() - began) from None
    except httpx.InvalidURL as exc:
        raise FetchError(f"cannot be sent: invalid URL ({_text(exc)})", time.monotonic() - began) from None
    except httpx.UnsupportedProtocol as exc:
        raise FetchError(f"cannot be sent: {_text(exc)}", time.monotonic() - began) from None
    except httpx.ConnectError as exc:
        cause = root_cause(exc)
        text = os_error_text(cause) if cause is not exc else _text(exc)
        raise FetchError(f"could not connect: {text}", time.monotonic() - began) from None
    except httpx.HTTPError as exc:
        cause = root_cause(exc)
        text = os_error_text(cause) if cause is not exc else _text(exc)
        raise FetchError(f"got no valid HTTP answer: {text}", time.monotonic() - began) from None


def _text(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).rstrip(".")


def probe_http(spec: HttpProbe, ctx: ProbeContext) -> ProbeResult:
    if spec.url is not None:
        url = spec.url
    elif ctx.base_url:
        url = join_url(ctx.base_url, spec.path)
    else:
        return result("http", spec.path, False,
                      f"HTTP probe of {spec.path} has no target: set url, or run it where the service has a router")
    what = f"{spec.method} {url}"
    try:  # "${NAME}" in a header: a secret read from the environment now, never kept in the estate
        headers = {**ctx.headers, **expand_headers(spec.headers, "probe.headers")}
    except SecretUnavailable as exc:
        return result("http", url, False, f"{what}: {exc}")
    try:
        answer = fetch(spec.method, url, headers, spec.timeout)
    except FetchError as failure:
        return result("http", url, False, f"{what} {failure.message}", failure.elapsed)
    details: dict[str, object] = {
        "status": answer.status,
        "content_type": answer.headers.get("content-type"),
        "body_bytes": len(answer.body),
    }
    if "location" in answer.headers:
        details["location"] = answer.headers["location"]
    problems = []
    if answer.status not in spec.expect_status:
        expected = " or ".join(str(code) for code in spec.expect_status)
        problems.append(f"answered {answer.status}, expected {expected}")
    text = answer.body.decode("utf-8", errors="replace")
    if spec.body_contains is not None and spec.body_contains not in text:
        cut = " (first 1 MiB read)" if answer.truncated else ""
        problems.append(f"answered a body without {spec.body_contains!r}{cut}")
    if answer.elapsed > spec.max_latency:
        problems.append(f"took {elapsed_text(answer.elapsed)}, over the {seconds(spec.max_latency)} latency budget")
    if problems:
        return result("http", url, False, f"{what} " + "; ".join(problems), answer.elapsed, **details)
    return result("http", url, True, f"{what} answered {answer.status} in {elapsed_text(answer.elapsed)}",
                  answer.elapsed, **details)


def target_http(spec: HttpProbe, ctx: ProbeContext) -> str:
    return spec.url or (ctx.base_url or "").rstrip("/") + spec.path
