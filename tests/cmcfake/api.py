"""Pro API payloads: listings/latest, map, info v2, and the error bodies.

Pure functions from (catalogue, query parameters) to a JSON-ready dict, or `ApiError`
carrying the HTTP status and `status` block the real API answers with.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from .coins import LAST_UPDATED, PLATFORMS, Catalogue, Coin

# error_code -> (HTTP status, error_message), as the Pro API documents them.
ERRORS: dict[int, tuple[int, str]] = {
    1001: (401, "This API Key is invalid."),
    1002: (401, "API key missing."),
    1003: (402, "Your API Key must be activated. Please go to pro.coinmarketcap.com/account/plan."),
    1004: (402, "Your API Key's subscription plan has expired."),
    1005: (403, "An API Key is required for this call."),
    1006: (403, "Your API Key subscription plan doesn't support this endpoint."),
    1007: (403, "This API Key has been disabled. Please contact support."),
    1008: (
        429,
        "You've exceeded your API Key's HTTP request rate limit. Rate limits reset every minute.",
    ),
    1009: (429, "You've exceeded your API Key's daily rate limit."),
    1010: (429, "You've exceeded your API Key's monthly rate limit."),
    1011: (429, "You've hit an IP rate limit."),
    500: (500, "An internal server error occurred."),
}

# Quote currencies besides coins of the catalogue: USD value of one unit.
FIAT_RATES = {"USD": 1.0, "EUR": 1.1688, "GBP": 1.3512, "JPY": 0.006791, "CHF": 1.2466}
MAX_LIMIT = 5000
MAX_INFO_IDS = 100


class ApiError(Exception):
    """An error answer: HTTP status plus the `status` block's code and message."""

    def __init__(self, http_status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.message = message

    @classmethod
    def from_code(cls, error_code: int, http_status: int | None = None) -> ApiError:
        default_status, message = ERRORS.get(error_code, (400, f"Error {error_code}."))
        return cls(http_status or default_status, error_code, message)

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, 400, message)

    def body(self) -> dict[str, Any]:
        return {"status": status_block(self.error_code, self.message)}


def timestamp(now: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def status_block(
    error_code: int = 0,
    error_message: str | None = None,
    elapsed: int = 0,
    credit_count: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "timestamp": timestamp(),
        "error_code": error_code,
        "error_message": error_message,
        "elapsed": elapsed,
        "credit_count": credit_count,
        "notice": None,
    }
    block.update(extra)
    return block


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.bad_request(f'"{name}" must be a number') from None
    if value < low:
        raise ApiError.bad_request(f'"{name}" must be larger than or equal to {low}')
    if value > high:
        raise ApiError.bad_request(f'"{name}" must be less than or equal to {high}')
    return value


def _list_param(params: dict[str, str], name: str) -> list[str]:
    raw = params.get(name, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def _platform_ref(coin: Coin) -> dict[str, Any] | None:
    if not coin.contracts:
        return None
    contract = coin.contracts[0]
    platform = PLATFORMS[contract.platform]["coin"]
    return {
        "id": platform["id"],
        "name": platform["name"],
        "symbol": platform["symbol"],
        "slug": platform["slug"],
        "token_address": contract.address,
    }


# ---------------------------------------------------------------------------------------
# listings/latest
# ---------------------------------------------------------------------------------------


def _rates(catalogue: Catalogue, converts: list[str]) -> dict[str, float]:
    rates: dict[str, float] = {}
    for name in converts:
        upper = name.upper()
        if upper in FIAT_RATES:
            rates[upper] = FIAT_RATES[upper]
            continue
        coins = [c for c in catalogue.by_symbol.get(upper, []) if c.rank is not None]
        if not coins:
            raise ApiError.bad_request(f'Invalid value for "convert": "{name}"')
        rates[upper] = min(coins, key=lambda c: c.rank or 0).price
    return rates


def quote(coin: Coin, rate: float) -> dict[str, Any]:
    tracked = coin.tracked
    change = coin.percent_change_24h
    volume = coin.volume_24h if tracked else 0
    market_cap = coin.market_cap
    return {
        "price": coin.price / rate,
        "volume_24h": volume / rate,
        "volume_change_24h": coin.volume_change_24h if tracked else 0,
        "percent_change_1h": round(change / 11.3, 8),
        "percent_change_24h": change,
        "percent_change_7d": round(change * 1.7 - 2.1, 8),
        "percent_change_30d": round(change * 2.9 + 4.4, 8),
        "percent_change_60d": round(change * 3.3 - 7.5, 8),
        "percent_change_90d": round(change * 4.1 + 9.2, 8),
        "market_cap": market_cap / rate,
        "market_cap_dominance": round(market_cap / 3.845e12 * 100, 4),
        "fully_diluted_market_cap": coin.fully_diluted_market_cap / rate,
        "tvl": None,
        "last_updated": LAST_UPDATED,
    }


def listing_item(coin: Coin, rates: dict[str, float]) -> dict[str, Any]:
    return {
        "id": coin.id,
        "name": coin.name,
        "symbol": coin.symbol,
        "slug": coin.slug,
        "num_market_pairs": coin.num_market_pairs,
        "date_added": coin.date_added,
        "tags": list(coin.tags),
        "max_supply": coin.max_supply,
        "circulating_supply": coin.circulating_supply if coin.tracked else 0,
        "total_supply": coin.total_supply,
        "infinite_supply": coin.max_supply_mode == "null",
        "platform": _platform_ref(coin),
        "cmc_rank": coin.rank,
        "self_reported_circulating_supply": None,
        "self_reported_market_cap": None,
        "tvl_ratio": None,
        "last_updated": LAST_UPDATED,
        "quote": {name: quote(coin, rate) for name, rate in rates.items()},
    }


def listings_latest(catalogue: Catalogue, params: dict[str, str]) -> dict[str, Any]:
    start = _int_param(params, "start", 1, 1, 10**9)
    limit = _int_param(params, "limit", 100, 1, MAX_LIMIT)
    converts = _list_param(params, "convert") or ["USD"]
    if len(converts) > 120:
        raise ApiError.bad_request('"convert" must contain less than or equal to 120 items')
    rates = _rates(catalogue, converts)
    sort_dir = params.get("sort_dir", "desc")
    ranked = catalogue.ranked if sort_dir != "asc" else catalogue.ranked[::-1]
    page = ranked[start - 1 : start - 1 + limit]
    data = [listing_item(coin, rates) for coin in page]
    credits = max(1, math.ceil(len(data) / 200)) * len(rates)
    return {
        "status": status_block(credit_count=credits, total_count=len(catalogue.ranked)),
        "data": data,
    }


# ---------------------------------------------------------------------------------------
# map
# ---------------------------------------------------------------------------------------


def map_item(coin: Coin) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": coin.id,
        "rank": coin.rank,
        "name": coin.name,
        "symbol": coin.symbol,
        "slug": coin.slug,
        "is_active": 1 if coin.is_active else 0,
    }
    if coin.is_active:
        item["first_historical_data"] = coin.date_added
        item["last_historical_data"] = LAST_UPDATED
    item["platform"] = _platform_ref(coin)
    return item


def _map_order(coin: Coin) -> tuple[int, int, int]:
    return (0 if coin.rank is not None else 1, coin.rank or 0, coin.id)


def cryptocurrency_map(catalogue: Catalogue, params: dict[str, str]) -> dict[str, Any]:
    """Symbols and slugs to ids. A symbol filter returns every coin with that symbol
    (active first by rank, then inactive/untracked ones with `rank` null), as the
    real endpoint does; unknown symbols are simply absent."""
    symbols = [s.upper() for s in _list_param(params, "symbol")]
    slugs = [s.lower() for s in _list_param(params, "slug")]
    if symbols or slugs:
        seen: set[int] = set()
        found: list[Coin] = []
        for symbol in symbols:
            for coin in sorted(catalogue.by_symbol.get(symbol, []), key=_map_order):
                if coin.id not in seen:
                    seen.add(coin.id)
                    found.append(coin)
        for slug in slugs:
            coin = catalogue.by_slug.get(slug)
            if coin is not None and coin.id not in seen:
                seen.add(coin.id)
                found.append(coin)
        return {"status": status_block(credit_count=1), "data": [map_item(c) for c in found]}
    statuses = set(_list_param(params, "listing_status") or ["active"])
    unknown = statuses - {"active", "inactive", "untracked"}
    if unknown:
        raise ApiError.bad_request(f'Invalid value for "listing_status": "{sorted(unknown)[0]}"')
    start = _int_param(params, "start", 1, 1, 10**9)
    limit = _int_param(params, "limit", 10**9, 1, 10**9)
    sort = params.get("sort", "id")
    coins = [c for c in catalogue.coins if c.status in statuses]
    coins.sort(key=_map_order if sort == "cmc_rank" else (lambda c: c.id))
    page = coins[start - 1 : start - 1 + limit]
    return {"status": status_block(credit_count=1), "data": [map_item(c) for c in page]}


# ---------------------------------------------------------------------------------------
# info (v2)
# ---------------------------------------------------------------------------------------


def info_item(coin: Coin, logo_url: str) -> dict[str, Any]:
    platform = _platform_ref(coin)
    if platform is not None:
        platform = dict(platform, id=str(platform["id"]))
    return {
        "id": coin.id,
        "name": coin.name,
        "symbol": coin.symbol,
        "category": coin.category,
        "description": (
            f"{coin.name} ({coin.symbol}) is a cryptocurrency. The last known price of "
            f"{coin.name} is {coin.price} USD."
        ),
        "slug": coin.slug,
        "logo": logo_url.format(id=coin.id),
        "subreddit": "",
        "notice": "",
        "tags": list(coin.tags),
        "tag-names": [t.replace("-", " ").title() for t in coin.tags],
        "tag-groups": ["INDUSTRY" for _ in coin.tags],
        "urls": {
            key: coin.full_urls()[key]
            for key in (
                "website",
                "twitter",
                "message_board",
                "chat",
                "facebook",
                "explorer",
                "reddit",
                "technical_doc",
                "source_code",
                "announcement",
            )
        },
        "platform": platform,
        "date_added": coin.date_added,
        "twitter_username": "",
        "is_hidden": 0,
        "date_launched": None,
        "contract_address": [
            {
                "contract_address": contract.address,
                "platform": {
                    "name": PLATFORMS[contract.platform]["name"],
                    "coin": {
                        key: str(value) if key == "id" else value
                        for key, value in PLATFORMS[contract.platform]["coin"].items()
                    },
                },
            }
            for contract in coin.contracts
        ],
        "self_reported_circulating_supply": None,
        "self_reported_tags": None,
        "self_reported_market_cap": None,
        "infinite_supply": coin.max_supply_mode == "null",
    }


def cryptocurrency_info(
    catalogue: Catalogue,
    params: dict[str, str],
    logo_url: str,
    hidden: frozenset[int] | set[int] = frozenset(),
) -> dict[str, Any]:
    """`data` keyed by id (string) for `id`/`slug`, by symbol (lists) for `symbol`.

    `hidden` ids are unknown here although listings show them (a coin delisted between
    two calls), so a test can put an invalid id into a spider's info batch."""
    skip_invalid = params.get("skip_invalid", "false").lower() == "true"
    ids, slugs = _list_param(params, "id"), _list_param(params, "slug")
    symbols = _list_param(params, "symbol")
    given = [name for name, values in (("id", ids), ("slug", slugs), ("symbol", symbols)) if values]
    if not given:
        raise ApiError.bad_request('"value" must contain at least one of [id, slug, symbol]')
    if len(given) > 1:
        raise ApiError.bad_request(f'"{given[0]}" conflict with forbidden peer "{given[1]}"')
    values = ids or slugs or symbols
    if len(values) > MAX_INFO_IDS:
        raise ApiError.bad_request(
            f'"{given[0]}" must contain less than or equal to {MAX_INFO_IDS} items'
        )
    data: dict[str, Any] = {}
    invalid: list[str] = []
    if symbols:
        for symbol in symbols:
            coins = sorted(catalogue.by_symbol.get(symbol.upper(), []), key=_map_order)
            coins = [c for c in coins if c.id not in hidden]
            if coins:
                data[symbol.upper()] = [info_item(c, logo_url) for c in coins]
            else:
                invalid.append(symbol)
    else:
        for value in values:
            coin: Coin | None
            if ids:
                coin = catalogue.by_id.get(int(value)) if value.isdigit() else None
            else:
                coin = catalogue.by_slug.get(value.lower())
            if coin is None or coin.id in hidden:
                invalid.append(value)
            else:
                data[str(coin.id)] = info_item(coin, logo_url)
    if invalid and not skip_invalid:
        names = ",".join(invalid)
        plural = "values" if len(invalid) > 1 else "value"
        raise ApiError.bad_request(f'Invalid {plural} for "{given[0]}": "{names}"')
    credits = max(1, math.ceil(len(data) / 100))
    return {"status": status_block(credit_count=credits), "data": data}
