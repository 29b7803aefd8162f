"""Numbers, sizes and times written for people, as the dashboard shows them.

Pure functions (no I/O), used as Jinja filters and tested directly. Never `%g`: a price
of 0.00003913 reads as `$0.0₄3913` (four zeros after the point, then the digits that
matter), a market cap as `$1.2T`, a count as `12,345`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo

_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
DASH = "—"


def _number(value: object) -> float | None:
    """A finite float, or None for anything that is not a number people can read."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def integer(value: object) -> str:
    """12345 -> '12,345'."""
    number = _number(value)
    return DASH if number is None else f"{round(number):,}"


def compact(value: object, digits: int = 1) -> str:
    """1_234_567_890 -> '1.2B'; below a thousand as it is ('950', '12.5')."""
    number = _number(value)
    if number is None:
        return DASH
    sign = "-" if number < 0 else ""
    number = abs(number)
    for size, suffix in _SUFFIXES:
        if number >= size * 0.9995:
            shown = f"{number / size:.{digits}f}".rstrip("0").rstrip(".")
            return f"{sign}{shown}{suffix}"
    if number == int(number):
        return f"{sign}{int(number)}"
    return f"{sign}{number:.2f}".rstrip("0").rstrip(".")


def price(value: object, currency: str = "USD") -> str:
    """A price: two decimals from 1 up ('$97,144.12'); below 1, four significant digits,
    with a run of four or more zeros after the point written as a subscript count
    ('$0.0₄3913' for 0.00003913)."""
    number = _number(value)
    if number is None:
        return DASH
    symbol = _SYMBOLS.get(currency.upper(), "")
    prefix = ("-" if number < 0 else "") + symbol
    suffix = "" if symbol else f" {currency.upper()}"
    number = abs(number)
    if number >= 1 or number == 0:
        return f"{prefix}{number:,.2f}{suffix}"
    # Leading zeros after the point, then four significant digits.
    zeros = -math.floor(math.log10(number)) - 1
    digits = f"{number:.{zeros + 4}f}"[2 + zeros :].rstrip("0") or "0"
    if zeros >= 4:
        return f"{prefix}0.0{str(zeros).translate(_SUBSCRIPT)}{digits}{suffix}"
    return f"{prefix}0.{'0' * zeros}{digits}{suffix}"


def money_compact(value: object, currency: str = "USD") -> str:
    """A market cap or volume: '$1.2T'."""
    number = _number(value)
    if number is None:
        return DASH
    symbol = _SYMBOLS.get(currency.upper(), "")
    text = compact(number)
    if symbol:
        return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"
    return f"{text} {currency.upper()}"


def percent(value: object, signed: bool = True) -> str:
    """A change in percent: '+2.35%', '-0.40%'."""
    number = _number(value)
    if number is None:
        return DASH
    return f"{number:+.2f}%" if signed else f"{number:.2f}%"


def size(value: object) -> str:
    """Bytes in binary units: '1.5 GiB'."""
    number = _number(value)
    if number is None:
        return DASH
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(number) < 1024 or unit == "TiB":
            return f"{int(number)} B" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return DASH  # not reached


def duration(seconds: object) -> str:
    """'2h 05m', '3m 07s', '42s', '0.4s'."""
    number = _number(seconds)
    if number is None or number < 0:
        return DASH
    if number < 10:
        return f"{number:.1f}s"
    whole = round(number)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def timestamp(value: object, zone: tzinfo = UTC) -> str:
    """An epoch time in the daemon's zone: '2026-12-03 14:05:09 UTC'."""
    number = _number(value)
    if number is None:
        return DASH
    moment = datetime.fromtimestamp(number, zone)
    return moment.strftime("%Y-%m-%d %H:%M:%S ") + (moment.tzname() or "")


def iso(value: object) -> str:
    """An epoch time as ISO 8601 UTC, for <time datetime=...> (the browser shows its own)."""
    number = _number(value)
    if number is None:
        return ""
    return datetime.fromtimestamp(number, UTC).isoformat().replace("+00:00", "Z")


def ago(value: object, now: float) -> str:
    """How long before `now` an epoch time was: '5m ago', 'in 3h' for a future one."""
    number = _number(value)
    if number is None:
        return DASH
    delta = now - number
    if -1 < delta < 1:
        return "now"
    text = duration(abs(delta)).split(" ")[0]
    if text.endswith("s") and "." in text:
        text = text.split(".")[0] + "s"
    return f"{text} ago" if delta > 0 else f"in {text}"


def sparkline(values: list[float], width: int = 100, height: int = 24) -> str:
    """The points of an SVG polyline drawing `values` left to right in a width x height
    box (the highest value at the top); '' for fewer than two values."""
    points = [v for v in (_number(x) for x in values) if v is not None]
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    return " ".join(
        f"{i * step:.1f},{height - (v - low) / span * height:.1f}" for i, v in enumerate(points)
    )
