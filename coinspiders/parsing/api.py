"""CoinMarketCap Pro API payloads to plain item dicts, and the verdict on each response.

Kept free of Scrapy and of the network so every recorded API response can be checked
directly, and so the spider and its rate-limit middleware judge a response the same way.
Links are sorted by `parsing.links`, shared with the page parser, so both spiders name
them alike. The API reports errors in the body's `status` block, sometimes on HTTP 200,
so the verdict reads `error_code` first and falls back to the HTTP status without one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from coinspiders.parsing.fields import coin_dict
from coinspiders.parsing.links import official_links, socials
from coinspiders.parsing.numbers import as_int, as_number, known

T = TypeVar("T")

# The kinds of verdict a response gets.
OK = "ok"
# Per-minute limit (HTTP 429, error_code 1008): wait, then ask again.
RETRY = "retry"
# The key or the plan cannot serve this crawl at all: stop the whole job.
FATAL = "fatal"
# This one request failed (bad parameter, server error, not an API body): report it.
FAILED = "failed"

RATE_LIMIT_CODE = 1008
# 1001/1002 key invalid/missing, 1003/1004 plan, 1005-1007 key forbidden,
# 1009/1010 daily/monthly credits used up, 1011 IP rate limit.
FATAL_CODES: frozenset[int] = frozenset(
    {1001, 1002, 1003, 1004, 1005, 1006, 1007, 1009, 1010, 1011}
)
# HTTP statuses that mean the key itself is refused, even when a proxy ate the body.
_FATAL_HTTP = frozenset({401, 402, 403})

# The API answers at most this many coins per listings call and ids per info call.
LISTINGS_MAX_LIMIT = 5000
INFO_MAX_IDS = 100

# A Retry-After longer than this is taken as this: a crawl never sleeps for hours.
MAX_RETRY_AFTER = 900.0


@dataclass(frozen=True)
class ApiVerdict:
    """What one Pro API response means for the crawl."""

    kind: str
    # error_code from the status block; the HTTP status when the body had none.
    code: int | None
    message: str
    # Credits this call cost (the status block's credit_count; 0 when absent).
    credit_count: int
    # Seconds to wait before asking again; set only when kind is RETRY.
    delay: float | None = None


def load_payload(body: bytes | str) -> dict[str, Any] | None:
    """The JSON object of a response body, or None when it is not one."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def retry_after_seconds(value: str | bytes | None, now: datetime | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now, capped.

    Real 1008 responses carry none; a proxy in front of the API may add one.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def classify_response(
    http_status: int,
    payload: Mapping[str, Any] | None,
    retry_after: str | bytes | None = None,
    default_delay: float = 60.0,
) -> ApiVerdict:
    """Judge one Pro API response by its status block first, its HTTP status second."""
    status = payload.get("status") if payload is not None else None
    if not isinstance(status, Mapping):
        status = {}
    code = as_int(status.get("error_code"))
    message = str(status.get("error_message") or "").strip()
    credits = as_int(status.get("credit_count")) or 0

    if code == RATE_LIMIT_CODE or (http_status == 429 and code in (None, 0)):
        delay = retry_after_seconds(retry_after)
        return ApiVerdict(
            RETRY,
            RATE_LIMIT_CODE,
            message or "per-minute rate limit reached",
            credits,
            default_delay if delay is None else delay,
        )
    if code in FATAL_CODES:
        return ApiVerdict(FATAL, code, message or f"API error {code}", credits)
    if code:
        kind = FATAL if http_status in _FATAL_HTTP else FAILED
        return ApiVerdict(kind, code, message or f"API error {code}", credits)
    if http_status in _FATAL_HTTP:
        return ApiVerdict(FATAL, http_status, message or f"HTTP {http_status}", credits)
    if http_status >= 300:
        return ApiVerdict(FAILED, http_status, message or f"HTTP {http_status}", credits)
    if payload is None or "data" not in payload:
        return ApiVerdict(FAILED, http_status, "response is not a Pro API JSON body", credits)
    return ApiVerdict(OK, 0, "", credits)


def listing_entries(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The coins of a listings/latest body that carry a usable numeric id."""
    data = payload.get("data")
    if not isinstance(data, list):
        return []
    return [
        entry for entry in data if isinstance(entry, dict) and as_int(entry.get("id")) is not None
    ]


def info_entries(payload: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The info body's entries by coin id (v2 keys them by id as a string)."""
    data = payload.get("data")
    entries: dict[int, dict[str, Any]] = {}
    if isinstance(data, Mapping):
        values: Iterable[Any] = data.values()
    elif isinstance(data, list):
        values = data
    else:
        return entries
    for value in values:
        # Asked by symbol, v2 gives a list per key; asked by id, one object.
        candidates = value if isinstance(value, list) else [value]
        for entry in candidates:
            if isinstance(entry, dict):
                coin_id = as_int(entry.get("id"))
                if coin_id is not None:
                    entries.setdefault(coin_id, entry)
    return entries


def chunked(things: Iterable[T], size: int = INFO_MAX_IDS) -> Iterator[list[T]]:
    """Consecutive batches of at most `size` (info takes at most 100 ids a call)."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list[T] = []
    for thing in things:
        batch.append(thing)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _quote(entry: Mapping[str, Any], convert: str) -> Mapping[str, Any]:
    quotes = entry.get("quote")
    if not isinstance(quotes, Mapping):
        return {}
    quote = quotes.get(convert)
    if quote is None:
        wanted = convert.upper()
        quote = next((q for k, q in quotes.items() if str(k).upper() == wanted), None)
    return quote if isinstance(quote, Mapping) else {}


def _contracts(entry: Mapping[str, Any], info: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """`[{name, address}]`: info's contract_address list, else the listing's platform."""
    found: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(name: Any, address: Any) -> None:
        if not isinstance(address, str) or not address.strip():
            return
        pair = (str(name or "").strip(), address.strip())
        if pair not in seen:
            seen.add(pair)
            found.append({"name": pair[0], "address": pair[1]})

    if info is not None:
        for contract in info.get("contract_address") or []:
            if isinstance(contract, Mapping):
                platform = contract.get("platform")
                name = platform.get("name") if isinstance(platform, Mapping) else None
                add(name, contract.get("contract_address"))
    if not found:
        for source in (info, entry):
            platform = source.get("platform") if source is not None else None
            if isinstance(platform, Mapping):
                add(platform.get("name"), platform.get("token_address"))
                if found:
                    break
    return found


def coin_from_api(
    entry: Mapping[str, Any],
    info: Mapping[str, Any] | None,
    convert: str,
    logo_url_template: str,
    scraped_at: str,
) -> dict[str, Any]:
    """One listings entry (plus its info entry, when the API had one) as CoinItem fields."""
    coin_id = as_int(entry.get("id"))
    if coin_id is None:
        raise ValueError("listing entry has no numeric id")
    quote = _quote(entry, convert)
    urls = info.get("urls") if info is not None else None
    logo = info.get("logo") if info is not None else None
    if not isinstance(logo, str) or not logo.strip():
        logo = logo_url_template.format(id=coin_id)
    return coin_dict(
        id=coin_id,
        name=entry.get("name"),
        symbol=entry.get("symbol"),
        slug=entry.get("slug"),
        currency=convert.upper(),
        price=as_number(quote.get("price")),
        price_change=as_number(quote.get("percent_change_24h")),
        market_cap=known(as_number(quote.get("market_cap"))),
        market_cap_rank=as_int(entry.get("cmc_rank")),
        volume=known(as_number(quote.get("volume_24h"))),
        volume_change=as_number(quote.get("volume_change_24h")),
        circulating_supply=known(as_number(entry.get("circulating_supply"))),
        total_supply=as_number(entry.get("total_supply")),
        max_supply=as_number(entry.get("max_supply")),
        diluted_market_cap=known(as_number(quote.get("fully_diluted_market_cap"))),
        contracts=_contracts(entry, info),
        official_links=official_links(urls),
        socials=socials(urls),
        logo=logo.strip(),
        logo_path=None,
        last_updated=entry.get("last_updated") or quote.get("last_updated"),
        scraped_at=scraped_at,
        source="api",
    )


def rank_key(record: Mapping[str, Any]) -> tuple[int, int, int]:
    """Sort key for data.json: by market cap rank, unranked after, then by id."""
    rank = record.get("market_cap_rank")
    coin_id = record.get("id")
    return (
        0 if isinstance(rank, int) else 1,
        rank if isinstance(rank, int) else 0,
        coin_id if isinstance(coin_id, int) else 0,
    )


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` masked (an API may echo what it was sent)."""
    if not secret:
        return text
    return text.replace(secret, "***")
