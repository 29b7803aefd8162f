"""The coin API over real HTTP: a real daemon process runs the real `coin` spider against
the CoinMarketCap test server; start/status as seed 000, the coin data as seed 004."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.cmc_server import CMCServer
from tests.daemon_support import ROOT, DaemonFactory, DaemonProcess
from tests.waiting import wait_until

START = "/api/crypto/start_scraping/"


@pytest.fixture(scope="module")
def daemon(start_module_daemon: DaemonFactory, cmc_server: CMCServer) -> DaemonProcess:
    """A daemon whose only project is this repository's coinspiders, aimed at the CMC
    test server."""
    settings = {
        **cmc_server.settings(),
        "AUTOTHROTTLE_ENABLED": "False",
        "RETRY_BACKOFF_BASE": "0.05",
        "RETRY_TIMES": "2",
    }
    coinspiders = {"coinspiders": {"path": str(ROOT), "settings": settings}}
    return start_module_daemon(lambda work: coinspiders, slots=2, cancel_grace=2)


def start(daemon: DaemonProcess, coins: list[str]) -> tuple[str, dict[str, str]]:
    rsp = daemon.post(START, json={"coins": coins})
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert set(body) == {"job_id", "task_ids"}
    assert isinstance(body["task_ids"], str)  # a JSON string, as seed 000 shows it
    return body["job_id"], json.loads(body["task_ids"])


def status(daemon: DaemonProcess, job_id: str, task_ids: Any) -> requests.Response:
    raw = task_ids if isinstance(task_ids, str) else json.dumps(task_ids)
    return daemon.get(f"/api/crypto/scraping_status/{job_id}/", params={"task_ids": raw})


def outputs(daemon: DaemonProcess, job_id: str, task_ids: dict[str, str]) -> dict[str, Any]:
    rsp = status(daemon, job_id, task_ids)
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert body["job_id"] == job_id
    assert [t["coin"] for t in body["tasks"]] == list(task_ids)
    return {t["coin"]: t["output"] for t in body["tasks"]}


def wait_all_done(
    daemon: DaemonProcess, job_id: str, task_ids: dict[str, str], timeout: float = 60
) -> dict[str, Any]:
    return wait_until(
        lambda: outputs(daemon, job_id, task_ids),
        timeout,
        f"every task of job {job_id} to have its output",
        until=lambda out: all(isinstance(v, dict) for v in out.values()),
        interval=0.1,
    )


def crawl(daemon: DaemonProcess, coins: list[str]) -> str:
    job_id, task_ids = start(daemon, coins)
    wait_all_done(daemon, job_id, task_ids)
    daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=60)
    return job_id


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_status_shows_each_coin_as_soon_as_it_is_scraped(
    daemon: DaemonProcess, cmc: CMCServer
) -> None:
    cmc.slow_page("gorilla", delay=4)
    job_id, task_ids = start(daemon, ["DUKO", "NOT", "GORILLA", "duko"])
    # Asked once each, in the order asked, with stable per-coin task ids.
    assert list(task_ids) == ["DUKO", "NOT", "GORILLA"]
    assert len(set(task_ids.values())) == 3
    assert all(uuid.UUID(t).version == 5 for t in task_ids.values())

    # While the GORILLA page is slow, DUKO's figures are already there.
    def outputs_so_far() -> dict[str, Any]:
        out = outputs(daemon, job_id, task_ids)
        assert isinstance(out["DUKO"], dict) or out["DUKO"] == "Task not completed yet", out
        return out

    out = wait_until(
        outputs_so_far, 30, "DUKO's output", until=lambda out: isinstance(out["DUKO"], dict)
    )
    assert out["GORILLA"] == "Task not completed yet"
    assert daemon.job(job_id)["status"] == "RUNNING"
    # What the job has so far, before data.json exists.
    partial = daemon.get(f"/api/jobs/{job_id}/data/")
    assert partial.status_code == 200 and partial.headers["X-Job-Data"] == "partial"
    assert "DUKO" in [entry["coin"] for entry in partial.json()]

    out = wait_all_done(daemon, job_id, task_ids)
    duko = cmc.coin("duko")
    assert out["DUKO"]["id"] == duko.id and out["DUKO"]["symbol"] == "DUKO"
    for key in ("price", "market_cap", "market_cap_rank", "volume", "circulating_supply"):
        assert isinstance(out["DUKO"][key], int | float), key
    assert out["DUKO"]["contracts"] and out["DUKO"]["contracts"][0]["name"]
    assert "query" not in out["DUKO"]
    assert out["GORILLA"]["slug"] == "gorilla"
    assert out["NOT"]["symbol"] == "NOT"

    daemon.wait_status(job_id, ("SUCCESSFUL",), timeout=60)
    final = daemon.get(f"/api/jobs/{job_id}/data/")
    assert final.status_code == 200 and final.headers["X-Job-Data"] == "complete"
    assert [e["coin"] for e in final.json()] == ["DUKO", "NOT", "GORILLA"]
    # The status answer is the same coin by coin as the finished data.json.
    assert {e["coin"]: e["output"]["price"] for e in final.json()} == {
        c: o["price"] for c, o in out.items()
    }


def test_unknown_coin_shows_its_error_object(daemon: DaemonProcess) -> None:
    job_id, task_ids = start(daemon, ["bitcoin", "no-such-coin-xyz"])
    out = wait_all_done(daemon, job_id, task_ids)
    assert out["bitcoin"]["id"] == 1
    assert set(out["no-such-coin-xyz"]) >= {"error"}
    assert "not found" in out["no-such-coin-xyz"]["error"].lower()
    # A list of coins is accepted as task_ids too; order is the one asked.
    rsp = status(daemon, job_id, ["no-such-coin-xyz", "BITCOIN"])
    assert [t["coin"] for t in rsp.json()["tasks"]] == ["no-such-coin-xyz", "BITCOIN"]
    assert rsp.json()["tasks"][1]["output"]["id"] == 1


def test_start_accepts_a_form_body(daemon: DaemonProcess) -> None:
    rsp = daemon.post(START, data={"coins": ["dogecoin,ETH", "Dogecoin"]})
    assert rsp.status_code == 200, rsp.text
    task_ids = json.loads(rsp.json()["task_ids"])
    assert list(task_ids) == ["dogecoin", "ETH"]
    out = wait_all_done(daemon, rsp.json()["job_id"], task_ids)
    assert out["ETH"]["id"] == 1027
    # `curl -d '{"coins": [...]}'` labels its JSON as a form: still read as JSON.
    form_json = daemon.post(
        START,
        data=b'{"coins": ["tether"]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form_json.status_code == 200, form_json.text
    assert list(json.loads(form_json.json()["task_ids"])) == ["tether"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "No coins provided"),
        ({"json": {}}, "No coins provided"),
        ({"json": {"coins": []}}, "No coins provided"),
        ({"json": {"coins": [" ", ""]}}, "No coins provided"),
        ({"data": {"coins": ""}}, "No coins provided"),
        ({"json": {"coins": "BTC"}}, '"coins" must be a list of strings, e.g. ["BTC", "ETH"]'),
        ({"json": {"coins": [1, 2]}}, '"coins" must be a list of strings, e.g. ["BTC", "ETH"]'),
        ({"json": ["BTC"]}, 'The JSON body must be an object like {"coins": ["BTC"]}'),
        (
            {"data": b"{nope", "headers": {"Content-Type": "application/json"}},
            "Invalid JSON body",
        ),
    ],
)
def test_start_refuses_bad_bodies(daemon: DaemonProcess, kwargs: dict, message: str) -> None:
    rsp = daemon.post(START, **kwargs)
    assert rsp.status_code == 400
    assert rsp.json() == {"error": message}


def test_status_errors(daemon: DaemonProcess) -> None:
    job_id = str(uuid.uuid4())
    base = "/api/crypto/scraping_status/"
    known = daemon.schedule("coin", project="coinspiders", payload=json.dumps({"coins": ["BTC"]}))
    rsp = daemon.get(f"{base}{known}/")
    assert (rsp.status_code, rsp.json()) == (400, {"error": "No task_ids provided"})
    rsp = daemon.get(f"{base}{known}/", params={"task_ids": "{not json"})
    assert (rsp.status_code, rsp.json()) == (400, {"error": "Invalid task_ids format"})
    rsp = daemon.get(f"{base}{known}/", params={"task_ids": '{"BTC": 3}'})
    assert (rsp.status_code, rsp.json()) == (400, {"error": "Invalid task_ids format"})
    rsp = status(daemon, job_id, {"BTC": "x"})
    assert rsp.status_code == 404
    assert rsp.json() == {"error": f"Job {job_id} not found"}
    rsp = daemon.get(f"{base}..%2F..%2Fetc/", params={"task_ids": '{"BTC": "x"}'})
    assert rsp.status_code == 404
    for folder in ("logs", "projects"):
        rsp = daemon.get(f"{base}{folder}/", params={"task_ids": '{"BTC": "x"}'})
        assert (rsp.status_code, rsp.json()) == (404, {"error": f"Job {folder} not found"})
    assert daemon.get(START).status_code == 405
    daemon.wait_status(known, ("SUCCESSFUL",), timeout=60)
    # A job started through scrapy-do's API is indexed too, as soon as it ends.
    assert [c["id"] for c in daemon.get("/api/coins/", params={"job": known}).json()] == [1]
    # An encoded path that climbs out matches no route at all.
    assert daemon.get("/api/jobs/..%2F..%2Fetc/data/").status_code == 404


def test_a_job_that_ends_is_indexed_without_being_asked(daemon: DaemonProcess) -> None:
    job_id = daemon.schedule(
        "coin", project="coinspiders", payload=json.dumps({"coins": ["shiba-inu"]})
    )
    daemon.wait_status(job_id, ("SUCCESSFUL",), timeout=60)
    # No status poll and no job filter read this job: the end-of-job event did.
    shib = wait_until(
        lambda: daemon.get("/api/coins/", params={"slug": "shiba-inu"}).json(),
        10,
        "shiba-inu in the coin index",
    )
    assert shib[0]["job_id"] == job_id and shib[0]["symbol"] == "SHIB"


def test_coin_data_filters_paging_history_and_logo(daemon: DaemonProcess, cmc: CMCServer) -> None:
    first = crawl(daemon, ["BTC", "ETH", "duko", "santiment"])
    second = crawl(daemon, ["bitcoin", "DUKO"])

    everything = daemon.get("/api/coins/", params={"limit": 1000}).json()
    ranks = [c["market_cap_rank"] for c in everything if c["market_cap_rank"] is not None]
    assert ranks == sorted(ranks)
    ids = [c["id"] for c in everything]
    assert len(ids) == len(set(ids)) and {1, 1027, cmc.coin("duko").id} <= set(ids)
    by_id = {c["id"]: c for c in everything}
    assert by_id[1]["job_id"] == second and by_id[1027]["job_id"] == first

    btc = daemon.get("/api/coins/", params={"symbol": "btc"}).json()
    assert [c["id"] for c in btc] == [1]
    assert [c["slug"] for c in daemon.get("/api/coins/", params={"slug": "duko"}).json()] == [
        "duko"
    ]
    solana = daemon.get("/api/coins/", params={"platform": "Solana"}).json()
    assert cmc.coin("duko").id in [c["id"] for c in solana]
    assert all(any(k["name"].lower() == "solana" for k in c["contracts"]) for c in solana)
    assert daemon.get("/api/coins/", params={"source": "api"}).json() == []
    assert len(daemon.get("/api/coins/", params={"source": "page"}).json()) == len(everything)
    of_first = daemon.get("/api/coins/", params={"job": first}).json()
    assert sorted(c["id"] for c in of_first) == sorted(
        [1, 1027, cmc.coin("duko").id, cmc.coin("santiment").id]
    )
    assert {c["job_id"] for c in of_first} == {first}
    nothing = daemon.get("/api/coins/", params={"symbol": "NOSUCH"})
    assert nothing.status_code == 200 and nothing.json() == []

    pages = [
        daemon.get("/api/coins/", params={"limit": 2, "offset": off}).json()
        for off in range(0, len(everything) + 2, 2)
    ]
    assert [c["id"] for page in pages for c in page] == ids
    assert pages[-1] == []

    detail = daemon.get("/api/coins/bitcoin/").json()
    assert detail["id"] == 1 and detail["job_id"] == second
    assert daemon.get("/api/coins/1/").json() == detail
    # Seed 004 writes detail URLs without the trailing slash: both work, no redirect.
    bare = daemon.get("/api/coins/BITCOIN", allow_redirects=False)
    assert bare.status_code == 200 and bare.json() == detail
    assert daemon.get("/api/coins", params={"symbol": "BTC"}).json() == btc

    # Oldest first; earlier tests of this module may have collected bitcoin too.
    history = daemon.get("/api/coins/bitcoin/history/").json()
    assert [h["job_id"] for h in history][-2:] == [first, second]
    assert [h["time"] for h in history] == sorted(h["time"] for h in history)
    assert set(history[0]) >= {"time", "price", "market_cap", "volume", "job_id"}
    later = daemon.get("/api/coins/1/history/", params={"since": history[-1]["time"]}).json()
    assert [h["job_id"] for h in later] == [second]
    assert daemon.get("/api/coins/1/history/", params={"until": "2000-01-01"}).json() == []

    logo = daemon.get("/api/coins/1/logo.png")
    assert logo.status_code == 200 and logo.headers["Content-Type"] == "image/png"
    assert logo.content == fetch(cmc.logo_url.format(id=1))
    assert logo.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("path", "params", "code", "needle"),
    [
        ("/api/coins/", {"limit": "0"}, 400, "'limit' must be between 1 and 1000"),
        ("/api/coins/", {"limit": "ten"}, 400, "'limit' must be an integer"),
        ("/api/coins/", {"offset": "-1"}, 400, "'offset' must be between"),
        ("/api/coins/", [("limit", "1"), ("limit", "2")], 400, "'limit' is given more than once"),
        ("/api/coins/", {"source": "web"}, 400, "'source' must be 'page' or 'api'"),
        ("/api/coins/", {"job": "../etc"}, 400, "'job' is not a job id"),
        ("/api/coins/no-such-coin/", {}, 404, "never collected"),
        ("/api/coins/999999999/history/", {}, 404, "never collected"),
        ("/api/coins/1/history/", {"since": "last week"}, 400, "ISO 8601"),
        ("/api/coins/no-such-coin/logo.png", {}, 404, "never collected"),
        ("/api/jobs/0b5a7c1e-3d2f-4e6a-9b8c-7d6e5f4a3b2c/data/", {}, 404, "not found"),
        ("/api/jobs/bad%20id/data/", {}, 404, "not found"),
        # The daemon's own folders in data/ are no jobs.
        ("/api/jobs/logs/data/", {}, 404, "not found"),
        ("/api/jobs/projects/data/", {}, 404, "not found"),
    ],
)
def test_data_endpoint_errors(
    daemon: DaemonProcess, path: str, params: Any, code: int, needle: str
) -> None:
    rsp = daemon.get(path, params=params)
    assert rsp.status_code == code, rsp.text
    body = rsp.json()
    assert body["error"] is True and needle in body["message"]


def test_index_is_rebuilt_from_job_folders(daemon: DaemonProcess) -> None:
    crawl(daemon, ["ETH"])
    before = daemon.get("/api/coins/", params={"limit": 1000}).json()
    history = daemon.get("/api/coins/ethereum/history/").json()
    assert before and history
    daemon.stop()
    data_dir = Path(daemon.workdir) / "data"
    for path in data_dir.glob("coins.sqlite*"):
        path.unlink()
    # A job folder whose records name logos outside it (by `..` or by a link).
    secret = Path(daemon.workdir) / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    hostile = data_dir / str(uuid.uuid4())
    (hostile / "Images").mkdir(parents=True)
    (hostile / "Images" / "999002.png").symlink_to(secret)
    records = [
        {"id": 999001, "slug": "evil-dots", "symbol": "EVD", "logo_path": "../../secret.png"},
        {"id": 999002, "slug": "evil-link", "symbol": "EVL", "logo_path": "Images/999002.png"},
    ]
    (hostile / "items.jl").write_text("".join(json.dumps(r) + "\n" for r in records))
    # Its data.json is a link to a file outside the folder.
    outside = Path(daemon.workdir) / "outside.json"
    outside.write_text('[{"secret": "not yours"}]')
    (hostile / "data.json").symlink_to(outside)
    daemon.start()
    # A folder of a crawl the daemon never ran is a job all the same; its data.json is
    # not followed out of the folder, the records read from items.jl are served instead.
    data = daemon.get(f"/api/jobs/{hostile.name}/data/")
    assert data.status_code == 200 and data.headers["X-Job-Data"] == "partial"
    assert b"not yours" not in data.content
    assert sorted(r["id"] for r in data.json()) == [999001, 999002]
    everything = daemon.get("/api/coins/", params={"limit": 1000}).json()
    assert [c for c in everything if c["id"] < 999001] == before
    assert daemon.get("/api/coins/ethereum/history/").json() == history
    assert (data_dir / "coins.sqlite").exists()
    for slug in ("evil-dots", "evil-link"):
        assert daemon.get(f"/api/coins/{slug}/").status_code == 200
        logo = daemon.get(f"/api/coins/{slug}/logo.png")
        assert logo.status_code == 404 and b"not yours" not in logo.content


def test_start_without_the_coinspiders_project_is_503(start_daemon: DaemonFactory) -> None:
    proc = start_daemon()
    rsp = proc.post(START, json={"coins": ["BTC"]})
    assert rsp.status_code == 503
    assert rsp.json() == {"error": "The coinspiders project is not available in this daemon"}
    assert proc.get("/list-jobs.json", params={"status": "ACTIVE"}).json()["jobs"] == []
    assert proc.get("/api/coins/").json() == []
