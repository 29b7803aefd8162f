"""Run-to-run anomalies over real crawls: the `coin` spider against the CMC look-alike,
then against a page layout where `market_cap` moved. The second run still succeeds, and
is flagged for the field whose coverage fell."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.cmc_server import CMCServer
from tests.daemon_support import ROOT, DaemonFactory, DaemonProcess, toy_projects
from tests.waiting import wait_until
from tests.webhook_receiver import running_receiver

PAYLOAD = json.dumps({"coins": "duko,bitcoin"})


def coin_daemon(cmc: CMCServer, start_daemon: DaemonFactory, **config: object) -> DaemonProcess:
    settings = {**cmc.settings(), "AUTOTHROTTLE_ENABLED": "False", "RETRY_BACKOFF_BASE": "0.05"}

    def projects(work: Path) -> dict:
        return {**toy_projects(work), "coinspiders": {"path": str(ROOT), "settings": settings}}

    return start_daemon(projects, **config)


def crawl(daemon: DaemonProcess, payload: str = PAYLOAD) -> dict:
    job_id = daemon.schedule("coin", project="coinspiders", payload=payload)
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED", "CANCELED"), timeout=120)
    assert job["status"] == "SUCCESSFUL", daemon.get(f"/get-log/data/{job_id}.err").text[-3000:]
    return job


def test_a_moved_field_is_flagged_on_a_successful_run(
    cmc: CMCServer, start_daemon: DaemonFactory
) -> None:
    with running_receiver() as receiver:
        hooks = [{"url": receiver.url, "events": ["job.anomaly"]}]
        daemon = coin_daemon(cmc, start_daemon, webhooks=hooks)
        broken = check_runs(cmc, daemon)
        # Sent as job.anomaly, once, for the flagged run only.
        (sent,) = wait_until(receiver.accepted, 60, "the job.anomaly webhook")
        assert sent.json["event"] == "job.anomaly"
        assert sent.json["job"]["identifier"] == broken
        wait_until(
            lambda: receiver_ids(daemon),
            30,
            "the delivery logged",
            until=lambda ids: ids == [broken],
        )
        assert sent.json["job"]["anomalies"]["findings"][0]["field"] == "market_cap"
        other = crawl(daemon, json.dumps({"coins": "bitcoin"}))
        assert other["anomalies"]["compared_with"] == 0
        assert len(receiver.all()) == 1


def check_runs(cmc: CMCServer, daemon: DaemonProcess) -> str:
    """Three runs, the third with market_cap moved; returns the third's id."""
    first = crawl(daemon)
    assert first["anomalies"]["compared_with"] == 0
    assert first["anomalies"]["findings"] == []
    assert first["anomalies"]["note"].startswith("no history yet")
    assert first["stats"]["field_coverage"]["market_cap"] == 1.0

    second = crawl(daemon)
    assert second["anomalies"] == {"compared_with": 1, "findings": []}

    cmc.add_fault("moved_market_cap", "/currencies/", times=None)
    broken = crawl(daemon)
    assert broken["status"] == "SUCCESSFUL"
    assert broken["stats"]["item_scraped_count"] == 2
    assert broken["anomalies"]["compared_with"] == 2
    assert broken["anomalies"]["findings"] == [
        {"what": "field_coverage", "field": "market_cap", "expected": 1.0, "seen": 0.0}
    ]
    # list-jobs' pages show it too, and /metrics counts it.
    page = daemon.get("/list-jobs.json", params={"status": "COMPLETED"}).json()["jobs"]
    assert [j["anomalies"]["findings"] for j in page if j["identifier"] == broken["identifier"]]
    counted = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(daemon.get("/metrics").text)
        for s in family.samples
        if s.name == "coinspiders_anomalies_total"
    }
    key = (("kind", "field_coverage"), ("project", "coinspiders"), ("spider", "coin"))
    assert counted == {key: 1.0}
    assert "differs from its history: field_coverage market_cap" in daemon.log()
    return str(broken["identifier"])


def receiver_ids(daemon: DaemonProcess) -> list[str]:
    """The jobs of webhook 0's delivered attempts (its delivery log)."""
    log = daemon.get("/webhooks/0/deliveries").json()["attempts"]
    return [a["job"] for a in log if a["outcome"] == "delivered"]
