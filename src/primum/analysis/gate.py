"""The first analysis gate: per-version error rate and p95 latency from router metrics.

Pure functions. A window is the difference between two cumulative snapshots
of the router's counters (like PromQL ``increase``). The new version is held
to the service's SLOs and compared with the stable version. No data, too few
requests, a counter reset or unreadable metrics are *inconclusive*: never a
pass. (The full statistical judge replaces this in a later issue.)
"""

from __future__ import annotations

from dataclasses import dataclass

from primum.model.estate import AnalysisSettings, Slo
from primum.model.rollout import Verdict, VerdictResult, VersionMeasurement
from primum.model.runtime import MetricsSnapshot, VersionMetrics


@dataclass(frozen=True)
class WindowCounts:
    requests: int
    errors: int
    buckets: tuple[tuple[float, int], ...]  # cumulative, per window, finite bounds
    observed: int  # latency observations in the window (the +Inf bucket)


def window(before: VersionMetrics | None, after: VersionMetrics | None) -> WindowCounts:
    """Requests, 5xx errors and latency buckets of one version between two snapshots."""
    after = after or VersionMetrics()
    before = before or VersionMetrics()
    requests = sum(after.requests.values()) - sum(before.requests.values())
    errors = _errors(after) - _errors(before)
    prior = dict(before.latency.buckets)
    buckets = tuple((le, count - prior.get(le, 0)) for le, count in after.latency.buckets)
    observed = after.latency.count - before.latency.count
    return WindowCounts(requests=requests, errors=errors, buckets=buckets, observed=observed)


def _errors(metrics: VersionMetrics) -> int:
    return sum(n for status, n in metrics.requests.items() if status.startswith("5"))


def quantile(q: float, buckets: tuple[tuple[float, int], ...], total: int) -> float | None:
    """Quantile from cumulative finite buckets and the total count, by linear interpolation
    within a bucket (as PromQL ``histogram_quantile``). Beyond the largest finite bucket the
    answer is that bucket's bound, as in PromQL."""
    if total <= 0 or not buckets:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for bound, count in buckets:
        if count >= rank:
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return buckets[-1][0]


def measure(key: str, counts: WindowCounts) -> VersionMeasurement:
    p95 = quantile(0.95, counts.buckets, counts.observed)
    return VersionMeasurement(
        version=key,
        requests=counts.requests,
        errors=counts.errors,
        error_rate=(counts.errors / counts.requests) if counts.requests else None,
        p95_ms=None if p95 is None else round(p95 * 1000, 1),
    )


def judge(
    before: MetricsSnapshot | None,
    after: MetricsSnapshot | None,
    new_key: str,
    stable_key: str | None,
    slo: Slo,
    settings: AnalysisSettings,
    *,
    final: bool,
    error: str | None = None,
) -> Verdict:
    """Judge the window ``before`` → ``after``. ``final`` is False for an interim look,
    which may fail early on enough evidence but never passes."""
    start = before.taken_at if before else 0.0
    end = after.taken_at if after else 0.0

    def verdict(result: VerdictResult, reason: str, **kw: object) -> Verdict:
        if result is VerdictResult.inconclusive and not final:
            result = VerdictResult.running
        return Verdict(result=result, reason=reason, window_start=start, window_end=end, **kw)

    if error is not None or before is None or after is None:
        return verdict(VerdictResult.inconclusive, f"metrics could not be read: {error or 'no snapshot'}")
    if after.router_started_at != before.router_started_at:
        return verdict(VerdictResult.inconclusive, "the router restarted during the window, so its counters reset")
    new = measure(new_key, window(before.versions.get(new_key), after.versions.get(new_key)))
    stable = None
    if stable_key is not None:
        stable = measure(stable_key, window(before.versions.get(stable_key), after.versions.get(stable_key)))
    if new.requests < 0 or (stable is not None and stable.requests < 0):
        return verdict(VerdictResult.inconclusive, "counters went backwards (router reset)", new=new, stable=stable)
    if new.requests < settings.min_requests:
        return verdict(
            VerdictResult.inconclusive,
            f"only {new.requests} request(s) reached the new version; at least {settings.min_requests} are needed",
            new=new, stable=stable,
        )

    checks: list[str] = []
    failures: list[str] = []

    def check(ok: bool, text: str) -> None:
        checks.append(("ok: " if ok else "FAIL: ") + text)
        if not ok:
            failures.append(text)

    assert new.error_rate is not None
    check(new.error_rate <= slo.error_rate,
          f"error rate {new.error_rate:.2%} ({new.errors}/{new.requests}) vs SLO {slo.error_rate:.2%}")
    if new.p95_ms is not None:
        check(new.p95_ms <= slo.p95_ms, f"p95 {new.p95_ms:.0f} ms vs SLO {slo.p95_ms:.0f} ms")
    comparable = stable is not None and stable.requests >= settings.min_requests
    if comparable:
        assert stable is not None and stable.error_rate is not None
        increase = new.error_rate - stable.error_rate
        check(increase <= settings.max_error_rate_increase,
              f"error rate {new.error_rate:.2%} vs stable {stable.error_rate:.2%}: increase "
              f"{increase:+.2%}, allowed {settings.max_error_rate_increase:.2%}")
        if new.p95_ms is not None and stable.p95_ms is not None:
            limit = max(stable.p95_ms * settings.max_latency_ratio, stable.p95_ms + settings.latency_slack_ms)
            check(new.p95_ms <= limit,
                  f"p95 {new.p95_ms:.0f} ms vs stable {stable.p95_ms:.0f} ms: limit {limit:.0f} ms "
                  f"(x{settings.max_latency_ratio} or +{settings.latency_slack_ms:.0f} ms)")
    else:
        checks.append("note: stable version had too few requests to compare; judged against SLOs only")

    if failures:
        return verdict(VerdictResult.failed, "new version " + "; ".join(failures), checks=checks, new=new,
                       stable=stable)
    if not final:
        return verdict(VerdictResult.running, "no regression so far", checks=checks, new=new, stable=stable)
    return verdict(VerdictResult.passed, f"new version met its SLOs over {new.requests} requests"
                   + (" and did not regress against stable" if comparable else ""),
                   checks=checks, new=new, stable=stable)


