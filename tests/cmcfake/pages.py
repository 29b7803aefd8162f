"""Coin detail pages rendered from the recorded 2025 santiment page.

The recorded page is cut once into literal byte chunks and named slots; a coin's page is
those chunks joined with the coin's values, so a page costs a few hundred microseconds
and keeps the real page's structure (head, data-test hooks, `__NEXT_DATA__` script).
Inside `__NEXT_DATA__` only `props.pageProps.detailRes.detail` and the query slug change;
the detail object is re-serialized the way the site does (JSON.stringify number
formatting, `<`, `>`, `&` escaped as `\\u003c`…).
"""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from .coins import LAST_UPDATED, PLATFORMS, Coin

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RECORDED_PAGE = FIXTURES / "page-santiment-2025-08-20.html"

_MARK = "\x00"
_CUT = "\x01"  # joins two parts of the page while the replacements run over both
PAGE_VARIANTS = ("full", "no_next_data", "changed_next_data", "moved_market_cap")
# Where the coin goes in a `changed_next_data` page instead of `detailRes.detail`.
CHANGED_DETAIL_KEY = '"coinDetail":'
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


# ---------------------------------------------------------------------------------------
# Number formats of the site
# ---------------------------------------------------------------------------------------


def js_number(token: str) -> str:
    """A JSON number as JavaScript's JSON.stringify writes it (no `.0`, no `1e-05`)."""
    if "." not in token and "e" not in token and "E" not in token:
        return token
    value = float(token)
    if value == 0:
        return "0"
    if 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(repr(value)), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    mantissa, exponent = repr(value).split("e")
    mantissa = mantissa[:-2] if mantissa.endswith(".0") else mantissa
    exp = int(exponent)
    return f"{mantissa}e{'+' if exp > 0 else '-'}{abs(exp)}"


_NUMBER = re.compile(r"(?<=[:\[,])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?=[,\]}])")


def next_data_json(value: Any) -> str:
    """Serialize like Next.js does into a `<script>`: compact, JS numbers, HTML-safe."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    text = _NUMBER.sub(lambda m: js_number(m.group(0)), text)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def format_price(value: float | None) -> str:
    """`$113,542.92`, `$0.1500`, `$0.003913`, `$0.0₄3913` (subscript zeros)."""
    if value is None:
        return "--"
    if value >= 1:
        return f"${value:,.2f}"
    if value == 0:
        return "$0.00"
    text = format(Decimal(repr(value)), "f")
    decimals = text.split(".")[1]
    zeros = len(decimals) - len(decimals.lstrip("0"))
    digits = decimals[zeros:][:4].ljust(4, "0")
    if zeros >= 4:
        return f"$0.0{str(zeros).translate(_SUBSCRIPTS)}{digits.rstrip('0') or '0'}"
    return f"$0.{'0' * zeros}{digits}"


def abbreviate(value: float | None, prefix: str = "", suffix: str = "") -> str:
    """`$9.4M`, `2.94K`, `83.33M SAN`: two decimals at most, trailing zeros dropped."""
    if value is None:
        return "--"
    if value == 0:
        return f"{prefix}0{suffix}"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            number = f"{value / size:.2f}".rstrip("0").rstrip(".")
            return f"{prefix}{number}{unit}{suffix}"
    return f"{prefix}{f'{value:.2f}'.rstrip('0').rstrip('.')}{suffix}"


def format_percent(value: float) -> str:
    return f"{abs(value):.2f}".rstrip("0").rstrip(".") + "%"


# ---------------------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------------------


def _protocol_relative(url: str) -> str:
    """The site writes links as `//host/path`."""
    return html.escape(re.sub(r"^https?:", "", url))


def _short_address(address: str) -> str:
    """`0x7c5a...daf098`: the first 6 and last 6 characters, as the contract chip shows."""
    return address if len(address) <= 15 else f"{address[:6]}...{address[-6:]}"


def _fill(template: str, **values: object) -> str:
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def _slot(name: str) -> str:
    return f"{_MARK}{name}{_MARK}"


# Replacements in the visible HTML, most specific first. Each maps a pattern of the
# recorded page to a named slot filled per coin.
_METRIC_REPLACEMENTS = (
    (r"<span>\$9\.4M</span>", "<span>" + _slot("market_cap_html") + "</span>"),
    (r"<span>\$0</span>", "<span>" + _slot("volume_html") + "</span>"),
    (r"<span>\$12\.5M</span>", "<span>" + _slot("fdv_html") + "</span>"),
    (r"<span>83\.33M SAN</span>", "<span>" + _slot("total_supply_html") + "</span>"),
    (r"<span>83\.33M SAN</span>", "<span>" + _slot("max_supply_html") + "</span>"),
    (r"Self-reported circulating supply", _slot("circulating_label")),
    (r"<span>62\.66M SAN</span>", "<span>" + _slot("circulating_supply_html") + "</span>"),
)
_HTML_REPLACEMENTS = (
    (r"Santiment\s+Network\s+Token", _slot("name_html")),
    (r"/currencies/santiment/", "/currencies/" + _slot("slug") + "/"),
    (r'data-coin-slug="santiment"', 'data-coin-slug="' + _slot("slug") + '"'),
    (r'data-coin-id="1807"', 'data-coin-id="' + _slot("id") + '"'),
    (r"(?<=/)1807(?=\.png)", _slot("id")),
    (r"(?<=\s)1807(?=</div>)", _slot("id")),
    (
        r'data-test="text-cdp-price-display">\$0\.1500<',
        'data-test="text-cdp-price-display">' + _slot("price_html") + "<",
    ),
    (r"\$0\.150035 USD", _slot("price_long_html") + " USD"),
    (r"price today is \$0\.15 USD", "price today is " + _slot("price_html") + " USD"),
    (r">#6708<", ">#" + _slot("rank") + "<"),
    (r"ranking\s+is #6708", "ranking is #" + _slot("rank")),
    (r"</svg>0%&nbsp;\(1d\)</p>", "</svg>" + _slot("change_html") + "&nbsp;(1d)</p>"),
    (r"\bSAN\b", _slot("symbol_html")),
)
_JSON_REPLACEMENTS = (
    (r'"cryptocurrencySlug":"santiment"', '"cryptocurrencySlug":' + _slot("slug_json")),
)


def _apply(text: str, replacements: tuple[tuple[str, str], ...], first_only: bool) -> str:
    """Apply the replacements; one that finds nothing means the recording changed, and
    pages would silently show santiment's figures, so it is an error."""
    for pattern, replacement in replacements:
        text, count = re.subn(
            pattern, lambda _m, r=replacement: r, text, count=1 if first_only else 0
        )
        if not count:
            raise ValueError(f"the recorded page has no {pattern!r} any more")
    return text


def _replace_value(text: str, key: str, replacement: str) -> str:
    """Replace the JSON value of the first `"key":` in a JSON text fragment."""
    at = text.index(f'"{key}":') + len(key) + 3
    _value, end = json.JSONDecoder().raw_decode(text, at)
    return text[:at] + replacement + text[end:]


def _split(text: str) -> list[bytes | str]:
    """Literal chunks as bytes, slot names as str, alternating."""
    pieces = text.split(_MARK)
    return [piece.encode() if i % 2 == 0 else piece for i, piece in enumerate(pieces)]


class PageTemplate:
    """The recorded page, cut once into chunks; `render(coin)` fills them in."""

    def __init__(self, page: str) -> None:
        self.recorded = page.encode()
        start = page.index('<script id="__NEXT_DATA__"')
        json_start = page.index(">", start) + 1
        json_end = page.index("</script>", json_start)
        script_end = json_end + len("</script>")
        self.recorded_without_next_data = (page[:start] + page[script_end:]).encode()
        next_text = page[json_start:json_end]
        detail_key_at = next_text.index('"detail":{')
        detail_start = detail_key_at + len('"detail":')
        changed_at = json_start + detail_key_at
        self.recorded_changed = (
            page[:changed_at] + CHANGED_DETAIL_KEY + page[changed_at + len('"detail":') :]
        ).encode()
        detail, detail_end = json.JSONDecoder().raw_decode(next_text, detail_start)
        self.detail_template: dict[str, Any] = detail
        head, tail = page[:start], page[script_end:]
        head = self._cut_link_sections(head)
        metrics_at = head.index('data-test="section-coin-metrics"')
        head = head[:metrics_at] + _apply(head[metrics_at:], _METRIC_REPLACEMENTS, True)
        head, tail = _apply(head + _CUT + tail, _HTML_REPLACEMENTS, False).split(_CUT)
        self.head, self.tail = _split(head), _split(tail)
        after = _replace_value(next_text[detail_end:], "mainAccount", "null")
        faq = '{"faqDescription":[{"q":"","a":' + _slot("about_json") + ',"isQ":false}]}'
        after = _replace_value(after, "cdpFaqData", faq)
        before, after = _apply(
            next_text[:detail_start] + _CUT + after, _JSON_REPLACEMENTS, False
        ).split(_CUT)
        script = page[start:json_start] + before + _slot("detail_json") + after + "</script>"
        self.script = _split(script)
        self.script_changed = _split(
            script.replace(
                '"detail":' + _slot("detail_json"), CHANGED_DETAIL_KEY + _slot("detail_json"), 1
            )
        )

    def _cut_link_sections(self, head: str) -> str:
        """Turn the website, socials and contracts chips into per-coin slots."""
        at = head.index('data-test="chip-website-link"')
        start = head.rfind("<a", 0, at)
        end = head.index("</a>", at) + len("</a>")
        chip = head[start:end].replace('href="//santiment.net/"', 'href="{href}"')
        self.website_chip = re.sub(r"(>\s*)Website(</div>)", r"\1{label}\2", chip)
        head = head[:start] + _slot("website_chips") + head[end:]

        first = head.index('data-test="chip-social-link"')
        start = head.rfind("<div", 0, head.rfind("BasePopover_base__", 0, first))
        end = start
        for _ in range(3):
            at = head.index('data-test="chip-social-link"', end)
            end = head.index("</div>", head.index("</a>", at)) + len("</div>")
        chip = head[start : head.index("</div>", head.index("</a>", first)) + len("</div>")]
        self.social_chip = re.sub(r'href="//[^"]*"', 'href="{href}"', chip, count=1)
        head = head[:start] + _slot("social_chips") + head[end:]

        section_at = head.index('data-test="section-coin-stats-contracts"')
        section_start = head.rfind("<div", 0, section_at)
        section_end = head.rfind("<div", 0, head.index('data-test="section-coin-stats-ratings"'))
        section = head[section_start:section_end]
        address_at = section.index("0x7c5a...daf098")
        chip_start = section.rfind("<div", 0, section.rfind("BaseChip_base__lzmlq", 0, address_at))
        wallet_at = section.index('data-test="chip-add-trust-wallet"')
        chip_end = section.rfind("<div", 0, section.rfind("BasePopover_base__", 0, wallet_at))
        chip = section[chip_start:chip_end]
        chip = chip.replace("0x7c5a...daf098", "{address}").replace(
            "64x64/1027.png", "64x64/{platform}.png"
        )
        self.contract_chip = chip
        self.contracts_section = section[:chip_start] + "{chips}" + section[chip_end:]
        return head[:section_start] + _slot("contracts_section") + head[section_end:]

    def link_values(self, coin: Coin) -> dict[str, str]:
        urls = coin.full_urls()
        websites = [(url, "Website") for url in urls["website"]]
        websites += [(url, "Whitepaper") for url in urls["technical_doc"]]
        website_chips = "".join(
            _fill(self.website_chip, href=_protocol_relative(url), label=label)
            for url, label in websites
        )
        socials = urls["twitter"] + urls["source_code"] + urls["chat"] + urls["reddit"]
        socials += urls["facebook"]
        social_chips = "".join(
            _fill(self.social_chip, href=_protocol_relative(url)) for url in socials
        )
        chips = "".join(
            _fill(
                self.contract_chip,
                address=html.escape(_short_address(c.address)),
                platform=PLATFORMS[c.platform]["coin"]["id"],
            )
            for c in coin.contracts
        )
        section = _fill(self.contracts_section, chips=chips) if chips else ""
        return {
            "website_chips": website_chips,
            "social_chips": social_chips,
            "contracts_section": section,
        }

    @classmethod
    def load(cls, path: Path = RECORDED_PAGE) -> PageTemplate:
        return cls(path.read_text(encoding="utf-8"))

    # -- per coin ------------------------------------------------------------------------

    def detail(self, coin: Coin, moved_market_cap: bool = False) -> dict[str, Any]:
        """`props.pageProps.detailRes.detail` for a coin, on the recorded one's shape;
        `moved_market_cap`: the market cap under another key (a silent layout change)."""
        base = self.detail_template
        stats = dict(base["statistics"])
        tracked = coin.tracked
        market_cap = coin.market_cap
        volume = coin.volume_24h if tracked else 0
        circulating = coin.circulating_supply if tracked else 0
        stats.update(
            price=coin.price,
            priceChangePercentage24h=coin.percent_change_24h,
            marketCap=market_cap,
            fullyDilutedMarketCap=coin.fully_diluted_market_cap,
            circulatingSupply=circulating,
            totalSupply=coin.total_supply,
            maxSupply=coin.max_supply,
            rank=coin.rank,
            volumeRank=coin.volume_rank,
            low24h=coin.price * 0.97,
            high24h=coin.price * 1.03,
            marketCapDominance=round(market_cap / 3.845e12 * 100, 4),
            turnover=round(volume / market_cap, 6) if market_cap else 0,
        )
        if coin.max_supply_mode == "absent":
            del stats["maxSupply"]
        if moved_market_cap:
            stats["marketCapUsd"] = stats.pop("marketCap")
        detail = dict(base)
        detail.update(
            id=coin.id,
            name=coin.name,
            symbol=coin.symbol,
            slug=coin.slug,
            category=coin.category,
            dateAdded=coin.date_added,
            status=coin.status,
            latestUpdateTime=LAST_UPDATED,
            tags=[
                {
                    "slug": tag,
                    "name": tag.replace("-", " ").title(),
                    "category": "INDUSTRY",
                    "status": 1,
                    "priority": 1,
                }
                for tag in coin.tags
            ],
            selfReportedCirculatingSupply=None,
            urls=coin.full_urls(),
            volume=volume,
            volumeChangePercentage24h=coin.volume_change_24h if tracked else 0,
            cexVolume=volume,
            dexVolume=0,
            statistics=stats,
            platforms=[self._platform(coin, i) for i in range(len(coin.contracts))],
            tvCoinSymbol=coin.symbol,
            isInfiniteMaxSupply=1 if coin.max_supply_mode == "null" else 0,
            supplyDetails={
                "circulatingSupply": {
                    "sourceType": "static",
                    "value": circulating,
                    "sourceValue": circulating,
                    "lastUpdate": 1755702203564,
                },
                "maxSupply": {
                    "sourceType": "static",
                    "value": coin.max_supply or 0,
                    "lastUpdate": 1755702203564,
                },
            },
            description="",
        )
        return detail

    def _platform(self, coin: Coin, index: int) -> dict[str, Any]:
        contract = coin.contracts[index]
        info = PLATFORMS[contract.platform]
        native_name, native_symbol, decimals = info["native"]
        template = self.detail_template["platforms"][0]
        entry = dict(template)
        entry.update(
            contractId=info["coin"]["id"],
            contractAddress=contract.address,
            contractPlatform=info["name"],
            contractPlatformId=info["platform_id"],
            contractChainId=info["chain_id"],
            contractNativeCurrencyName=native_name,
            contractNativeCurrencySymbol=native_symbol,
            contractNativeCurrencyDecimals=decimals,
            contractBlockExplorerUrl=info["explorer"],
            contractExplorerUrl=info["token_url"].format(address=contract.address),
            contractDecimals=decimals,
            platformCryptoId=info["coin"]["id"],
            sort=index,
        )
        return entry

    def values(self, coin: Coin) -> dict[str, bytes]:
        tracked = coin.tracked
        symbol = html.escape(coin.symbol)
        circulating = coin.circulating_supply if tracked else 0
        if coin.max_supply is not None:
            max_html = abbreviate(coin.max_supply, suffix=f" {symbol}")
        else:
            max_html = "∞" if coin.max_supply_mode == "null" else "--"
        change = coin.percent_change_24h
        values = {
            "name_html": html.escape(coin.name),
            "symbol_html": symbol,
            "slug": coin.slug,
            "id": str(coin.id),
            "rank": str(coin.rank) if coin.rank is not None else "--",
            "price_html": format_price(coin.price),
            "price_long_html": format_price(coin.price),
            "change_html": ("-" if change < 0 else "") + format_percent(change),
            "market_cap_html": abbreviate(coin.market_cap, prefix="$"),
            "volume_html": abbreviate(coin.volume_24h if tracked else 0, prefix="$"),
            "fdv_html": abbreviate(coin.fully_diluted_market_cap, prefix="$"),
            "total_supply_html": abbreviate(coin.total_supply, suffix=f" {symbol}"),
            "max_supply_html": max_html,
            "circulating_label": "Circulating supply",
            "circulating_supply_html": abbreviate(circulating, suffix=f" {symbol}"),
            "slug_json": json.dumps(coin.slug),
            "symbol_json": json.dumps(coin.symbol, ensure_ascii=False),
            "about_json": next_data_json(
                f"{coin.name} ({coin.symbol}) is a cryptocurrency launched in "
                f"{coin.date_added[:4]}. It is ranked #{coin.rank or '--'} on the site."
            ),
            **self.link_values(coin),
        }
        return {key: value.encode() for key, value in values.items()}

    def render(self, coin: Coin, variant: str = "full") -> bytes:
        """The page of a coin. Variants: `full`; `no_next_data`, the HTML alone (what a
        block or a failed render looks like); `changed_next_data`, the script is there
        but the coin sits under another key (the site changed its JSON shape);
        `moved_market_cap`: all there but the market cap, which moved to another key (the
        page still parses, the field comes out empty: generated coins only, the recorded
        page is served as it is)."""
        if variant not in PAGE_VARIANTS:
            raise ValueError(f"unknown page variant {variant!r}")
        if coin.recorded:
            if variant == "moved_market_cap":
                return self.recorded
            if variant == "no_next_data":
                return self.recorded_without_next_data
            return self.recorded_changed if variant == "changed_next_data" else self.recorded
        values = self.values(coin)
        parts = [self.head]
        if variant != "no_next_data":
            moved = variant == "moved_market_cap"
            values["detail_json"] = next_data_json(self.detail(coin, moved)).encode()
            parts.append(self.script if variant != "changed_next_data" else self.script_changed)
        parts.append(self.tail)
        out: list[bytes] = []
        for chunks in parts:
            for i, chunk in enumerate(chunks):
                out.append(chunk if i % 2 == 0 else values[chunk])  # type: ignore[index]
        return b"".join(out)


class Pages:
    """Lazily built template plus the fixed pages (404, blocks)."""

    @cached_property
    def template(self) -> PageTemplate:
        return PageTemplate.load()

    def coin_page(self, coin: Coin, variant: str = "full") -> bytes:
        return self.template.render(coin, variant)


NOT_FOUND_PAGE = b"""<!DOCTYPE html><html lang="en" dir="ltr"><head><meta charset="utf-8">\
<meta name="viewport" content="width=device-width, initial-scale=1">\
<title>Page not found | CoinMarketCap</title><meta name="robots" content="noindex">\
</head><body><div id="__next"><div class="cmc-body-wrapper"><div class="sc-404 container">\
<h1>404</h1><p>Sorry, we couldn't find your page</p>\
<p>Looking for something? Try searching or go back to the <a href="/">homepage</a>.</p>\
</div></div></div><script id="__NEXT_DATA__" type="application/json" crossorigin="anonymous">\
{"props":{"pageProps":{"statusCode":404}},"page":"/404","query":{},\
"buildId":"UYHAbwlGLQMvvLasfPHrP","isFallback":false,"gip":true}</script></body></html>
"""


def cloudflare_block_page(ray: str, client_ip: str = "127.0.0.1") -> bytes:
    """The 'Sorry, you have been blocked' page a WAF answers bots with (HTTP 403)."""
    return f"""<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<html class="no-js" lang="en-US">
<head>
<title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" />
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
<meta name="robots" content="noindex, nofollow" />
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/cf.errors.css" />
</head>
<body>
<div id="cf-wrapper">
<div id="cf-error-details" class="cf-error-details-wrapper">
<div class="cf-wrapper cf-header cf-error-overview">
<h1 data-translate="block_headline">Sorry, you have been blocked</h1>
<h2 class="cf-subheadline"><span data-translate="unable_to_access">You are unable to access</span>
coinmarketcap.com</h2>
</div>
<div class="cf-section cf-wrapper">
<h2 data-translate="blocked_why_headline">Why have I been blocked?</h2>
<p data-translate="blocked_why_detail">This website is using a security service to protect
itself from online attacks. The action you just performed triggered the security
solution.</p>
</div>
<div class="cf-error-footer cf-wrapper">
<p><span>Cloudflare Ray ID: <strong class="font-semibold">{ray}</strong></span>
<span class="cf-footer-separator">&bull;</span>
<span id="cf-footer-item-ip">Your IP: {client_ip}</span>
<span class="cf-footer-separator">&bull;</span>
<span>Performance &amp; security by Cloudflare</span></p>
</div>
</div>
</div>
</body>
</html>
""".encode()


def cloudflare_rate_limited_page(ray: str) -> bytes:
    """Error 1015: the page a WAF answers with HTTP 429 when a client asks too fast."""
    return f"""<!DOCTYPE html>
<html class="no-js" lang="en-US">
<head>
<title>Access denied | coinmarketcap.com used Cloudflare to restrict access</title>
<meta charset="UTF-8" />
<meta name="robots" content="noindex, nofollow" />
</head>
<body>
<div id="cf-wrapper">
<div id="cf-error-details" class="cf-error-details-wrapper">
<div class="cf-wrapper cf-header cf-error-overview">
<h1><span class="cf-error-type">Error</span> <span class="cf-error-code">1015</span></h1>
<h2 class="cf-subheadline">You are being rate limited</h2>
</div>
<div class="cf-section cf-wrapper">
<p>The owner of this website (coinmarketcap.com) has banned you temporarily from
accessing this website.</p>
</div>
<div class="cf-error-footer cf-wrapper">
<p><span>Cloudflare Ray ID: <strong>{ray}</strong></span></p>
</div>
</div>
</div>
</body>
</html>
""".encode()


SERVER_ERROR_PAGE = b"""<!DOCTYPE html><html><head><title>500 Internal Server Error</title>\
</head><body><center><h1>500 Internal Server Error</h1></center><hr><center>cloudflare\
</center></body></html>
"""
