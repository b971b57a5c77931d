"""Change windows and freezes: recurring and one-off, boundaries, time zones and DST, in-flight rollouts.

Expected instants are computed with zoneinfo (aware datetimes) or written in UTC, never with naive
local arithmetic. 2026 DST changes used below:

| zone | spring forward | fall back |
| --- | --- | --- |
| America/Chicago | Sun 2026-03-08 02:00 CST -> 03:00 CDT (08:00Z) | Sun 2026-11-01 02:00 CDT -> 01:00 CST (07:00Z) |
| Europe/London | Sun 2026-03-29 01:00 GMT -> 02:00 BST (01:00Z) | Sun 2026-10-25 02:00 BST -> 01:00 GMT (01:00Z) |
| Australia/Sydney | Sun 2026-10-04 02:00 AEST -> 03:00 AEDT (Sat 16:00Z) | Sun 2026-04-05 03:00 AEDT -> 02:00 AEST |
|  |  | (Sat 16:00Z) |
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from primum.core.governance.windows import HORIZON, _Calendar, may_continue, may_start, window_status
from primum.core.model.windows import DASH, ChangeWindows, InFlight, Weekday, describe_days

CHI, LON, SYD = "America/Chicago", "Europe/London", "Australia/Sydney"
ZONES = [CHI, LON, SYD]


def local(zone: str, text: str, fold: int = 0) -> float:
    """The instant the wall clock in ``zone`` shows ``text`` (zoneinfo arithmetic)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def windows(timezone: str, **fields: Any) -> ChangeWindows:
    return ChangeWindows.model_validate({"timezone": timezone, **fields})


def is_open(w: ChangeWindows, instant: float) -> bool:
    return window_status(w, instant).open


def plain(text: str) -> str:
    """Reasons use an en dash in ranges ("Mon\u2013Thu 06:00\u201318:00"); tests write a hyphen."""
    return text.replace(DASH, "-")


def wr(days: list[str], start: Any, end: Any, **extra: str) -> dict[str, Any]:
    return {"days": days, "start": start, "end": end, **extra}


EXAMPLE = """
timezone: America/Chicago
allow:
  - {days: [mon, tue, wed, thu], start: "06:00", end: "18:00"}
  - {days: [sat], start: "22:00", end: "02:00"}
freezes:
  - {name: year-end, start: "2026-12-20T00:00", end: "2027-01-03T00:00", reason: "year-end freeze"}
recurring_freezes:
  - {name: ehr-maintenance, days: [sun], start: "00:00", end: "04:00", reason: "weekly EHR maintenance"}
in_flight: finish
"""


def example(**override: Any) -> ChangeWindows:
    return ChangeWindows.model_validate({**yaml.safe_load(EXAMPLE), **override})


# ------------------------------------------------------------------ the model


def test_the_documented_example_loads_and_round_trips() -> None:
    w = example()
    assert w.in_flight is InFlight.finish
    assert [plain(r.describe()) for r in w.allow] == ["Mon-Thu 06:00-18:00", "Sat 22:00-02:00"]
    assert ChangeWindows.model_validate(w.model_dump(mode="json")) == w


def test_defaults_are_always_open_and_finish() -> None:
    w = windows("UTC")
    assert (w.allow, w.freezes, w.recurring_freezes, w.in_flight) == ([], [], [], InFlight.finish)
    assert is_open(w, utc("2026-06-01T03:00:00"))


@pytest.mark.parametrize(("days", "text"), [
    ("mon tue wed thu", "Mon-Thu"), ("sat sun mon", "Sat-Mon"), ("mon wed", "Mon, Wed"), ("fri sat", "Fri, Sat"),
    ("mon tue wed thu fri sat sun", "every day"), ("sun mon tue thu", "Sun-Tue, Thu"),
])
def test_days_are_described_in_runs(days: str, text: str) -> None:
    assert plain(describe_days([Weekday(d) for d in days.split()])) == text


def test_days_accept_full_names_in_any_case() -> None:
    w = windows("UTC", allow=[wr(["Monday", "TUE", "sunday"], "06:00", "7:00")])
    assert [d.value for d in w.allow[0].days] == ["mon", "tue", "sun"]
    assert w.allow[0].end == "07:00"


@pytest.mark.parametrize(("data", "where", "words"), [
    ({"allow": [wr(["mon", "funday"], "06:00", "18:00")]}, ("allow", 0, "days", 1), "'funday' is not a day"),
    ({"allow": [wr([], "06:00", "18:00")]}, ("allow", 0, "days"), "at least 1"),
    ({"allow": [wr(["mon", "mon"], "06:00", "18:00")]}, ("allow", 0, "days"), "listed twice"),
    ({"allow": [wr(["mon"], "25:00", "18:00")]}, ("allow", 0, "start"), "'25:00' is not a time of day"),
    ({"allow": [wr(["mon"], "06:60", "18:00")]}, ("allow", 0, "start"), "is not a time of day"),
    ({"allow": [wr(["mon"], "6am", "18:00")]}, ("allow", 0, "start"), "write HH:MM"),
    ({"allow": [wr(["mon"], 1320, "18:00")]}, ("allow", 0, "start"), 'write the time in quotes, e.g. "22:00"'),
    ({"allow": [wr(["mon"], "06:00", "06:00")]}, ("allow", 0), "starts and ends at 06:00, so it is empty"),
    ({"allow": [wr(["mon"], "24:00", "06:00")]}, ("allow", 0), "cannot start at 24:00"),
    ({"recurring_freezes": [wr(["sun"], "00:00", "04:00")]}, ("recurring_freezes", 0, "name"), "Field required"),
    ({"freezes": [{"name": "x", "start": "2026-12-20T00:00", "end": "2026-12-19T00:00"}]}, ("freezes", 0),
     "freeze 'x' ends (2026-12-19T00:00:00) before or when it starts"),
    ({"freezes": [{"name": "x", "start": "2026-12-20", "end": "2026-12-20"}]}, ("freezes", 0), "before or when"),
    ({"freezes": [{"name": "x", "start": "2026-12-32", "end": "2027-01-03"}]}, ("freezes", 0, "start"),
     "is not a date and time"),
    ({"freezes": [{"name": "x", "start": "2026-12-20T06:00-06:00", "end": "2026-12-20T05:00"}]}, ("freezes",),
     "freeze 'x' ends (Sun 2026-12-20 05:00 CST) before or when it starts (Sun 2026-12-20 06:00 CST)"),
    # both boundaries fall in the hour the clock skips, so the freeze lasts no time at all
    ({"freezes": [{"name": "x", "start": "2026-03-08T02:10", "end": "2026-03-08T02:50"}]}, ("freezes",),
     "ends (Sun 2026-03-08 03:00 CDT) before or when it starts (Sun 2026-03-08 03:00 CDT)"),
    ({"freezes": [{"name": "a", "start": "2026-12-20", "end": "2026-12-21"}],
      "recurring_freezes": [wr(["sun"], "00:00", "04:00", name="a")]}, (), "'a' is used twice"),
    ({"in_flight": "pause"}, ("in_flight",), "'finish' or 'hold'"),
    ({"allow": [{**wr(["mon"], "06:00", "18:00"), "tz": "UTC"}]}, ("allow", 0, "tz"), "Extra inputs"),
])
def test_validation_errors_name_the_field_and_the_fix(data: dict[str, Any], where: tuple[Any, ...],
                                                       words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ChangeWindows.model_validate({"timezone": CHI, **data})
    errors = caught.value.errors()
    assert any(tuple(e["loc"]) == where and words in e["msg"] for e in errors), errors


@pytest.mark.parametrize(("name", "hint"), [
    ("America/Chicgo", "did you mean 'America/Chicago'?"),
    ("europe/london", "did you mean 'Europe/London'?"),
    ("Mars/Olympus_Mons", "use an IANA time zone name such as 'America/Chicago'"),
    ("", "unknown time zone ''"),
    ("../../etc/passwd", "unknown time zone"),
])
def test_an_unknown_time_zone_is_named_with_the_fix(name: str, hint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        windows(name)
    (error,) = caught.value.errors()
    assert error["loc"] == ("timezone",)
    assert f"unknown time zone {name!r}" in error["msg"] and hint in error["msg"]


def test_an_unquoted_yaml_time_is_explained() -> None:
    data = yaml.safe_load("timezone: UTC\nallow: [{days: [sat], start: 22:00, end: '02:00'}]")
    assert data["allow"][0]["start"] == 1320  # what YAML 1.1 does with an unquoted 22:00
    with pytest.raises(ValidationError, match="YAML reads an unquoted time"):
        ChangeWindows.model_validate(data)


def test_yaml_timestamps_and_dates_are_local_boundaries() -> None:
    w = ChangeWindows.model_validate(yaml.safe_load(
        "timezone: Europe/London\nfreezes: [{name: f, start: 2026-12-20 09:00:00, end: 2026-12-21}]"))
    (freeze,) = w.freezes
    assert freeze.interval(w.tz) == (local(LON, "2026-12-20T09:00"), local(LON, "2026-12-21T00:00"))


# --------------------------------------------------------- recurring windows


@pytest.mark.parametrize("zone", ZONES)
def test_recurring_window_boundaries_start_inclusive_end_exclusive(zone: str) -> None:
    w = windows(zone, allow=[wr(["mon", "tue", "wed", "thu"], "06:00", "18:00")])
    # Mon 2026-06-15 (no DST change nearby in any of the three zones)
    assert not is_open(w, local(zone, "2026-06-15T05:59:59"))
    assert is_open(w, local(zone, "2026-06-15T06:00:00"))
    assert is_open(w, local(zone, "2026-06-15T17:59:59"))
    assert not is_open(w, local(zone, "2026-06-15T18:00:00"))
    assert not is_open(w, local(zone, "2026-06-19T12:00"))  # a Friday
    status = window_status(w, local(zone, "2026-06-15T06:00:00"))
    assert status.closes_at == local(zone, "2026-06-15T18:00") and status.next_open is None
    closed = window_status(w, local(zone, "2026-06-18T18:00"))  # Thu evening -> next Monday
    assert closed.next_open == local(zone, "2026-06-22T06:00") and closed.closes_at is None
    monday = datetime.fromtimestamp(local(zone, "2026-06-22T06:00"), ZoneInfo(zone))
    assert plain(closed.reason) == (f"outside the change windows (Mon-Thu 06:00-18:00 {zone}); "
                                    f"it opens next at {monday:%a %Y-%m-%d %H:%M %Z}")


def test_the_same_instant_is_open_in_one_zone_and_closed_in_another() -> None:
    instant = utc("2026-06-15T12:00:00")  # Mon 07:00 CDT, 13:00 BST, 22:00 AEST
    states = {zone: is_open(windows(zone, allow=[wr(["mon"], "06:00", "18:00")]), instant) for zone in ZONES}
    assert states == {CHI: True, LON: True, SYD: False}


def test_a_window_crossing_midnight_belongs_to_its_start_day() -> None:
    w = windows(CHI, allow=[wr(["sat"], "22:00", "02:00")])
    assert not is_open(w, local(CHI, "2026-06-20T21:59:59"))  # Sat
    assert is_open(w, local(CHI, "2026-06-20T22:00"))
    assert is_open(w, local(CHI, "2026-06-21T00:00"))  # Sun, after midnight
    assert is_open(w, local(CHI, "2026-06-21T01:59:59"))
    assert not is_open(w, local(CHI, "2026-06-21T02:00"))
    assert not is_open(w, local(CHI, "2026-06-21T23:00"))  # Sun evening is not a start day
    assert not is_open(w, local(CHI, "2026-06-20T01:00"))  # Sat early morning: Fri is not a start day
    status = window_status(w, local(CHI, "2026-06-20T23:00"))
    assert status.closes_at == local(CHI, "2026-06-21T02:00")


def test_a_range_may_end_at_24_00_or_00_00() -> None:
    for end in ("24:00", "00:00"):
        w = windows(LON, allow=[wr(["fri"], "20:00", end)])
        assert is_open(w, local(LON, "2026-06-19T23:59:59"))
        assert not is_open(w, local(LON, "2026-06-20T00:00"))
        assert window_status(w, local(LON, "2026-06-19T20:00")).closes_at == local(LON, "2026-06-20T00:00")


def test_several_windows_and_the_whole_day() -> None:
    w = windows(SYD, allow=[wr(["mon"], "00:00", "24:00"), wr(["tue"], "09:00", "10:00")])
    assert is_open(w, local(SYD, "2026-06-15T00:00"))
    status = window_status(w, local(SYD, "2026-06-15T12:00"))
    assert status.closes_at == local(SYD, "2026-06-16T00:00")
    assert window_status(w, status.closes_at).next_open == local(SYD, "2026-06-16T09:00")


# ---------------------------------------------------- DST: recurring windows


@pytest.mark.parametrize(("zone", "day", "skipped"), [
    (CHI, "2026-03-08", ("02:00", "03:00")),
    (LON, "2026-03-29", ("01:00", "02:00")),
    (SYD, "2026-10-04", ("02:00", "03:00")),
])
def test_a_window_in_the_skipped_hour_does_not_open_on_spring_forward_day(zone: str, day: str,
                                                                          skipped: tuple[str, str]) -> None:
    w = windows(zone, allow=[wr(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], *skipped)])
    midnight = local(zone, f"{day}T00:00")
    end = local(zone, f"{day}T23:59:59")
    assert end - midnight == 23 * 3600 - 1  # zoneinfo: that day has 23 hours
    assert not any(is_open(w, t) for t in range(int(midnight), int(end), 300))
    before = window_status(w, midnight - 3600)
    next_day = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
    assert before.next_open == local(zone, f"{next_day}T{skipped[0]}")  # the next day, not the skipped hour


def test_a_window_over_the_skipped_hour_is_one_real_hour_shorter() -> None:
    w = windows(CHI, allow=[wr(["sun"], "01:00", "03:30")])
    opens = local(CHI, "2026-03-08T01:00")
    assert opens == utc("2026-03-08T07:00:00")
    status = window_status(w, opens)
    assert status.open and status.closes_at == utc("2026-03-08T08:30:00")  # 03:30 CDT: 1.5 real hours
    late = windows(CHI, allow=[wr(["sun"], "02:30", "04:00")])  # starts in the gap: opens at the jump
    assert window_status(late, utc("2026-03-08T06:00:00")).next_open == utc("2026-03-08T08:00:00")
    assert not is_open(late, utc("2026-03-08T07:59:59")) and is_open(late, utc("2026-03-08T08:00:00"))
    short = windows(CHI, allow=[wr(["sun"], "01:00", "02:30")])  # ends in the gap: closes at the jump
    assert window_status(short, utc("2026-03-08T07:30:00")).closes_at == utc("2026-03-08T08:00:00")


@pytest.mark.parametrize(("zone", "day", "repeated", "jump"), [
    (CHI, "2026-11-01", "01", "2026-11-01T07:00:00"),
    (LON, "2026-10-25", "01", "2026-10-25T01:00:00"),
    (SYD, "2026-04-05", "02", "2026-04-04T16:00:00"),
])
def test_a_window_over_the_repeated_hour_lasts_two_real_hours(zone: str, day: str, repeated: str,
                                                              jump: str) -> None:
    start, end = f"{repeated}:00", f"{int(repeated) + 1:02d}:00"
    w = windows(zone, allow=[wr(["sun"], start, end)])
    first = local(zone, f"{day}T{start}", fold=0)
    second = local(zone, f"{day}T{start}", fold=1)
    assert second - first == 3600 and second == utc(jump)
    status = window_status(w, first)
    assert status.open and status.closes_at == local(zone, f"{day}T{end}") == first + 2 * 3600
    assert is_open(w, second - 1) and is_open(w, second) and is_open(w, second + 3599)


def test_a_window_inside_the_repeated_hour_opens_twice() -> None:
    w = windows(CHI, allow=[wr(["sun"], "00:30", "01:30")])
    # 00:30 CDT (05:30Z) .. 01:30 CDT (06:30Z), then the clock shows 01:00 again at 07:00Z: 01:00 .. 01:30 CST
    first = window_status(w, utc("2026-11-01T05:30:00"))
    assert first.open and first.closes_at == utc("2026-11-01T06:30:00")
    gap = window_status(w, utc("2026-11-01T06:30:00"))
    assert not gap.open and gap.next_open == utc("2026-11-01T07:00:00")
    again = window_status(w, utc("2026-11-01T07:00:00"))
    assert again.open and again.closes_at == utc("2026-11-01T07:30:00")


def test_a_window_is_the_same_wall_clock_time_before_and_after_a_dst_change() -> None:
    w = windows(LON, allow=[wr(["sat", "sun", "mon"], "09:00", "17:00")])
    assert window_status(w, local(LON, "2026-03-28T12:00")).closes_at == utc("2026-03-28T17:00:00")  # GMT
    assert window_status(w, local(LON, "2026-03-29T12:00")).closes_at == utc("2026-03-29T16:00:00")  # BST
    assert window_status(w, local(LON, "2026-03-28T20:00")).next_open == utc("2026-03-29T08:00:00")


# ------------------------------------------------------------------- freezes


@pytest.mark.parametrize("zone", ZONES)
def test_one_off_freeze_boundaries_are_exact_in_each_zone(zone: str) -> None:
    w = windows(zone, freezes=[{"name": "year-end", "start": "2026-12-20T00:00", "end": "2027-01-03T00:00",
                                "reason": "year-end freeze"}])
    start, end = local(zone, "2026-12-20T00:00"), local(zone, "2027-01-03T00:00")
    assert is_open(w, start - 1)
    frozen = window_status(w, start)
    assert not frozen.open and frozen.frozen_by == "year-end" and frozen.next_open == end
    assert "frozen by freeze 'year-end' (year-end freeze) from Sun 2026-12-20 00:00" in frozen.reason
    assert not is_open(w, end - 1)
    assert is_open(w, end)
    status = window_status(w, start - 3600)
    assert status.closes_at == start and "when freeze 'year-end' starts" in status.reason


def test_a_freeze_with_an_explicit_offset_is_an_exact_instant() -> None:
    w = windows(SYD, freezes=[{"name": "cutover", "start": "2026-06-01T00:00Z", "end": "2026-06-01T06:00+02:00"}])
    assert w.freezes[0].interval(w.tz) == (utc("2026-06-01T00:00:00"), utc("2026-06-01T04:00:00"))
    assert not is_open(w, utc("2026-06-01T00:00:00")) and is_open(w, utc("2026-06-01T04:00:00"))


@pytest.mark.parametrize(("zone", "start", "end", "hours"), [
    (CHI, "2026-03-07T12:00", "2026-03-08T12:00", 23),  # spring forward inside the freeze
    (CHI, "2026-10-31T12:00", "2026-11-01T12:00", 25),  # fall back inside the freeze
    (LON, "2026-03-28T12:00", "2026-03-29T12:00", 23),
    (LON, "2026-10-24T12:00", "2026-10-25T12:00", 25),
    (SYD, "2026-10-03T12:00", "2026-10-04T12:00", 23),
    (SYD, "2026-04-04T12:00", "2026-04-05T12:00", 25),
])
def test_a_freeze_across_a_dst_change_follows_the_wall_clock(zone: str, start: str, end: str, hours: int) -> None:
    w = windows(zone, freezes=[{"name": "f", "start": start, "end": end}])
    begins, ends = local(zone, start), local(zone, end)
    assert ends - begins == hours * 3600  # zoneinfo arithmetic
    assert is_open(w, begins - 1) and not is_open(w, begins)
    assert not is_open(w, ends - 1) and is_open(w, ends)
    assert window_status(w, begins).next_open == ends


def test_freeze_boundaries_at_a_skipped_or_repeated_time() -> None:
    # starts at a time the clock skips: it starts at the jump (03:00 CDT)
    w = windows(CHI, freezes=[{"name": "f", "start": "2026-03-08T02:30", "end": "2026-03-08T05:00"}])
    assert w.freezes[0].interval(w.tz)[0] == utc("2026-03-08T08:00:00")
    assert is_open(w, utc("2026-03-08T07:59:59")) and not is_open(w, utc("2026-03-08T08:00:00"))
    # starts at a repeated time: its first occurrence; ends at a repeated time: its last occurrence
    w = windows(CHI, freezes=[{"name": "f", "start": "2026-11-01T01:30", "end": "2026-11-01T01:45"}])
    assert w.freezes[0].interval(w.tz) == (utc("2026-11-01T06:30:00"), utc("2026-11-01T07:45:00"))
    assert w.freezes[0].interval(w.tz) == (local(CHI, "2026-11-01T01:30", fold=0),
                                           local(CHI, "2026-11-01T01:45", fold=1))
    assert not is_open(w, utc("2026-11-01T07:00:00"))  # the clock shows 01:00 again: still frozen


def test_a_recurring_freeze_closes_an_otherwise_open_environment() -> None:
    w = windows(CHI, recurring_freezes=[wr(["sun"], "00:00", "04:00", name="ehr-maintenance",
                                           reason="weekly EHR maintenance")])
    assert is_open(w, local(CHI, "2026-06-20T23:59:59"))
    status = window_status(w, local(CHI, "2026-06-21T00:00"))
    assert not status.open and status.frozen_by == "ehr-maintenance"
    assert status.next_open == local(CHI, "2026-06-21T04:00")
    assert "recurring freeze 'ehr-maintenance' (weekly EHR maintenance), Sun 00:00-04:00 America/Chicago" \
        in plain(status.reason)
    assert is_open(w, local(CHI, "2026-06-21T04:00"))
    assert window_status(w, local(CHI, "2026-06-22T12:00")).closes_at == local(CHI, "2026-06-28T00:00")


@pytest.mark.parametrize(("zone", "day"), [(CHI, "2026-03-08"), (LON, "2026-03-29"), (SYD, "2026-10-04")])
def test_a_recurring_freeze_on_spring_forward_day_is_one_hour_shorter(zone: str, day: str) -> None:
    w = windows(zone, recurring_freezes=[wr(["sun"], "00:00", "04:00", name="maint")])
    begins = local(zone, f"{day}T00:00")
    status = window_status(w, begins)
    assert not status.open and status.next_open == local(zone, f"{day}T04:00") == begins + 3 * 3600


def test_a_recurring_freeze_over_the_repeated_hour_freezes_both_times() -> None:
    w = windows(CHI, recurring_freezes=[wr(["sun"], "01:00", "01:30", name="maint")])
    assert not is_open(w, utc("2026-11-01T06:00:00"))  # 01:00 CDT
    assert is_open(w, utc("2026-11-01T06:30:00"))  # 01:30 CDT
    assert window_status(w, utc("2026-11-01T06:30:00")).closes_at == utc("2026-11-01T07:00:00")
    assert not is_open(w, utc("2026-11-01T07:00:00"))  # 01:00 CST
    assert window_status(w, utc("2026-11-01T07:00:00")).next_open == utc("2026-11-01T07:30:00")


def test_freezes_and_windows_combine() -> None:
    w = example()
    # Sat 22:00 -> Sun 02:00 window, but the EHR freeze starts Sun 00:00
    status = window_status(w, local(CHI, "2026-06-20T22:00"))
    assert status.open and status.closes_at == local(CHI, "2026-06-21T00:00")
    assert "when recurring freeze 'ehr-maintenance' starts" in status.reason
    inside_both = window_status(w, local(CHI, "2026-12-26T23:00"))  # Sat window inside the year-end freeze
    assert not inside_both.open and inside_both.frozen_by == "year-end"
    # the freeze ends Sun 2027-01-03 00:00; Sunday has no window: Mon 06:00
    assert inside_both.next_open == local(CHI, "2027-01-04T06:00")
    frozen_twice = window_status(w, local(CHI, "2026-12-27T01:00"))  # Sun 01:00: both freezes
    assert frozen_twice.frozen_by == "year-end" and "(also 'ehr-maintenance')" in frozen_twice.reason


# ------------------------------------------------------------------ next_open


def test_next_open_skips_chained_freezes() -> None:
    w = windows(LON, freezes=[{"name": "a", "start": "2026-12-20T00:00", "end": "2027-01-03T00:00"},
                              {"name": "b", "start": "2027-01-02T00:00", "end": "2027-01-10T00:00"},
                              {"name": "c", "start": "2027-01-10T00:00", "end": "2027-01-11T09:00"}])
    assert window_status(w, local(LON, "2026-12-21T00:00")).next_open == local(LON, "2027-01-11T09:00")


def test_next_open_after_a_freeze_longer_than_the_horizon() -> None:
    w = windows(SYD, allow=[wr(["wed"], "10:00", "11:00")],
                freezes=[{"name": "long", "start": "2026-05-01T00:00", "end": "2026-08-01T00:00"}])
    status = window_status(w, local(SYD, "2026-05-02T00:00"))
    assert status.next_open == local(SYD, "2026-08-05T10:00")  # the first Wednesday after the freeze


def test_never_opening_within_the_horizon_gives_none() -> None:
    w = windows(CHI, allow=[wr(["mon"], "06:00", "18:00")],
                recurring_freezes=[wr(["mon"], "00:00", "24:00", name="mondays")])
    status = window_status(w, local(CHI, "2026-06-15T12:00"))
    assert not status.open and status.next_open is None
    assert "it does not open within 14 days" in status.reason


def test_closes_at_finds_a_one_off_freeze_beyond_the_horizon_and_none_without_one() -> None:
    now = utc("2026-06-01T00:00:00")
    assert window_status(windows(CHI), now).closes_at is None
    far = windows(CHI, freezes=[{"name": "later", "start": "2026-09-01T00:00", "end": "2026-09-02T00:00"}])
    assert window_status(far, now).closes_at == local(CHI, "2026-09-01T00:00") > now + HORIZON
    assert window_status(far, local(CHI, "2026-09-02T00:00")).closes_at is None  # the freeze is over


def test_no_windows_means_always_open() -> None:
    status = window_status(None, utc("2026-06-01T00:00:00"))
    assert status.open and status.closes_at is None and status.frozen_by is None


# --------------------------------------------- may_start: enforced, not opt-in


def test_may_start_is_blocked_by_a_production_freeze_and_names_break_glass() -> None:
    w = example()
    now = local(CHI, "2026-12-21T10:00")  # a Monday, inside the windows, inside the year-end freeze
    status = may_start(w, "prod", now)
    assert not status.open and status.frozen_by == "year-end"
    assert status.reason.startswith("no new promotion may start in this prod environment: frozen by freeze")
    assert "only break-glass bypasses it" in status.reason
    assert status.next_open == local(CHI, "2027-01-04T06:00")


def test_prod_freezes_are_enforced_not_opt_in() -> None:
    """"Enforced, not opt-in": a prod environment's freezes always apply to a new promotion. There is no
    flag, argument or setting that ignores them: ``may_start`` takes only the windows, the environment
    class and the time, and ``ChangeWindows`` has no field to switch freezes off (unknown fields are
    errors). Only the break-glass path, decided elsewhere, may start a change in a frozen environment."""
    assert list(inspect.signature(may_start).parameters) == ["windows", "env_class", "now"]
    for field in ("enforce", "enforced", "enforce_freezes", "ignore_freezes", "opt_in"):
        with pytest.raises(ValidationError, match="Extra inputs"):
            ChangeWindows.model_validate({**yaml.safe_load(EXAMPLE), field: False})
    w = example()
    for text in ("2026-12-20T00:00", "2026-12-23T12:00", "2027-01-02T23:59:59"):
        assert not may_start(w, "prod", local(CHI, text)).open


@pytest.mark.parametrize("env_class", ["nonprod", "ephemeral"])
def test_non_prod_environments_are_frozen_only_by_their_own_freezes(env_class: str) -> None:
    now = local(CHI, "2026-12-21T10:00")
    declared = may_start(example(), env_class, now)
    assert not declared.open and declared.frozen_by == "year-end" and "break-glass" not in declared.reason
    assert may_start(None, env_class, now).open
    assert may_start(example(freezes=[]), env_class, now).open


def test_may_start_outside_the_windows_and_inside() -> None:
    w = example()
    closed = may_start(w, "prod", local(CHI, "2026-06-19T10:00"))  # a Friday
    assert not closed.open and closed.frozen_by is None and closed.next_open == local(CHI, "2026-06-20T22:00")
    opened = may_start(w, "prod", local(CHI, "2026-06-18T10:00"))
    assert opened.open and opened.closes_at == local(CHI, "2026-06-18T18:00")
    assert opened.reason.startswith("a new promotion may start: inside the change windows")
    with pytest.raises(ValueError):
        may_start(w, "production", 0.0)


# ------------------------------------------------- may_continue: finish / hold


def test_in_flight_finish_always_continues() -> None:
    w = example(in_flight="finish")
    started = local(CHI, "2026-12-19T23:00")  # in the Saturday window, an hour before the year-end freeze
    status = may_continue(w, "prod", local(CHI, "2026-12-20T01:00"), started)
    assert status.open and status.frozen_by == "year-end" and status.closes_at is None
    assert "may finish (in_flight: finish) although frozen by freeze 'year-end'" in status.reason
    assert may_continue(w, "prod", local(CHI, "2026-12-19T23:30"), started).closes_at is None
    assert may_continue(w, "prod", local(CHI, "2026-06-19T10:00"), started).open  # outside the windows


def test_in_flight_hold_holds_while_closed_and_resumes_when_open() -> None:
    w = example(in_flight="hold")
    started = local(CHI, "2026-12-19T23:00")
    running = may_continue(w, "prod", local(CHI, "2026-12-19T23:30"), started)
    assert running.open and running.closes_at == local(CHI, "2026-12-20T00:00")  # when it will be held
    held = may_continue(w, "prod", local(CHI, "2026-12-20T00:00"), started)
    assert not held.open and held.frozen_by == "year-end"
    assert held.next_open == local(CHI, "2027-01-04T06:00")
    assert held.reason.startswith("the rollout started Sat 2026-12-19 23:00 CST is held (in_flight: hold)")
    window_closed = may_continue(w, "nonprod", local(CHI, "2026-06-18T18:00"), local(CHI, "2026-06-18T17:00"))
    assert not window_closed.open and window_closed.frozen_by is None
    assert window_closed.next_open == local(CHI, "2026-06-20T22:00")
    assert may_continue(w, "prod", local(CHI, "2027-01-04T06:00"), started).open
    assert may_continue(None, "prod", 0.0, 0.0).open


# ------------------------------------------------------------- properties

TRANSITIONS = {  # 2026 DST changes (UTC) per zone, and a quiet summer instant
    CHI: ["2026-03-08T08:00:00", "2026-11-01T07:00:00", "2026-06-15T12:00:00"],
    LON: ["2026-03-29T01:00:00", "2026-10-25T01:00:00", "2026-06-15T12:00:00"],
    SYD: ["2026-04-04T16:00:00", "2026-10-03T16:00:00", "2026-06-15T12:00:00"],
    "UTC": ["2026-06-15T12:00:00"],
}
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
half_hours = st.integers(0, 47).map(lambda i: f"{i // 2:02d}:{30 * (i % 2):02d}")
day_sets = st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True)


@st.composite
def weekly(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(half_hours)
    end = draw(half_hours.filter(lambda e: e != start) | st.just("24:00"))
    return wr(draw(day_sets), start, end)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ChangeWindows, float]:
    zone = draw(st.sampled_from(sorted(TRANSITIONS)))
    anchor = utc(draw(st.sampled_from(TRANSITIONS[zone])))
    tz = ZoneInfo(zone)
    freezes = []
    for i in range(draw(st.integers(0, 2))):
        begin = anchor + draw(st.integers(-3 * 48, 3 * 48)) * 1800 + draw(st.sampled_from([0, 0, 900]))
        length = draw(st.integers(1, 5 * 48)) * 1800
        if draw(st.booleans()):  # local wall-clock boundaries (may fall in a gap or a repeated hour)
            start = datetime.fromtimestamp(begin, tz).replace(tzinfo=None)
            end = start + timedelta(seconds=length)
        else:  # explicit offsets
            start = datetime.fromtimestamp(begin, UTC)
            end = start + timedelta(seconds=length)
        freezes.append({"name": f"f{i}", "start": start.isoformat(), "end": end.isoformat()})
    recurring = [{**r, "name": f"r{i}"} for i, r in enumerate(draw(st.lists(weekly(), max_size=2)))]
    try:
        w = ChangeWindows.model_validate({"timezone": zone, "allow": draw(st.lists(weekly(), max_size=3)),
                                          "freezes": freezes, "recurring_freezes": recurring})
    except ValidationError:  # e.g. a freeze entirely inside a skipped hour
        w = ChangeWindows.model_validate({"timezone": zone})
    instant = anchor + draw(st.integers(-4 * 86400, 4 * 86400)) + draw(st.sampled_from([0.0, 0.0, 0.5]))
    return w, instant


def _inside(weekly_range: Any, local_time: datetime) -> bool:
    """Oracle: the wall clock is inside the range (written independently of the model's ``covers``)."""
    start = datetime.combine(local_time.date(), datetime.strptime(weekly_range.start, "%H:%M").time())
    days = {d.value for d in weekly_range.days}
    naive = local_time.replace(tzinfo=None)
    for back in (0, 1):  # a range that started today or (crossing midnight) yesterday
        begin = start - timedelta(days=back)
        end_h, end_m = map(int, weekly_range.end.split(":"))
        end = datetime.combine(begin.date(), datetime.min.time()) + timedelta(hours=end_h, minutes=end_m)
        if end <= begin:
            end += timedelta(days=1)
        if DAYS[begin.weekday()] in days and begin <= naive < end:
            return True
    return False


def _frozen_oracle(w: ChangeWindows, instant: float) -> bool | None:
    """True when the instant is certainly inside a freeze; None when only the model's gap/fold rule decides."""
    tz = ZoneInfo(w.timezone)
    clock = datetime.fromtimestamp(instant, tz)
    if any(_inside(r, clock) for r in w.recurring_freezes):
        return True
    for f in w.freezes:
        if f.start.tzinfo is not None:
            if f.start.timestamp() <= instant < f.end.timestamp():
                return True
        elif f.start <= clock.replace(tzinfo=None) < f.end:
            return True  # the wall clock shows a time inside the freeze
    if any(f.start.tzinfo is None for f in w.freezes):
        return None
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_never_open_inside_a_freeze(scenario: tuple[ChangeWindows, float]) -> None:
    w, instant = scenario
    status = window_status(w, instant)
    frozen = _frozen_oracle(w, instant)
    if frozen:
        assert not status.open and status.frozen_by is not None, status.reason
        assert not may_start(w, "prod", instant).open
    elif frozen is False:
        assert (status.frozen_by is None) and status.open == (
            not w.allow or any(_inside(r, datetime.fromtimestamp(instant, ZoneInfo(w.timezone))) for r in w.allow))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_closes_at_and_next_open_are_the_next_changes(scenario: tuple[ChangeWindows, float]) -> None:
    w, instant = scenario
    status = window_status(w, instant)
    change = status.closes_at if status.open else status.next_open
    assert (status.next_open if status.open else status.closes_at) is None
    calendar = _Calendar(w)  # the state alone, without searching for the next change again
    if change is None:
        probes = [instant + k * 900 for k in range(1, 14 * 96)]
    else:
        assert change > instant
        assert window_status(w, change).open is not status.open  # it changes exactly there
        probes = [instant + (change - instant) * k / 200 for k in range(1, 200)] + [change - 0.5]
    assert all(calendar.state(p).open is status.open for p in probes if p > instant)
