"""Scope placeholders, the retry loop and the choice of provider."""

from __future__ import annotations

import pytest

from primum.adapters.providers import (
    BuiltinProvider,
    CommandProvider,
    PrometheusProvider,
    Provider,
    ProviderError,
    WebProvider,
    provider_for,
    with_retries,
)
from primum.adapters.providers.base import duration_text, epoch_text, error
from primum.core.model.analysis import BuiltinSource, CommandSource, PrometheusSource, Source, WebSource, fill

from . import START, scope


def test_placeholders() -> None:
    values = scope("abc123", role="baseline", start=START, end=START + 4.5).placeholders()
    assert values == {
        "env": "staging", "service": "scheduling-api", "role": "baseline", "version": "abc123",
        "digest": "sha256:" + "ab" * 32, "tenant": "", "start": "1700000000", "end": "1700000004.5",
        "window": "4500ms", "step": "1s",
    }
    sliced = scope(tenant="clinic-north").placeholders(step=0.25, all_tenants=".*")
    assert sliced["tenant"] == "clinic-north" and sliced["step"] == "250ms" and sliced["window"] == "4s"
    assert scope().placeholders(all_tenants=".*")["tenant"] == ".*"
    text = 'rate(x{version="{{version}}",tenant=~"{{ tenant }}"}[{{window}}]) @ {{end}}'
    assert fill(text, scope("v1").placeholders(all_tenants=".*")) == (
        'rate(x{version="v1",tenant=~".*"}[4s]) @ 1700000004'
    )


def test_duration_and_epoch_text() -> None:
    assert [duration_text(x) for x in (4, 60, 0.5, 1.25, 0.0001)] == ["4s", "60s", "500ms", "1250ms", "1ms"]
    assert [epoch_text(x) for x in (0, 12.5, 1.0004, 1700000000.123456)] == ["0", "12.5", "1", "1700000000.123"]


def test_with_retries() -> None:
    sleeps: list[float] = []
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ProviderError("down", retryable=True)
        return "ok"

    assert with_retries(flaky, retries=5, sleep=sleeps.append) == "ok"
    assert sleeps == [0.2, 0.4]

    sleeps.clear()
    with pytest.raises(ProviderError, match=r"^down \(after 5 attempts\)$"):
        with_retries(lambda: (_ for _ in ()).throw(ProviderError("down", retryable=True)), retries=4,
                     sleep=sleeps.append)
    assert sleeps == [0.2, 0.4, 0.8, 1.0]  # capped at 1 s

    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ProviderError("bad query")

    with pytest.raises(ProviderError, match=r"^bad query$"):
        with_retries(broken, retries=3, sleep=sleeps.append)
    assert calls == [1]  # not retryable: one attempt


def test_error_message_shape() -> None:
    exc = error("latency", "prometheus http://p:9090", "it broke", "fix it", retryable=True)
    assert str(exc) == "metric 'latency' (prometheus http://p:9090): it broke; fix it" and exc.retryable


def test_provider_for() -> None:
    cases: list[tuple[Source, type]] = [
        (BuiltinSource(), BuiltinProvider),
        (PrometheusSource(query="up"), PrometheusProvider),
        (WebSource(url="http://x"), WebProvider),
        (CommandSource(argv=["true"]), CommandProvider),
    ]
    for source, kind in cases:
        provider = provider_for(source)
        assert isinstance(provider, kind) and isinstance(provider, Provider)
        assert provider.name == source.type
