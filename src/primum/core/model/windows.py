"""Change windows and freezes of one environment (``windows:`` of an environment).

All times are wall-clock times in one IANA time zone (``timezone``):

* ``allow``: recurring change windows (weekdays and a time range); when the list
  is empty or absent the environment is open at any time, except during freezes.
  A range whose end is before its start crosses midnight: ``sat 22:00-02:00`` is
  Saturday 22:00 to Sunday 02:00.
* ``freezes``: one-off freezes between two local date-times (or date-times with an
  explicit UTC offset);
* ``recurring_freezes``: weekly freezes, e.g. an EHR maintenance night;
* ``in_flight``: what a rollout already running does when a freeze starts or a
  window closes: ``finish`` (it completes) or ``hold`` (it waits until open).

Ranges include their start and exclude their end. The decisions over these
data (open or closed at an instant, until when, next opening) are pure
functions in ``primum.core.governance.windows``; the DST rules are in docs/WINDOWS.md.
This module holds the data, its validation, and the conversion of a local
date-time to an instant, which validation needs.
"""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from primum.core.model.types import Name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weekday(StrEnum):
    """Days in ``datetime.weekday()`` order (Monday is 0)."""

    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"

    @property
    def number(self) -> int:
        """0 for Monday ... 6 for Sunday, as ``datetime.weekday()``."""
        return WEEKDAYS.index(self)


WEEKDAYS: tuple[Weekday, ...] = tuple(Weekday)
DASH = "\u2013"  # en dash, as in "Mon\u2013Thu 06:00\u201318:00"
_FULL_DAY_NAMES = {
    "monday": Weekday.mon, "tuesday": Weekday.tue, "wednesday": Weekday.wed, "thursday": Weekday.thu,
    "friday": Weekday.fri, "saturday": Weekday.sat, "sunday": Weekday.sun,
}


class InFlight(StrEnum):
    finish = "finish"  # a rollout already running completes although the environment closed
    hold = "hold"  # it waits, with its current state kept, until the environment opens again


# ------------------------------------------------------------ value parsing


def _day(value: Any) -> Weekday:
    if isinstance(value, Weekday):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in Weekday.__members__:
            return Weekday(text)
        if text in _FULL_DAY_NAMES:
            return _FULL_DAY_NAMES[text]
    raise ValueError(f"{value!r} is not a day; use mon, tue, wed, thu, fri, sat or sun")


Day = Annotated[Weekday, BeforeValidator(_day)]

_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def _clock(value: Any) -> str:
    """'6:00', '06:00', '24:00' (an end of day) -> 'HH:MM'."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time of day; write HH:MM in quotes, e.g. \"06:00\"")
    if isinstance(value, int):
        # PyYAML (YAML 1.1) reads an unquoted 22:00 as the base-60 number 1320.
        hint = f', e.g. "{value // 60:02d}:{value % 60:02d}"' if 0 <= value <= 1440 else ""
        raise ValueError(f"{value} is a number, not a time of day: YAML reads an unquoted time such as 22:00 as "
                         f"a number of minutes; write the time in quotes{hint}")
    if isinstance(value, time):
        return f"{value.hour:02d}:{value.minute:02d}"
    if isinstance(value, str):
        match = _CLOCK.match(value)
        if match:
            hour, minute = int(match.group(1)), int(match.group(2))
            if (hour < 24 and minute < 60) or (hour == 24 and minute == 0):
                return f"{hour:02d}:{minute:02d}"
    raise ValueError(f"{value!r} is not a time of day; write HH:MM from 00:00 to 23:59 "
                     "(24:00 may end a range: the end of the day)")


ClockTime = Annotated[str, BeforeValidator(_clock)]


def clock_seconds(text: str) -> int:
    """'HH:MM' -> seconds after midnight (24:00 -> 86400)."""
    hour, minute = text.split(":")
    return int(hour) * 3600 + int(minute) * 60


def _local_datetime(value: Any) -> datetime:
    """A one-off freeze boundary: ISO 8601 text, or what YAML made of it (datetime or date)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date and time; write e.g. \"2026-12-20T00:00\" (local time in the "
                     "environment's timezone) or \"2026-12-20T00:00-06:00\" (with an explicit UTC offset)")


LocalDateTime = Annotated[datetime, BeforeValidator(_local_datetime)]


def check_timezone(name: str) -> ZoneInfo:
    """The zone named ``name`` or a ValueError that names the fix."""
    try:
        if not name or name != name.strip() or name.startswith("/") or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    known = available_timezones()
    if not known:
        raise ValueError(f"cannot read time zone {name!r}: this host has no time zone database; "
                         "install the `tzdata` Python package (pip install tzdata) or the system tzdata") from None
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown time zone {name!r}{hint}; use an IANA time zone name such as "
                     "'America/Chicago', 'Europe/London', 'Australia/Sydney' or 'UTC'") from None


# ------------------------------------------------------- local time -> instant


def occurrences(naive: datetime, tz: tzinfo) -> list[float]:
    """Instants (unix seconds) at which the wall clock in ``tz`` shows ``naive``:
    none in a spring-forward gap, two in a fall-back repeated hour, else one."""
    out: list[float] = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=tz, fold=fold).timestamp()
        if datetime.fromtimestamp(instant, tz).replace(tzinfo=None) == naive and instant not in out:
            out.append(instant)
    return sorted(out)


def offset_change(tz: tzinfo, lo: float, hi: float) -> float:
    """The first whole second in (lo, hi] whose UTC offset differs from the offset at ``lo``
    (there must be one: the offsets at ``lo`` and ``hi`` differ)."""

    def offset(at: float) -> timedelta | None:
        return datetime.fromtimestamp(at, tz).utcoffset()

    before = offset(lo)
    low, high = int(lo), int(hi) + (0 if hi == int(hi) else 1)
    while high - low > 1:
        mid = (low + high) // 2
        if offset(mid) == before:
            low = mid
        else:
            high = mid
    return float(high)


def local_instant(naive: datetime, tz: tzinfo, *, last: bool = False) -> float:
    """The instant of a local date-time in ``tz`` (an aware one is already an instant).

    A time the clock skips (spring forward) is the moment of the jump; a time the
    clock shows twice (fall back) is its first occurrence, or its last with ``last``.
    """
    if naive.tzinfo is not None and naive.utcoffset() is not None:
        return naive.timestamp()
    naive = naive.replace(tzinfo=None)
    found = occurrences(naive, tz)
    if found:
        return found[-1] if last else found[0]
    early = naive.replace(tzinfo=tz, fold=1).timestamp()  # offset after the jump: an earlier instant
    late = naive.replace(tzinfo=tz, fold=0).timestamp()
    return offset_change(tz, min(early, late), max(early, late))


def format_instant(instant: float, tz: tzinfo) -> str:
    """'Sun 2026-12-20 00:00 CST': an instant as the wall clock in ``tz`` shows it."""
    local = datetime.fromtimestamp(instant, tz)
    fmt = "%a %Y-%m-%d %H:%M:%S %Z" if local.second or local.microsecond else "%a %Y-%m-%d %H:%M %Z"
    return local.strftime(fmt)


def describe_days(days: list[Weekday]) -> str:
    """[mon, tue, wed, thu] -> 'Mon-Thu'; [sat, sun, mon] -> 'Sat-Mon' (with an en dash); [mon, wed] -> 'Mon, Wed'."""
    present = sorted({d.number for d in days})
    if len(present) == 7:
        return "every day"
    start = next(i for i in present if (i - 1) % 7 not in present)  # a day that begins a run
    runs: list[list[int]] = []
    for step in range(7):
        i = (start + step) % 7
        if i not in present:
            continue
        if runs and (runs[-1][-1] + 1) % 7 == i:
            runs[-1].append(i)
        else:
            runs.append([i])
    runs.sort(key=lambda run: run[0] - 7 if run[-1] < run[0] else run[0])  # a run over Sunday->Monday first
    names = [d.value.capitalize() for d in WEEKDAYS]
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{names[run[0]]}{DASH}{names[run[-1]]}")
        else:
            parts.extend(names[i] for i in run)
    return ", ".join(parts)


# ----------------------------------------------------------------- models


class _Weekly(Strict):
    """Weekdays and a wall-clock time range; ``end`` before ``start`` crosses midnight."""

    days: list[Day] = Field(min_length=1)
    start: ClockTime
    end: ClockTime

    @field_validator("days")
    @classmethod
    def _distinct(cls, days: list[Weekday]) -> list[Weekday]:
        seen: set[Weekday] = set()
        for day in days:
            if day in seen:
                raise ValueError(f"{day.value} is listed twice; list each day once")
            seen.add(day)
        return days

    @model_validator(mode="after")
    def _range(self) -> _Weekly:
        if self.start == "24:00":
            raise ValueError("a range cannot start at 24:00; start at 00:00 (of the next day) instead")
        if self.start == self.end:
            raise ValueError(f"the range starts and ends at {self.start}, so it is empty; for a whole day write "
                             "start: \"00:00\", end: \"24:00\"")
        return self

    @property
    def start_seconds(self) -> int:
        return clock_seconds(self.start)

    @property
    def end_seconds(self) -> int:
        return clock_seconds(self.end)

    @property
    def crosses_midnight(self) -> bool:
        return self.end_seconds < self.start_seconds

    def covers(self, weekday: int, second_of_day: float) -> bool:
        """Whether a wall clock showing ``weekday`` (Monday 0) and ``second_of_day`` is inside the range."""
        start, end = self.start_seconds, self.end_seconds
        indexes = {d.number for d in self.days}
        if not self.crosses_midnight:
            return weekday in indexes and start <= second_of_day < end
        return ((weekday in indexes and second_of_day >= start)
                or ((weekday - 1) % 7 in indexes and second_of_day < end))

    def describe(self) -> str:
        return f"{describe_days(self.days)} {self.start}{DASH}{self.end}"


class TimeRange(_Weekly):
    """A recurring change window."""


class RecurringFreeze(_Weekly):
    """A weekly freeze, e.g. an EHR maintenance night."""

    name: Name
    reason: str = ""


class Freeze(Strict):
    """A one-off freeze. Boundaries without a UTC offset are wall-clock times in the
    environment's timezone; with an offset (``2026-12-20T00:00-06:00``) they are exact instants."""

    name: Name
    start: LocalDateTime
    end: LocalDateTime
    reason: str = ""

    @model_validator(mode="after")
    def _order(self) -> Freeze:
        same_kind = (self.start.tzinfo is None) == (self.end.tzinfo is None)
        if same_kind and self.end <= self.start:
            raise ValueError(f"freeze {self.name!r} ends ({self.end.isoformat()}) before or when it starts "
                             f"({self.start.isoformat()}); its end must be after its start")
        return self

    def interval(self, tz: tzinfo) -> tuple[float, float]:
        """[start, end) in unix seconds. It starts the first time the clock shows ``start`` and ends the
        last time it shows ``end`` (a repeated hour counts twice); a skipped time is the moment of the jump."""
        return local_instant(self.start, tz), local_instant(self.end, tz, last=True)


class ChangeWindows(Strict):
    """When changes may start in one environment (see docs/WINDOWS.md)."""

    timezone: str
    allow: list[TimeRange] = Field(default_factory=list)  # empty: open at any time except during freezes
    freezes: list[Freeze] = Field(default_factory=list)
    recurring_freezes: list[RecurringFreeze] = Field(default_factory=list)
    in_flight: InFlight = InFlight.finish

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        check_timezone(name)
        return name

    @field_validator("freezes")
    @classmethod
    def _nonempty(cls, freezes: list[Freeze], info: ValidationInfo) -> list[Freeze]:
        name = info.data.get("timezone")
        if not name:
            return freezes  # the timezone itself is wrong and has its own error
        tz = ZoneInfo(name)
        for freeze in freezes:
            start, end = freeze.interval(tz)
            if end <= start:
                raise ValueError(
                    f"freeze {freeze.name!r} ends ({format_instant(end, tz)}) before or when it starts "
                    f"({format_instant(start, tz)}) in {name}; its end must be after its start "
                    "(a time the clock skips at a DST change counts as the moment of the jump)")
        return freezes

    @model_validator(mode="after")
    def _distinct_names(self) -> ChangeWindows:
        seen: set[str] = set()
        for name in [f.name for f in self.freezes] + [f.name for f in self.recurring_freezes]:
            if name in seen:
                raise ValueError(f"the freeze name {name!r} is used twice; give each freeze its own name")
            seen.add(name)
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches instances by name


__all__ = [
    "DASH",
    "WEEKDAYS",
    "ChangeWindows",
    "Freeze",
    "InFlight",
    "RecurringFreeze",
    "TimeRange",
    "Weekday",
    "check_timezone",
    "clock_seconds",
    "describe_days",
    "format_instant",
    "local_instant",
    "occurrences",
    "offset_change",
]
