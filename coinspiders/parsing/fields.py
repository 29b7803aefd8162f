"""The coin dict both parsers return, built in one place.

The page reader (three layouts) and the Pro API reader must name and order a coin's
figures alike: data.json, items.jl and the daemon's index all read them by these names.
Kept free of Scrapy like the parsers; `coinspiders.items` takes its field order from here.
"""

from __future__ import annotations

from typing import Any

# Every field of a coin record, in the order items.jl and data.json show them.
COIN_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "symbol",
    "slug",
    "currency",
    "price",
    "price_change",
    "market_cap",
    "market_cap_rank",
    "volume",
    "volume_rank",
    "volume_change",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "diluted_market_cap",
    "contracts",
    "official_links",
    "socials",
    "logo",
    "logo_path",
    "last_updated",
    "scraped_at",
    "source",
)
# What a spider adds to a parsed coin (who read it, when, in which currency, its logo):
# a parser that knows them (the API's) may pass them, a page parser leaves them out.
RECORD_FIELDS: frozenset[str] = frozenset({"currency", "logo", "logo_path", "scraped_at", "source"})
# The figures every parsed coin carries, None where the source did not show one.
FIGURES: tuple[str, ...] = tuple(key for key in COIN_FIELDS if key not in RECORD_FIELDS)


def coin_dict(**given: Any) -> dict[str, Any]:
    """A parsed coin: every figure (None when not given: unknown), the record fields
    given, all in COIN_FIELDS order. A name that is no field is a TypeError, so a typo
    cannot add a key no reader knows."""
    unknown = sorted(given.keys() - set(COIN_FIELDS))
    if unknown:
        raise TypeError(f"not coin fields: {', '.join(unknown)}")
    return {key: given.get(key) for key in COIN_FIELDS if key in given or key not in RECORD_FIELDS}
