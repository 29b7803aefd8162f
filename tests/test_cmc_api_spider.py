"""`scrapy crawl cmc_api` as a real process against the local CMC test server.

Every crawl here is checked for the API key: it must not appear in the process's
stdout/stderr nor in any file of the job folder. Crawls that do not depend on each
other run at the same time (one process each), so the file stays fast on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from coinspiders.spiders.cmc_api import ListingPlan, listing_plan
from tests.cmc_server import ERRORS, CMCServer
from tests.cmcfake import png
from tests.daemon_support import read_items

REPO = Path(__file__).resolve().parent.parent
LISTINGS = "/v1/cryptocurrency/listings/latest"
INFO = "/v2/cryptocurrency/info"
KEY_HEADER = "x-cmc_pro_api_key"


# --- argument checking (pure) ---------------------------------------------------------


def test_listing_plan_defaults_and_payload_types():
    assert listing_plan({}) == ListingPlan(start=1, limit=100, convert="USD")
    plan = listing_plan({"limit": "5000", "start": 3, "convert": " eur "})
    assert plan == ListingPlan(start=3, limit=5000, convert="EUR")
    assert plan.end == 5002


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 5000, got '0'"),
        ({"limit": 5001}, "limit must be a whole number from 1 to 5000, got 5001"),
        ({"limit": "ten"}, "got 'ten'"),
        ({"limit": True}, "got True"),
        ({"limit": 2.5}, "got 2.5"),
        ({"start": "-1"}, "start must be a whole number"),
        ({"convert": "USD,BTC"}, "convert must be one currency symbol"),
        ({"convert": 7}, "convert must be one currency symbol"),
        ({"coins": "BTC"}, "unknown argument(s) coins; cmc_api takes limit, start, convert"),
    ],
)
def test_listing_plan_rejects_bad_values_by_name(arguments, message):
    with pytest.raises(ValueError, match=None) as excinfo:
        listing_plan(arguments)
    assert message in str(excinfo.value)


# --- running real crawls --------------------------------------------------------------


@dataclass
class Crawl:
    returncode: int
    output: str
    folder: Path

    def job(self) -> dict[str, Any]:
        return json.loads((self.folder / "job.json").read_text(encoding="utf-8"))

    def data(self) -> list[dict[str, Any]]:
        return json.loads((self.folder / "data.json").read_text(encoding="utf-8"))

    def items(self) -> list[dict[str, Any]]:
        return read_items(self.folder / "items.jl")


def _command(args: list[str], settings: dict[str, str]) -> list[str]:
    command = [sys.executable, "-m", "scrapy", "crawl", "cmc_api"]
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]
    return command + args


@contextmanager
def crawls(
    tmp_path: Path, runs: list[tuple[list[str], dict[str, str], dict[str, str]]]
) -> Iterator[list[Crawl]]:
    """Start every (args, settings, env) crawl at once; yield them all when finished."""
    env_base = {k: v for k, v in os.environ.items() if not k.startswith(("CMC_", "SCRAPY_"))}
    env_base.pop("JOB_ID", None)
    env_base.pop("DATA_DIR", None)
    started = []
    for number, (args, settings, env) in enumerate(runs):
        job_id = f"job{number}"
        all_settings = {"DATA_DIR": str(tmp_path), "JOB_ID": job_id, **settings}
        started.append(
            (
                subprocess.Popen(
                    _command(args, all_settings),
                    cwd=REPO,
                    env={**env_base, **env},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                ),
                tmp_path / job_id,
            )
        )
    finished = []
    try:
        for process, folder in started:
            output, _ = process.communicate(timeout=180)
            finished.append(Crawl(process.returncode, output, folder))
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    yield finished


def assert_key_never_shown(crawl: Crawl, key: str) -> None:
    assert key not in crawl.output
    if crawl.folder.exists():
        for path in crawl.folder.rglob("*"):
            if path.is_file() and path.suffix != ".png":
                assert key.encode() not in path.read_bytes(), path


def server_settings(cmc: CMCServer, **extra: str) -> dict[str, str]:
    settings = {k: v for k, v in cmc.settings().items() if k != "CMC_API_KEY"}
    return {**settings, **extra}


def query(entry: dict[str, Any]) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(entry["query_string"]).items()}


# --- the happy path: pages, info batches, logos ---------------------------------------


def test_250_coins_over_pages_with_info_batches_and_logos(cmc, tmp_path):
    key = cmc.api_key
    settings = server_settings(cmc, CMC_API_KEY=key, CMC_API_PAGE_SIZE="100", LOG_LEVEL="DEBUG")
    with crawls(tmp_path, [(["-a", "limit=250"], settings, {})]) as (crawl,):
        pass
    assert crawl.returncode == 0, crawl.output[-3000:]
    assert_key_never_shown(crawl, key)

    # Three listing pages, the last one asked for the 50 that remain.
    pages = [query(e) for e in cmc.requests_for(LISTINGS)]
    assert [(p["start"], p["limit"], p["convert"]) for p in pages] == [
        ("1", "100", "USD"),
        ("101", "100", "USD"),
        ("201", "50", "USD"),
    ]
    infos = [query(e) for e in cmc.requests_for(INFO)]
    asked = [int(i) for q in infos for i in q["id"].split(",")]
    assert all(len(q["id"].split(",")) <= 100 and q["skip_invalid"] == "true" for q in infos)
    expected = cmc.catalogue.ranked[:250]
    assert sorted(asked) == sorted(c.id for c in expected)
    # The key goes to the API in its header, and nowhere else.
    api_requests = cmc.requests_for("/v")
    assert api_requests and all(e["headers"][KEY_HEADER] == key for e in api_requests)
    logo_requests = cmc.requests_for("/static/")
    assert all(KEY_HEADER not in e["headers"] for e in logo_requests)
    assert all("CMC_PRO_API_KEY" not in e["query_string"] for e in cmc.requests)

    data = crawl.data()
    assert [r["id"] for r in data] == [c.id for c in expected]
    assert [r["market_cap_rank"] for r in data] == list(range(1, 251))
    assert len(crawl.items()) == 250
    for record, coin in zip(data, expected, strict=True):
        assert record["source"] == "api"
        assert record["volume_rank"] is None
        assert (record["name"], record["symbol"], record["slug"]) == (
            coin.name,
            coin.symbol,
            coin.slug,
        )
        assert record["price"] == pytest.approx(coin.price)
        assert record["contracts"] == [
            {"name": c["platform"], "address": c["address"]} for c in coin.public()["contracts"]
        ]
        websites = coin.full_urls()["website"]
        assert [x["link"] for x in record["official_links"] if x["name"] == "website"] == websites
        # Every logo stored, byte for byte.
        assert record["logo_path"] == f"Images/{coin.id}.png"
        assert (crawl.folder / record["logo_path"]).read_bytes() == png.logo(coin.id)

    job = crawl.job()
    assert job["succeeded"] is True and job["close_reason"] == "finished"
    assert job["items"] == 250 and job["job_errors"] == []
    assert job["arguments"] == {"limit": "250"}
    assert job["info_missing"] == []
    assert job["coins_listed"] == 250
    # 3 pages of at most 200 coins + 3 info calls of at most 100 ids: one credit each.
    assert job["credit_count"] == 6


# --- rate limits ----------------------------------------------------------------------


def test_rate_limit_clears_after_one_retry_and_retry_after_is_honoured(cmc, tmp_path):
    cmc.add_fault("rate_limit", LISTINGS, times=1)  # 429 + 1008, no Retry-After
    cmc.add_fault("rate_limit", INFO, times=1, retry_after=1)
    settings = server_settings(cmc, CMC_RATE_LIMIT_DELAY="0.3")
    payload = json.dumps({"limit": 30, "convert": "eur"})
    env = {"CMC_API_KEY": cmc.api_key}
    with crawls(tmp_path, [(["-a", f"payload={payload}"], settings, env)]) as (crawl,):
        pass
    assert crawl.returncode == 0, crawl.output[-3000:]
    assert_key_never_shown(crawl, cmc.api_key)
    listings = cmc.requests_for(LISTINGS)
    assert [e["status"] for e in listings] == [429, 200]
    assert query(listings[1]) == {"start": "1", "limit": "30", "convert": "EUR"}
    assert listings[1]["time"] - listings[0]["time"] >= 0.3
    infos = cmc.requests_for(INFO)
    assert [e["status"] for e in infos] == [429, 200]
    # Retry-After (1 s) wins over the configured delay (0.3 s).
    assert infos[1]["time"] - infos[0]["time"] >= 1.0
    data = crawl.data()
    assert len(data) == 30
    eur = cmc.catalogue.ranked[0].price / 1.1688
    assert data[0]["price"] == pytest.approx(eur)
    job = crawl.job()
    assert job["succeeded"] is True and job["job_errors"] == []
    assert job["arguments"] == {"limit": 30, "convert": "eur"}
    assert "rate limit (1008)" in crawl.output


def test_rate_limit_that_never_clears_is_reported_after_the_bounded_retries(cmc, tmp_path):
    cmc.add_fault("rate_limit", LISTINGS, times=None)
    settings = server_settings(
        cmc, CMC_API_KEY=cmc.api_key, CMC_RATE_LIMIT_DELAY="0.05", CMC_RATE_LIMIT_RETRIES="2"
    )
    with crawls(tmp_path, [(["-a", "limit=5"], settings, {})]) as (crawl,):
        pass
    assert crawl.returncode == 1
    assert len(cmc.requests_for(LISTINGS)) == 3
    assert cmc.requests_for(INFO) == []
    (error,) = crawl.job()["job_errors"]
    assert error["code"] == 1008
    assert "still limited after 2 retries" in error["message"]
    assert_key_never_shown(crawl, cmc.api_key)


# --- fatal codes ----------------------------------------------------------------------

FATAL_ON_LISTINGS = (1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011)
FATAL_ON_INFO = (1009, 1010)


def test_every_fatal_code_stops_the_crawl_and_is_recorded(tmp_path):
    """One small server per code (a fault matches by path), all crawls at once."""
    codes = FATAL_ON_LISTINGS + FATAL_ON_INFO
    servers = [CMCServer(coins=150).start() for _ in codes]
    try:
        runs = []
        for code, server in zip(codes, servers, strict=True):
            path = LISTINGS if code in FATAL_ON_LISTINGS else INFO
            settings = server_settings(server, CMC_RATE_LIMIT_DELAY="0.05")
            limit = 10
            if code == 1010:
                # Three info batches in flight; the first answer stops the crawl.
                limit = 150
                settings["CMC_API_INFO_BATCH"] = "50"
            server.add_fault("api_error", path, times=None, error_code=code)
            runs.append((["-a", f"limit={limit}"], settings, {"CMC_API_KEY": server.api_key}))
        with crawls(tmp_path, runs) as finished:
            pass
        for code, server, crawl in zip(codes, servers, finished, strict=True):
            assert crawl.returncode == 1, (code, crawl.output[-2000:])
            assert_key_never_shown(crawl, server.api_key)
            job = crawl.job()
            assert job["succeeded"] is False
            assert job["close_reason"] == f"cmc_api_error_{code}"
            (error,) = job["job_errors"]
            assert error["code"] == code
            assert f"Pro API error {code}" in error["message"]
            # The API's own message is recorded (e.g. "This API Key is invalid.").
            http_status, message = ERRORS[code]
            assert message in error["message"]
            if code in FATAL_ON_LISTINGS:
                assert [e["status"] for e in server.requests_for(LISTINGS)] == [http_status]
                assert server.requests_for(INFO) == []
                assert crawl.data() == [] and job["items"] == 0
            elif code == 1010:
                # Every coin listed before the stop is kept, once.
                assert sorted(r["id"] for r in crawl.data()) == sorted(
                    c.id for c in server.catalogue.ranked[:150]
                )
                assert job["items"] == 150
            else:
                # Never resent although it came as a 429; the listing figures are kept.
                assert [e["status"] for e in server.requests_for(INFO)] == [http_status]
                assert len(crawl.data()) == 10
                assert all(r["official_links"] == [] for r in crawl.data())
    finally:
        for server in servers:
            server.stop()


# --- no key, bad arguments ------------------------------------------------------------


def test_missing_key_and_bad_arguments_send_no_request(cmc, tmp_path):
    settings = server_settings(cmc)
    key_env = {"CMC_API_KEY": cmc.api_key}
    runs = [
        (["-a", "limit=10"], settings, {}),  # no key anywhere
        (["-a", "limit=10"], {**settings, "CMC_API_KEY": "  "}, {}),  # blank key
        (["-a", "limit=0"], settings, key_env),
        (["-a", 'payload={"limit": 6000}'], settings, key_env),
        (["-a", "api_key=oops-secret"], settings, key_env),
        (["-a", f"limit={cmc.api_key}"], settings, key_env),  # the key pasted by mistake
    ]
    with crawls(tmp_path, runs) as finished:
        pass
    assert cmc.requests == []
    for crawl in finished:
        assert crawl.returncode == 1, crawl.output[-2000:]
        assert_key_never_shown(crawl, cmc.api_key)
        assert crawl.job()["succeeded"] is False
        assert crawl.data() == []
    no_key, blank_key, zero, too_many, unknown, pasted = (
        c.job()["job_errors"][0] for c in finished
    )
    assert "limit must be a whole number" in pasted["message"]
    assert finished[5].job()["arguments"] == {"limit": "***"}
    assert no_key["code"] == blank_key["code"] == "no_api_key"
    assert "CMC_API_KEY" in no_key["message"] and "no request was sent" in no_key["message"]
    assert "no Pro API key" in finished[0].output
    assert zero["code"] == "bad_arguments" and "limit must be" in zero["message"]
    assert "got 6000" in too_many["message"]
    assert "unknown argument(s) api_key" in unknown["message"]
    # An unknown argument's value is not written anywhere: it may be a secret.
    assert_key_never_shown(finished[4], "oops-secret")


# --- info problems --------------------------------------------------------------------


def test_info_batch_with_one_invalid_id_keeps_every_coin(cmc, tmp_path):
    """A coin listed but unknown to info (delisted in between): skip_invalid keeps the rest."""
    gone = cmc.catalogue.ranked[41]
    cmc.hide_from_info(gone.id)
    settings = server_settings(cmc, CMC_API_KEY=cmc.api_key)
    with crawls(tmp_path, [(["-a", "limit=60", "-a", "start=11"], settings, {})]) as (crawl,):
        pass
    assert crawl.returncode == 0, crawl.output[-3000:]
    assert_key_never_shown(crawl, cmc.api_key)
    (info,) = cmc.requests_for(INFO)
    assert str(gone.id) in query(info)["id"].split(",") and info["status"] == 200
    data = crawl.data()
    assert [r["market_cap_rank"] for r in data] == list(range(11, 71))
    record = next(r for r in data if r["id"] == gone.id)
    assert record["price"] == pytest.approx(gone.price)
    assert record["official_links"] == [] and record["socials"] == []
    # Its logo comes from CMC_LOGO_URL by id instead of info's `logo`.
    assert (crawl.folder / record["logo_path"]).read_bytes() == png.logo(gone.id)
    assert all(r["official_links"] for r in data if r["id"] != gone.id)
    job = crawl.job()
    assert job["info_missing"] == [gone.id]
    assert job["job_errors"] == []


def test_info_batch_that_keeps_failing_is_reported_and_the_rest_kept(cmc, tmp_path):
    # One request at a time, retries ahead of other requests: the 4 failures (first try
    # plus RETRY_TIMES=3) all hit the same info batch.
    cmc.add_fault("server_error", INFO, times=4)
    settings = server_settings(
        cmc,
        CMC_API_KEY=cmc.api_key,
        CONCURRENT_REQUESTS="1",
        RETRY_PRIORITY_ADJUST="0",
        CMC_API_INFO_BATCH="50",
    )
    with crawls(tmp_path, [(["-a", "limit=100"], settings, {})]) as (crawl,):
        pass
    assert crawl.returncode == 1
    assert_key_never_shown(crawl, cmc.api_key)
    data = crawl.data()
    assert len(data) == 100
    without_info = [r for r in data if not r["official_links"]]
    assert len(without_info) == 50
    (error,) = crawl.job()["job_errors"]
    assert error["code"] == 500
    assert (
        "info for 50 coins" in error["message"] and "kept their listing figures" in error["message"]
    )
    # Coins without info still get their logo, from CMC_LOGO_URL by id.
    assert all(r["logo_path"] == f"Images/{r['id']}.png" for r in data)


# --- listings edge cases --------------------------------------------------------------


def test_short_last_page_ends_the_list_and_a_bad_convert_stops_paging(cmc, tmp_path):
    total = len(cmc.catalogue.ranked)
    settings = server_settings(cmc, CMC_API_KEY=cmc.api_key, CMC_API_PAGE_SIZE="100")
    runs = [
        (["-a", f"start={total - 5}", "-a", "limit=300"], settings, {}),
        (["-a", "limit=300", "-a", "convert=XYZ"], settings, {}),
        (["-a", f"start={total + 1}", "-a", "convert=GBP"], settings, {}),
    ]
    with crawls(tmp_path, runs) as (tail, bad_convert, beyond):
        pass
    listings = [query(e) for e in cmc.requests_for(LISTINGS)]
    # The list has 6 coins from there: one short page, no credit spent on empty ones.
    assert [q["start"] for q in listings if q["convert"] == "USD"] == [str(total - 5)]
    assert tail.returncode == 0, tail.output[-2000:]
    assert [r["market_cap_rank"] for r in tail.data()] == list(range(total - 5, total + 1))
    # A bad parameter would fail every page alike: one call, then the job stops.
    assert [q["start"] for q in listings if q["convert"] == "XYZ"] == ["1"]
    assert bad_convert.returncode == 1
    (error,) = bad_convert.job()["job_errors"]
    assert error["code"] == 400 and "convert" in error["message"]
    assert bad_convert.data() == []
    # Past the end of the list: nothing to collect, and job.json says why.
    assert beyond.returncode == 1
    (error,) = beyond.job()["job_errors"]
    assert error["code"] == "no_coins"
    assert f"no coins from rank {total + 1} on (it lists {total})" in error["message"]
    for crawl in (tail, bad_convert, beyond):
        assert_key_never_shown(crawl, cmc.api_key)


def test_listings_page_that_keeps_failing_is_reported_and_the_next_page_read(cmc, tmp_path):
    cmc.add_fault("server_error", LISTINGS, times=4)  # first try + RETRY_TIMES=3
    settings = server_settings(cmc, CMC_API_KEY=cmc.api_key, CMC_API_PAGE_SIZE="100")
    with crawls(tmp_path, [(["-a", "limit=200"], settings, {})]) as (crawl,):
        pass
    assert crawl.returncode == 1
    assert [query(e)["start"] for e in cmc.requests_for(LISTINGS)] == ["1"] * 4 + ["101"]
    assert [r["market_cap_rank"] for r in crawl.data()] == list(range(101, 201))
    (error,) = crawl.job()["job_errors"]
    assert error["code"] == 500 and "listings start=1 limit=100 failed" in error["message"]
    assert_key_never_shown(crawl, cmc.api_key)
