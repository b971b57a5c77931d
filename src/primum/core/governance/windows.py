"""Change windows and freezes: may a change start, or go on, at an instant? Pure functions.

The data are ``primum.core.model.windows.ChangeWindows`` (an environment's ``windows:``);
the semantics are documented in docs/WINDOWS.md. In short:

* recurring ranges (change windows and recurring freezes) follow the wall clock of
  the environment's time zone: one applies whenever the clock there shows one of its
  weekdays and a time in ``[start, end)``. So a range in an hour the clock skips
  (spring forward) does not happen that day, and a range over the hour the clock
  repeats (fall back) applies both times the clock shows it;
* a one-off freeze is one interval of real time, ``[start, end)``: it starts the
  first time the clock shows its start and ends the last time the clock shows its
  end (a skipped time is the moment of the jump), unless written with a UTC offset;
* the environment is *open* when no freeze is in effect and, if it declares change
  windows, the clock is inside one of them.

A freeze is enforced, not opt-in: every new promotion asks ``may_start`` and nothing
here can switch a declared freeze off, in particular none in a ``prod`` environment.
Only the break-glass path (the emergency procedure, decided and recorded outside this
module) may start a change while an environment is frozen. A rollout that
is already running asks ``may_continue``: ``in_flight: finish`` lets it complete,
``in_flight: hold`` holds it until the environment opens again.

Everything is computed with aware datetimes and unix instants through ``zoneinfo``;
there is no naive local-time arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from primum.core.model.estate import EnvironmentClass
from primum.core.model.windows import (
    ChangeWindows,
    Freeze,
    InFlight,
    RecurringFreeze,
    format_instant,
    occurrences,
    offset_change,
)

DAY = 86400.0
HORIZON_DAYS = 14
HORIZON = HORIZON_DAYS * DAY  # how far ahead the next opening or closing is searched (beyond any one-off freeze)
_CHUNK = 7 * DAY
_SAMPLE = 3600.0  # UTC offsets are sampled hourly to find DST transitions (real zones change at most twice a year)


@dataclass(frozen=True)
class WindowStatus:
    """Whether a change may start (or go on) now, and why.

    ``closes_at`` (when open): the next instant it closes within the horizon, else None.
    ``next_open`` (when closed): the next instant it opens within the horizon, else None.
    ``frozen_by``: the first freeze in effect now (one-off freezes first, in declaration order).
    """

    open: bool
    reason: str  # one sentence
    frozen_by: str | None = None
    closes_at: float | None = None
    next_open: float | None = None


@dataclass(frozen=True)
class _State:
    in_window: bool
    frozen: tuple[str, ...]  # names of the freezes in effect

    @property
    def open(self) -> bool:
        return self.in_window and not self.frozen


class _Calendar:
    """One environment's windows resolved in its time zone."""

    def __init__(self, windows: ChangeWindows):
        self.windows = windows
        self.tz: ZoneInfo = windows.tz
        self.one_off: list[tuple[Freeze, float, float]] = [(f, *f.interval(self.tz)) for f in windows.freezes]
        weekly = [*windows.allow, *windows.recurring_freezes]
        self.clock_marks = sorted({s % 86400 for r in weekly for s in (r.start_seconds, r.end_seconds)})

    # -- the state at one instant

    def state(self, instant: float) -> _State:
        local = datetime.fromtimestamp(instant, self.tz)
        weekday = local.weekday()
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        allow = self.windows.allow
        in_window = not allow or any(r.covers(weekday, second) for r in allow)
        frozen = tuple(f.name for f, start, end in self.one_off if start <= instant < end)
        frozen += tuple(r.name for r in self.windows.recurring_freezes if r.covers(weekday, second))
        return _State(in_window, frozen)

    # -- instants where the state may change

    def _offset(self, instant: float) -> timedelta | None:
        return datetime.fromtimestamp(instant, self.tz).utcoffset()

    def candidates(self, lo: float, hi: float) -> list[float]:
        """Every instant in (lo, hi] at which the state may change: the wall clock reaching a range's
        start or end (each time it does), a DST transition, a one-off freeze's start or end.
        Between two consecutive candidates the state is constant."""
        found: set[float] = set()
        if self.clock_marks:
            day = datetime.fromtimestamp(lo, self.tz).date() - timedelta(days=1)
            last = datetime.fromtimestamp(hi, self.tz).date() + timedelta(days=1)
            while day <= last:
                midnight = datetime.combine(day, time())
                for mark in self.clock_marks:
                    for instant in occurrences(midnight + timedelta(seconds=mark), self.tz):
                        if lo < instant <= hi:
                            found.add(instant)
                day += timedelta(days=1)
            at, offset = lo, self._offset(lo)
            while at < hi:
                step = min(at + _SAMPLE, hi)
                step_offset = self._offset(step)
                if step_offset != offset:
                    jump = offset_change(self.tz, at, step)
                    if lo < jump <= hi:
                        found.add(jump)
                at, offset = step, step_offset
        for _freeze, start, end in self.one_off:
            found.update(x for x in (start, end) if lo < x <= hi)
        return sorted(found)

    # -- the next change

    def _covering_end(self, instant: float) -> float | None:
        ends = [end for _f, start, end in self.one_off if start <= instant < end]
        return max(ends) if ends else None

    def next_instant(self, after: float, *, want_open: bool) -> float | None:
        """The first instant after ``after`` at which the environment is open (``want_open``) or closed."""
        horizon = after + HORIZON
        position = after
        while position < horizon:
            if want_open:
                end = self._covering_end(position)
                if end is not None:  # skip a one-off freeze in one step
                    position = end
                    horizon = max(horizon, end + HORIZON)
                    if self.state(position).open:
                        return position
                    continue
            chunk = min(position + _CHUNK, horizon)
            jumped = False
            for instant in self.candidates(position, chunk):
                state = self.state(instant)
                if state.open == want_open:
                    return instant
                if want_open and self._covering_end(instant) is not None:
                    position, jumped = instant, True
                    break
            if not jumped:
                position = chunk
        if not want_open:
            # Weekly ranges that did not close it within two weeks never will; a later one-off freeze may.
            starts = [start for _f, start, _e in self.one_off if start > after]
            return min(starts) if starts else None
        return None

    # -- words

    def at(self, instant: float) -> str:
        return format_instant(instant, self.tz)

    def windows_text(self) -> str:
        ranges = ", ".join(r.describe() for r in self.windows.allow)
        return f"the change windows ({ranges} {self.windows.timezone})"

    def freeze_name(self, name: str) -> str:
        recurring = any(r.name == name for r in self.windows.recurring_freezes)
        return f"{'recurring freeze' if recurring else 'freeze'} '{name}'"

    def freeze_text(self, name: str) -> str:
        for freeze, start, end in self.one_off:
            if freeze.name == name:
                why = f" ({freeze.reason})" if freeze.reason else ""
                return f"freeze '{name}'{why} from {self.at(start)} until {self.at(end)}"
        recurring: RecurringFreeze = next(r for r in self.windows.recurring_freezes if r.name == name)
        why = f" ({recurring.reason})" if recurring.reason else ""
        return f"recurring freeze '{name}'{why}, {recurring.describe()} {self.windows.timezone}"


def window_status(windows: ChangeWindows | None, now: float) -> WindowStatus:
    """Whether the environment is open at ``now`` (unix seconds), why, and until or from when."""
    if windows is None:
        return WindowStatus(True, "no change windows or freezes are declared, so changes may happen at any time")
    calendar = _Calendar(windows)
    state = calendar.state(now)
    if state.open:
        closes_at = calendar.next_instant(now, want_open=False)
        reason = (f"inside {calendar.windows_text()}" if windows.allow
                  else f"no freeze is in effect and no change window limits changes ({windows.timezone})")
        if closes_at is not None:
            then = calendar.state(closes_at)
            if then.frozen:
                reason += f" until {calendar.at(closes_at)}, when {calendar.freeze_name(then.frozen[0])} starts"
            else:
                reason += f" until the window closes at {calendar.at(closes_at)}"
        return WindowStatus(True, reason, None, closes_at, None)
    next_open = calendar.next_instant(now, want_open=True)
    if state.frozen:
        reason = f"frozen by {calendar.freeze_text(state.frozen[0])}"
        if len(state.frozen) > 1:
            reason += " (also " + ", ".join(f"'{n}'" for n in state.frozen[1:]) + ")"
        if not state.in_window:
            reason += f", and outside {calendar.windows_text()}"
    else:
        reason = f"outside {calendar.windows_text()}"
    if next_open is not None:
        reason += f"; it opens next at {calendar.at(next_open)}"
    else:
        reason += f"; it does not open within {HORIZON_DAYS} days"
    return WindowStatus(False, reason, state.frozen[0] if state.frozen else None, None, next_open)


def may_start(windows: ChangeWindows | None, env_class: EnvironmentClass | str, now: float) -> WindowStatus:
    """May a NEW promotion into this environment start at ``now``?

    Blocked while a freeze is in effect or, when the environment declares change
    windows, outside them. Freezes are enforced: a ``prod`` environment's freezes
    always apply and there is no flag to ignore them; a non-prod environment is
    frozen only by the freezes it declares. Only break-glass (decided elsewhere)
    may start a change in a frozen environment.
    """
    env_class = EnvironmentClass(env_class)
    if windows is None:
        return WindowStatus(True, f"a new promotion may start: this {env_class.value} environment declares no "
                                  "change windows or freezes")
    status = window_status(windows, now)
    if status.open:
        return WindowStatus(True, f"a new promotion may start: {status.reason}", None, status.closes_at, None)
    reason = f"no new promotion may start in this {env_class.value} environment: {status.reason}"
    if status.frozen_by is not None and env_class is EnvironmentClass.prod:
        reason += " (a production freeze is enforced; only break-glass bypasses it)"
    return WindowStatus(False, reason, status.frozen_by, None, status.next_open)


def may_continue(windows: ChangeWindows | None, env_class: EnvironmentClass | str, now: float,
                 started_at: float) -> WindowStatus:
    """May a rollout that is already running (started at ``started_at``) take its next step at ``now``?

    ``in_flight: finish``: always (``closes_at`` is None: it is never held).
    ``in_flight: hold``: only while the environment is open; ``closes_at`` is when it
    would be held, ``next_open`` when a held rollout may go on.
    """
    env_class = EnvironmentClass(env_class)
    if windows is None:
        return WindowStatus(True, f"the rollout may continue: this {env_class.value} environment declares no "
                                  "change windows or freezes")
    status = window_status(windows, now)
    calendar_at = format_instant(started_at, windows.tz)
    hold = windows.in_flight == InFlight.hold
    if status.open:
        return WindowStatus(True, f"the rollout started {calendar_at} may continue: {status.reason}",
                            None, status.closes_at if hold else None, None)
    if not hold:
        return WindowStatus(True, f"the rollout started {calendar_at} may finish (in_flight: finish) although "
                                  f"{status.reason}", status.frozen_by, None, None)
    return WindowStatus(False, f"the rollout started {calendar_at} is held (in_flight: hold): {status.reason}",
                        status.frozen_by, None, status.next_open)


__all__ = ["HORIZON", "HORIZON_DAYS", "WindowStatus", "may_continue", "may_start", "window_status"]
