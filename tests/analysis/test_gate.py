"""The first analysis gate, stage by stage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from primum.analysis.gate import judge, quantile, window
from primum.model.estate import AnalysisSettings, Slo
from primum.model.rollout import VerdictResult
from primum.model.runtime import LatencyHistogram, MetricsSnapshot, VersionMetrics

BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def metrics(ok: int, errors: int, latency_s: float) -> VersionMetrics:
    n = ok + errors
    buckets = tuple((b, n if latency_s <= b else 0) for b in BOUNDS)
    return VersionMetrics(requests={"200": ok, "503": errors},
                          latency=LatencyHistogram(buckets=buckets, count=n, sum=n * latency_s))


def snap(t: float, **versions: VersionMetrics) -> MetricsSnapshot:
    return MetricsSnapshot(taken_at=t, router_started_at=1.0, versions=versions)


EMPTY = snap(0.0)
SLO = Slo(error_rate=0.01, p95_ms=300)
SETTINGS = AnalysisSettings(min_requests=20)


def test_quantile_interpolates_within_a_bucket_like_promql():
    buckets = ((0.1, 50), (0.2, 100))
    assert quantile(0.5, buckets, 100) == pytest.approx(0.1)
    assert quantile(0.75, buckets, 100) == pytest.approx(0.15)
    assert quantile(0.95, ((0.1, 90),), 100) == pytest.approx(0.1)  # beyond the last finite bucket
    assert quantile(0.95, (), 0) is None


def test_window_is_the_difference_of_two_snapshots():
    before, after = metrics(10, 1, 0.02), metrics(40, 3, 0.02)
    w = window(before, after)
    assert (w.requests, w.errors, w.observed) == (32, 2, 32)


@pytest.mark.parametrize("new, stable, result, words", [
    (metrics(100, 0, 0.02), metrics(300, 0, 0.02), VerdictResult.passed, "met its SLOs"),
    (metrics(80, 20, 0.02), metrics(300, 0, 0.02), VerdictResult.failed, "error rate"),
    (metrics(100, 0, 0.4), metrics(300, 0, 0.02), VerdictResult.failed, "p95"),
    (metrics(100, 0, 0.2), metrics(300, 0, 0.02), VerdictResult.failed, "vs stable"),  # within SLO, regressed
    (metrics(10, 0, 0.02), metrics(300, 0, 0.02), VerdictResult.inconclusive, "at least 20"),
    (metrics(100, 0, 0.02), metrics(5, 0, 0.02), VerdictResult.passed, "met its SLOs"),  # SLO-only
])
def test_final_verdicts(new, stable, result, words):
    v = judge(EMPTY, snap(10.0, new=new, old=stable), "new", "old", SLO, SETTINGS, final=True)
    assert v.result is result, v
    assert words in v.reason + " ".join(v.checks)
    assert v.new is not None and v.new.requests == sum(new.requests.values())


def test_interim_never_passes_but_fails_early_on_enough_evidence():
    good = judge(EMPTY, snap(5.0, new=metrics(100, 0, 0.02)), "new", None, SLO, SETTINGS, final=False)
    assert good.result is VerdictResult.running
    few = judge(EMPTY, snap(5.0, new=metrics(3, 3, 0.02)), "new", None, SLO, SETTINGS, final=False)
    assert few.result is VerdictResult.running  # 3 errors of 6: not enough requests to judge yet
    bad = judge(EMPTY, snap(5.0, new=metrics(50, 50, 0.02)), "new", None, SLO, SETTINGS, final=False)
    assert bad.result is VerdictResult.failed


@pytest.mark.parametrize("before, after, error, words", [
    (EMPTY, None, "connection refused", "connection refused"),
    (None, snap(1.0), None, "no snapshot"),
    (EMPTY, MetricsSnapshot(taken_at=2.0, router_started_at=9.0), None, "restarted"),
    (snap(0.0, new=metrics(500, 0, 0.02)), snap(1.0, new=metrics(10, 0, 0.02)), None, "backwards"),
    (EMPTY, snap(1.0), None, "only 0 request"),
])
def test_no_data_or_broken_data_is_inconclusive_never_a_pass(before, after, error, words):
    v = judge(before, after, "new", None, SLO, SETTINGS, final=True, error=error)
    assert v.result is VerdictResult.inconclusive
    assert words in v.reason


@given(ok=st.integers(min_value=20, max_value=5000), stable_ok=st.integers(min_value=20, max_value=5000),
       latency=st.sampled_from(BOUNDS[:4]))
def test_a_version_identical_to_stable_and_within_slo_passes(ok, stable_ok, latency):
    v = judge(EMPTY, snap(1.0, new=metrics(ok, 0, latency), old=metrics(stable_ok, 0, latency)), "new", "old",
              SLO, SETTINGS, final=True)
    assert v.result is VerdictResult.passed


@given(n=st.integers(min_value=20, max_value=5000), rate=st.floats(min_value=0.05, max_value=1.0))
def test_an_error_rate_well_above_the_slo_always_fails(n, rate):
    errors = max(1, int(n * rate))
    v = judge(EMPTY, snap(1.0, new=metrics(n - errors, errors, 0.02)), "new", None, SLO, SETTINGS, final=True)
    assert v.result is VerdictResult.failed
