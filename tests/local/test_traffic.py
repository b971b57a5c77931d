"""The synthetic traffic generator against a real router and backend.

Why: analysis only has data where this process produced it, so the tests
check what the *router* counted (rate, tenant labels, preview share), that a
re-written config is picked up without a restart, and that the loopback
guard refuses before a single request leaves.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from primum.adapters.targets.local.traffic import (
    TrafficConfigError,
    check_loopback_url,
    is_loopback_host,
    parse_config,
)

from . import Backend, Processes, RouterProc, processes_fixture, request_counts

KEY_A = "aaaaaaaaaaa1"
KEY_B = "bbbbbbbbbbb2"
TENANTS = ["clinic-north", "clinic-south", "st-elsewhere-ed"]


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    yield from processes_fixture(tmp_path)


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = Backend("A")
    try:
        yield b
    finally:
        b.close()


def write_config(path: Path, targets: list[dict[str, Any]]) -> None:
    """Write atomically (rename), as a controller should, so a reader never sees half."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"targets": targets}))
    tmp.replace(path)


def total(counts: dict[tuple[str, str, str], int]) -> int:
    return sum(counts.values())


def counts_of(client: httpx.Client, router: RouterProc) -> dict[tuple[str, str, str], int]:
    return request_counts(router.admin().get("/_primum/metrics").text)


# ---------------------------------------------------------------- in-process


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("::ffff:8.8.8.8", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: str | None, ok: bool) -> None:
    assert is_loopback_host(host) is ok


def test_loopback_url_and_config_validation() -> None:
    check_loopback_url("http://127.0.0.1:8080")
    check_loopback_url("http://[::1]:8080")
    for bad in ("http://example.com", "ftp://127.0.0.1/", "http://127.0.0.1:99999"):
        with pytest.raises(TrafficConfigError):
            check_loopback_url(bad)
    specs = parse_config({"targets": [{"name": "s/a", "url": "http://localhost:1/"}]})
    assert specs["s/a"].url == "http://localhost:1" and specs["s/a"].paths == ("/",)
    for bad_target in (
        {"name": "s/a", "url": "http://127.0.0.1:1", "rate": -1},
        {"name": "s/a", "url": "http://127.0.0.1:1", "paths": ["nope"]},
        {"name": "s/a", "url": "http://127.0.0.1:1", "preview_share": 2},
        {"name": "s/a", "url": "http://127.0.0.1:1", "colour": "red"},
    ):
        with pytest.raises(TrafficConfigError):
            parse_config({"targets": [bad_target]})


# -------------------------------------------------------------- real processes


def _router_config(backend: Backend, fence: int = 1) -> dict[str, Any]:
    return {
        "fence": fence,
        "versions": {
            KEY_A: {"label": "1.0.0", "weight": 100, "instances": [backend.url]},
            KEY_B: {"label": "1.1.0", "weight": 0, "instances": [backend.url]},
        },
        "preview": KEY_B,
        "affinity": "tenant",
        "tenant_header": "x-tenant-id",
        "tenants": TENANTS,
    }


@pytest.mark.slow
def test_traffic_reaches_the_router_at_rate_with_tenants(
    procs: Processes, backend: Backend, tmp_path: Path
) -> None:
    first = procs.router("staging/scheduling-api")
    second = procs.router("staging/records-api")
    config_path = tmp_path / "traffic.json"
    target = {
        "name": "staging/scheduling-api",
        "url": first.url,
        "rate": 50.0,
        "paths": ["/appointments", "/healthz"],
        "tenants": TENANTS,
        "tenant_header": "x-tenant-id",
        "preview_share": 0.2,
    }
    write_config(config_path, [target])
    with httpx.Client(timeout=10, trust_env=False) as client:
        for router in (first, second):
            resp = router.admin().put("/_primum/config", json=router.seal(_router_config(backend)))
            assert resp.status_code == 200, resp.text

        gen = procs.spawn(
            ["-m", "primum.adapters.targets.local.traffic", "--config", str(config_path)],
            wait_for="primum-traffic started",
            label="traffic",
        )
        time.sleep(0.3)
        before = counts_of(client, first)
        t0 = time.monotonic()
        time.sleep(2.0)
        after = counts_of(client, first)
        elapsed = time.monotonic() - t0

        sent = total(after) - total(before)
        expected = 50.0 * elapsed
        # Poisson(100): sd 10; a wide band still catches a wrong rate or a stall.
        assert 0.6 * expected <= sent <= 1.4 * expected, (sent, expected)
        tenants_seen = {tenant for (_, _, tenant) in after}
        assert tenants_seen == set(TENANTS), after  # only known tenants, all of them
        statuses = {status for (_, status, _) in after}
        assert statuses == {"200"}, after
        on_preview = sum(n for (version, _, _), n in after.items() if version == KEY_B)
        share = on_preview / total(after)
        assert 0.05 <= share <= 0.4, (on_preview, total(after))
        paths = {seen["path"] for seen in backend.seen}
        assert paths == {"/appointments", "/healthz"}

        # Adding a target by rewriting the file: picked up without a restart.
        assert total(counts_of(client, second)) == 0
        time.sleep(0.05)  # make sure the mtime moves even on coarse clocks
        write_config(
            config_path,
            [target, {"name": "staging/records-api", "url": second.url, "rate": 40.0}],
        )
        deadline = time.monotonic() + 5
        while total(counts_of(client, second)) < 10:
            assert time.monotonic() < deadline, "the new target never got traffic"
            time.sleep(0.1)
        assert {tenant for (_, _, tenant) in counts_of(client, second)} == {"-"}

        # A later non-loopback URL is refused as a whole; traffic keeps flowing.
        write_config(config_path, [{"name": "x", "url": "http://192.0.2.1:80"}])
        deadline = time.monotonic() + 5
        while "refusing non-loopback URL" not in gen.stderr():
            assert time.monotonic() < deadline, gen.stderr()
            time.sleep(0.1)
        mid = total(counts_of(client, first))
        time.sleep(0.3)
        assert total(counts_of(client, first)) > mid
        assert gen.popen.poll() is None

        gen.popen.send_signal(signal.SIGTERM)
        assert gen.popen.wait(timeout=10) == 0


@pytest.mark.slow
def test_loopback_guard_refuses_before_sending(procs: Processes, tmp_path: Path) -> None:
    # A loopback listener that must see no connection: the file is refused as a whole.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        config_path = tmp_path / "traffic.json"
        write_config(
            config_path,
            [
                {"name": "local", "url": f"http://127.0.0.1:{port}", "rate": 100.0},
                {"name": "remote", "url": "http://192.0.2.1:8080", "rate": 100.0},
            ],
        )
        gen = procs.spawn(
            ["-m", "primum.adapters.targets.local.traffic", "--config", str(config_path)],
            wait_for=None,
            label="traffic",
        )
        assert gen.popen.wait(timeout=10) == 2
        assert gen.popen.stdout is not None
        assert "primum-traffic started" not in gen.popen.stdout.read()
        assert "192.0.2.1" in gen.stderr()
        with pytest.raises(BlockingIOError):
            listener.accept()
