"""daemon.webhooks' parts on their own: the signature receivers check, which events a job
change is, the retry delays, the URL shown in the delivery log, and the blocking POST
against a real local receiver (redirect, hang, refusal)."""

from __future__ import annotations

import hashlib
import hmac
import json

from daemon.job_store import Job
from daemon.webhooks import Answer, events_of, post, retry_delay, shown_url, signature
from tests.webhook_receiver import running_receiver


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


def test_post_follows_no_redirect_and_gives_up_on_a_hang() -> None:
    with running_receiver(script=["redirect", "hang", "ok"], hang_seconds=2) as receiver:
        body = b'{"event": "job.finished"}'
        moved = post(receiver.url, body, {"X-Test": "1"}, connect=5, read=0.5)
        assert moved.status == 302 and "not followed" in moved.text
        hung = post(receiver.url, body, {}, connect=5, read=0.5)
        assert hung.status is None and "timed out" in hung.text
        done = post(receiver.url, body, {}, connect=5, read=5)
        assert done == Answer(200, "thanks")
        # One request each: the redirect's target was never asked for.
        assert [r.answer for r in receiver.all()] == ["redirect", "hang", "ok"]
        assert receiver.all()[0].body == body and receiver.all()[0].headers["X-Test"] == "1"
    refused = post("http://127.0.0.1:9/x", body, {}, connect=5, read=5)
    assert refused.status is None and "Refused" in refused.text
