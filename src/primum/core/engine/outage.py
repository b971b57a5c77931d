"""What an analysis step does while its metrics cannot be read: the pure rules ``decide`` applies.

A measurement whose providers failed (no data, an error, a timeout) is evidence of nothing, and no
evidence is never a pass. Waiting a full window for the next one would leave the new version taking
its step's share of traffic, unwatched, for minutes. So on the first errored measurement:

* the new version's traffic goes to 0 at once and the stable version runs its full replica count
  (canary: all traffic on the stable version; blue-green: back on the old side, which is still warm
  until the final scale-down; rolling: the old version is scaled back to ``replicas`` and takes all
  traffic, the new instances keep running without traffic so recovery needs no restart);
* the providers are asked again on a short backoff (``RETRY_FIRST_S`` doubling up to
  ``RETRY_CAP_S``, never longer than the step's interval), each retry over the time since the
  previous attempt. The retry is only a question "do the providers answer?": the new version takes
  no traffic while held, so what the judge says about that data is set aside, whatever it is;
* when every provider answers, the new version returns to its step's weight and the analysis
  restarts its window (after the initial delay): a pass always rests on a window watched live
  from start to end, at the step's weight;
* beyond ``consecutive_error_limit`` errored attempts in a row the item rolls back. With the default
  limit (4) and backoff that is about 15 s after the first error, not five windows.

* a source that keeps coming back and failing again (flapping) would restart the window for ever, with
  the new version on and off its weight and never a window watched through: beyond ``outage_limit``
  outages within one analysis step the item rolls back ("metrics flapping").

The attempts are numbered within their measurement ("measurement 1/1, attempt 3 of 5"), so the log
reads as what it is: one measurement being retried, not measurements beyond the step's count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from primum.core.model.rollout import Measurement, Outage, ServiceRollout

HOLD_REASON = "metrics unavailable"
RETRY_FIRST_S = 1.0  # the first retry after an errored measurement
RETRY_CAP_S = 10.0  # the backoff doubles up to this (and never beyond the step's interval)


def retry_delay(errors: int, interval: float) -> float:
    """Seconds until the next attempt after ``errors`` errored attempts in a row (1, 2, 4, 8, 10 ...)."""
    cap = max(RETRY_FIRST_S, min(RETRY_CAP_S, interval))
    return float(min(cap, RETRY_FIRST_S * 2 ** max(0, errors - 1)))


def attempts_allowed(consecutive_error_limit: int) -> int:
    """Attempts one measurement gets: the first, then one retry per error the limit tolerates."""
    return consecutive_error_limit + 1


@dataclass(frozen=True)
class Note:
    """An event for ``decide`` to record about the item."""

    kind: str
    message: str
    data: dict[str, object] = field(default_factory=dict)


def hold(item: ServiceRollout, now: float, m: Measurement, delay: float) -> Note | None:
    """After an errored attempt that the limit tolerates: hold (or keep holding) the new version at 0%
    until ``now + delay``. The note to record when the hold begins."""
    if item.outage is not None:
        item.outage = item.outage.model_copy(update={"last_attempt_at": now, "next_attempt_at": now + delay,
                                                     "reason": m.reason})
        return None
    attempts = attempts_allowed(item.analysis.consecutive_error_limit)
    item.outage = Outage(since=now, last_attempt_at=now, next_attempt_at=now + delay, reason=m.reason)
    stable = item.stable.describe() if item.stable else "the stable version"
    item.pause_reason = (f"{HOLD_REASON}, all traffic held on {stable} until they answer "
                         f"(attempt {m.attempt} of {attempts} errored: {m.reason})")
    return Note("metrics_outage", f"{item.service} in {item.env}: {HOLD_REASON}: traffic back on {stable} at once "
                f"({item.new.describe()} {item.weight}% -> 0%); retrying the providers in {delay:g}s, rolling back "
                f"after {attempts} errored attempts in a row",
                {"measurement": m.index, "attempt": m.attempt, "attempts": attempts, "weight": item.weight,
                 "reason": m.reason})


def outages_in_step(item: ServiceRollout) -> int:
    """Outages begun in the step in progress: each begins with an errored first attempt."""
    return sum(1 for m in item.measurements if m.outcome == "Error" and m.attempt == 1)


def flapping(item: ServiceRollout, reason: str) -> str:
    """The verdict's reason when the outages within one step exceed the limit."""
    return (f"metrics flapping: the providers failed {outages_in_step(item)} time(s) during this analysis step "
            f"(limit {item.analysis.outage_limit}), so no window could be watched through; last error: {reason}")


def give_up(item: ServiceRollout, now: float, reason: str) -> str:
    """The verdict's reason when the errors exceed the limit."""
    held = f" over {now - item.outage.since:.0f}s with no traffic on the new version" if item.outage else ""
    return (f"{HOLD_REASON}: analysis errored {item.consecutive_errors} time(s) in a row "
            f"(limit {item.analysis.consecutive_error_limit}){held}: {reason}")


def restore(item: ServiceRollout, now: float, index: int, count: int, set_aside: str) -> Note:
    """Every provider answered: end the hold; the analysis restarts its window after the initial delay."""
    assert item.outage is not None
    since = item.outage.since
    drop(item)
    item.consecutive_errors = 0
    item.interval_start = None
    item.window_from = now
    return Note("metrics_restored", f"{item.service} in {item.env}: metrics readable again after {now - since:.0f}s: "
                f"{item.new.describe()} back to {item.weight}%; the analysis restarts its window (measurement "
                f"{index}/{count} after the {item.analysis.initial_delay:g}s initial delay)",
                {"held_s": round(now - since, 3), "weight": item.weight, "measurement": index, "set_aside": set_aside})


def drop(item: ServiceRollout) -> None:
    """End the hold (data back, a person's promote, a rollback) and the reason it showed."""
    item.outage = None
    if item.pause_reason is not None and item.pause_reason.startswith(HOLD_REASON):
        item.pause_reason = None
