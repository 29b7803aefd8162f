"""Which coin the user meant: symbols collide, slugs and CMC ids do not.

`coins=BTC,santiment,1` mixes three kinds of names. The CMC id, then the slug, is the
identity of a coin; a symbol names up to several coins (three use HOT), so it is
resolved through the Pro API map and the active coin with the best rank wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from coinspiders.jobfolder import MAX_COINS

ID = "id"
SLUG = "slug"
SYMBOL = "symbol"
# No prefix, not a number: a symbol or a slug, tried in the order `slug_first` says.
AUTO = "auto"

_PREFIXES = {"id": ID, "slug": SLUG, "symbol": SYMBOL}
# What CMC uses in symbols and slugs (symbols also carry `$`, `.`, `_`, `-`).
_NAME_RE = re.compile(r"^[A-Za-z0-9$._-]{1,64}$")


@dataclass(frozen=True)
class CoinQuery:
    """One coin as the user asked for it, and how to look it up."""

    asked: str
    kind: str
    value: str

    @property
    def slug_first(self) -> bool:
        """A lower-case name is tried as a slug before a symbol (`bitcoin` is a page)."""
        return self.kind == SLUG or (self.kind == AUTO and self.value == self.value.lower())

    @property
    def symbol(self) -> str:
        return self.value.upper()

    @property
    def slug(self) -> str:
        return self.value.lower()


def split_coins(raw: str | Iterable[Any] | None) -> list[str]:
    """The asked-for coins from `a,b,c` or a JSON list, blanks and repeats dropped.

    Raises ValueError with a message for the user when nothing usable was given.
    """
    if raw is None:
        items: list[Any] = []
    elif isinstance(raw, str):
        items = raw.split(",")
    elif isinstance(raw, Iterable):
        items = list(raw)
    else:
        raise ValueError("coins must be a comma-separated string or a list")
    coins: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValueError(f"coin {item!r} is not a symbol, slug or id")
        text = str(item).strip()
        if text and text not in coins:
            coins.append(text)
    if not coins:
        raise ValueError("no coins given: pass coins=SYMBOL,slug,id (e.g. coins=BTC,ethereum,1)")
    if len(coins) > MAX_COINS:
        raise ValueError(f"too many coins ({len(coins)}); at most {MAX_COINS} per crawl")
    return coins


def classify(asked: str) -> CoinQuery | None:
    """How to look `asked` up; None when it cannot name a coin at all."""
    prefix, sep, rest = asked.partition(":")
    kind = _PREFIXES.get(prefix.strip().lower()) if sep else None
    value = rest.strip() if kind else asked.strip()
    if not _NAME_RE.match(value) or not any(c.isalnum() for c in value):
        return None
    if kind is None:
        kind = ID if value.isdigit() else AUTO
    elif kind == ID and not value.isdigit():
        return None
    return CoinQuery(asked, kind, value)


def _rank(entry: Mapping[str, Any]) -> int | None:
    rank = entry.get("rank")
    return rank if isinstance(rank, int) and not isinstance(rank, bool) and rank > 0 else None


def _active(entry: Mapping[str, Any]) -> bool:
    return entry.get("is_active") in (1, True) or entry.get("status") == "active"


def candidate(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a map entry worth keeping in `candidates`."""
    return {
        "id": entry.get("id"),
        "slug": entry.get("slug"),
        "symbol": entry.get("symbol"),
        "name": entry.get("name"),
        "rank": _rank(entry),
        "is_active": _active(entry),
    }


def choose(entries: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any] | None, list[dict]]:
    """The coin a symbol most likely means, and the others that share it.

    Active before inactive, then the best (lowest) rank, unranked last, then the lowest
    id (the oldest listing) so the choice never depends on the API's order.
    """
    usable = [e for e in entries if isinstance(e.get("id"), int) and isinstance(e.get("slug"), str)]
    ordered = sorted(
        usable,
        key=lambda e: (not _active(e), _rank(e) is None, _rank(e) or 0, e["id"]),
    )
    if not ordered:
        return None, []
    return candidate(ordered[0]), [candidate(e) for e in ordered[1:]]


def group_by_symbol(data: Any) -> dict[str, list[Mapping[str, Any]]]:
    """Map endpoint `data` (a list of coins) grouped by upper-case symbol."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    if not isinstance(data, list):
        return groups
    for entry in data:
        if isinstance(entry, Mapping) and isinstance(entry.get("symbol"), str):
            groups.setdefault(entry["symbol"].upper(), []).append(entry)
    return groups


def slugs_by_id(data: Any) -> dict[int, str]:
    """id -> slug from an info (`data` keyed by id) or map (`data` a list) payload."""
    entries: Iterable[Any]
    if isinstance(data, Mapping):
        entries = data.values()
    elif isinstance(data, list):
        entries = data
    else:
        return {}
    found: dict[int, str] = {}
    for entry in entries:
        if isinstance(entry, list):  # info by symbol: a list per key
            entry = entry[0] if entry else None
        if isinstance(entry, Mapping):
            coin_id, slug = entry.get("id"), entry.get("slug")
            if isinstance(coin_id, int) and isinstance(slug, str) and slug:
                found[coin_id] = slug
    return found
