"""Business hours: ranges, nights past midnight, holidays, clock changes, and what a caller hears."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from app.hours import (
    Hours,
    HoursError,
    closed_words,
    opening_words,
    parse_holidays,
    parse_week,
    parse_zone,
    time_words,
    week_from_lines,
)
from app.models import Queue

UTC = timezone.utc


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def hours(week=None, holidays=(), zone="Europe/London") -> Hours:
    return Hours.of(zone, None if week is None else parse_week(week), parse_holidays(list(holidays)))


OFFICE = {"mon-fri": "09:00-17:00"}


def test_a_range_is_open_from_its_start_until_just_before_its_end():
    office = hours(OFFICE)
    # Monday 5 January 2026, London in winter is UTC.
    assert not office.is_open(at(2026, 1, 5, 8, 59))
    assert office.is_open(at(2026, 1, 5, 9, 0)) and office.is_open(at(2026, 1, 5, 16, 59))
    assert not office.is_open(at(2026, 1, 5, 17, 0))
    assert not office.is_open(at(2026, 1, 10, 12, 0))  # a Saturday: a day the hours do not name is closed


def test_the_hours_are_on_the_queues_own_wall_clock_in_summer_too():
    office = hours(OFFICE)
    # Monday 6 July 2026: London is an hour ahead of UTC.
    assert office.is_open(at(2026, 7, 6, 8, 30))  # 09:30 in London
    assert not office.is_open(at(2026, 7, 6, 16, 30))  # 17:30 in London
    assert hours(OFFICE, zone="America/New_York").is_open(at(2026, 7, 6, 13, 0))  # 09:00 in New York
    assert not hours(OFFICE, zone="America/New_York").is_open(at(2026, 7, 6, 12, 59))


def test_a_day_may_have_several_ranges_and_the_next_opening_is_after_the_break():
    lunch = hours({"mon-fri": "09:00-12:00, 13:00-17:00", "sat": ["10:00-12:00"]})
    noon = at(2026, 1, 5, 12, 30)
    assert not lunch.is_open(noon)
    assert lunch.next_opening(noon) == at(2026, 1, 5, 13, 0)
    assert closed_words("billing", lunch.next_opening(noon), noon) == "Billing is closed. We open again today at 1 PM."
    friday_evening = at(2026, 1, 9, 18, 0)
    assert lunch.next_opening(friday_evening) == at(2026, 1, 10, 10, 0)
    assert opening_words(lunch.next_opening(friday_evening), friday_evening) == "tomorrow at 10 AM"


def test_a_range_past_midnight_runs_into_the_next_day():
    nights = hours({"fri": "22:00-06:00", "sat": "closed"})
    assert nights.is_open(at(2026, 1, 9, 23, 0))  # Friday night
    assert nights.is_open(at(2026, 1, 10, 5, 59))  # Saturday morning, still Friday's range
    assert not nights.is_open(at(2026, 1, 10, 6, 0))
    assert not nights.is_open(at(2026, 1, 10, 23, 0))  # Saturday night: closed
    saturday = at(2026, 1, 10, 7, 0)
    assert nights.next_opening(saturday) == at(2026, 1, 16, 22, 0)
    assert closed_words("night desk", nights.next_opening(saturday), saturday) == (
        "Night desk is closed. We open again Friday at 10 PM.")


def test_a_holiday_is_closed_all_day_even_inside_a_night_that_began_before_it():
    centre = hours({"mon-wed": "08:00-20:00", "thu": ["08:00-20:00", "22:00-06:00"], "fri-sun": "08:00-20:00"},
                   holidays=["2026-12-25"])
    assert centre.is_open(at(2026, 12, 24, 23, 30))  # Christmas Eve (a Thursday), the night range
    assert not centre.is_open(at(2026, 12, 25, 0, 0))  # the holiday closes it at midnight
    assert not centre.is_open(at(2026, 12, 25, 12, 0))
    assert centre.next_opening(at(2026, 12, 25, 0, 0)) == at(2026, 12, 26, 8, 0)


def test_a_queue_with_no_hours_is_always_open_except_on_its_holidays():
    always = hours()
    assert always.is_open(at(2026, 1, 4, 3, 0)) and always.is_open(at(2026, 1, 10, 23, 59))
    christmas = hours(holidays=[date(2026, 12, 25), "2026-12-26"])
    assert not christmas.is_open(at(2026, 12, 25, 12, 0))
    assert christmas.next_opening(at(2026, 12, 25, 12, 0)) == at(2026, 12, 27, 0, 0)
    assert opening_words(christmas.next_opening(at(2026, 12, 25, 12, 0)), at(2026, 12, 25, 12, 0)) == (
        "Sunday at midnight")


def test_a_queue_closed_every_day_has_no_next_opening():
    never = hours({"mon-sun": "closed"})
    assert not never.is_open(at(2026, 1, 5, 12, 0))
    assert never.next_opening(at(2026, 1, 5, 12, 0)) is None
    assert closed_words("billing", None, at(2026, 1, 5, 12, 0)) == "Billing is closed."


def test_the_clock_changes_keep_the_hours_on_the_wall_clock():
    sundays = hours({"sun": "09:00-17:00"})
    # London goes from GMT to BST at 01:00 UTC on Sunday 29 March 2026: 09:00 is 08:00 UTC that day.
    assert sundays.next_opening(at(2026, 3, 28, 20, 0)) == at(2026, 3, 29, 8, 0)
    assert sundays.is_open(at(2026, 3, 29, 8, 0)) and not sundays.is_open(at(2026, 3, 29, 7, 59))
    assert not sundays.is_open(at(2026, 3, 29, 16, 0))  # 17:00 BST
    # And back at 01:00 UTC on Sunday 25 October 2026: 09:00 is 09:00 UTC again.
    assert sundays.next_opening(at(2026, 10, 24, 20, 0)) == at(2026, 10, 25, 9, 0)
    assert sundays.is_open(at(2026, 10, 25, 16, 59)) and not sundays.is_open(at(2026, 10, 25, 17, 0))
    # The whole day is open on the short day and on the long one.
    whole = hours({"sun": "00:00-24:00"})
    assert all(whole.is_open(at(2026, 3, 29, hour, 30)) for hour in range(0, 23))  # 00:30 GMT .. 23:30 BST
    assert not whole.is_open(at(2026, 3, 28, 23, 59)) and not whole.is_open(at(2026, 3, 29, 23, 0))  # 00:00 Monday
    assert not whole.is_open(at(2026, 10, 24, 22, 59))  # 23:59 BST on Saturday
    long_day = at(2026, 10, 24, 23, 0)  # 00:00 BST on Sunday; the day lasts 25 hours
    assert all(whole.is_open(long_day + timedelta(hours=hour, minutes=59)) for hour in range(25))
    assert not whole.is_open(long_day + timedelta(hours=25))  # 00:00 GMT on Monday


def test_a_range_that_starts_in_the_skipped_hour_opens_when_the_clock_gets_there():
    # New York skips 02:00-03:00 on Sunday 8 March 2026: 02:30 never happens, the queue opens at 03:30 EDT.
    early = hours({"sun": "02:30-05:00"}, zone="America/New_York")
    saturday = at(2026, 3, 7, 23, 0)
    opening = early.next_opening(saturday)
    assert opening == at(2026, 3, 8, 7, 30)
    assert opening_words(opening, saturday) == "tomorrow at 3:30 AM"
    # A range wholly inside the skipped hour never opens that day: the next opening is a week later.
    skipped = hours({"sun": "02:10-02:50"}, zone="America/New_York")
    assert skipped.next_opening(saturday) == at(2026, 3, 15, 6, 10)  # 02:10 EDT


def test_what_a_caller_hears_of_the_next_opening():
    monday = at(2026, 1, 5, 20, 0)
    assert time_words(at(2026, 1, 5, 9, 0)) == "9 AM" and time_words(at(2026, 1, 5, 17, 30)) == "5:30 PM"
    assert time_words(at(2026, 1, 5, 12, 0)) == "noon" and time_words(at(2026, 1, 5, 0, 0)) == "midnight"
    assert opening_words(at(2026, 1, 9, 9, 0), monday) == "Friday at 9 AM"
    assert opening_words(at(2026, 1, 14, 9, 0), monday) == "Wednesday, January 14 at 9 AM"
    office = hours(OFFICE)
    friday = at(2026, 1, 9, 18, 0)
    assert closed_words("billing", office.next_opening(friday), friday) == (
        "Billing is closed. We open again Monday at 9 AM.")


def test_a_queue_reads_its_hours_with_the_centres_time_zone_when_it_names_none():
    queue = Queue(name="billing", timezone=None, hours={"mon": ["09:00-17:00"]}, holidays=None)
    assert queue.opening_hours("America/New_York").is_open(at(2026, 1, 5, 14, 0))  # 09:00 in New York
    assert not queue.opening_hours("UTC").is_open(at(2026, 1, 5, 17, 30))
    queue.timezone = "Asia/Tokyo"
    assert queue.opening_hours("America/New_York").is_open(at(2026, 1, 5, 0, 0))  # 09:00 in Tokyo


def test_the_roster_form_is_kept_in_order_with_days_named_once():
    assert parse_week({"sat": "closed", "Monday-wed": "09:00-17:00", "fri": ["13:00-16:00", "9:00-12:00"]}) == {
        "mon": ["09:00-17:00"], "tue": ["09:00-17:00"], "wed": ["09:00-17:00"], "fri": ["09:00-12:00", "13:00-16:00"]}
    assert list(parse_week({"fri-mon": "10:00-11:00"})) == ["mon", "fri", "sat", "sun"]  # a run round the weekend
    assert week_from_lines(["mon-fri=09:00-17:00", "sat=closed"]) == {"mon-fri": "09:00-17:00", "sat": "closed"}
    assert parse_holidays("2026-12-26, 2026-12-25,2026-12-25") == ["2026-12-25", "2026-12-26"]
    assert parse_zone(" Europe/Paris ") == "Europe/Paris"


@pytest.mark.parametrize(("week", "words"), [
    ({"mon": "9-5"}, "hours for Monday: '9-5' is not a range such as \"09:00-17:00\""),
    ({"mon": "09:00-25:00"}, "'09:00-25:00' is not a range"),
    ({"mon": "24:00-02:00"}, "'24:00-02:00' is not a range"),
    ({"mon": "09:60-10:00"}, "'09:60-10:00' is not a range"),
    ({"mon": "09:00-09:00"}, "'09:00-09:00' opens and closes at the same time"),
    ({"funday": "09:00-17:00"}, "hours day 'funday' is not a day"),
    ({"mon-fri": "09:00-17:00", "fri": "closed"}, "hours name Friday twice (again in 'fri')"),
    ({"tue": "09:00-13:00, 12:00-17:00"}, "hours for Tuesday: 09:00-13:00 and 12:00-17:00 overlap"),
    ({"tue": "22:00-02:00, 23:00-23:30"}, "hours for Tuesday: 22:00-02:00 and 23:00-23:30 overlap"),
    ({"wed": ["closed", "09:00-12:00"]}, "hours for Wednesday: \"closed\" stands alone"),
    ({"thu": 9}, "hours for Thursday 9 must be a range"),
    ("9 to 5", "hours '9 to 5' must name days"),
])
def test_bad_hours_are_refused_in_words_naming_the_value(week, words):
    with pytest.raises(HoursError) as refused:
        parse_week(week)
    assert words in str(refused.value)


def test_bad_time_zones_holidays_and_lines_are_refused_in_words():
    for zone in ("Mars/Olympus_Mons", "", "../../etc/passwd", "utc"):
        with pytest.raises(HoursError, match="is not an IANA time zone name"):
            parse_zone(zone)
    with pytest.raises(HoursError, match="holiday '2026-02-30' is not a date as YYYY-MM-DD"):
        parse_holidays(["2026-12-25", "2026-02-30"])
    with pytest.raises(HoursError, match="holidays 2026 must be a list of dates"):
        parse_holidays(2026)
    with pytest.raises(HoursError, match="hours 'mon 09:00-17:00' must be DAYS=RANGES"):
        week_from_lines(["mon 09:00-17:00"])
