"""The one item both spiders produce.

A coin the spider was asked for but could not collect is still an item: `query` names it
and `error` says what went wrong, so it reaches `items.jl` and `data.json` like any other
and never disappears silently.
"""

import scrapy

from coinspiders.parsing.fields import COIN_FIELDS

# COIN_FIELDS, the order of a coin's fields in data.json, is defined beside the parsers
# (free of Scrapy); CoinItem declares the same names, as tests/test_contracts.py checks.
__all__ = ["COIN_FIELDS", "CoinItem"]


class CoinItem(scrapy.Item):
    """One coin's figures, or the error that kept the spider from collecting them."""

    id = scrapy.Field()
    name = scrapy.Field()
    symbol = scrapy.Field()
    slug = scrapy.Field()
    # The currency of price, market_cap, volume and diluted_market_cap: "USD" for coin
    # pages, the `convert` currency for the Pro API. Figures in two currencies never
    # belong in one series, so the daemon keeps them apart by this field.
    currency = scrapy.Field()
    price = scrapy.Field()
    price_change = scrapy.Field()
    market_cap = scrapy.Field()
    market_cap_rank = scrapy.Field()
    volume = scrapy.Field()
    volume_rank = scrapy.Field()
    volume_change = scrapy.Field()
    circulating_supply = scrapy.Field()
    total_supply = scrapy.Field()
    max_supply = scrapy.Field()
    diluted_market_cap = scrapy.Field()
    contracts = scrapy.Field()
    official_links = scrapy.Field()
    socials = scrapy.Field()
    logo = scrapy.Field()
    logo_path = scrapy.Field()
    last_updated = scrapy.Field()
    scraped_at = scrapy.Field()
    source = scrapy.Field()
    # The coin as the user asked for it ("DUKO", "bitcoin", "1"); set by the `coin` spider.
    query = scrapy.Field()
    # Other coins that share the asked-for symbol (id, slug, name, rank), when there were any.
    candidates = scrapy.Field()
    # What went wrong for this coin; when set, the figures above are absent.
    error = scrapy.Field()
