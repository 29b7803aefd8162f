"""Numbers as CoinMarketCap prints them in HTML: `$12.5M`, `2.94K`, `83.33M SAN`, `-5.44%`.

The page's JSON carries plain numbers; only the HTML fallback needs these. Tiny prices
are printed with a subscript count of zeros (`$0.0₄3913` = 0.00003913), so the digits
must be expanded before they mean anything.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUBSCRIPT = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
# "0" followed by subscript digits: that many zeros.
_SUBSCRIPT_ZEROS = re.compile(r"0([₀₁₂₃₄₅₆₇₈₉]+)")
_SCALE = {
    "": Decimal(1),
    "K": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "B": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
}
# An optional sign, digits with thousands separators and decimals, an optional scale.
_NUMBER = re.compile(r"([+-]?)\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*([KkMmBbTt](?![a-z]))?")
_UNKNOWN = {"", "-", "--", "—", "n/a", "na", "null", "none", "?", "∞"}


def _expand_subscript_zeros(text: str) -> str:
    return _SUBSCRIPT_ZEROS.sub(lambda m: "0" * int(m.group(1).translate(_SUBSCRIPT)), text)


def parse_decimal(text: str | None) -> Decimal | None:
    """The first number in `text` as a Decimal, with its K/M/B/T scale applied.

    None when the text shows no number (`--`, empty, a label): a missing figure must
    stay missing, never become 0.
    """
    if text is None:
        return None
    cleaned = text.replace("\u00a0", " ").replace("\u2212", "-").strip()
    if cleaned.lower() in _UNKNOWN:
        return None
    cleaned = _expand_subscript_zeros(cleaned)
    match = _NUMBER.search(cleaned)
    if match is None:
        return None
    sign, digits, scale = match.groups()
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:
        return None
    value *= _SCALE[(scale or "").upper()]
    return -value if sign == "-" else value


def parse_number(text: str | None) -> float | None:
    """`$12.5M` -> 12500000.0, `$0.0₄3913` -> 3.913e-05, `--` -> None."""
    value = parse_decimal(text)
    return None if value is None else float(value)


def parse_int(text: str | None) -> int | None:
    """A whole number such as a rank (`#6708`, `Rank 136`); None when there is none."""
    value = parse_decimal(text)
    if value is None or value != value.to_integral_value():
        return None
    return int(value)


def as_number(value: object) -> float | int | None:
    """A JSON value (page data or Pro API) as a finite number, or None.

    Booleans, NaN and infinities are not figures. A string is read whole first
    (`"1.5e-05"`, as an API may send it), else as the site prints it (`"$12.5M"`).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return parse_number(value)
        return number if math.isfinite(number) else None
    return None


def as_int(value: object) -> int | None:
    """A JSON value as a whole number (an id, a rank, an error code), or None."""
    number = as_number(value)
    if number is None or number != int(number):
        return None
    return int(number)


def known(value: float | int | None) -> float | int | None:
    """0 as CMC shows it for untracked coins means "not known": report None instead."""
    return None if value is None or value == 0 else value
