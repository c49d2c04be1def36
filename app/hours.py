"""A queue's business hours: its time zone, its weekly hours and its holidays.

Whether a queue is open at a moment, and when it opens next, as a caller
hears it ("We open again Monday at 9 AM."). No Flask and no database: the
roster's words are checked here (`parse_zone`, `parse_week`,
`parse_holidays`, each raising HoursError with the bad value in words), the
queue's stored settings are read back into `Hours`, and the rest is arithmetic
on the queue's own wall clock.

The rules, modelled on Amazon Connect's hours of operation (a time zone and
ranges per day of the week) with holidays closing the whole day:

- Ranges are on the queue's wall clock (zoneinfo), so 09:00 is 09:00 in
  winter and in summer; a range that starts in the hour a spring change skips
  opens when the clock reaches it (02:30 opens at 03:30).
- A range belongs to the day it starts on. One whose end is not after its
  start (`22:00-06:00`) runs past midnight into the next day; `00:00-24:00`
  is the whole day.
- A day the hours do not name is closed, like one named `closed`.
- A holiday (a date on the queue's wall clock) is closed from its midnight to
  the next, whatever range would run into it or start on it.
- A queue with no weekly hours is open every day, all day, except its holidays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
CLOSED = "closed"
# How far ahead the next opening is looked for: a year of holidays and closed days.
LOOK_AHEAD_DAYS = 400
MINUTES_IN_A_DAY = 24 * 60

_CLOCK = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")


class HoursError(ValueError):
    """Hours, a time zone or a holiday that cannot be used, with the bad value in words."""


@dataclass(frozen=True)
class Span:
    """One range of a day, in minutes after its midnight; an end not after the start runs into the next day."""

    start: int
    end: int

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    @property
    def end_today(self) -> int:
        """Where the range stops on the day it starts (midnight for one that runs past it)."""
        return MINUTES_IN_A_DAY if self.overnight else self.end

    def words(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


# --- the roster's words ------------------------------------------------------------------------------------


def parse_zone(value: Any) -> str:
    """An IANA time zone name (Europe/London), checked with zoneinfo; HoursError otherwise."""
    name = str(value or "").strip()
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"timezone {name!r} is not an IANA time zone name (such as Europe/London or UTC)") from None
    return name


def parse_week(value: Any) -> dict[str, list[str]]:
    """Weekly hours as {day: ranges}, the form kept with the queue: each day mon..sun that has hours, with its
    ranges as "HH:MM-HH:MM" in order. VALUE maps days (mon, monday, or a run such as mon-fri) to a range, a
    list of ranges, ranges separated by commas, or "closed"; a day left out is closed."""
    if not isinstance(value, Mapping):
        raise HoursError(f"hours {value!r} must name days, such as {{mon-fri = \"09:00-17:00\", sat = \"closed\"}}")
    week: dict[str, list[str]] = {}
    for key, ranges in value.items():
        for day in _days(str(key)):
            if day in week:
                raise HoursError(f"hours name {_name(day)} twice (again in {key!r})")
            week[day] = _ranges(day, ranges)
    return {day: week[day] for day in DAYS if week.get(day)}


def week_from_lines(lines: Iterable[str]) -> dict[str, str]:
    """Weekly hours as the command line gives them, one "DAYS=RANGES" each ("mon-fri=09:00-17:00",
    "sat=closed"), in the form parse_week reads."""
    week: dict[str, str] = {}
    for line in lines:
        days, equals, ranges = str(line).partition("=")
        if not equals or not days.strip():
            raise HoursError(f"hours {line!r} must be DAYS=RANGES, such as mon-fri=09:00-17:00 or sat=closed")
        if days.strip() in week:
            raise HoursError(f"hours name {days.strip()!r} twice")
        week[days.strip()] = ranges
    return week


def parse_holidays(value: Any) -> list[str]:
    """Holidays as ISO dates (2026-12-25), in order, each once; VALUE is a list of them (or of TOML dates), or
    one string of dates separated by commas."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, date) and not isinstance(value, datetime):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise HoursError(f"holidays {value!r} must be a list of dates such as [\"2026-12-25\"]")
    days: set[date] = set()
    for item in value:
        if isinstance(item, date) and not isinstance(item, datetime):
            days.add(item)
            continue
        try:
            days.add(date.fromisoformat(str(item).strip()))
        except ValueError:
            raise HoursError(f"holiday {item!r} is not a date as YYYY-MM-DD (such as 2026-12-25)") from None
    return [day.isoformat() for day in sorted(days)]


def _days(key: str) -> list[str]:
    words = key.strip().lower()
    first, dash, last = words.partition("-")
    start = _day(first, key)
    if not dash:
        return [DAYS[start]]
    end = _day(last, key)
    # A run may wrap round the weekend: fri-mon is Friday, Saturday, Sunday and Monday.
    return [DAYS[(start + step) % 7] for step in range((end - start) % 7 + 1)]


def _day(word: str, key: str) -> int:
    word = word.strip()
    for index, (short, name) in enumerate(zip(DAYS, DAY_NAMES)):
        if word in (short, name.lower()):
            return index
    raise HoursError(f"hours day {key!r} is not a day: use mon, tue, wed, thu, fri, sat, sun, or a run such as mon-fri")


def _name(day: str) -> str:
    return DAY_NAMES[DAYS.index(day)]


def _ranges(day: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, (list, tuple)):
        raise HoursError(f"hours for {_name(day)} {value!r} must be a range such as \"09:00-17:00\", a list of them, "
                         "or \"closed\"")
    texts = [str(part).strip().lower() for part in value]
    texts = [text for text in texts if text]
    if texts == [CLOSED] or not texts:
        return []
    spans = sorted((_span(day, text) for text in texts), key=lambda span: span.start)
    # A range that runs past midnight fills its day to the end: any range after it overlaps it.
    for earlier, later in zip(spans, spans[1:]):
        if later.start < earlier.end_today:
            raise HoursError(f"hours for {_name(day)}: {earlier.words()} and {later.words()} overlap")
    return [span.words() for span in spans]


def _span(day: str, text: str) -> Span:
    if text == CLOSED:
        raise HoursError(f"hours for {_name(day)}: \"closed\" stands alone, not beside ranges")
    start_text, dash, end_text = text.partition("-")
    start, end = _minutes(start_text), _minutes(end_text) if dash else None
    if start is None or end is None or start >= MINUTES_IN_A_DAY:
        raise HoursError(f"hours for {_name(day)}: {text!r} is not a range such as \"09:00-17:00\" (24-hour clock, "
                         "\"22:00-06:00\" runs past midnight)")
    if start == end:
        raise HoursError(f"hours for {_name(day)}: {text!r} opens and closes at the same time (the whole day is "
                         "\"00:00-24:00\")")
    return Span(start, end)


def _minutes(text: str) -> int | None:
    match = _CLOCK.match(text.strip())
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --- a queue's hours ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hours:
    """A queue's hours as the service reads them: WEEK None is open all week."""

    zone: ZoneInfo
    week: tuple[tuple[Span, ...], ...] | None = None
    holidays: frozenset[date] = frozenset()

    @classmethod
    def of(cls, zone: str, week: Mapping[str, Iterable[str]] | None = None,
           holidays: Iterable[str | date] = ()) -> Hours:
        """Hours from the form kept with a queue (parse_zone's, parse_week's and parse_holidays' answers)."""
        days = None
        if week is not None:
            checked = parse_week(dict(week))
            days = tuple(tuple(_span(day, text) for text in checked.get(day, ())) for day in DAYS)
        return cls(ZoneInfo(parse_zone(zone)), days, frozenset(date.fromisoformat(d) for d in parse_holidays(
            list(holidays))))

    def _spans(self, day: date) -> tuple[Span, ...]:
        if day in self.holidays:
            return ()
        if self.week is None:
            return (Span(0, MINUTES_IN_A_DAY),)
        return self.week[day.weekday()]

    def is_open(self, now: datetime) -> bool:
        """Whether the queue is open at NOW (an aware moment), read on its own wall clock."""
        local = _aware(now).astimezone(self.zone)
        today = local.date()
        if today in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        if any(span.start <= minute < span.end_today for span in self._spans(today)):
            return True
        # A range of yesterday's that runs past midnight.
        return any(span.overnight and minute < span.end for span in self._spans(today - timedelta(days=1)))

    def next_opening(self, now: datetime) -> datetime | None:
        """When a queue closed at NOW opens again, on its wall clock; None if it does not open within
        LOOK_AHEAD_DAYS (no day has hours, or every one is a holiday)."""
        now = _aware(now)
        today = now.astimezone(self.zone).date()
        for offset in range(LOOK_AHEAD_DAYS + 1):
            day = today + timedelta(days=offset)
            for span in self._spans(day):
                opening = _wall(day, span.start, self.zone)
                # Checked open: a range inside the hour a spring change skips never opens.
                if opening > now and self.is_open(opening):
                    return opening
        return None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a moment without a time zone")
    return moment


def _wall(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """DAY at MINUTES on ZONE's wall clock as a real moment: a time a spring change skips is when the clock
    reaches it (02:30 in a skipped hour is 03:30); of a time an autumn change repeats, the first."""
    naive = datetime.combine(day, time(minutes // 60, minutes % 60))
    moment = naive.replace(tzinfo=zone)
    return moment.astimezone(timezone.utc).astimezone(zone)


# --- as a caller hears it ----------------------------------------------------------------------------------


def time_words(moment: datetime) -> str:
    """9 AM, 9:30 AM, noon, midnight."""
    if moment.minute == 0 and moment.hour in (0, 12):
        return "midnight" if moment.hour == 0 else "noon"
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes} {'AM' if moment.hour < 12 else 'PM'}"


def opening_words(opening: datetime, now: datetime) -> str:
    """When OPENING is, seen from NOW on OPENING's own wall clock: "today at 2 PM", "tomorrow at 9 AM",
    "Monday at 9 AM" within the week, "Monday, January 5 at 9 AM" further."""
    local_now = _aware(now).astimezone(opening.tzinfo)
    days = (opening.date() - local_now.date()).days
    at = time_words(opening)
    if days == 0:
        return f"today at {at}"
    if days == 1:
        return f"tomorrow at {at}"
    weekday = DAY_NAMES[opening.weekday()]
    if days < 7:
        return f"{weekday} at {at}"
    return f"{weekday}, {MONTH_NAMES[opening.month - 1]} {opening.day} at {at}"


def closed_words(queue_name: str, opening: datetime | None, now: datetime) -> str:
    """What a caller hears at a closed queue: "Billing is closed. We open again Monday at 9 AM." """
    said = queue_name[:1].upper() + queue_name[1:]
    if opening is None:
        return f"{said} is closed."
    return f"{said} is closed. We open again {opening_words(opening, now)}."
