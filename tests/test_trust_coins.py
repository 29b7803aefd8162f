"""What the coin tools say must be true: bad crawl arguments end in job.json, a name tried
only as a slug says so, coin paths explain ids and slugs, unknown parameters are refused,
and figures in two currencies are never mixed in one list or one series.

Crawls are real `scrapy crawl` processes against the CMC test server; the API is a real
daemon reading the job folders those crawls wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.coin_index import INDEX_FILE, CoinFilter, CoinIndex
from tests.cmc_server import CMCServer
from tests.daemon_support import ROOT, DaemonFactory, DaemonProcess, read_items

# --- shell crawls -----------------------------------------------------------------------


def _crawl_command(spider: str, args: list[str], settings: dict[str, str]) -> list[str]:
    command = [sys.executable, "-m", "scrapy", "crawl", spider, *args]
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]
    return command


def run_crawls(
    cmc: CMCServer,
    data_dir: Path,
    runs: list[tuple[str, str, list[str], dict[str, str]]],
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run (job id, spider, args, settings) crawls at once; their results by job id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMC_", "SCRAPY_"))}
    env.pop("JOB_ID", None)
    env.pop("DATA_DIR", None)
    started = {}
    for job_id, spider, args, settings in runs:
        merged = {
            **cmc.settings(),
            "DATA_DIR": str(data_dir),
            "JOB_ID": job_id,
            "AUTOTHROTTLE_ENABLED": "False",
            "RETRY_BACKOFF_BASE": "0.05",
            "RETRY_TIMES": "2",
            "LOG_LEVEL": "INFO",
            **settings,
        }
        started[job_id] = subprocess.Popen(
            _crawl_command(spider, args, merged),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    done = {}
    try:
        for job_id, process in started.items():
            out, err = process.communicate(timeout=180)
            done[job_id] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return done


def job_json(data_dir: Path, job_id: str) -> dict[str, Any]:
    return json.loads((data_dir / job_id / "job.json").read_text(encoding="utf-8"))


def test_a_bad_payload_ends_in_job_json_with_exit_1_and_no_traceback(
    cmc: CMCServer, tmp_path: Path
) -> None:
    done = run_crawls(
        cmc,
        tmp_path,
        [
            ("coin-bad-json", "coin", ["-a", "payload={bad"], {}),
            ("coin-list", "coin", ["-a", "payload=[1]"], {}),
            ("api-list", "cmc_api", ["-a", "payload=[1]"], {}),
        ],
    )
    expected = {
        "coin-bad-json": "payload is not valid JSON",
        "coin-list": "payload must be a JSON object of arguments",
        "api-list": "payload must be a JSON object of arguments",
    }
    for job_id, needle in expected.items():
        result = done[job_id]
        assert result.returncode == 1, (job_id, result.stderr[-2000:])
        assert "Task exception was never retrieved" not in result.stderr, job_id
        assert "Traceback" not in result.stderr, (job_id, result.stderr[-2000:])
        job = job_json(tmp_path, job_id)
        assert job["succeeded"] is False and job["finished"], job
        [error] = job["job_errors"]
        assert error["code"] == "bad_arguments" and needle in error["message"], error
        # The unreadable text is not copied into job.json (it could hold anything).
        assert "{bad" not in json.dumps(job)
    assert "got a JSON list" in job_json(tmp_path, "coin-list")["job_errors"][0]["message"]
    # No request went out for any of them.
    assert cmc.requests_for("/currencies/") == [] and cmc.requests_for("/v1/") == []


def test_a_name_tried_only_as_a_slug_says_so(cmc: CMCServer, tmp_path: Path) -> None:
    # With a key whose symbol lookup keeps failing, the name falls back to a slug too.
    cmc.add_fault("server_error", "/v1/cryptocurrency/map", times=20)
    done = run_crawls(
        cmc,
        tmp_path,
        [
            ("no-key", "coin", ["-a", "coins=NOT,nothing-here,bitcoin"], {"CMC_API_KEY": ""}),
            ("map-down", "coin", ["-a", "coins=HOT"], {}),
        ],
    )
    assert done["no-key"].returncode == 0, done["no-key"].stderr[-2000:]
    out = {
        e["coin"]: e["output"]
        for e in json.loads((tmp_path / "no-key" / "data.json").read_text("utf-8"))
    }
    message = out["NOT"]["error"]
    assert message.startswith("not found: the site has no coin page /currencies/not/"), message
    assert "'NOT' was tried as a slug only" in message
    assert "needs CMC_API_KEY" in message
    assert "tried as a slug only" in out["nothing-here"]["error"]
    assert out["bitcoin"]["id"] == 1 and out["bitcoin"]["currency"] == "USD"
    hot = json.loads((tmp_path / "map-down" / "data.json").read_text("utf-8"))[0]["output"]
    assert "'HOT' was tried as a slug only: the symbol lookup failed" in hot["error"], hot


# --- currencies, end to end -------------------------------------------------------------

USD_PAGE, EUR_API, USD_API, EUR_LEGACY, NO_MANIFEST = (
    "page-usd",
    "api-eur",
    "api-usd",
    "api-eur-legacy",
    "api-legacy-no-manifest",
)


def _strip_currency(folder: Path) -> None:
    """items.jl as a crawl from before `currency` wrote it."""
    lines = []
    for record in read_items(folder / "items.jl"):
        record.pop("currency", None)
        lines.append(json.dumps(record))
    (folder / "items.jl").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def currency_data(
    tmp_path_factory: pytest.TempPathFactory, cmc_server: CMCServer
) -> Iterator[Path]:
    """Job folders of real crawls: coin pages (USD), cmc_api in EUR and in USD, and a copy
    of the EUR and USD crawls as an older version wrote them (no `currency` in their
    records; the USD copy without its job.json either)."""
    cmc_server.reset()
    data = tmp_path_factory.mktemp("currency") / "data"
    done = run_crawls(
        cmc_server,
        data,
        [
            (USD_PAGE, "coin", ["-a", "coins=bitcoin,ethereum"], {}),
            (EUR_API, "cmc_api", ["-a", "limit=3", "-a", "convert=eur"], {}),
            (USD_API, "cmc_api", ["-a", "limit=3"], {}),
        ],
    )
    for job_id, result in done.items():
        assert result.returncode == 0, (job_id, result.stderr[-3000:])
    shutil.copytree(data / EUR_API, data / EUR_LEGACY)
    _strip_currency(data / EUR_LEGACY)
    # An older USD listing whose job.json is gone: USD is assumed (cmc_api's default).
    shutil.copytree(data / USD_API, data / NO_MANIFEST)
    _strip_currency(data / NO_MANIFEST)
    (data / NO_MANIFEST / "job.json").unlink()
    yield data


def test_every_record_carries_its_currency(currency_data: Path) -> None:
    for job_id, currency in ((USD_PAGE, "USD"), (EUR_API, "EUR"), (USD_API, "USD")):
        records = read_items(currency_data / job_id / "items.jl")
        assert records and {r["currency"] for r in records} == {currency}, job_id
    page = json.loads((currency_data / USD_PAGE / "data.json").read_text("utf-8"))
    assert {e["output"]["currency"] for e in page} == {"USD"}
    eur = {r["id"]: r for r in read_items(currency_data / EUR_API / "items.jl")}
    usd = {r["id"]: r for r in read_items(currency_data / USD_API / "items.jl")}
    # The same coin, two currencies: different figures, so mixing them would lie.
    assert eur[1]["price"] < usd[1]["price"]


@pytest.fixture(scope="module")
def currency_daemon(currency_data: Path, start_module_daemon: DaemonFactory) -> DaemonProcess:
    """A daemon serving the coin API over those job folders (coinspiders only)."""
    coinspiders = {"coinspiders": {"path": str(ROOT)}}
    return start_module_daemon(lambda work: coinspiders, data_dir=currency_data)


def _by_job(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["job_id"]: r for r in rows}


def test_lists_and_history_are_of_one_currency(
    currency_daemon: DaemonProcess, currency_data: Path
) -> None:
    prices = {
        job: {r["id"]: r["price"] for r in read_items(currency_data / job / "items.jl")}
        for job in (USD_PAGE, USD_API, EUR_API)
    }
    # The list: USD unless asked, and every row says its currency.
    listed = currency_daemon.get("/api/coins/", params={"symbol": "BTC"}).json()
    assert [(r["id"], r["currency"]) for r in listed] == [(1, "USD")]
    assert listed[0]["price"] in (prices[USD_PAGE][1], prices[USD_API][1])
    eur = currency_daemon.get("/api/coins/", params={"currency": "eur"}).json()
    assert eur and {r["currency"] for r in eur} == {"EUR"}
    assert {r["id"] for r in eur} == set(prices[EUR_API])
    assert {r["price"] for r in eur if r["id"] == 1} == {prices[EUR_API][1]}
    assert currency_daemon.get("/api/coins/", params={"currency": "GBP"}).json() == []
    everything = currency_daemon.get("/api/coins/", params={"limit": "1000"}).json()
    assert {r["currency"] for r in everything} == {"USD"}

    # History: one currency per series, each point labelled.
    usd_history = currency_daemon.get("/api/coins/bitcoin/history/").json()
    assert {h["currency"] for h in usd_history} == {"USD"}
    assert {h["job_id"] for h in usd_history} == {USD_PAGE, USD_API, NO_MANIFEST}
    eur_history = currency_daemon.get("/api/coins/1/history/", params={"currency": "EUR"}).json()
    assert {h["currency"] for h in eur_history} == {"EUR"}
    # The older records: EUR from the job's `convert` in job.json; with no job.json left,
    # USD is assumed (cmc_api's default).
    assert {h["job_id"] for h in eur_history} == {EUR_API, EUR_LEGACY}
    assert {h["price"] for h in eur_history} == {prices[EUR_API][1]}
    assert {h["price"] for h in usd_history} == {prices[USD_PAGE][1], prices[USD_API][1]}
    assert currency_daemon.get("/api/coins/1/history/", params={"currency": "JPY"}).json() == []

    # Detail: the latest record in the currency asked (USD by default).
    assert currency_daemon.get("/api/coins/bitcoin/").json()["currency"] == "USD"
    detail = currency_daemon.get("/api/coins/bitcoin/", params={"currency": "EUR"}).json()
    assert detail["currency"] == "EUR" and detail["price"] == prices[EUR_API][1]
    rsp = currency_daemon.get("/api/coins/bitcoin/", params={"currency": "GBP"})
    assert rsp.status_code == 404
    assert rsp.json() == {
        "error": True,
        "message": "Coin 'bitcoin' was never collected in GBP; it was collected in EUR, USD"
        " (ask with ?currency=EUR)",
    }

    # A job's list is that job's currency without asking.
    legacy = currency_daemon.get("/api/coins/", params={"job": EUR_LEGACY}).json()
    assert legacy and {r["currency"] for r in legacy} == {"EUR"}
    rsp = currency_daemon.get("/api/coins/", params={"currency": "U$D"})
    assert (
        rsp.status_code == 400 and "'currency' must be one currency code" in rsp.json()["message"]
    )


def test_a_symbol_in_a_coin_path_points_to_the_symbol_filter(
    currency_daemon: DaemonProcess,
) -> None:
    for path in ("/api/coins/btc/", "/api/coins/btc/history/", "/api/coins/btc/logo.png"):
        rsp = currency_daemon.get(path)
        assert rsp.status_code == 404, path
        body = rsp.json()
        assert body["error"] is True
        message = body["message"]
        assert "takes a coin's CMC id or slug" in message, message
        assert "/api/coins/?symbol=BTC" in message, message
        assert "Collected coins with the symbol BTC: bitcoin (id 1)" in message, message
    message = currency_daemon.get("/api/coins/no-such-coin/").json()["message"]
    assert "CMC id or slug" in message and "Collected coins" not in message
    message = currency_daemon.get("/api/coins/999999/").json()["message"]
    assert "no collected coin has the CMC id 999999" in message
    # Digits Python's int() refuses (superscript two) or SQLite cannot hold: a 404 too.
    for odd in ("%C2%B2", "9" * 30):
        rsp = currency_daemon.get(f"/api/coins/{odd}/")
        assert rsp.status_code == 404 and "never collected" in rsp.json()["message"], rsp.text


@pytest.mark.parametrize(
    ("path", "params", "unknown", "takes"),
    [
        ("/api/coins/", {"platfrom": "solana"}, "'platfrom'", "platform"),
        ("/api/coins/", {"symbol": "BTC", "page": "2", "x": ""}, "'page', 'x'", "offset"),
        ("/api/coins/bitcoin/", {"curency": "EUR"}, "'curency'", "takes currency"),
        ("/api/coins/1/history/", {"from": "2020-01-01"}, "'from'", "since, until"),
        ("/api/coins/1/logo.png", {"size": "64"}, "'size'", "takes no parameters"),
        (f"/api/jobs/{'0' * 8}-0000-4000-8000-{'0' * 12}/data/", {"a": "1"}, "'a'", "no param"),
    ],
)
def test_unknown_parameters_are_refused_by_name(
    currency_daemon: DaemonProcess, path: str, params: dict[str, str], unknown: str, takes: str
) -> None:
    rsp = currency_daemon.get(path, params=params)
    assert rsp.status_code == 400, rsp.text
    body = rsp.json()
    assert body["error"] is True
    assert unknown in body["message"] and takes in body["message"], body["message"]


# --- the index and its pure rules -------------------------------------------------------


def test_record_currency_rules() -> None:
    from daemon.coin_records import job_currency, record_currency

    def never() -> str | None:
        raise AssertionError("job.json read although the record names its currency")

    assert record_currency({"currency": "eur", "source": "api"}, never) == "EUR"
    assert record_currency({"source": "page"}, never) == "USD"
    assert record_currency({"source": "api"}, lambda: "EUR") == "EUR"
    assert record_currency({"source": "api"}, lambda: None) == "USD"
    assert job_currency({"arguments": {"convert": " gbp "}}) == "GBP"
    assert job_currency({"arguments": {"limit": 5}}) is None
    assert job_currency({"arguments": {"convert": "USD,EUR"}}) is None
    assert job_currency(["not", "a", "manifest"]) is None


def test_messages_name_what_was_wrong() -> None:
    from daemon.coin_records import unknown_coin_message, unknown_parameters

    assert unknown_parameters(["limit", "platform"], ("limit", "platform"), "/x/") is None
    message = unknown_parameters(["platfrom", "limit"], ("platform", "limit"), "/api/coins/")
    assert message == "Unknown parameter 'platfrom'; /api/coins/ takes platform, limit"
    many = unknown_parameters([f"p{i}" for i in range(8)], (), "/x/")
    assert many is not None and "and 3 more" in many and "takes no parameters" in many
    assert "?symbol=BTC" in unknown_coin_message("btc")
    assert "bitcoin (id 1)" in unknown_coin_message("btc", [("bitcoin", 1)])


JOB_USD = "11111111-1111-4111-8111-111111111111"
JOB_EUR = "22222222-2222-4222-8222-222222222222"


def _record(price: float, at: str, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "symbol": "BTC",
        "slug": "bitcoin",
        "price": price,
        "market_cap": price * 10,
        "market_cap_rank": 1,
        "scraped_at": at,
        "source": source,
        **extra,
    }


def _job(data_dir: Path, job_id: str, records: list[dict[str, Any]], convert: str | None) -> None:
    folder = data_dir / job_id
    folder.mkdir(parents=True)
    (folder / "items.jl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if convert is not None:
        manifest = {"spider": "cmc_api", "arguments": {"limit": "5", "convert": convert}}
        (folder / "job.json").write_text(json.dumps(manifest))


def test_the_issue_case_no_false_drop_in_bitcoin_history(tmp_path: Path) -> None:
    # USD pages at 113,542 and an older-version EUR listing at 97,144 a day later.
    _job(tmp_path, JOB_USD, [_record(113542, "2026-01-01T00:00:00Z", "page")], None)
    _job(tmp_path, JOB_EUR, [_record(97144, "2026-01-02T00:00:00Z", "api")], "EUR")
    index = CoinIndex(tmp_path)
    index.open()
    try:
        for incremental in (True, False):
            if incremental:
                index.ingest_job(JOB_USD)
                index.ingest_job(JOB_EUR)
            else:
                index.rebuild()
            usd = index.history("bitcoin", None, None, 100, 0)
            assert [(h["price"], h["currency"]) for h in usd] == [(113542, "USD")]
            eur = index.history("bitcoin", None, None, 100, 0, "EUR")
            assert [(h["price"], h["currency"]) for h in eur] == [(97144, "EUR")]
            assert index.coin("1")["price"] == 113542
            assert index.coin("1", "EUR")["currency"] == "EUR"
            assert index.coin("1", "GBP") is None and index.currencies("1") == ["EUR", "USD"]
            assert [r["price"] for r in index.coins(CoinFilter(), 10, 0)] == [113542]
            assert [r["price"] for r in index.coins(CoinFilter(currency="EUR"), 10, 0)] == [97144]
            assert [
                r["price"] for r in index.coins(CoinFilter(job=JOB_EUR, currency=None), 10, 0)
            ] == [97144]
        # Dropping the EUR job leaves the USD figures alone.
        index.forget_job(JOB_EUR)
        assert index.currencies("1") == ["USD"] and index.coin("1", "EUR") is None
    finally:
        index.close()


def test_an_index_of_schema_5_is_rebuilt_with_currencies(tmp_path: Path) -> None:
    _job(tmp_path, JOB_EUR, [_record(97144, "2026-01-02T00:00:00Z", "api")], "eur")
    # The file as the previous version left it: no currency anywhere.
    with sqlite3.connect(tmp_path / INDEX_FILE) as conn:
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema', '5'), ('built', '1');"
            "CREATE TABLE sources (job_id TEXT PRIMARY KEY, offset INTEGER NOT NULL,"
            " records INTEGER NOT NULL, updated TEXT NOT NULL);"
            "CREATE TABLE records (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL,"
            " pos INTEGER NOT NULL, coin_id INTEGER, ts TEXT NOT NULL, doc TEXT NOT NULL);"
            "CREATE TABLE latest (coin_id INTEGER NOT NULL, source TEXT NOT NULL,"
            " record_id INTEGER NOT NULL, PRIMARY KEY (coin_id, source));"
        )
    conn.close()
    index = CoinIndex(tmp_path)
    try:
        assert index.open() is True
        assert index.rebuild() == 1
        assert index.coin("bitcoin") is None
        assert index.coin("bitcoin", "EUR")["currency"] == "EUR"
    finally:
        index.close()
