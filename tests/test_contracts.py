"""One truth per contract: the spiders and the daemon read the job folder's names, the
coin limit and the shape of a coin's answer from one module; a project name has one
length limit; the coin dict has one builder; the coin API refuses with the daemon's one
error shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coinspiders.items import CoinItem
from coinspiders.jobfolder import MAX_COINS, coin_output, coin_task
from coinspiders.parsing import identity
from coinspiders.parsing.fields import COIN_FIELDS, FIGURES, coin_dict
from daemon.archive import MAX_PROJECT_NAME, ArchiveError, check_project_name
from daemon.coin_records import RequestError, parse_coins, parse_task_ids, task_outputs
from daemon.coin_service import CoinApiError
from daemon.config import ConfigError, load_config
from daemon.errors import DaemonError
from tests.daemon_support import ROOT, write_config, write_toy_project


def test_the_daemon_reads_the_job_folder_contract_without_loading_scrapy() -> None:
    """The daemon's coin API imports the shared contract; Scrapy stays out of its memory."""
    code = (
        "import sys, daemon.__main__, daemon.app, daemon.coin_service, daemon.api.coins;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scrapy', 'coinspiders')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.replace("'", '"')) == ["coinspiders", "coinspiders.jobfolder"]


def test_one_coin_limit_for_a_crawl_and_a_start_request() -> None:
    coins = [f"coin{n}" for n in range(MAX_COINS)]
    assert len(identity.split_coins(",".join(coins))) == MAX_COINS
    assert parse_coins(coins) == coins
    assert parse_task_ids(json.dumps(coins)) == coins
    too_many = [*coins, "one-more"]
    with pytest.raises(ValueError, match=f"at most {MAX_COINS} per crawl"):
        identity.split_coins(too_many)
    with pytest.raises(RequestError, match=f"At most {MAX_COINS} coins per job"):
        parse_coins(too_many)
    with pytest.raises(RequestError, match=f"At most {MAX_COINS} task_ids"):
        parse_task_ids(json.dumps(too_many))


def test_data_json_and_the_status_endpoint_answer_a_coin_alike() -> None:
    found = {"query": "HOT", "id": 2682, "price": 0.5, "candidates": [{"id": 1}]}
    failed = {"query": "NOPE", "error": "not found", "candidates": [{"id": 7}]}
    # data.json lists every coin field; the status endpoint the record's own figures.
    assert coin_output(found, ("id", "price", "slug")) == {
        "id": 2682,
        "price": 0.5,
        "slug": None,
        "candidates": [{"id": 1}],
    }
    assert coin_output(found) == {"id": 2682, "price": 0.5, "candidates": [{"id": 1}]}
    error = {"error": "not found", "candidates": [{"id": 7}]}
    assert coin_output(failed, COIN_FIELDS) == coin_output(failed) == error
    tasks = task_outputs(["NOPE"], {"NOPE": failed}, ("FAILED", None))
    assert tasks == [coin_task("NOPE", error)] == [{"coin": "NOPE", "output": error}]


def test_one_builder_for_the_coin_dict() -> None:
    coin = coin_dict(id=1, name="Bitcoin", symbol="BTC", slug="bitcoin", price=2.5)
    assert tuple(coin) == FIGURES and len(FIGURES) == 19
    assert coin["price"] == 2.5 and coin["volume"] is None
    record = coin_dict(id=1, source="api", currency="EUR", logo_path=None)
    assert [k for k in COIN_FIELDS if k in record] == list(record)
    assert record["currency"] == "EUR" and "scraped_at" not in record
    with pytest.raises(TypeError, match="not coin fields: prise"):
        coin_dict(id=1, prise=2.5)
    assert set(COIN_FIELDS) | {"query", "candidates", "error"} == set(CoinItem.fields)


def test_a_project_name_has_one_length_limit(tmp_path: Path) -> None:
    longest, too_long = "p" * MAX_PROJECT_NAME, "p" * (MAX_PROJECT_NAME + 1)
    assert check_project_name(longest) == longest
    with pytest.raises(ArchiveError, match=f"at most {MAX_PROJECT_NAME} allowed"):
        check_project_name(too_long)
    project = write_toy_project(tmp_path / "toy")
    for name, ok in ((longest, True), (too_long, False)):
        config = write_config(
            tmp_path / "config.yaml", tmp_path / "data", {name: {"path": str(project)}}
        )
        if ok:
            assert list(load_config(config, environ={}).projects) == [name]
            continue
        with pytest.raises(ConfigError, match="not a plain project name"):
            load_config(config, environ={})
    config = write_config(
        tmp_path / "config.yaml", tmp_path / "data", {}, crawl_consoles=[too_long]
    )
    with pytest.raises(ConfigError, match="crawl_consoles"):
        load_config(config, environ={})


def test_the_daemon_refuses_at_start_a_project_name_too_long(tmp_path: Path) -> None:
    """The config's check stops it, naming the key (it took 100 characters, and the start
    failed later in the project store, without naming the config key)."""
    project = write_toy_project(tmp_path / "toy")
    name = "p" * (MAX_PROJECT_NAME + 1)
    config = write_config(
        tmp_path / "config.yaml", tmp_path / "data", {name: {"path": str(project)}}
    )
    res = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert res.returncode == 2 and f"config key 'projects.{name}'" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_coin_api_refusal_is_a_daemon_error() -> None:
    refusal = CoinApiError("Job x not found", 404)
    assert isinstance(refusal, DaemonError)
    assert (refusal.message, refusal.http_status, str(refusal)) == (
        "Job x not found",
        404,
        "Job x not found",
    )
    assert CoinApiError("bad").http_status == 400
