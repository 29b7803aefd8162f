"""The coin page parser on every recorded page and on hand-made variants of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from coinspiders.parsing import page
from coinspiders.parsing.identity import AUTO, ID, SLUG, choose, classify, split_coins
from coinspiders.parsing.links import official_links, socials

FIXTURES = Path(__file__).parent / "fixtures"
PAGE_2025 = (FIXTURES / "page-santiment-2025-08-20.html").read_text(encoding="utf-8")
PAGE_2018 = (FIXTURES / "page-santiment-2018-legacy-layout.html").read_text(encoding="utf-8")
NEXT_DATA = json.loads(
    (FIXTURES / "page-santiment-2025-08-20.__NEXT_DATA__.json").read_text(encoding="utf-8")
)


def _script_bounds(html: str) -> tuple[int, int]:
    start = html.index('<script id="__NEXT_DATA__"')
    body = html.index(">", start) + 1
    return start, html.index("</script>", body) + len("</script>")


def without_next_data(html: str = PAGE_2025) -> str:
    start, end = _script_bounds(html)
    return html[:start] + html[end:]


def with_next_data(data: dict[str, Any], html: str = PAGE_2025) -> str:
    """The 2025 page with its script replaced, escaped the way Next.js escapes it."""
    start, end = _script_bounds(html)
    text = json.dumps(data).replace("<", "\\u003c")
    tag = '<script id="__NEXT_DATA__" type="application/json" crossorigin="anonymous">'
    return html[:start] + tag + text + "</script>" + html[end:]


def variant(**changes: Any) -> dict[str, Any]:
    """The recorded data with some detail keys replaced (None deletes the key)."""
    data = copy.deepcopy(NEXT_DATA)
    detail = data["props"]["pageProps"]["detailRes"]["detail"]
    for key, value in changes.items():
        target, _, leaf = key.rpartition("__")
        node = detail["statistics"] if target == "statistics" else detail
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return data


# --- the recorded pages ---------------------------------------------------------------


def test_recorded_page_reads_the_json() -> None:
    result = page.parse_coin_page(PAGE_2025)
    assert (result.status, result.method) == (page.COIN, page.VIA_NEXT_DATA)
    coin = result.coin
    assert coin is not None
    assert (coin["id"], coin["name"], coin["symbol"], coin["slug"]) == (
        1807,
        "Santiment Network Token",
        "SAN",
        "santiment",
    )
    assert coin["price"] == pytest.approx(0.15003467910476828)
    assert coin["market_cap_rank"] == 6708
    assert coin["volume_rank"] == 6857
    assert coin["total_supply"] == 83337000
    assert coin["max_supply"] == 83337000
    assert coin["diluted_market_cap"] == pytest.approx(12503440.05)
    assert coin["contracts"] == [
        {"name": "Ethereum", "address": "0x7c5a0ce9267ed19b22f8cae653f198e3e8daf098"}
    ]
    assert coin["official_links"] == [
        {"name": "website", "link": "https://santiment.net/"},
        {"name": "source_code", "link": "https://github.com/santiment"},
    ]
    assert {"name": "twitter", "url": "https://twitter.com/santimentfeed"} in coin["socials"]
    assert {"name": "telegram", "url": "https://t.me/santiment_network"} in coin["socials"]
    # CMC's own community pages are not the coin's socials.
    assert not any("coinmarketcap.com" in s["url"] for s in coin["socials"])
    assert coin["last_updated"] == "2025-08-20T15:57:00.000Z"


def test_recorded_page_is_an_untracked_coin_so_zeros_are_unknown() -> None:
    # SAN was untracked on 2025-08-20: the JSON says 0 for these, which means "unknown".
    coin = page.parse_coin_page(PAGE_2025).coin
    assert coin is not None
    assert coin["market_cap"] is None
    assert coin["volume"] is None
    assert coin["volume_change"] is None
    assert coin["circulating_supply"] is None


def test_every_number_is_a_json_number_or_null() -> None:
    for html in (PAGE_2025, without_next_data(), PAGE_2018):
        coin = page.parse_coin_page(html).coin
        assert coin is not None
        for key in (
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
        ):
            value = coin[key]
            assert value is None or (
                isinstance(value, int | float) and not isinstance(value, bool)
            ), (key, value)


def test_find_next_data_matches_the_recorded_script() -> None:
    raw = page.find_next_data(PAGE_2025)
    assert raw is not None
    assert json.loads(raw) == NEXT_DATA


def test_find_next_data_on_minified_and_attribute_orders() -> None:
    body = '{"a": 1}'
    for tag in (
        '<script id="__NEXT_DATA__" type="application/json">',
        '<script type="application/json" id="__NEXT_DATA__" crossorigin="anonymous">',
        "<script id='__NEXT_DATA__'>",
    ):
        html = f"<html><body><p>__NEXT_DATA__ mentioned</p>{tag}{body}</script></body></html>"
        assert page.find_next_data(html) == body
    assert page.find_next_data("<html><script>var a=1</script></html>") is None
    assert page.load_next_data('<script id="__NEXT_DATA__">{not json</script>') is None


def test_html_fallback_on_the_2025_page_without_its_script() -> None:
    result = page.parse_coin_page(without_next_data())
    assert (result.status, result.method) == (page.COIN, page.VIA_HTML)
    coin = result.coin
    assert coin is not None
    assert (coin["id"], coin["name"], coin["symbol"], coin["slug"]) == (
        1807,
        "Santiment Network Token",
        "SAN",
        "santiment",
    )
    assert coin["price"] == pytest.approx(0.15)
    assert coin["price_change"] == 0
    assert coin["market_cap_rank"] == 6708
    # The HTML shows the self-reported $9.4M flagged as unverified: not CMC's figure.
    assert coin["market_cap"] is None
    assert coin["volume"] is None  # "$0" on an untracked coin
    assert coin["circulating_supply"] is None  # only a self-reported figure is shown
    assert coin["total_supply"] == pytest.approx(83_330_000)
    assert coin["max_supply"] == pytest.approx(83_330_000)
    assert coin["diluted_market_cap"] == pytest.approx(12_500_000)
    # The chips only show 0x7c5a...daf098: unknown rather than a wrong address.
    assert coin["contracts"] is None
    assert {"name": "website", "link": "https://santiment.net/"} in coin["official_links"]
    assert {"name": "source_code", "link": "https://github.com/santiment"} in coin["official_links"]
    assert coin["socials"] == [
        {"name": "twitter", "url": "https://twitter.com/santimentfeed"},
        {"name": "telegram", "url": "https://t.me/santiment_network"},
    ]


def test_legacy_2018_layout() -> None:
    result = page.parse_coin_page(PAGE_2018)
    assert (result.status, result.method) == (page.COIN, page.VIA_LEGACY)
    coin = result.coin
    assert coin is not None
    assert (coin["id"], coin["name"], coin["symbol"], coin["slug"]) == (
        1807,
        "Santiment Network Token",
        "SAN",
        "santiment",
    )
    assert coin["price"] == pytest.approx(0.324826081723)
    assert coin["price_change"] == pytest.approx(21.8465)
    assert coin["market_cap"] == pytest.approx(20353722.7773)
    assert coin["market_cap_rank"] == 136
    assert coin["volume"] == pytest.approx(554724.694897)
    assert coin["circulating_supply"] == pytest.approx(62660370.957)
    assert coin["total_supply"] == pytest.approx(83337000)
    assert coin["max_supply"] is None
    assert {"name": "website", "link": "https://santiment.net/"} in coin["official_links"]
    assert {"name": "telegram", "url": "https://t.me/santiment_network"} in coin["socials"]


# --- hand-made variants -----------------------------------------------------------------


def test_tracked_coin_keeps_its_figures() -> None:
    data = variant(
        volume=4583151.2,
        volumeChangePercentage24h=12.21,
        statistics__marketCap=37814377,
        statistics__circulatingSupply=9663955990,
        statistics__priceChangePercentage24h=-5.44,
    )
    coin = page.parse_coin_page(with_next_data(data)).coin
    assert coin is not None
    assert coin["market_cap"] == 37814377
    assert coin["volume"] == 4583151.2
    assert coin["volume_change"] == 12.21
    assert coin["circulating_supply"] == 9663955990
    assert coin["price_change"] == -5.44


def test_native_coin_without_contracts() -> None:
    data = variant(platforms=[], id=1, name="Bitcoin", symbol="BTC", slug="bitcoin")
    result = page.parse_coin_page(with_next_data(data))
    assert result.method == page.VIA_NEXT_DATA
    assert result.coin is not None
    assert result.coin["contracts"] == []
    assert (result.coin["id"], result.coin["slug"]) == (1, "bitcoin")


def test_no_max_supply() -> None:
    for data in (
        variant(statistics__maxSupply=None),  # key absent
        variant(statistics__maxSupply=0),
        variant(isInfiniteMaxSupply=1),
    ):
        data_copy = copy.deepcopy(data)
        coin = page.parse_coin_page(with_next_data(data_copy)).coin
        assert coin is not None
        assert coin["max_supply"] is None
        assert coin["total_supply"] == 83337000


def test_json_null_figures_stay_null() -> None:
    data = copy.deepcopy(NEXT_DATA)
    stats = data["props"]["pageProps"]["detailRes"]["detail"]["statistics"]
    stats["maxSupply"] = None
    stats["price"] = None
    coin = page.parse_coin_page(with_next_data(data)).coin
    assert coin is not None
    assert coin["max_supply"] is None
    assert coin["price"] is None


def test_html_market_cap_flag_only_matters_without_a_verified_supply() -> None:
    # The same page with a verified circulating supply: the market cap is CMC's own.
    html = without_next_data().replace("Self-reported circulating supply", "Circulating supply")
    coin = page.parse_coin_page(html).coin
    assert coin is not None
    assert coin["circulating_supply"] == pytest.approx(62_660_000)
    assert coin["market_cap"] == pytest.approx(9_400_000)


def test_subscript_zero_price_in_the_html_fallback() -> None:
    html = without_next_data().replace(
        'data-test="text-cdp-price-display">$0.1500<',
        'data-test="text-cdp-price-display">$0.0₄3913<',
    )
    coin = page.parse_coin_page(html).coin
    assert coin is not None
    assert coin["price"] == pytest.approx(0.00003913)


def test_changed_json_shape_falls_back_to_html() -> None:
    data = copy.deepcopy(NEXT_DATA)
    props = data["props"]["pageProps"]
    props["coinDetail"] = props.pop("detailRes")
    result = page.parse_coin_page(with_next_data(data))
    assert (result.status, result.method) == (page.COIN, page.VIA_HTML)
    assert result.coin is not None and result.coin["id"] == 1807


def test_changed_json_and_no_html_hooks_is_unreadable_not_a_block() -> None:
    html = '<html><script id="__NEXT_DATA__" type="application/json">{"props": {}}</script></html>'
    result = page.parse_coin_page(html)
    assert result.status == page.UNREADABLE


def test_next_js_error_page_is_not_found() -> None:
    for data in (
        {"props": {"pageProps": {"statusCode": 404}}, "page": "/_error"},
        {"props": {"pageProps": {}}, "page": "/404"},
        {"props": {"pageProps": {"globalMetrics": {}}}, "page": "/"},  # sent home
    ):
        html = f'<html><script id="__NEXT_DATA__">{json.dumps(data)}</script></html>'
        assert page.parse_coin_page(html).status == page.NOT_FOUND


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        (
            "<html><head><title>Just a moment...</title></head>"
            '<body><div id="challenge-platform"></div></body></html>',
            "Cloudflare challenge",
        ),
        (
            "<html><head><title>Attention Required! | Cloudflare</title></head>"
            '<body><div id="cf-error-details">Sorry, you have been blocked</div></body></html>',
            "Cloudflare block page",
        ),
        ("<html><body>Hello</body></html>", "no coin data in the page"),
        ("", "no coin data in the page"),
    ],
)
def test_pages_without_coin_data_are_blocks(html: str, reason: str) -> None:
    result = page.parse_coin_page(html)
    assert result.status == page.BLOCKED
    assert result.coin is None
    assert result.reason == reason


# --- links and identity ---------------------------------------------------------------


def test_links_sorting() -> None:
    urls = {
        "website": ["https://duko.example/", "https://duko.example/"],
        "technical_doc": ["https://duko.example/paper.pdf"],
        "source_code": [],
        "chat": [
            "https://t.me/+jlScZmFrQ8g2MDg8",
            "https://discord.gg/duko",
            "https://matrix.to/x",
        ],
        "twitter": ["https://twitter.com/dukocoin"],
        "reddit": ["https://reddit.com/r/duko"],
        "facebook": ["https://facebook.com/duko"],
        "explorer": ["https://solscan.io/token/x"],
        "message_board": ["https://coinmarketcap.com/community/profile/Duko"],
    }
    assert official_links(urls) == [
        {"name": "website", "link": "https://duko.example/"},
        {"name": "whitepaper", "link": "https://duko.example/paper.pdf"},
    ]
    assert socials(urls) == [
        {"name": "twitter", "url": "https://twitter.com/dukocoin"},
        {"name": "telegram", "url": "https://t.me/+jlScZmFrQ8g2MDg8"},
        {"name": "discord", "url": "https://discord.gg/duko"},
        {"name": "chat", "url": "https://matrix.to/x"},
        {"name": "reddit", "url": "https://reddit.com/r/duko"},
        {"name": "facebook", "url": "https://facebook.com/duko"},
    ]
    assert official_links(None) == [] and socials({"chat": "javascript:alert(1)"}) == []


def test_split_and_classify_coins() -> None:
    assert split_coins("DUKO, bitcoin,1,,DUKO") == ["DUKO", "bitcoin", "1"]
    assert split_coins(["HOT", 1027]) == ["HOT", "1027"]
    for bad in ("", " , ", [], None):
        with pytest.raises(ValueError, match="no coins given"):
            split_coins(bad)
    with pytest.raises(ValueError):
        split_coins([{"x": 1}])
    assert classify("1027").kind == ID
    assert classify("DUKO").kind == AUTO and not classify("DUKO").slug_first
    assert classify("bitcoin").slug_first
    assert classify("slug:HOT").kind == SLUG and classify("slug:HOT").slug == "hot"
    assert classify("id:abc") is None
    assert classify("../etc/passwd") is None
    assert classify("a b") is None
    assert classify("..") is None


def test_choose_prefers_active_then_best_rank() -> None:
    entries = [
        {"id": 2682, "slug": "holo", "symbol": "HOT", "name": "Holo", "rank": 150, "is_active": 1},
        {"id": 2707, "slug": "hydro-protocol", "symbol": "HOT", "rank": 3000, "is_active": 1},
        {"id": 1, "slug": "hotcoin-old", "symbol": "HOT", "rank": 5, "is_active": 0},
        {"id": 9, "slug": "bare"},  # no status, no rank: after the active ones
        {"slug": "no-id"},
    ]
    chosen, others = choose(entries)
    assert chosen is not None and chosen["slug"] == "holo"
    assert [o["slug"] for o in others] == ["hydro-protocol", "hotcoin-old", "bare"]
    assert choose([]) == (None, [])
