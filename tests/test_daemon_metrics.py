"""/metrics: the daemon's figures in Prometheus' text format, behind the API's auth (or a
scrapers' bearer token), read by prometheus_client's own parser and scraped by a real
Prometheus server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon_support import DaemonFactory, DaemonProcess
from tests.waiting import wait_until

PASSWORD = "metrics-pw-3141"
TOKEN = "scraper-token-2718"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(scrape: dict[Any, float], name: str, **labels: str) -> float | None:
    return scrape.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def daemon(start_daemon: DaemonFactory) -> DaemonProcess:
    env = {"COINSPIDERS_PASSWORD": PASSWORD, "TOY_SCRAPE_TOKEN": TOKEN}
    daemon = start_daemon(
        env=env, auth={"username": "admin"}, metrics={"token_env": "TOY_SCRAPE_TOKEN"}
    )
    daemon.credentials = ("admin", PASSWORD)
    return daemon


def test_metrics_count_jobs_runs_and_items_in_the_text_format(daemon: DaemonProcess) -> None:
    before = samples(daemon.get("/metrics").text)
    assert value(before, "coinspiders_slots") == 2
    assert value(before, "coinspiders_jobs_running") == 0
    assert value(before, "coinspiders_dispatch_latency_seconds_count") == 0

    ok = daemon.schedule("items")
    failed = daemon.schedule("fails")
    daemon.wait_status(ok, ("SUCCESSFUL",))
    daemon.wait_status(failed, ("FAILED",))
    rsp = daemon.get("/metrics")
    assert rsp.status_code == 200
    assert rsp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    after = samples(rsp.text)
    assert value(after, "coinspiders_jobs", status="SUCCESSFUL", project="toy", spider="items") == 1
    assert value(after, "coinspiders_jobs", status="FAILED", project="toy", spider="fails") == 1
    assert value(after, "coinspiders_items_scraped_total", project="toy", spider="items") == 3
    assert value(after, "coinspiders_dispatch_latency_seconds_count") == 2
    duration = "coinspiders_job_duration_seconds_count"
    assert value(after, duration, project="toy", spider="items", status="SUCCESSFUL") == 1
    assert value(after, duration, project="toy", spider="fails", status="FAILED") == 1
    assert value(after, "coinspiders_runs_total", outcome="run") == 2
    assert value(after, "coinspiders_runs_total", outcome="failed") == 1
    assert (value(after, "coinspiders_reactor_busy_seconds_total") or 0) > 0
    assert value(after, "coinspiders_jobs_pending") == 0


def test_metrics_need_the_api_credentials_or_the_scrapers_token(daemon: DaemonProcess) -> None:
    url = daemon.url + "/metrics"
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, auth=("admin", "wrong"), timeout=30).status_code == 401
    assert requests.get(url, auth=("admin", PASSWORD), timeout=30).status_code == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    rsp = requests.get(url, headers=bearer, timeout=30)
    assert rsp.status_code == 200 and "coinspiders_slots 2.0" in rsp.text
    wrong = {"Authorization": "Bearer not-the-token"}
    assert requests.get(url, headers=wrong, timeout=30).status_code == 401
    # The scrapers' token opens /metrics only, never the API.
    rsp = requests.get(daemon.url + "/list-projects.json", headers=bearer, timeout=30)
    assert rsp.status_code == 401
    assert TOKEN not in rsp.text
    # Unknown parameters get the API's JSON error, not figures.
    rsp = daemon.get("/metrics", params={"x": "1"})
    assert rsp.status_code == 400 and rsp.json()["status"] == "error"
    # The token's variable is hidden from crawls, as the password's is.
    job_id = daemon.schedule("items")
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    out = daemon.get(f"/get-log/data/{job_id}.out").text
    environ = json.loads(out.split("ENVIRON ", 1)[1].splitlines()[0])
    assert "TOY_SCRAPE_TOKEN" not in environ
    assert TOKEN not in out
    assert TOKEN not in daemon.log()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_real_prometheus_scrapes_the_daemon(daemon: DaemonProcess, tmp_path: Path) -> None:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).exists(), "needs Debian's prometheus package (installed by .ci/run)"
    job_id = daemon.schedule("items")
    daemon.wait_status(job_id, ("SUCCESSFUL",))
    config = tmp_path / "prometheus.yml"
    # YAML reads JSON as it is.
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "coinspiders",
                        "static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}],
                        "basic_auth": {"username": "admin", "password": PASSWORD},
                    }
                ],
            }
        )
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        query = f"http://127.0.0.1:{port}/api/v1/query"
        wanted = 'coinspiders_items_scraped_total{project="toy",spider="items"}'

        def ask() -> Any:
            if proc.poll() is not None:
                raise AssertionError(
                    f"prometheus exited {proc.returncode}: "
                    + (tmp_path / "prometheus.log").read_text(errors="replace")[-2000:]
                )
            try:
                return requests.get(query, params={"query": wanted}, timeout=10).json()
            except (requests.RequestException, ValueError) as exc:
                return repr(exc)

        answer = wait_until(
            ask,
            60,
            "Prometheus to have scraped the daemon's items counter",
            until=lambda a: isinstance(a, dict) and a.get("data", {}).get("result"),
            interval=0.5,
        )
        result = answer["data"]["result"][0]
        assert result["metric"]["job"] == "coinspiders"
        assert float(result["value"][1]) == 3
        up = requests.get(query, params={"query": "up"}, timeout=10).json()
        assert up["data"]["result"][0]["value"][1] == "1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
