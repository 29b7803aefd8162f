"""`scrapy crawl coin` as a real process against the CoinMarketCap test server.

Each crawl costs about a second of process start-up, so each test covers several
behaviours in one crawl. Retries wait `RETRY_BACKOFF_BASE` (tiny here) and AutoThrottle
is off, so the tests measure the spider, not its politeness.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cmc_server import CMCServer
from tests.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
HOT_SLUGS = {"holo", "hydro-protocol", "hot-token"}


@dataclass
class Crawl:
    returncode: int
    stdout: str
    stderr: str
    folder: Path
    seconds: float

    @property
    def data(self) -> list[dict[str, Any]]:
        return json.loads((self.folder / "data.json").read_text(encoding="utf-8"))

    @property
    def job(self) -> dict[str, Any]:
        return json.loads((self.folder / "job.json").read_text(encoding="utf-8"))

    @property
    def items(self) -> list[dict[str, Any]]:
        lines = (self.folder / "items.jl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {entry["coin"]: entry["output"] for entry in self.data}


def crawl_command(cmc: CMCServer, data_dir: Path, job_id: str, *args: str, **settings: Any):
    merged = {
        **cmc.settings(),
        "DATA_DIR": str(data_dir),
        "JOB_ID": job_id,
        "AUTOTHROTTLE_ENABLED": "False",
        "RETRY_BACKOFF_BASE": "0.05",
        "RETRY_TIMES": "2",
        "LOG_LEVEL": "INFO",
        **{k: str(v) for k, v in settings.items()},
    }
    command = [sys.executable, "-m", "scrapy", "crawl", "coin", *args]
    for key, value in merged.items():
        command += ["-s", f"{key}={value}"]
    # The settings come from -s alone: no CMC_* from the developer's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMC_", "JOB_ID", "DATA_DIR"))}
    return command, env


def run_crawl(
    cmc: CMCServer, tmp_path: Path, *args: str, job_id: str = "job-1", **settings: Any
) -> Crawl:
    command, env = crawl_command(cmc, tmp_path, job_id, *args, **settings)
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    return Crawl(
        done.returncode, done.stdout, done.stderr, tmp_path / job_id, time.monotonic() - started
    )


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def page_hits(cmc: CMCServer, slug: str) -> list[dict[str, Any]]:
    return cmc.requests_for(f"/currencies/{slug}/")


def test_mixed_symbols_slugs_ids_unknown_and_colliding(cmc: CMCServer, tmp_path: Path) -> None:
    asked = ["DUKO", "bitcoin", "1027", "HOT", "not", "nosuchcoin", "999999999", "slug:shiba-inu"]
    crawl = run_crawl(cmc, tmp_path, "-a", "coins=" + ",".join(asked))
    assert crawl.returncode == 0, crawl.stderr[-3000:]

    # data.json: every coin asked for, in the order asked.
    assert [entry["coin"] for entry in crawl.data] == asked
    out = crawl.outputs()
    duko = out["DUKO"]
    assert (duko["id"], duko["slug"], duko["symbol"], duko["source"]) == (
        30229,
        "duko",
        "DUKO",
        "page",
    )
    assert duko["price"] == pytest.approx(0.003913)
    assert duko["price_change"] == pytest.approx(-5.44)
    assert duko["market_cap"] == 37814377
    assert duko["market_cap_rank"] == 740
    assert duko["volume"] == pytest.approx(4583151)
    assert duko["volume_change"] == pytest.approx(12.21)
    assert duko["circulating_supply"] == 9663955990
    assert duko["total_supply"] == 9999609598
    assert duko["diluted_market_cap"] == 39127766
    assert duko["contracts"] and all(c["name"] and c["address"] for c in duko["contracts"])
    assert duko["logo"] == cmc.logo_url.format(id=30229)
    assert duko["logo_path"] == "Images/30229.png"
    assert out["bitcoin"]["id"] == 1 and out["bitcoin"]["contracts"] == []
    assert out["bitcoin"]["max_supply"] == 21000000
    assert out["1027"]["slug"] == "ethereum" and out["1027"]["max_supply"] is None
    assert out["slug:shiba-inu"]["id"] == 5994
    # A lower-case symbol with no page of that name falls back to the symbol: NOT ->
    # the active Notcoin, the inactive Nothing Token as a candidate.
    assert out["not"]["slug"] == "notcoin"
    assert [c["slug"] for c in out["not"]["candidates"]] == ["nothing-token"]

    # The colliding symbol: the active coin with the best rank, the others as candidates.
    hot = out["HOT"]
    assert hot["slug"] == "holo"
    assert {c["slug"] for c in hot["candidates"]} == HOT_SLUGS - {"holo"}

    # Unknown coins are errors of their own, never silent and never failing the others.
    assert out["nosuchcoin"] == {
        "error": "not found: the site has no coin page /currencies/nosuchcoin/"
    }
    assert out["999999999"] == {"error": "not found: CMC has no coin with id 999999999"}

    # One map call for every symbol, one info call for the ids; the key only in a header.
    maps = cmc.requests_for("/v1/cryptocurrency/map")
    assert len(maps) == 1
    assert set(maps[0]["query"]["symbol"][0].split(",")) == {
        "DUKO",
        "BITCOIN",
        "HOT",
        "NOT",
        "NOSUCHCOIN",
    }
    assert maps[0]["headers"]["x-cmc_pro_api_key"] == cmc.api_key
    infos = cmc.requests_for("/v2/cryptocurrency/info")
    assert len(infos) == 1 and infos[0]["query"]["id"] == ["1027,999999999"]
    assert all(cmc.api_key not in r["query_string"] for r in cmc.requests)
    assert cmc.api_key not in crawl.stderr + crawl.stdout

    # items.jl: one line per coin (each a complete JSON object), errors included.
    items = crawl.items
    assert sorted(item["query"] for item in items) == sorted(asked)
    assert {item["query"] for item in items if item.get("error")} == {"nosuchcoin", "999999999"}

    # job.json: the manifest of the finished job.
    job = crawl.job
    assert job["job_id"] == "job-1" and job["spider"] == "coin"
    assert job["arguments"] == {"coins": ",".join(asked)}
    assert job["close_reason"] == "finished" and job["succeeded"] is True
    assert (job["items"], job["errors"]) == (6, 2)
    assert {e["coin"] for e in job["coin_errors"]} == {"nosuchcoin", "999999999"}
    assert job["started"] <= job["finished"]

    # Logos: the bytes the site serves, stored under Images/<id>.png.
    for coin_id in (30229, 1, 1027, 2682, 28850, 5994):
        stored = (crawl.folder / "Images" / f"{coin_id}.png").read_bytes()
        assert stored == fetch(cmc.logo_url.format(id=coin_id))
        assert stored.startswith(b"\x89PNG\r\n\x1a\n")


def test_without_a_key_names_are_slugs_and_ids_are_reported(cmc: CMCServer, tmp_path: Path) -> None:
    payload = json.dumps({"coins": ["DUKO", "santiment", "1", "untracked-token", "HOT"]})
    crawl = run_crawl(cmc, tmp_path, "-a", f"payload={payload}", CMC_API_KEY="")
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    out = crawl.outputs()
    assert out["DUKO"]["id"] == 30229
    assert out["santiment"]["id"] == 1807
    assert "CMC_API_KEY" in out["1"]["error"]
    # Without the map, HOT is only a slug, and no coin has that slug.
    assert out["HOT"]["error"].startswith("not found")
    # An untracked coin: CMC's zeros are unknowns.
    untracked = out["untracked-token"]
    assert untracked["market_cap"] is None
    assert untracked["volume"] is None
    assert untracked["circulating_supply"] is None
    assert untracked["total_supply"] == 1000000000
    assert cmc.requests_for("/v1/") == []
    assert crawl.job["arguments"] == {"coins": ["DUKO", "santiment", "1", "untracked-token", "HOT"]}


def test_blocked_pages_retry_with_backoff_then_give_up(cmc: CMCServer, tmp_path: Path) -> None:
    cmc.add_fault("cloudflare", "/currencies/duko/", times=1)  # recovers on the retry
    cmc.add_fault("rate_limit", "/currencies/notcoin/", times=1)  # a 429, then fine
    cmc.add_fault("cloudflare", "/currencies/gorilla/", times=None)  # never recovers
    cmc.add_fault("no_next_data", "/currencies/shiba-inu/", times=None)  # HTML fallback
    cmc.add_fault("drop", "/currencies/dogecoin/", times=None)  # no answer at all
    crawl = run_crawl(
        cmc, tmp_path, "-a", "coins=duko,gorilla,notcoin,shiba-inu,dogecoin", CMC_API_KEY=""
    )
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    out = crawl.outputs()
    assert out["duko"]["id"] == 30229
    assert out["notcoin"]["id"] == 28850
    assert out["gorilla"] == {
        "error": "blocked: Cloudflare block page (HTTP 403), 3 attempts at /currencies/gorilla/"
    }
    # The page without its JSON was read from the HTML: subscript-zero price and all.
    shib = out["shiba-inu"]
    assert shib["id"] == 5994 and shib["symbol"] == "SHIB"
    assert shib["price"] == pytest.approx(0.00003913, rel=1e-3)
    real = cmc.coin("shiba-inu")
    assert shib["market_cap"] == pytest.approx(real.market_cap, rel=0.01)
    assert shib["circulating_supply"] == pytest.approx(real.circulating_supply, rel=0.01)
    assert shib["logo_path"] == "Images/5994.png"
    assert len(page_hits(cmc, "duko")) == 2
    assert len(page_hits(cmc, "notcoin")) == 2
    gorilla = page_hits(cmc, "gorilla")
    assert len(gorilla) == 3  # RETRY_TIMES=2: the first try and two retries
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(gorilla)]
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09  # 0.05 s, then 0.1 s of backoff
    assert out["dogecoin"]["error"].startswith("download failed: ")
    # Three tries by Scrapy; Twisted may silently re-send on a reused connection too.
    assert len(page_hits(cmc, "dogecoin")) >= 3
    assert [e["coin"] for e in crawl.job["coin_errors"]] == ["gorilla", "dogecoin"]


def test_api_rate_limit_and_a_refused_key(cmc: CMCServer, tmp_path: Path) -> None:
    # The map call is rate limited once, then the key is refused: names fall back to
    # slugs, ids cannot be resolved, and the key shows up nowhere.
    cmc.add_fault("rate_limit", "/v1/cryptocurrency/map", times=1)
    wrong_key = "00000000-dead-beef-0000-000000000000"
    crawl = run_crawl(
        cmc, tmp_path, "-a", "coins=duko,1", CMC_API_KEY=wrong_key, CMC_RATE_LIMIT_DELAY="0.2"
    )
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    out = crawl.outputs()
    assert out["duko"]["id"] == 30229
    assert out["1"]["error"].startswith("could not resolve the id: id lookup failed: ")
    maps = cmc.requests_for("/v1/cryptocurrency/map")
    assert [m["status"] for m in maps] == [429, 401]
    assert maps[1]["time"] - maps[0]["time"] >= 0.2
    warnings = crawl.job["lookup_warnings"]
    assert len(warnings) == 2 and "code 1001" in warnings[0]
    assert wrong_key not in crawl.stderr + crawl.stdout
    assert wrong_key not in (crawl.folder / "job.json").read_text(encoding="utf-8")


def test_a_crawl_that_collected_nothing_exits_non_zero(cmc: CMCServer, tmp_path: Path) -> None:
    crawl = run_crawl(cmc, tmp_path, "-a", "coins=nosuchcoin,another-missing-coin")
    assert crawl.returncode == 1
    job = crawl.job
    assert job["succeeded"] is False and job["close_reason"] == "finished"
    assert [entry["coin"] for entry in crawl.data] == ["nosuchcoin", "another-missing-coin"]
    assert all("error" in entry["output"] for entry in crawl.data)

    empty = run_crawl(cmc, tmp_path, "-a", "coins= , ", job_id="job-2")
    assert empty.returncode == 1
    assert empty.job["job_errors"][0]["code"] == "bad_arguments"
    assert "no coins given" in empty.job["job_errors"][0]["message"]
    assert empty.data == []


def test_a_killed_crawl_keeps_items_and_never_half_writes_data_json(
    cmc: CMCServer, tmp_path: Path
) -> None:
    cmc.slow_page("gorilla", delay=60)
    command, env = crawl_command(
        cmc, tmp_path, "job-kill", "-a", "coins=duko,bitcoin,gorilla,dogecoin", CMC_API_KEY=""
    )
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    folder = tmp_path / "job-kill"
    items_file = folder / "items.jl"
    try:
        wait_until(
            lambda: items_file.exists() and items_file.read_bytes().count(b"\n"),
            30,
            "the crawl to scrape the three fast coins (lines in items.jl)",
            until=lambda lines: lines >= 3,
        )
        assert page_hits(cmc, "gorilla"), "the slow page should be pending"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    raw = items_file.read_bytes()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.splitlines()]
    assert sorted(r["query"] for r in records) == ["bitcoin", "dogecoin", "duko"]
    assert all(r["id"] and r["price"] for r in records)
    # No data.json, not even a temp file of one; job.json is the one written at start.
    assert not (folder / "data.json").exists()
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    assert job["finished"] is None and job["succeeded"] is None


def test_backoff_delays() -> None:
    from scrapy import Request

    from coinspiders.middlewares import RetryBackoffMiddleware

    backoff = RetryBackoffMiddleware(base=2.0, maximum=10.0)
    first = Request("http://127.0.0.1/")
    assert backoff.delay_for(first) == 0
    delays = [backoff.delay_for(first.replace(meta={"retry_times": n})) for n in (1, 2, 3, 4)]
    assert delays == [2.0, 4.0, 8.0, 10.0]


def test_sigterm_finishes_what_is_in_flight_and_marks_the_rest(
    cmc: CMCServer, tmp_path: Path
) -> None:
    # One request at a time: while the slow first page is in flight, the rest wait.
    cmc.slow_page("duko", delay=1.5)
    command, env = crawl_command(
        cmc,
        tmp_path,
        "job-term",
        "-a",
        "coins=duko,bitcoin,dogecoin",
        CMC_API_KEY="",
        CONCURRENT_REQUESTS=1,
    )
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: page_hits(cmc, "duko"), 30, "the crawl to ask for duko's page")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    folder = tmp_path / "job-term"
    data = json.loads((folder / "data.json").read_text(encoding="utf-8"))
    assert [entry["coin"] for entry in data] == ["duko", "bitcoin", "dogecoin"]
    assert data[0]["output"]["id"] == 30229  # the page in flight was finished
    assert (
        data[1]["output"]
        == data[2]["output"]
        == {"error": "not collected: the crawl ended before this coin was done"}
    )
    job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    assert (job["close_reason"], job["succeeded"]) == ("shutdown", False)


def test_a_second_crawl_with_the_same_job_id_leaves_the_first_ones_folder_alone(
    cmc: CMCServer, tmp_path: Path
) -> None:
    first = run_crawl(cmc, tmp_path, "-a", "coins=duko", job_id="job-twice", CMC_API_KEY="")
    assert first.returncode == 0, first.stderr[-3000:]
    folder = first.folder
    before = {name: (folder / name).read_bytes() for name in ("job.json", "data.json", "items.jl")}
    # The first crawl still owns the folder: it holds the lock on items.jl.
    with open(folder / "items.jl", "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = run_crawl(cmc, tmp_path, "-a", "coins=bitcoin", job_id="job-twice", CMC_API_KEY="")
    assert second.returncode != 0
    assert "is in use by another crawl" in second.stderr
    after = {name: (folder / name).read_bytes() for name in before}
    assert after == before
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_server_error_on_the_symbol_lookup_is_retried_before_falling_back(
    cmc: CMCServer, tmp_path: Path
) -> None:
    # HOT is three coins' symbol and no coin's slug: only the map call can pick holo.
    cmc.add_fault("server_error", "/v1/cryptocurrency/map", times=1)
    crawl = run_crawl(cmc, tmp_path, "-a", "coins=HOT")
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    hot = crawl.outputs()["HOT"]
    assert (hot["id"], hot["slug"]) == (2682, "holo")
    assert [m["status"] for m in cmc.requests_for("/v1/cryptocurrency/map")] == [500, 200]
    assert "lookup_warnings" not in crawl.job
