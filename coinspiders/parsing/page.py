"""A CoinMarketCap coin page (`/currencies/<slug>/`) as a plain dict of coin figures.

The page carries everything in `<script id="__NEXT_DATA__">`; finding that script by
string search and loading its JSON costs about 1 ms, a full HTML parse about 15 ms, so
the HTML (the 2025 `data-test` hooks, then the 2018 layout) is read only when the JSON
is missing or has changed shape. A page with no coin at all (a Cloudflare challenge, a
block page) is a block, which the spider retries; a page that says the coin does not
exist is not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from coinspiders.parsing.fields import coin_dict
from coinspiders.parsing.links import normalize_url, official_links, social_name, socials
from coinspiders.parsing.numbers import as_int, as_number, known, parse_int, parse_number

# What a page turned out to be.
COIN = "coin"
NOT_FOUND = "not_found"
BLOCKED = "blocked"
UNREADABLE = "unreadable"

# How the figures were read.
VIA_NEXT_DATA = "next_data"
VIA_HTML = "html"
VIA_LEGACY = "legacy"

_NEXT_DATA_RE = re.compile(r"""<script\b[^>]*\bid\s*=\s*["']?__NEXT_DATA__["']?[^>]*>""", re.I)
_SCRIPT_END = "</script>"
_NOT_FOUND_PAGES = {"/404", "/_error", "/404/"}
_BLOCK_MARKERS = (
    ("attention required! | cloudflare", "Cloudflare block page"),
    ("cf-browser-verification", "Cloudflare browser check"),
    ("cf-challenge", "Cloudflare challenge"),
    ("challenge-platform", "Cloudflare challenge"),
    ("cf-error-details", "Cloudflare error page"),
    ("just a moment...", "Cloudflare challenge"),
    ("access denied", "access denied page"),
    ("too many requests", "rate limit page"),
)
NO_COIN_DATA = "no coin data in the page"
_LOGO_ID_RE = re.compile(r"/coins/\d+x\d+/(\d+)\.png")
_SLUG_RE = re.compile(r"/currencies/([^/?#]+)/?")


@dataclass(frozen=True)
class PageResult:
    """What a fetched page was, and the coin when it was one."""

    status: str
    coin: dict[str, Any] | None = None
    method: str = ""
    reason: str = ""


def find_next_data(text: str) -> str | None:
    """The text inside `<script id="__NEXT_DATA__" …>`, found without parsing the HTML."""
    # The id sits in the first few bytes of the tag; a plain find narrows the regex's work.
    start = text.find("__NEXT_DATA__")
    while start != -1:
        tag_start = text.rfind("<script", 0, start)
        if tag_start != -1:
            match = _NEXT_DATA_RE.match(text, tag_start)
            if match and match.end() > start:
                end = text.find(_SCRIPT_END, match.end())
                return text[match.end() : end] if end != -1 else None
        start = text.find("__NEXT_DATA__", start + 1)
    return None


def load_next_data(text: str) -> dict[str, Any] | None:
    """The page's Next.js data as a dict; None when the script is missing or not JSON."""
    raw = find_next_data(text)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _rank(value: Any) -> int | None:
    rank = as_int(value)
    return rank if rank and rank > 0 else None


def next_data_is_not_found(data: dict[str, Any]) -> bool:
    """Next.js renders its error page for a coin that does not exist.

    A page of another route (the site sent us to its home page) has no coin either.
    """
    route = data.get("page")
    if route in _NOT_FOUND_PAGES:
        return True
    if isinstance(route, str) and route and not route.startswith("/currencies/"):
        return True
    props = _dig(data, "props", "pageProps")
    return isinstance(props, dict) and props.get("statusCode") == 404


def coin_from_next_data(data: dict[str, Any]) -> dict[str, Any] | None:
    """The coin of `props.pageProps.detailRes.detail`; None when that shape is not there."""
    detail = _dig(data, "props", "pageProps", "detailRes", "detail")
    if not isinstance(detail, dict):
        return None
    coin_id = as_int(detail.get("id"))
    name, symbol, slug = (_str(detail.get(k)) for k in ("name", "symbol", "slug"))
    if coin_id is None or not (name and symbol and slug):
        return None
    stats = detail.get("statistics")
    if not isinstance(stats, dict):
        return None
    volume = known(as_number(detail.get("volume")))
    max_supply = known(as_number(stats.get("maxSupply")))
    if detail.get("isInfiniteMaxSupply") in (1, True):
        max_supply = None
    platforms = detail.get("platforms")
    contracts = [
        {"name": _str(p.get("contractPlatform")), "address": _str(p.get("contractAddress"))}
        for p in (platforms if isinstance(platforms, list) else [])
        if isinstance(p, dict) and _str(p.get("contractAddress"))
    ]
    urls = detail.get("urls")
    return coin_dict(
        id=coin_id,
        name=name,
        symbol=symbol,
        slug=slug,
        price=as_number(stats.get("price")),
        price_change=as_number(stats.get("priceChangePercentage24h")),
        market_cap=known(as_number(stats.get("marketCap"))),
        market_cap_rank=_rank(stats.get("rank")),
        volume=volume,
        volume_rank=_rank(stats.get("volumeRank")),
        # A change of an unknown volume is unknown too.
        volume_change=(
            as_number(detail.get("volumeChangePercentage24h")) if volume is not None else None
        ),
        circulating_supply=known(as_number(stats.get("circulatingSupply"))),
        total_supply=known(as_number(stats.get("totalSupply"))),
        max_supply=max_supply,
        diluted_market_cap=known(as_number(stats.get("fullyDilutedMarketCap"))),
        contracts=contracts,
        official_links=official_links(urls),
        socials=socials(urls),
        last_updated=_str(detail.get("latestUpdateTime")) or _str(stats.get("lastUpdated")),
    )


def _text(node: Any) -> str:
    """All text under a parsel node, whitespace collapsed."""
    return " ".join(t.strip() for t in node.css("::text").getall() if t.strip())


def _signed_percent(node: Any) -> float | None:
    """A `percentage-value` block: the number, negative when CMC marks it `down`."""
    if node is None:
        return None
    value = parse_number(_text(node))
    if value is None:
        return None
    direction = node.xpath("string(.//@data-change)").get() or ""
    return -abs(value) if direction == "down" else value


def _slug_from(selector: Any) -> str | None:
    for href in (
        selector.css('link[rel="canonical"]::attr(href)').get(),
        selector.css('meta[property="og:url"]::attr(content)').get(),
    ):
        match = _SLUG_RE.search(href or "")
        if match:
            return match.group(1)
    return None


def _texts(node: Any) -> list[str]:
    return [t.strip() for t in node.css("::text").getall() if t.strip()]


def _metrics(selector: Any) -> dict[str, Any]:
    """Label (lower case) -> its `group-item` node in the 2025 statistics block.

    A group's first text is its label, the next its value (`dt`/`dd` in some groups,
    plain `div`s in others, so only the order of the texts is relied on).
    """
    groups: dict[str, Any] = {}
    for group in selector.css('[data-test="section-coin-metrics"] [data-role="group-item"]'):
        texts = _texts(group)
        label = texts[0].lower() if texts else ""
        if label and label not in groups:
            groups[label] = group
    return groups


def _metric_value(group: Any) -> float | None:
    if group is None:
        return None
    texts = _texts(group)
    return parse_number(texts[1]) if len(texts) > 1 else None


def _metric(groups: dict[str, Any], *labels: str) -> Any:
    for label in labels:
        if label in groups:
            return groups[label]
    return None


def _official_name(link: str, label: str) -> str:
    """website / whitepaper / source_code for a chip of the 2025 `Website` row."""
    if "paper" in label.lower() or "doc" in label.lower():
        return "whitepaper"
    if social_name(link, "") in ("github", "gitlab"):
        return "source_code"
    return "website"


def html_selector(text: str) -> Any:
    """A parsel Selector over the page: the slow full parse, for the fallbacks only."""
    from parsel import Selector  # imported here so the fast path never loads lxml

    return Selector(text=text)


def coin_from_html(page: str | Any) -> dict[str, Any] | None:
    """The coin from the 2025 page's `data-test`/`data-role` hooks; None without them.

    `page` is the page's text or an `html_selector` of it (to parse only once).
    """
    sel = html_selector(page) if isinstance(page, str) else page
    price_node = sel.css('[data-test="text-cdp-price-display"]')
    name_node = sel.css('[data-role="coin-name"]')
    if not price_node or not name_node:
        return None
    name = _str(name_node.attrib.get("title")) or _str(name_node.xpath("text()").get())
    symbol = _str(sel.css('[data-role="coin-symbol"]::text').get())
    coin_id = parse_int(
        _text(sel.css('[data-test="section-coin-stats-ucid"] [data-role="chip-content"]'))
    )
    if coin_id is None:
        match = _LOGO_ID_RE.search(sel.css('[data-role="coin-logo"] img::attr(src)').get() or "")
        coin_id = int(match.group(1)) if match else None
    price_change = _signed_percent(
        price_node.xpath('following::*[@data-role="percentage-value"][1]')[:1] or None
    )
    rank_text = sel.xpath(
        '//*[@data-role="coin-symbol"]/following::span[starts-with(normalize-space(.), "#")][1]'
    ).get()
    groups = _metrics(sel)
    market_cap_group = _metric(groups, "market cap")
    market_cap = _metric_value(market_cap_group)
    circulating = known(_metric_value(_metric(groups, "circulating supply")))
    # Without a verified circulating supply CMC shows the project's self-reported market
    # cap, flagged as unverified: that is not CMC's figure.
    if (
        circulating is None
        and market_cap_group is not None
        and market_cap_group.css('[data-test="icon-unverified-market-cap-explainer"]')
    ):
        market_cap = None
    volume_group = _metric(groups, "volume (24h)", "volume 24h", "volume")
    volume = known(_metric_value(volume_group))
    volume_change = None
    if volume is not None and volume_group is not None:
        volume_change = _signed_percent(
            volume_group.css('[data-role="percentage-value"]')[:1] or None
        )
    contracts: list[dict[str, Any]] | None = []
    contract_section = sel.css('[data-test="section-coin-stats-contracts"]')
    if contract_section:
        # The chips show shortened addresses (0x7c5a...daf098): not an address to report.
        contracts = None
    official: list[dict[str, str]] = []
    social: list[dict[str, str]] = []
    for anchor in sel.css('[data-test="section-coin-stats-website"] a[href]'):
        link = normalize_url(anchor.attrib["href"])
        if link:
            official.append({"name": _official_name(link, _text(anchor)), "link": link})
    for anchor in sel.css('[data-test="section-coin-stats-socials"] a[href]'):
        url = normalize_url(anchor.attrib["href"])
        if not url:
            continue
        kind = social_name(url, "social")
        if kind in ("github", "gitlab"):
            official.append({"name": "source_code", "link": url})
        else:
            social.append({"name": kind, "url": url})
    return coin_dict(
        id=coin_id,
        name=name,
        symbol=symbol,
        slug=_slug_from(sel),
        price=parse_number(_text(price_node)),
        price_change=price_change,
        market_cap=known(market_cap),
        market_cap_rank=parse_int(rank_text and re.sub(r"<[^>]+>", " ", rank_text)),
        volume=volume,
        volume_change=volume_change,
        circulating_supply=circulating,
        total_supply=known(_metric_value(_metric(groups, "total supply"))),
        max_supply=known(_metric_value(_metric(groups, "max. supply", "max supply"))),
        diluted_market_cap=known(_metric_value(_metric(groups, "fdv", "fully diluted market cap"))),
        contracts=contracts,
        official_links=official,
        socials=social,
    )


def coin_from_legacy_html(page: str | Any) -> dict[str, Any] | None:
    """The coin from the pre-Next.js layout (2018): `details-panel`, `data-usd` figures."""
    sel = html_selector(page) if isinstance(page, str) else page
    header = sel.css("h1.details-panel-item--name")
    price = parse_number(sel.css("#quote_price::attr(data-usd)").get())
    if not header or price is None:
        return None
    name = _str(" ".join(t.strip() for t in header.xpath("text()").getall() if t.strip()))
    name = name or _str(header.css("img::attr(alt)").get())
    symbol = _str((header.css("span::text").get() or "").strip().strip("()"))
    watch = sel.css("[data-watchlist-id]")
    coin_id = parse_int(watch.attrib.get("data-watchlist-id")) if watch else None
    if coin_id is None:
        match = _LOGO_ID_RE.search(header.css("img::attr(src)").get() or "")
        coin_id = int(match.group(1)) if match else None
    slug = _str(watch.attrib.get("data-watchlist-slug")) if watch else None
    supplies: dict[str, float | None] = {}
    for item in sel.css(".details-panel-item--marketcap-stats .coin-summary-item"):
        label = _text(item.css(".coin-summary-item-header")).lower()
        supplies[label] = parse_number(
            item.css("[data-format-supply]::attr(data-format-value)").get()
        )
    buckets = {
        "website": "website",
        "technical documentation": "technical_doc",
        "source code": "source_code",
        "chat": "chat",
        "message board": "message_board",
        "announcement": "announcement",
        "twitter": "twitter",
        "reddit": "reddit",
        "facebook": "facebook",
    }
    urls: dict[str, list[str]] = {}
    rank_text = None
    for li in sel.css("ul.details-panel-item--links li"):
        title = (li.css("span[title]::attr(title)").get() or "").lower()
        if title == "rank":
            rank_text = _text(li)
        bucket = buckets.get(title)
        href = li.css("a::attr(href)").get()
        if bucket and href:
            urls.setdefault(bucket, []).append(href)
    change = sel.xpath(
        '//*[@id="quote_price"]/following-sibling::*[1]//*[@data-format-percentage]/@data-format-value'
    ).get()
    return coin_dict(
        id=coin_id,
        name=name,
        symbol=symbol,
        slug=slug or _slug_from(sel),
        price=price,
        price_change=parse_number(change),
        market_cap=known(parse_number(sel.css("[data-currency-market-cap]::attr(data-usd)").get())),
        market_cap_rank=parse_int(rank_text),
        volume=known(parse_number(sel.css("[data-currency-volume]::attr(data-usd)").get())),
        circulating_supply=known(supplies.get("circulating supply")),
        total_supply=known(supplies.get("total supply")),
        max_supply=known(supplies.get("max supply")),
        # The 2018 layout shows no contracts: unknown, not "none".
        contracts=None,
        official_links=official_links(urls),
        socials=socials(urls),
    )


def block_reason(text: str) -> str:
    """Why a page without coin data is a block (for logs and the coin's error)."""
    head = text[:20000].lower()
    for marker, reason in _BLOCK_MARKERS:
        if marker in head:
            return reason
    return NO_COIN_DATA


def parse_coin_page(text: str) -> PageResult:
    """Classify a 200 page and read its coin: JSON first, the HTML layouts as fallback."""
    data = load_next_data(text)
    if data is not None:
        if next_data_is_not_found(data):
            return PageResult(NOT_FOUND, reason="the site has no such coin")
        coin = coin_from_next_data(data)
        if coin is not None:
            return PageResult(COIN, coin, VIA_NEXT_DATA)
    sel = html_selector(text)
    for method, reader in ((VIA_HTML, coin_from_html), (VIA_LEGACY, coin_from_legacy_html)):
        coin = reader(sel)
        if coin is not None and coin.get("id") is not None and coin.get("price") is not None:
            return PageResult(COIN, coin, method)
    if data is not None:
        # A Next.js page without a coin we can read: the layout changed, retrying won't help.
        return PageResult(UNREADABLE, reason="page data has no coin in a known shape")
    return PageResult(BLOCKED, reason=block_reason(text))
