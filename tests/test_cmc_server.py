"""The CoinMarketCap look-alike, over real HTTP with urllib."""

from __future__ import annotations

import http.client
import json
import re
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.cmc_server import (
    DEFAULT_API_KEY,
    ERRORS,
    Catalogue,
    CMCControl,
    CMCServer,
    spawn_server,
)
from tests.waiting import wait_until

FIXTURES = Path(__file__).parent / "fixtures"
LISTINGS = "/v1/cryptocurrency/listings/latest"
MAP = "/v1/cryptocurrency/map"
INFO = "/v2/cryptocurrency/info"


def fetch(
    url: str, key: str | None = DEFAULT_API_KEY, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    headers = {"X-CMC_PRO_API_KEY": key} if key is not None else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def fetch_json(url: str, key: str | None = DEFAULT_API_KEY) -> tuple[int, dict[str, Any]]:
    status, _headers, body = fetch(url, key)
    return status, json.loads(body)


def next_data(page: bytes) -> dict[str, Any]:
    text = page.decode()
    match = re.search(r'<script id="__NEXT_DATA__"[^>]*>(.*?)</script>', text, re.S)
    assert match, "no __NEXT_DATA__ script"
    return json.loads(match.group(1))


def detail_of(page: bytes) -> dict[str, Any]:
    return next_data(page)["props"]["pageProps"]["detailRes"]["detail"]


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# -- the API key -----------------------------------------------------------------------


def test_missing_key_is_401_1002_with_the_recorded_shape(cmc: CMCServer) -> None:
    status, body = fetch_json(cmc.url + LISTINGS, key=None)
    assert status == 401
    expected = recorded("pro-error-1002-api-key-missing-2020-03-23.json")["status"]
    assert set(expected) <= set(body["status"])
    assert body["status"]["error_code"] == 1002
    assert body["status"]["error_message"] == expected["error_message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["status"]["timestamp"])


def test_invalid_key_is_401_1001(cmc: CMCServer) -> None:
    status, body = fetch_json(cmc.url + MAP + "?symbol=BTC", key="not-the-key")
    assert status == 401
    assert body["status"]["error_code"] == 1001
    assert body["status"]["error_message"] == "This API Key is invalid."
    assert "data" not in body


def test_valid_key_in_header_or_query(cmc: CMCServer) -> None:
    status, body = fetch_json(cmc.url + MAP + "?symbol=BTC")
    assert status == 200 and body["status"]["error_code"] == 0
    status, body = fetch_json(cmc.url + MAP + f"?symbol=BTC&CMC_PRO_API_KEY={cmc.api_key}", None)
    assert status == 200 and body["data"][0]["id"] == 1


def test_api_key_can_be_changed_and_is_reset(cmc: CMCServer) -> None:
    cmc.api_key = "another-key"
    assert fetch_json(cmc.url + MAP + "?symbol=BTC")[0] == 401
    assert fetch_json(cmc.url + MAP + "?symbol=BTC", key="another-key")[0] == 200
    cmc.reset()
    assert fetch_json(cmc.url + MAP + "?symbol=BTC")[0] == 200


# -- listings --------------------------------------------------------------------------


def test_listings_paging_start_and_limit(cmc: CMCServer) -> None:
    _, first = fetch_json(cmc.url + LISTINGS + "?start=1&limit=10")
    _, second = fetch_json(cmc.url + LISTINGS + "?start=11&limit=10")
    assert [c["cmc_rank"] for c in first["data"]] == list(range(1, 11))
    assert [c["cmc_rank"] for c in second["data"]] == list(range(11, 21))
    assert first["data"][0]["slug"] == "bitcoin" and first["data"][1]["slug"] == "ethereum"
    assert first["status"]["total_count"] == 5000
    _, default = fetch_json(cmc.url + LISTINGS)
    assert len(default["data"]) == 100
    _, tail = fetch_json(cmc.url + LISTINGS + "?start=4990&limit=100")
    assert [c["cmc_rank"] for c in tail["data"]] == list(range(4990, 5001))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", '"limit" must be larger than or equal to 1'),
        ("limit=5001", '"limit" must be less than or equal to 5000'),
        ("start=0", '"start" must be larger than or equal to 1'),
        ("limit=ten", '"limit" must be a number'),
        ("convert=XYZQ", 'Invalid value for "convert": "XYZQ"'),
    ],
)
def test_listings_bad_parameters_are_400(cmc: CMCServer, query: str, message: str) -> None:
    status, body = fetch_json(cmc.url + LISTINGS + "?" + query)
    assert status == 400
    assert body["status"]["error_code"] == 400
    assert body["status"]["error_message"] == message


def test_listings_all_generated_coins_in_rank_order(cmc: CMCServer) -> None:
    status, body = fetch_json(cmc.url + LISTINGS + "?limit=5000")
    assert status == 200
    data = body["data"]
    assert len(data) == 5000
    assert [c["cmc_rank"] for c in data] == list(range(1, 5001))
    assert len({c["id"] for c in data}) == 5000
    assert len({c["slug"] for c in data}) == 5000
    template = recorded("pro-v1-listings-latest-2022-12-16-top100.json")["data"][0]
    assert set(template) <= set(data[0])
    assert set(template["quote"]["USD"]) <= set(data[-1]["quote"]["USD"])
    assert body["status"]["credit_count"] == 25


def test_listings_two_converts(cmc: CMCServer) -> None:
    _, body = fetch_json(cmc.url + LISTINGS + "?limit=2&convert=BTC,USD")
    bitcoin, ether = body["data"]
    assert set(bitcoin["quote"]) == {"BTC", "USD"}
    assert bitcoin["quote"]["BTC"]["price"] == pytest.approx(1)
    usd, btc = ether["quote"]["USD"], ether["quote"]["BTC"]
    assert btc["price"] == pytest.approx(usd["price"] / bitcoin["quote"]["USD"]["price"])
    assert body["status"]["credit_count"] == 2


# -- map and info ----------------------------------------------------------------------


def test_map_returns_every_coin_of_a_colliding_symbol(cmc: CMCServer) -> None:
    status, body = fetch_json(cmc.url + MAP + "?symbol=HOT")
    assert status == 200
    hot = body["data"]
    assert [c["slug"] for c in hot] == ["holo", "hydro-protocol", "hot-token"]
    assert [c["id"] for c in hot] == [2682, 2430, 32975]
    assert all(c["symbol"] == "HOT" and c["is_active"] == 1 for c in hot)
    assert hot[0]["rank"] < hot[1]["rank"] < hot[2]["rank"]


def test_map_lists_inactive_coins_with_null_rank(cmc: CMCServer) -> None:
    _, body = fetch_json(cmc.url + MAP + "?symbol=not,DUKO,NOSUCHCOIN")
    by_slug = {c["slug"]: c for c in body["data"]}
    assert set(by_slug) == {"notcoin", "nothing-token", "duko"}
    assert by_slug["notcoin"]["is_active"] == 1 and by_slug["notcoin"]["rank"] == 95
    assert by_slug["nothing-token"]["is_active"] == 0
    assert by_slug["nothing-token"]["rank"] is None


def test_info_by_ids(cmc: CMCServer) -> None:
    status, body = fetch_json(cmc.url + INFO + "?id=1,1027,2682")
    assert status == 200
    assert set(body["data"]) == {"1", "1027", "2682"}
    holo = body["data"]["2682"]
    template = recorded("pro-v2-info-id-2396-WETH-2024-08-28.json")["data"]["2396"]
    assert set(template) <= set(holo)
    assert set(template["urls"]) == set(holo["urls"])
    assert holo["contract_address"][0]["contract_address"].startswith("0x6c6ee5e3")
    assert holo["logo"] == cmc.logo_url.format(id=2682)
    assert body["data"]["1"]["platform"] is None


def test_info_invalid_id_fails_the_call_unless_skip_invalid(cmc: CMCServer) -> None:
    status, body = fetch_json(cmc.url + INFO + "?id=1,999999")
    assert status == 400
    assert body["status"]["error_code"] == 400
    assert body["status"]["error_message"] == 'Invalid value for "id": "999999"'
    status, body = fetch_json(cmc.url + INFO + "?id=1,999999,1027&skip_invalid=true")
    assert status == 200
    assert set(body["data"]) == {"1", "1027"}


def test_ids_hidden_from_info_stay_in_listings(cmc: CMCServer) -> None:
    ghost = cmc.catalogue.ranked[7]
    cmc.hide_from_info(ghost.id)
    _, listing = fetch_json(cmc.url + LISTINGS + "?limit=10")
    assert ghost.id in [c["id"] for c in listing["data"]]
    ids = ",".join(str(c["id"]) for c in listing["data"])
    status, body = fetch_json(cmc.url + INFO + "?id=" + ids)
    assert status == 400 and str(ghost.id) in body["status"]["error_message"]
    status, body = fetch_json(cmc.url + INFO + "?skip_invalid=true&id=" + ids)
    assert status == 200 and len(body["data"]) == 9 and str(ghost.id) not in body["data"]
    cmc.reset()
    assert fetch_json(cmc.url + INFO + "?id=" + ids)[0] == 200


def test_info_accepts_at_most_100_ids(cmc: CMCServer) -> None:
    ids = [str(c.id) for c in cmc.catalogue.ranked[:101]]
    status, body = fetch_json(cmc.url + INFO + "?id=" + ",".join(ids[:100]))
    assert status == 200 and len(body["data"]) == 100
    status, body = fetch_json(cmc.url + INFO + "?id=" + ",".join(ids))
    assert status == 400
    assert "100" in body["status"]["error_message"]


# -- logos -----------------------------------------------------------------------------


@pytest.mark.parametrize("coin_id", [1, 1027])
def test_recorded_logos_are_served_byte_for_byte(cmc: CMCServer, coin_id: int) -> None:
    status, headers, body = fetch(cmc.logo_url.format(id=coin_id), key=None)
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert body == (FIXTURES / f"logo-64x64-{coin_id}.png").read_bytes()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat = 8, b""
    width = height = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + chunk) & 0xFFFFFFFF
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        position += 12 + length
    assert len(zlib.decompress(idat)) == height * (1 + width * 4)
    return width, height


def test_generated_logos_are_valid_deterministic_pngs(cmc: CMCServer) -> None:
    generated = cmc.catalogue.generated()[:2]
    first = fetch(cmc.logo_url.format(id=generated[0].id), key=None)[2]
    again = fetch(cmc.logo_url.format(id=generated[0].id), key=None)[2]
    other = fetch(cmc.logo_url.format(id=generated[1].id), key=None)[2]
    assert _png_size(first) == (64, 64)
    assert first == again and first != other
    assert fetch(cmc.logo_url.format(id=987654321), key=None)[0] == 404


# -- pages -----------------------------------------------------------------------------


def test_recorded_page_is_served_as_recorded(cmc: CMCServer) -> None:
    status, headers, body = fetch(cmc.page_url("santiment"), key=None)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert body == (FIXTURES / "page-santiment-2025-08-20.html").read_bytes()


def test_generated_coin_page_has_parseable_next_data(cmc: CMCServer) -> None:
    coin = cmc.catalogue.generated()[123]
    status, _headers, body = fetch(cmc.page_url(coin.slug), key=None)
    assert status == 200
    data = next_data(body)
    detail = data["props"]["pageProps"]["detailRes"]["detail"]
    assert data["query"] == {"cryptocurrencySlug": coin.slug}
    assert (detail["id"], detail["name"], detail["symbol"], detail["slug"]) == (
        coin.id,
        coin.name,
        coin.symbol,
        coin.slug,
    )
    stats = detail["statistics"]
    assert stats["price"] == coin.price
    assert stats["rank"] == coin.rank
    assert stats["marketCap"] == pytest.approx(coin.market_cap)
    assert [p["contractAddress"] for p in detail["platforms"]] == [
        c.address for c in coin.contracts
    ]
    text = body.decode()
    assert f'data-role="coin-symbol">{coin.symbol}<' in text
    assert f"64x64/{coin.id}.png" in text
    # The rest of the recorded page is still there.
    assert len(body) > 900_000 and 'data-test="section-coin-metrics"' in text


def test_builtin_coin_pages_cover_the_edge_cases(cmc: CMCServer) -> None:
    pages = {
        slug: fetch(cmc.page_url(slug), key=None)[2]
        for slug in ("bitcoin", "ethereum", "dogecoin", "shiba-inu", "untracked-token", "duko")
    }
    bitcoin = detail_of(pages["bitcoin"])
    assert (bitcoin["id"], bitcoin["symbol"], bitcoin["platforms"]) == (1, "BTC", [])
    assert bitcoin["statistics"]["maxSupply"] == 21000000
    assert "maxSupply" not in detail_of(pages["ethereum"])["statistics"]
    assert detail_of(pages["dogecoin"])["statistics"]["maxSupply"] is None
    shiba = pages["shiba-inu"]
    assert detail_of(shiba)["statistics"]["price"] == 0.00003913
    assert b'"price":0.00003913' in shiba  # written as the site writes numbers
    assert 'data-test="text-cdp-price-display">$0.0₄3913<'.encode() in shiba
    untracked = detail_of(pages["untracked-token"])
    assert untracked["status"] == "untracked"
    stats = untracked["statistics"]
    assert (stats["marketCap"], stats["circulatingSupply"], untracked["volume"]) == (0, 0, 0)
    duko = detail_of(pages["duko"])
    assert duko["statistics"]["marketCap"] == 37814377
    assert duko["platforms"][0]["contractPlatform"] == "Solana"
    assert duko["urls"]["chat"] == ["https://t.me/+jlScZmFrQ8g2MDg8"]


def test_html_link_sections_follow_the_coin(cmc: CMCServer) -> None:
    """The HTML fallback hooks show the coin's own links and contracts."""

    def hrefs(page: str, hook: str) -> list[str]:
        return re.findall(r'href="([^"]*)"[^>]*data-test="' + hook + '"', page)

    duko = re.sub(r"\s+", " ", fetch(cmc.page_url("duko"), key=None)[2].decode())
    assert hrefs(duko, "chip-website-link") == ["//dukocoin.com"]
    assert hrefs(duko, "chip-social-link") == ["//twitter.com/dukocoin", "//t.me/+jlScZmFrQ8g2MDg8"]
    contracts = duko[duko.index('data-test="section-coin-stats-contracts"') :]
    assert "HLptm5...2G7rf9" in contracts[:5000] and "64x64/5426.png" in contracts[:5000]
    bitcoin = re.sub(r"\s+", " ", fetch(cmc.page_url("bitcoin"), key=None)[2].decode())
    assert hrefs(bitcoin, "chip-website-link") == ["//bitcoin.org/", "//bitcoin.org/bitcoin.pdf"]
    assert "> Whitepaper</div>" in bitcoin
    assert 'data-test="section-coin-stats-contracts"' not in bitcoin
    assert "Santiment" not in bitcoin[bitcoin.index("<title>") : bitcoin.index("</title>")]
    assert re.search(r'data-role="coin-name"\s+title="Bitcoin"', bitcoin)


def test_unknown_slug_is_a_404_page(cmc: CMCServer) -> None:
    status, _headers, body = fetch(cmc.page_url("no-such-coin-anywhere"), key=None)
    assert status == 404
    assert b"Page not found" in body
    assert next_data(body)["page"] == "/404"


# -- faults ----------------------------------------------------------------------------


def test_rate_limit_on_the_api_then_recovery(cmc: CMCServer) -> None:
    cmc.add_fault("rate_limit", LISTINGS, times=2, retry_after=3)
    for _ in range(2):
        status, headers, body = fetch(cmc.url + LISTINGS + "?limit=1")
        assert status == 429
        assert headers["Retry-After"] == "3"
        assert json.loads(body)["status"]["error_code"] == 1008
    status, headers, _body = fetch(cmc.url + LISTINGS + "?limit=1")
    assert status == 200 and "Retry-After" not in headers


def test_rate_limit_without_retry_after_like_the_real_api(cmc: CMCServer) -> None:
    cmc.add_fault("rate_limit", LISTINGS)
    status, headers, _ = fetch(cmc.url + LISTINGS)
    assert status == 429 and "Retry-After" not in headers
    assert fetch(cmc.url + MAP + "?symbol=BTC")[0] == 200  # another path is untouched


def test_rate_limit_on_a_page_is_a_cloudflare_1015_page(cmc: CMCServer) -> None:
    cmc.add_fault("rate_limit", "/currencies/")
    status, _headers, body = fetch(cmc.page_url("bitcoin"), key=None)
    assert status == 429 and b"You are being rate limited" in body
    assert fetch(cmc.page_url("bitcoin"), key=None)[0] == 200


def test_cloudflare_block_for_n_requests(cmc: CMCServer) -> None:
    cmc.add_fault("cloudflare", "/currencies/duko/", times=2)
    for _ in range(2):
        status, headers, body = fetch(cmc.page_url("duko"), key=None)
        assert status == 403
        assert b"Sorry, you have been blocked" in body and b"__NEXT_DATA__" not in body
        assert headers["Server"] == "cloudflare" and headers["CF-RAY"]
    assert fetch(cmc.page_url("bitcoin"), key=None)[0] == 200
    assert fetch(cmc.page_url("duko"), key=None)[0] == 200


def test_cloudflare_block_always(cmc: CMCServer) -> None:
    cmc.add_fault("cloudflare", "/currencies/notcoin/", times=None)
    assert [fetch(cmc.page_url("notcoin"), key=None)[0] for _ in range(4)] == [403] * 4
    assert cmc.faults.list()[0]["hits"] == 4


def test_server_errors_for_n_requests(cmc: CMCServer) -> None:
    cmc.add_fault("server_error", INFO, times=2)
    cmc.add_fault("server_error", "/currencies/", times=1, status=503)
    assert fetch(cmc.url + INFO + "?id=1")[0] == 500
    assert fetch(cmc.url + INFO + "?id=1")[0] == 500
    assert fetch(cmc.url + INFO + "?id=1")[0] == 200
    assert fetch(cmc.page_url("bitcoin"), key=None)[0] == 503
    assert fetch(cmc.page_url("bitcoin"), key=None)[0] == 200


def test_slow_page(cmc: CMCServer) -> None:
    cmc.slow_page("gorilla", 0.4)
    started = time.monotonic()
    status, _headers, body = fetch(cmc.page_url("gorilla"), key=None)
    assert status == 200 and detail_of(body)["symbol"] == "GORILLA"
    assert time.monotonic() - started >= 0.4
    # A page held by the server does not hold others: bitcoin is answered first.
    held = cmc.slow_page("gorilla", 1.6, times=1)
    answers: list[int] = []
    worker = threading.Thread(
        target=lambda: answers.append(fetch(cmc.page_url("gorilla"), key=None)[0])
    )
    worker.start()
    wait_until(lambda: held.hits, 10, "the server to hold the gorilla request", interval=0.01)
    assert fetch(cmc.page_url("bitcoin"), key=None)[0] == 200 and not answers
    worker.join()
    assert answers == [200]


def test_truncated_body(cmc: CMCServer) -> None:
    cmc.add_fault("truncate", "/currencies/bitcoin/", fraction=0.25)
    request = urllib.request.Request(cmc.page_url("bitcoin"))
    with (
        urllib.request.urlopen(request, timeout=10) as response,
        pytest.raises(http.client.IncompleteRead) as caught,
    ):
        response.read()
    declared = int(response.headers["Content-Length"])
    assert len(caught.value.partial) == int(declared * 0.25) < declared
    assert fetch(cmc.page_url("bitcoin"), key=None)[0] == 200


def test_page_without_next_data(cmc: CMCServer) -> None:
    cmc.add_fault("no_next_data", "/currencies/ethereum/")
    status, _headers, body = fetch(cmc.page_url("ethereum"), key=None)
    assert status == 200
    assert b"__NEXT_DATA__" not in body
    assert b'data-role="coin-symbol">ETH<' in body  # the HTML still shows the coin
    assert b'data-test="text-cdp-price-display">$4,285.37<' in body
    assert b"__NEXT_DATA__" in fetch(cmc.page_url("ethereum"), key=None)[2]


@pytest.mark.parametrize("slug", ["santiment", "notcoin"])
def test_page_whose_next_data_changed_shape(cmc: CMCServer, slug: str) -> None:
    cmc.add_fault("changed_next_data", f"/currencies/{slug}/")
    status, _headers, body = fetch(cmc.page_url(slug), key=None)
    assert status == 200
    detail_res = next_data(body)["props"]["pageProps"]["detailRes"]
    assert "detail" not in detail_res
    assert detail_res["coinDetail"]["slug"] == slug
    assert (
        "detail"
        in next_data(fetch(cmc.page_url(slug), key=None)[2])["props"]["pageProps"]["detailRes"]
    )


def test_dropped_connection(cmc: CMCServer) -> None:
    cmc.add_fault("drop", MAP)
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        fetch(cmc.url + MAP + "?symbol=BTC")
    assert fetch(cmc.url + MAP + "?symbol=BTC")[0] == 200


@pytest.mark.parametrize(
    ("code", "http_status"),
    [
        (1001, 401),
        (1002, 401),
        (1003, 402),
        (1004, 402),
        (1005, 403),
        (1006, 403),
        (1007, 403),
        (1008, 429),
        (1009, 429),
        (1010, 429),
        (1011, 429),
    ],
)
def test_fatal_api_codes_on_their_http_status(cmc: CMCServer, code: int, http_status: int) -> None:
    cmc.add_fault("api_error", LISTINGS, error_code=code)
    status, body = fetch_json(cmc.url + LISTINGS)
    assert status == http_status
    assert body["status"]["error_code"] == code
    assert body["status"]["error_message"] == ERRORS[code][1]
    assert fetch(cmc.url + LISTINGS)[0] == 200


def test_http_200_with_a_non_zero_error_code(cmc: CMCServer) -> None:
    cmc.add_fault("api_error", INFO, error_code=1006, status=200)
    status, body = fetch_json(cmc.url + INFO + "?id=1")
    assert status == 200
    assert body["status"]["error_code"] == 1006 and "data" not in body


def test_faults_are_reset_between_tests(cmc: CMCServer) -> None:
    assert cmc.faults.list() == []
    assert cmc.requests == []


def test_bad_fault_specs_are_refused(cmc: CMCServer) -> None:
    with pytest.raises(ValueError, match="kind"):
        cmc.add_fault("explode")
    with pytest.raises(ValueError, match="delay"):
        cmc.add_fault("slow", "/currencies/")
    with pytest.raises(ValueError, match="error_code"):
        cmc.add_fault("api_error", LISTINGS)


# -- the request log and the control endpoint ------------------------------------------


def test_request_log_records_path_query_and_headers(cmc: CMCServer) -> None:
    fetch(cmc.url + LISTINGS + "?start=1&limit=5&convert=USD")
    fetch(cmc.page_url("bitcoin"), key=None)
    api_calls = cmc.requests_for("/v1/")
    assert len(api_calls) == 1
    call = api_calls[0]
    assert call["query"] == {"start": ["1"], "limit": ["5"], "convert": ["USD"]}
    assert call["headers"]["x-cmc_pro_api_key"] == DEFAULT_API_KEY
    assert DEFAULT_API_KEY not in call["query_string"]  # the key went only in the header
    assert call["status"] == 200
    assert [r["path"] for r in cmc.requests] == [LISTINGS, "/currencies/bitcoin/"]


def test_control_endpoint_over_http(cmc: CMCServer) -> None:
    control = CMCControl(cmc.url)
    assert control.health()["coins"] == 5000
    added = control.add_fault("server_error", MAP, times=1)
    assert added["kind"] == "server_error" and control.faults()[0]["id"] == added["id"]
    assert fetch(cmc.url + MAP + "?symbol=BTC")[0] == 500
    assert control.faults() == []
    assert [r["status"] for r in control.requests(MAP)] == [500]
    with pytest.raises(ValueError, match="400"):
        control.add_fault("nonsense")
    hot = [c for c in control.coins() if c["symbol"] == "HOT"]
    assert len(hot) == 3
    control.hide_from_info(1027)
    assert cmc.info_hidden == {1027}
    control.set_api_key("k2")
    assert fetch(cmc.url + MAP + "?symbol=BTC", key="k2")[0] == 200
    control.reset()
    assert control.requests() == [] and cmc.api_key == DEFAULT_API_KEY
    assert cmc.info_hidden == set()


# -- the catalogue and the separate process --------------------------------------------


def test_catalogue_is_deterministic() -> None:
    assert Catalogue(300, seed=1).digest() == Catalogue(300, seed=1).digest()
    assert Catalogue(300, seed=1).digest() != Catalogue(300, seed=2).digest()
    small = Catalogue(5)
    ranks = sorted(c.rank for c in small.ranked)
    assert ranks == list(range(1, len(small.ranked) + 1))  # built-ins packed, no gaps


def test_server_as_its_own_process() -> None:
    with spawn_server(coins=40) as server:
        assert server.url.startswith("http://127.0.0.1:")
        health = server.control.health()
        assert health["digest"] == Catalogue(40).digest()
        status, body = fetch_json(server.url + LISTINGS + "?limit=5000")
        assert status == 200 and len(body["data"]) == 40
        server.control.add_fault("cloudflare", "/currencies/bitcoin/")
        assert fetch(server.url + "/currencies/bitcoin/", key=None)[0] == 403
        assert fetch(server.url + "/currencies/bitcoin/", key=None)[0] == 200
    assert server.process.returncode is not None
