"""daemon.webhooks' pure parts: the signature receivers check, which events a job change
is, the retry delays, and the URL shown in the delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json

from daemon.job_store import Job
from daemon.webhooks import events_of, retry_delay, shown_url, signature


def job(status: str, anomalies: dict | None = None) -> Job:
    return Job(
        id="j",
        status=status,
        actor="USER",
        schedule="now",
        project="p",
        spider="s",
        anomalies=None if anomalies is None else json.dumps(anomalies),
    )


def test_signature_is_the_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"event": "job.finished"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature("k", body) == "sha256=" + expected
    assert signature("k", body + b" ") != signature("k", body)


def test_events_of_a_job_change() -> None:
    assert events_of(job("RUNNING"), ended=False) == ["job.started"]
    assert events_of(job("PENDING"), ended=False) == []
    assert events_of(job("SUCCESSFUL"), ended=True) == ["job.finished"]
    assert events_of(job("FAILED"), ended=True) == ["job.finished", "job.failed"]
    assert events_of(job("CANCELED"), ended=True) == ["job.finished", "job.canceled"]
    found = {"compared_with": 3, "findings": [{"what": "items", "expected": 9, "seen": 1}]}
    assert events_of(job("SUCCESSFUL", found), ended=True) == ["job.finished", "job.anomaly"]
    calm = {"compared_with": 0, "findings": [], "note": "no history yet"}
    assert events_of(job("SUCCESSFUL", calm), ended=True) == ["job.finished"]


def test_retry_delay_doubles_up_to_its_cap() -> None:
    assert [retry_delay(n, 5, 600) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay(20, 5, 600) == 600


def test_the_shown_url_drops_credentials_and_the_query() -> None:
    assert (
        shown_url("https://u:pw@hooks.example:8443/in?token=t") == "https://hooks.example:8443/in"
    )
    assert shown_url("http://127.0.0.1") == "http://127.0.0.1/"
