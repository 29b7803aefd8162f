"""The real `coin` spider run by the daemon against the CMC test server: the job's folder
`data/<id>/` gets data.json, and the job is SUCCESSFUL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cmc_server import CMCServer
from tests.daemon_support import ROOT, DaemonFactory, toy_projects


def test_coin_crawl_through_the_daemon(cmc: CMCServer, start_daemon: DaemonFactory) -> None:
    settings = {
        **cmc.settings(),
        "AUTOTHROTTLE_ENABLED": "False",
        "RETRY_BACKOFF_BASE": "0.05",
    }

    def projects(work: Path) -> dict:
        return {**toy_projects(work), "coinspiders": {"path": str(ROOT), "settings": settings}}

    daemon = start_daemon(projects)
    assert "coin" in daemon.get("/list-spiders.json?project=coinspiders").json()["spiders"]
    job_id = daemon.schedule(
        "coin", project="coinspiders", payload=json.dumps({"coins": "duko,bitcoin"})
    )
    job = daemon.wait_status(job_id, ("SUCCESSFUL", "FAILED"), timeout=90)
    assert job["status"] == "SUCCESSFUL", (
        job,
        daemon.get(f"/get-log/data/{job_id}.err").text[-3000:],
    )
    folder = daemon.workdir / "data" / job_id
    data = json.loads((folder / "data.json").read_text(encoding="utf-8"))
    assert len(data) == 2
    manifest = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    assert manifest["job_id"] == job_id and manifest["close_reason"] == "finished"
    assert "Spider closed (finished)" in daemon.get(f"/get-log/data/{job_id}.err").text
    # The API key given as a project setting never shows in the API.
    assert cmc.api_key not in json.dumps(daemon.job(job_id))
