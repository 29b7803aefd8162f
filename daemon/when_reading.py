"""A `when` schedule in plain words ("every day at 12:30"), for people choosing one.

Pure: it reads a parsed schedule (daemon.triggers) and nothing else, so the preview
endpoint and the dashboard show the same words and tests can pin them. Cron fields
it does not put into words are quoted as they are, never guessed at.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from daemon.triggers import Cron, Every, Timestamps, When

__all__ = ["describe"]

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# cron counts days of the week from Sunday = 0 (7 is Sunday again)
_CRON_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_CRON_DAY_NAMES = {name[:3].lower(): i for i, name in enumerate(_CRON_DAYS)}
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_NAMES = {name[:3].lower(): i + 1 for i, name in enumerate(_MONTHS)}
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def describe(when: When) -> str:
    """The schedule in words, in its own time zone's wall-clock times."""
    if isinstance(when, Every):
        return _every(when)
    if isinstance(when, Cron):
        return _cron(when.expr)
    if isinstance(when, Timestamps):
        return _timestamps(when.times, when.tz)
    return str(when)


# -- every ... ---------------------------------------------------------------------------


def _clock(hour: int, minute: int, second: int) -> str:
    return f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if second else "")


def _unit(n: int, unit: str) -> str:
    """'minute', '10 minutes'."""
    return unit[:-1] if n == 1 else f"{n} {unit}"


def _every(when: Every) -> str:
    at = when.at
    first = when.first().astimezone(when.tz)
    if when.weekday is not None:
        day = _DAY_NAMES[when.weekday]
        if at is not None:
            return f"every {day} at {_clock(at.hour, at.minute, at.second)}"
        clock = _clock(first.hour, first.minute, first.second)
        return f"every {day} at {clock} (the time of day it was scheduled)"
    if when.latest is not None:
        head = f"every {when.interval} to {when.latest} {when.unit} (a random interval each time)"
    else:
        head = f"every {_unit(when.interval, when.unit)}"
    if when.unit in ("days", "weeks"):
        on = f" on {_DAY_NAMES[first.weekday()]}s" if when.unit == "weeks" else ""
        if at is not None:
            return f"{head}{on} at {_clock(at.hour, at.minute, at.second)}"
        clock = _clock(first.hour, first.minute, first.second)
        return f"{head}{on} at {clock} (the time of day it was scheduled)"
    if at is None:
        return head
    if when.unit == "hours":
        if at.second:
            return f"{head} at {at.minute} min {at.second} s past the hour"
        return f"{head} at {at.minute} minutes past the hour"
    return f"{head} at second {at.second}"  # minutes


# -- cron --------------------------------------------------------------------------------


def _number(text: str, names: dict[str, int]) -> int | None:
    value = text.lower()
    if value in names:
        return names[value]
    return int(value) if value.isdigit() else None


def _values(field: str, names: dict[str, int] | None = None) -> list[int] | None:
    """A field of single values and ranges (no steps) as the numbers it names, or None."""
    out: list[int] = []
    for part in field.split(","):
        low_text, dash, high_text = part.partition("-")
        low = _number(low_text, names or {})
        high = _number(high_text, names or {}) if dash else low
        if low is None or high is None or high < low or high - low > 60:
            return None
        out.extend(range(low, high + 1))
    return out


def _single(field: str) -> int | None:
    return int(field) if field.isdigit() else None


def _step(field: str) -> int | None:
    """n for '*/n'."""
    head, slash, n = field.partition("/")
    return int(n) if head == "*" and slash and n.isdigit() else None


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _weekdays(field: str) -> str | None:
    if "-" in field and "," not in field:
        low, _, high = field.partition("-")
        a, b = _number(low, _CRON_DAY_NAMES), _number(high, _CRON_DAY_NAMES)
        if a is not None and b is not None and a <= 7 and b <= 7 and a < b:
            return f"{_CRON_DAYS[a % 7]} to {_CRON_DAYS[b % 7]}"
    days = _values(field, _CRON_DAY_NAMES)
    if days is None or any(d > 7 for d in days):
        return None
    return _listing([_CRON_DAYS[d % 7] for d in days])


def _days(dom: str, month: str, dow: str) -> str | None:
    """'' for every day; None when a field is beyond these words."""
    dom_days = None if dom == "*" else _values(dom)
    months = None if month == "*" else _values(month, _MONTH_NAMES)
    if (dom != "*" and dom_days is None) or (month != "*" and months is None):
        return None
    if months is not None and any(not 1 <= m <= 12 for m in months):
        return None
    weekdays = None if dow == "*" else _weekdays(dow)
    if dow != "*" and weekdays is None:
        return None
    month_words = _listing([_MONTHS[m - 1] for m in months]) if months else ""
    if dom_days is not None and len(dom_days) == 1 and months and len(months) == 1:
        head = f"every year on {dom_days[0]} {month_words}"
        return head + (f" or on every {weekdays} in {month_words}" if weekdays else "")
    parts: list[str] = []
    if dom_days is not None:
        parts.append(f"on day {_listing([str(d) for d in dom_days])} of the month")
    if weekdays is not None:
        # cron: with both day fields restricted, either one matching is enough
        parts.append(("or on every " if parts else "every ") + weekdays)
    if months:
        parts.append(("in " if parts else "every day in ") + month_words)
    return " ".join(parts)


def _times(second: str, minute: str, hour: str) -> str | None:
    """'at 12:30', 'every 10 minutes', ...; None when beyond these words."""
    s, m, h = _single(second), _single(minute), _single(hour)
    if s is not None and m is not None and h is not None:
        return f"at {_clock(h, m, s)}"
    if second != "0":
        if minute == "*" and hour == "*":
            if second == "*":
                return "every second"
            if _step(second):
                return f"every {_unit(_step(second) or 1, 'seconds')}"
        return None
    if hour == "*":
        if minute == "*":
            return "every minute"
        if _step(minute):
            return f"every {_unit(_step(minute) or 1, 'minutes')}"
        if m is not None:
            return "every hour, on the hour" if m == 0 else f"every hour at {m} minutes past"
        return None
    past = "on the hour" if m == 0 else f"at {m} minutes past"
    low, dash, high = hour.partition("-")
    if m is not None and dash and low.isdigit() and high.isdigit() and int(low) < int(high):
        return f"every hour {past}, from {_clock(int(low), m, 0)} to {_clock(int(high), m, 0)}"
    hours = _values(hour)
    if m is not None and hours is not None:
        return "at " + _listing([_clock(x, m, 0) for x in hours])
    if m is not None and _step(hour):
        return f"every {_unit(_step(hour) or 1, 'hours')}, {past}"
    return None


def _cron(expr: str) -> str:
    fields = _ALIASES.get(expr.lower(), expr).split()
    second = fields[5] if len(fields) == 6 else "0"
    minute, hour, dom, month, dow = fields[:5]
    times = _times(second, minute, hour)
    days = _days(dom, month, dow)
    if times is None or days is None:
        names = ("minute", "hour", "day of month", "month", "day of week")
        named = zip(names, fields[:5], strict=True)
        raw = ", ".join(f"{name} {value}" for name, value in named if value != "*")
        if len(fields) == 6:
            raw += f", second {second}"
        return f"cron: {raw or 'every minute'}"
    if times.startswith("at "):
        return f"{days} {times}" if days else f"every day {times}"
    return f"{times}, {days.replace('every ', 'on ', 1)}" if days else times


# -- at <timestamps> -------------------------------------------------------------------


def _moment(t: datetime, tz: tzinfo) -> str:
    local = t.astimezone(tz)
    return local.strftime("%Y-%m-%d ") + _clock(local.hour, local.minute, local.second)


def _timestamps(times: list[datetime], tz: tzinfo) -> str:
    if len(times) == 1:
        return f"once, on {_moment(times[0], tz)}"
    return f"{len(times)} times, from {_moment(times[0], tz)} to {_moment(times[-1], tz)}"
