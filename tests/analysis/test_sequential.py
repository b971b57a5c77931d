"""The early look's sequential test: its confidence sequences, its fail-closed edges, and by simulation
(seeded numpy generators) that peeking at every scrape keeps the type-I error within alpha while gross
failures are caught within the first few looks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from primum.core.analysis.data import MeasurementData, MetricData, Samples
from primum.core.analysis.sequential import (
    MEDIAN_CHECK,
    RATE_CHECK,
    describe_failure,
    early_look,
    early_metrics,
    early_report,
    median_sequence,
    rate_sequence,
)
from primum.core.model.analysis import AnalysisSettings, Direction, EarlySettings, JudgeMode, MetricKind, MetricSpec

DEFAULT = AnalysisSettings()
SLO = 0.01  # the default SLO error rate
LOOKS = 30  # one look a second, as the controller does during a window
CANARY_RPS, BASELINE_RPS = 10, 30  # a 40 requests/s service with 25% on the canary
BASE_LATENCY = 0.02


def data(b_err: tuple[int, int], c_err: tuple[int, int], b_lat, c_lat, *, slo: float | None = SLO,
         baseline: bool = True) -> MeasurementData:
    metrics = {
        "error-rate": MetricData(metric="error-rate", canary=Samples(events=c_err[0], total=c_err[1]),
                                 baseline=Samples(events=b_err[0], total=b_err[1]) if baseline else None),
        "latency": MetricData(metric="latency", canary=Samples(values=list(c_lat)),
                              baseline=Samples(values=list(b_lat)) if baseline else None),
    }
    return MeasurementData(start=0.0, end=1.0, baseline_version="sched@1" if baseline else None,
                           canary_version="sched@2", metrics=metrics, slo_error_rate=slo)


def simulate(rng: np.random.Generator, settings: AnalysisSettings, *, c_error: float, c_latency: float,
             b_error: float = 0.004, sigma: float = 0.3, looks: int = LOOKS) -> int | None:
    """One analysis window looked at every second: the 1-based look that rolled back early, or None."""
    b_events = c_events = 0
    b_lat: list[float] = []
    c_lat: list[float] = []
    for look in range(1, looks + 1):
        b_events += int(rng.binomial(BASELINE_RPS, b_error))
        c_events += int(rng.binomial(CANARY_RPS, c_error))
        b_lat += list(rng.lognormal(np.log(BASE_LATENCY), sigma, BASELINE_RPS))
        c_lat += list(rng.lognormal(np.log(c_latency), sigma, CANARY_RPS))
        d = data((b_events, look * BASELINE_RPS), (c_events, look * CANARY_RPS), b_lat, c_lat)
        if early_look(settings, d).failure is not None:
            return look
    return None


def rate_of(results: list[int | None]) -> float:
    return sum(r is not None for r in results) / len(results)


# ------------------------------------------------------------------ confidence sequences


def test_a_rate_sequence_holds_the_estimate_and_narrows_with_data():
    for events, total in [(0, 20), (4, 1000), (10, 20), (20, 20), (300, 1000)]:
        low, high = rate_sequence(events, total, 0.001)
        assert 0.0 <= low <= events / total <= high <= 1.0
    assert rate_sequence(0, 0, 0.001) == (0.0, 1.0)  # no data: every rate is possible
    assert rate_sequence(0, 50, 0.001)[0] == 0.0 and rate_sequence(50, 50, 0.001)[1] == 1.0
    widths = [np.subtract(*rate_sequence(n // 2, n, 0.001)[::-1]) for n in (20, 200, 2000)]
    assert widths[0] > widths[1] > widths[2]
    # always valid costs width: wider than the fixed-sample exact interval at the same level
    fixed = stats.binomtest(10, 20).proportion_ci(confidence_level=0.999)
    low, high = rate_sequence(10, 20, 0.001)
    assert low < fixed.low and high > fixed.high


def test_a_median_sequence_is_between_order_statistics_and_needs_some_data():
    assert median_sequence([], 0.001) == (None, None)
    assert median_sequence([0.1] * 5, 0.001) == (None, None)  # five samples cannot bound a median
    values = np.sort(np.random.default_rng(3).lognormal(0, 0.5, 400))
    low, high = median_sequence(values, 0.001)
    assert low is not None and high is not None
    assert low < float(np.median(values)) < high and low in values and high in values


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_a_rate_sequence_covers_the_true_rate_at_every_look_at_once(alpha):
    """Coverage of the whole path, looked at after every 5 trials up to 300: paths with a miss <= alpha."""
    rng = np.random.default_rng(11)
    true_rate = 0.05
    missed = 0
    for _ in range(300):
        events = np.cumsum(rng.random(300) < true_rate)
        bounds = (rate_sequence(int(events[i]), i + 1, alpha) for i in range(4, 300, 5))
        missed += any(not low <= true_rate <= high for low, high in bounds)
    assert missed / 300 <= alpha


# ------------------------------------------------------------------ the checks and their edges


def test_the_early_metrics_are_the_upward_rates_and_latency_of_primum_mode():
    assert [m.name for m in early_metrics(DEFAULT)] == ["error-rate", "latency"]
    assert early_metrics(AnalysisSettings(mode=JudgeMode.kayenta)) == []
    assert early_metrics(AnalysisSettings(early=EarlySettings(enabled=False))) == []
    from primum.core.model.analysis import CommandSource
    other = AnalysisSettings(metrics=[
        MetricSpec(name="success", kind=MetricKind.proportion, direction=Direction.decrease,
                   source=CommandSource(argv=["x"])),
        MetricSpec(name="quiet", kind=MetricKind.errors, muted=True),
        MetricSpec(name="queue", kind=MetricKind.value, source=CommandSource(argv=["x"])),
    ])
    assert early_metrics(other) == []


def test_a_gross_error_rate_fails_with_a_reason_a_person_can_check():
    rng = np.random.default_rng(5)
    lat = rng.lognormal(np.log(BASE_LATENCY), 0.3, 200)
    look = early_look(DEFAULT, data((1, 240), (31, 50), lat, lat[:50]))
    failure = look.failure
    assert failure is not None and failure.check == RATE_CHECK and failure.metric == "error-rate"
    reason = describe_failure(look)
    assert reason is not None and reason.startswith("early rollback: error-rate 62% vs 0.42% (31 of 50, at least")
    assert "above the gross limit 5.0%; mSPRT, always-valid p < 0.001)" in reason
    report = early_report(DEFAULT, data((1, 240), (31, 50), lat, lat[:50]), look, reason)
    assert report.outcome.value == "Failed" and report.score is None and report.reason == reason
    (rate_row,) = [r for r in report.results if r.check == RATE_CHECK]
    assert rate_row.classification.value == "High" and rate_row.critical
    assert rate_row.statistics["canary_low"] > rate_row.thresholds["limit"] == 0.05
    assert rate_row.thresholds["alpha"] == pytest.approx(0.001 / 2)  # two checks share the step's alpha


def test_the_gross_limit_is_the_larger_of_the_floor_and_a_multiple_of_the_slo():
    lat = [BASE_LATENCY] * 100
    looked = early_look(DEFAULT, data((0, 300), (40, 100), lat, lat, slo=0.1))  # a lax 10% SLO: limit 50%
    (rate,) = [c for c in looked.checks if c.check == RATE_CHECK]
    assert rate.limit == pytest.approx(0.5) and not rate.failed
    looked = early_look(DEFAULT, data((0, 300), (40, 100), lat, lat, slo=0.001))
    assert [c.limit for c in looked.checks if c.check == RATE_CHECK] == [pytest.approx(0.05)]
    assert looked.failure is not None


def test_a_baseline_that_fails_as_much_vetoes_the_early_rollback():
    lat = [BASE_LATENCY] * 100
    look = early_look(DEFAULT, data((180, 300), (60, 100), lat, lat))
    assert look.failure is None
    assert "the baseline fails as much" in look.checks[0].reason


def test_a_first_deployment_is_held_to_the_error_limit_alone():
    lat = [BASE_LATENCY] * 100
    look = early_look(DEFAULT, data((0, 0), (60, 100), [], lat, baseline=False))
    assert look.failure is not None and look.failure.check == RATE_CHECK
    assert [c.check for c in look.checks] == [RATE_CHECK]  # a latency ratio needs a baseline


def test_a_gross_latency_fails_on_the_median_ratio():
    rng = np.random.default_rng(6)
    base = rng.lognormal(np.log(BASE_LATENCY), 0.3, 150)
    canary = rng.lognormal(np.log(5 * BASE_LATENCY), 0.3, 50)
    look = early_look(DEFAULT, data((0, 150), (0, 50), base, canary))
    failure = look.failure
    assert failure is not None and failure.check == MEDIAN_CHECK
    assert failure.canary_low is not None and failure.baseline_high is not None
    assert failure.canary_low > 2 * failure.baseline_high
    assert failure.headline.startswith("latency median ") and "x)" in failure.headline


@pytest.mark.parametrize("broken", [
    MetricData(metric="error-rate", error="router unreachable"),
    MetricData(metric="error-rate", baseline=Samples(events=0, total=300), canary=Samples(events=5, total=3)),
    MetricData(metric="error-rate", baseline=Samples(events=0, total=300), canary=Samples(values=[1.0] * 50)),
    MetricData(metric="error-rate", baseline=Samples(events=0, total=300), canary=None),
])
def test_missing_or_broken_data_is_never_an_early_decision(broken):
    d = data((0, 300), (100, 100), [], []).model_copy(update={"metrics": {"error-rate": broken}})
    look = early_look(DEFAULT, d)
    assert look.checks == () and look.failure is None and describe_failure(look) is None
    assert early_look(DEFAULT, d.model_copy(update={"metrics": {}})).failure is None


def test_min_samples_is_respected_for_both_checks():
    lat = [BASE_LATENCY] * 300
    slow = [10 * BASE_LATENCY] * 19
    d = data((0, 300), (19, 19), lat, slow)  # every canary request failed, 10x slower, but only 19 of them
    assert early_look(DEFAULT, d).checks == ()
    assert early_look(AnalysisSettings(early=EarlySettings(min_samples=10)), d).failure is not None
    few_baseline = data((0, 300), (0, 40), lat[:19], [10 * BASE_LATENCY] * 40)
    assert [c.check for c in early_look(DEFAULT, few_baseline).checks] == [RATE_CHECK]


def test_alpha_is_divided_among_the_intervals_and_checks_of_a_step():
    lat = [BASE_LATENCY] * 100
    d = data((0, 300), (0, 100), lat, lat)
    assert [c.alpha for c in early_look(DEFAULT, d, count=3).checks] == [pytest.approx(0.001 / 3 / 2)] * 2


# ------------------------------------------------------------------ simulation: type-I error and power


def test_healthy_sequences_peeked_at_every_scrape_are_not_rolled_back():
    """500 healthy windows (0.4% errors, the same latency), looked at 30 times each: <= 1% early rollbacks."""
    rng = np.random.default_rng(20261201)
    results = [simulate(rng, DEFAULT, c_error=0.004, c_latency=BASE_LATENCY) for _ in range(500)]
    assert rate_of(results) <= 0.01


def test_noisy_healthy_sequences_are_not_rolled_back():
    """A wider latency distribution and errors at the SLO itself: still no early rollback."""
    rng = np.random.default_rng(77)
    results = [simulate(rng, DEFAULT, c_error=SLO, c_latency=BASE_LATENCY, sigma=0.8) for _ in range(300)]
    assert rate_of(results) <= 0.01


def test_the_type_i_error_holds_at_the_least_favourable_null_despite_peeking():
    """A canary exactly at the gross limit (5% errors, or a median exactly 2x), alpha 0.05, 30 looks: early
    rollbacks stay within alpha, while a fixed-sample exact test repeated at every look would not."""
    settings = AnalysisSettings(early=EarlySettings(alpha=0.05))
    rng = np.random.default_rng(42)
    errors = [simulate(rng, settings, c_error=0.05, c_latency=BASE_LATENCY) for _ in range(500)]
    latency = [simulate(rng, settings, c_error=0.0, c_latency=2 * BASE_LATENCY) for _ in range(500)]
    assert rate_of(errors) <= 0.05 and rate_of(latency) <= 0.05
    # the naive alternative: a one-sided binomial test of the cumulative counts at every look
    naive = 0
    for _ in range(500):
        events = np.cumsum(rng.binomial(CANARY_RPS, 0.05, LOOKS))
        totals = CANARY_RPS * np.arange(1, LOOKS + 1)
        naive += bool((stats.binom.sf(events - 1, totals, 0.05) < 0.05 / 2).any())
    assert naive / 500 > 0.05  # peeking inflates a fixed-sample test's error past its alpha


@pytest.mark.parametrize("c_error, c_latency, within", [
    (0.5, BASE_LATENCY, 3),  # half of the canary's requests fail
    (0.0, 5 * BASE_LATENCY, 5),  # five times slower
])
def test_gross_failures_are_detected_within_the_first_few_looks(c_error, c_latency, within):
    rng = np.random.default_rng(1234)
    results = [simulate(rng, DEFAULT, c_error=c_error, c_latency=c_latency, looks=within) for _ in range(500)]
    assert rate_of(results) >= 0.98


def test_a_rate_check_reports_its_always_valid_p_value_against_its_alpha():
    lat = [BASE_LATENCY] * 100
    (gross,) = [c for c in early_look(DEFAULT, data((1, 300), (31, 50), lat, lat)).checks if c.check == RATE_CHECK]
    assert gross.failed and gross.p_value is not None and gross.p_value < gross.alpha
    (calm,) = [c for c in early_look(DEFAULT, data((1, 300), (1, 50), lat, lat)).checks if c.check == RATE_CHECK]
    assert not calm.failed and calm.p_value == 1.0
