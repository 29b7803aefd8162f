"""The Pro API parsing functions on every recorded API response, and hand-made variants."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from coinspiders.items import COIN_FIELDS
from coinspiders.parsing import api

FIXTURES = Path(__file__).parent / "fixtures"
LOGO = "http://logos.test/{id}.png"
NOW = "2026-01-01T00:00:00.000Z"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def listings_2022() -> dict:
    return load("pro-v1-listings-latest-2022-12-16-top100.json")


@pytest.fixture(scope="module")
def listings_2018() -> dict:
    return load("pro-v1-listings-latest-2018-convert-BTC-USD.json")


@pytest.fixture(scope="module")
def info_weth() -> dict:
    return load("pro-v2-info-id-2396-WETH-2024-08-28.json")


# --- verdicts ---------------------------------------------------------------------------


def test_recorded_listings_are_ok_with_their_credit_count(listings_2022, listings_2018):
    verdict = api.classify_response(200, listings_2022)
    assert verdict == api.ApiVerdict(api.OK, 0, "", 1)
    assert api.classify_response(200, listings_2018).credit_count == 2


def test_recorded_1002_body_is_fatal_with_its_message():
    body = (FIXTURES / "pro-error-1002-api-key-missing-2020-03-23.json").read_bytes()
    verdict = api.classify_response(401, api.load_payload(body))
    assert verdict.kind == api.FATAL
    assert verdict.code == 1002
    assert verdict.message == "API key missing."
    assert verdict.credit_count == 0


def _status(code: int, message: str = "boom") -> dict:
    return {"status": {"error_code": code, "error_message": message, "credit_count": 0}}


@pytest.mark.parametrize("code", sorted(api.FATAL_CODES))
def test_every_fatal_code_is_fatal_even_on_http_200(code):
    for http in (200, 401, 402, 403, 429):
        verdict = api.classify_response(http, _status(code))
        assert (verdict.kind, verdict.code, verdict.message) == (api.FATAL, code, "boom")


def test_1008_is_retried_after_the_configured_delay_without_retry_after():
    verdict = api.classify_response(429, _status(1008, "minute limit"), None, default_delay=7.5)
    assert (verdict.kind, verdict.code, verdict.delay) == (api.RETRY, 1008, 7.5)
    assert verdict.message == "minute limit"
    # Also when a proxy sends a 200 with the code, and a bare 429 without a body.
    assert api.classify_response(200, _status(1008), default_delay=3).kind == api.RETRY
    bare = api.classify_response(429, None, default_delay=3)
    assert (bare.kind, bare.code, bare.delay) == (api.RETRY, 1008, 3)


def test_retry_after_is_honoured_in_seconds_and_as_a_date():
    assert api.classify_response(429, _status(1008), b"2", default_delay=60).delay == 2.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert api.retry_after_seconds(date, now=now) == pytest.approx(30.0)
    assert api.retry_after_seconds(format_datetime(now - timedelta(seconds=5)), now=now) == 0.0
    assert api.retry_after_seconds("999999") == api.MAX_RETRY_AFTER
    assert api.retry_after_seconds("soon") is None
    assert api.retry_after_seconds("") is None
    # An unusable header falls back to the configured delay.
    assert api.classify_response(429, _status(1008), "soon", default_delay=4).delay == 4


def test_other_errors_fail_the_request_not_the_job():
    bad_param = api.classify_response(400, _status(400, 'Invalid value for "convert"'))
    assert (bad_param.kind, bad_param.code) == (api.FAILED, 400)
    assert "convert" in bad_param.message
    server = api.classify_response(503, None)
    assert (server.kind, server.code, server.message) == (api.FAILED, 503, "HTTP 503")
    not_api = api.classify_response(200, api.load_payload(b"<html>blocked</html>"))
    assert not_api.kind == api.FAILED
    assert api.classify_response(200, {"status": {"error_code": 0}}).kind == api.FAILED


def test_a_refused_key_without_a_status_block_is_fatal():
    assert api.classify_response(401, None).kind == api.FATAL
    assert api.classify_response(403, {"oops": 1}).code == 403


def test_string_error_codes_are_read():
    verdict = api.classify_response(200, {"status": {"error_code": "1010", "credit_count": "0"}})
    assert (verdict.kind, verdict.code) == (api.FATAL, 1010)


def test_load_payload_accepts_only_objects():
    assert api.load_payload(b'{"a": 1}') == {"a": 1}
    assert api.load_payload(b"[1]") is None
    assert api.load_payload(b"\xff\xfe") is None
    assert api.load_payload("") is None


# --- listings + info -> item fields ---------------------------------------------------


def test_listings_2022_top100_all_parse(listings_2022):
    entries = api.listing_entries(listings_2022)
    assert len(entries) == 100
    coins = [api.coin_from_api(e, None, "USD", LOGO, NOW) for e in entries]
    assert [c["market_cap_rank"] for c in coins] == list(range(1, 101))
    for coin in coins:
        assert set(coin) == set(COIN_FIELDS)
        assert coin["source"] == "api"
        assert coin["volume_rank"] is None
        assert isinstance(coin["price"], float)
        assert coin["logo"] == LOGO.format(id=coin["id"])
        assert coin["scraped_at"] == NOW
    btc = coins[0]
    assert btc["id"] == 1 and btc["symbol"] == "BTC" and btc["slug"] == "bitcoin"
    assert btc["price"] == pytest.approx(16815.26797238245)
    assert btc["price_change"] == pytest.approx(-3.48832105)
    assert btc["market_cap"] == pytest.approx(323451028737.7691)
    assert btc["volume"] == pytest.approx(22984031596.08991)
    assert btc["volume_change"] == pytest.approx(-10.8288)
    assert btc["circulating_supply"] == 19235556
    assert btc["max_supply"] == 21000000
    assert btc["diluted_market_cap"] == pytest.approx(353120627420.03)
    assert btc["last_updated"] == "2022-12-16T18:05:00.000Z"
    # A native coin has no contract; a token gets its listing platform as one contract.
    assert btc["contracts"] == []
    busd = next(c for c in coins if c["symbol"] == "BUSD")
    assert busd["contracts"] == [{"name": "BNB", "address": "BUSD-BD1"}]
    assert busd["max_supply"] is None


def test_listings_2018_picks_the_asked_convert(listings_2018):
    entry = api.listing_entries(listings_2018)[0]
    usd = api.coin_from_api(entry, None, "USD", LOGO, NOW)
    btc = api.coin_from_api(entry, None, "BTC", LOGO, NOW)
    assert usd["price"] == pytest.approx(6493.02288075)
    assert usd["market_cap"] == pytest.approx(111774707273.6615)
    assert btc["price"] == 1
    assert btc["volume"] == pytest.approx(747973.8547301133)
    # 2018 quotes have no volume change nor diluted market cap: unknown, not zero.
    assert usd["volume_change"] is None and usd["diluted_market_cap"] is None
    assert api.coin_from_api(entry, None, "usd", LOGO, NOW)["price"] == usd["price"]
    # A convert the body does not have leaves the quote fields unknown.
    eur = api.coin_from_api(entry, None, "EUR", LOGO, NOW)
    assert eur["price"] is None and eur["market_cap"] is None
    assert eur["circulating_supply"] == 17214587


def test_info_weth_contracts_links_and_logo(info_weth):
    infos = api.info_entries(info_weth)
    assert list(infos) == [2396]
    info = infos[2396]
    listing = {"id": 2396, "name": "WETH", "symbol": "WETH", "slug": "weth", "cmc_rank": 20}
    coin = api.coin_from_api(listing, info, "USD", LOGO, NOW)
    assert coin["logo"] == "https://s2.coinmarketcap.com/static/img/coins/64x64/2396.png"
    contracts = coin["contracts"]
    assert len(contracts) == 49
    assert contracts[0] == {
        "name": "Ethereum",
        "address": "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
    }
    by_name = {c["name"]: c["address"] for c in contracts}
    # Non-hex addresses are kept exactly as the API gives them.
    assert by_name["Solana"] == "7vfCXTUXx5WJV5JADk17DUJ4ksgau7utNKj4b963voxs"
    assert by_name["Zilliqa"] == "zil19j33tapjje2xzng7svslnsjjjgge930jx0w09v"
    assert by_name["Near"] == "c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2.factory.bridge.near"
    assert by_name["Aptos"].endswith("::asset::WETH")
    assert by_name["Everscale"].startswith("0:59b6")
    # The same address on two chains is two contracts.
    assert by_name["EthereumPoW"] == by_name["Ethereum"]
    # Explorers are neither official links nor socials; WETH has no socials.
    assert coin["official_links"] == [{"name": "website", "link": "https://weth.io/"}]
    assert coin["socials"] == []
    # No quote in this listing: figures unknown, identity kept.
    assert coin["price"] is None and coin["market_cap_rank"] == 20


def test_info_urls_become_official_links_and_socials():
    info = {
        "id": 5,
        "urls": {
            "website": ["https://a.example/"],
            "technical_doc": ["https://a.example/wp.pdf"],
            "source_code": ["https://github.com/a/a"],
            "twitter": ["https://twitter.com/a"],
            "chat": ["https://t.me/a", "https://discord.gg/xyz"],
            "reddit": ["https://reddit.com/r/a"],
            "explorer": ["https://etherscan.io/token/0xabc"],
        },
    }
    coin = api.coin_from_api({"id": 5}, info, "USD", LOGO, NOW)
    assert coin["official_links"] == [
        {"name": "website", "link": "https://a.example/"},
        {"name": "whitepaper", "link": "https://a.example/wp.pdf"},
        {"name": "source_code", "link": "https://github.com/a/a"},
    ]
    assert coin["socials"] == [
        {"name": "twitter", "url": "https://twitter.com/a"},
        {"name": "telegram", "url": "https://t.me/a"},
        {"name": "discord", "url": "https://discord.gg/xyz"},
        {"name": "reddit", "url": "https://reddit.com/r/a"},
    ]
    bare = api.coin_from_api({"id": 5}, {"id": 5, "urls": None}, "USD", LOGO, NOW)
    assert bare["official_links"] == [] and bare["socials"] == []


def test_untracked_zero_figures_are_unknown():
    entry = {
        "id": 9,
        "cmc_rank": None,
        "circulating_supply": 0,
        "total_supply": 1000,
        "quote": {"USD": {"price": "0.5", "market_cap": 0, "volume_24h": 0}},
    }
    coin = api.coin_from_api(entry, None, "USD", LOGO, NOW)
    assert coin["market_cap"] is None and coin["volume"] is None
    assert coin["circulating_supply"] is None
    assert coin["total_supply"] == 1000
    assert coin["price"] == 0.5  # numbers arrive as numbers, even when the API sent text
    assert coin["market_cap_rank"] is None


def test_info_logo_missing_falls_back_to_the_logo_url_by_id():
    coin = api.coin_from_api({"id": 77}, {"id": 77, "logo": ""}, "USD", LOGO, NOW)
    assert coin["logo"] == "http://logos.test/77.png"
    with pytest.raises(ValueError):
        api.coin_from_api({"name": "no id"}, None, "USD", LOGO, NOW)


def test_listing_and_info_entries_skip_malformed_ones():
    payload = {"data": [{"id": 1}, {"name": "x"}, "junk", {"id": "2"}, {"id": True}]}
    assert [e["id"] for e in api.listing_entries(payload)] == [1, "2"]
    assert api.listing_entries({"data": None}) == []
    v2_by_symbol = {"data": {"HOT": [{"id": 2682}, {"id": 3116}], "X": "junk"}}
    assert sorted(api.info_entries(v2_by_symbol)) == [2682, 3116]
    assert api.info_entries({"data": [{"id": 5}]}) == {5: {"id": 5}}
    assert api.info_entries({}) == {}


def test_chunked_batches_ids():
    assert list(api.chunked(range(1, 251), 100)) == [
        list(range(1, 101)),
        list(range(101, 201)),
        list(range(201, 251)),
    ]
    assert list(api.chunked([], 100)) == []
    with pytest.raises(ValueError):
        list(api.chunked([1], 0))


def test_rank_key_orders_ranked_first():
    records = [
        {"id": 5, "market_cap_rank": None},
        {"id": 3, "market_cap_rank": 2},
        {"id": 9, "market_cap_rank": 1},
        {"id": 1, "market_cap_rank": None},
    ]
    assert [r["id"] for r in sorted(records, key=api.rank_key)] == [9, 3, 1, 5]


def test_redact_masks_the_secret():
    assert api.redact("key abc123 refused abc123", "abc123") == "key *** refused ***"
    assert api.redact("nothing", "") == "nothing"
