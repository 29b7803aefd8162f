"""Webhooks over real HTTP: a local receiver that fails, hangs, then recovers, across a
daemon restart, gets every event once, in order per job, signed with its secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from tests.daemon_support import DaemonFactory
from tests.waiting import wait_until
from tests.webhook_receiver import running_receiver

SECRET = "hook-secret-5772156649"


def valid_signature(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Coinspiders-Signature", ""), expected)


def test_every_event_arrives_once_in_order_signed_across_failures_and_a_restart(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    with running_receiver(then="fail", hang_seconds=4) as receiver:
        hooks = {
            "retry_delay": 0.2,
            "retry_max_delay": 0.5,
            "connect_timeout": 2,
            "read_timeout": 1,
            "hooks": [
                {
                    "url": receiver.url,
                    "events": ["job.started", "job.finished", "job.failed", "job.canceled"],
                    "secret_env": "TOY_HOOK_SECRET",
                },
                # Nobody listens there: its retries hold back no other webhook.
                {"url": "http://127.0.0.1:9/nobody", "events": ["job.finished"]},
            ],
        }
        daemon = start_daemon(env={"TOY_HOOK_SECRET": SECRET}, webhooks=hooks)
        ok = daemon.schedule("items")
        failed = daemon.schedule("fails")
        daemon.wait_status(ok, ("SUCCESSFUL",))
        daemon.wait_status(failed, ("FAILED",))
        wait_until(lambda: len(receiver.all()), 60, "failed attempts", until=lambda n: n >= 3)
        log = daemon.get("/webhooks/0/deliveries").json()
        assert log["status"] == "ok" and log["pending"] == 5, log
        assert log["attempts"][0]["status"] == 500
        assert log["attempts"][0]["answer"] == "receiver broken"
        assert log["attempts"][0]["outcome"] == "failed"

        # Stopped while the receiver is down: its five events wait in the store.
        daemon.stop()
        receiver.script = ["hang"]
        receiver.then = "ok"
        daemon = start_daemon.restart(daemon)
        until = tmp_path / "stop-sleeping"
        canceled = daemon.schedule("sleepy", payload=json.dumps({"until_file": str(until)}))
        daemon.wait_status(canceled, ("RUNNING",))
        assert daemon.post("/cancel-job.json", data={"id": canceled}).status_code == 200
        daemon.wait_status(canceled, ("CANCELED",))

        expected = {
            (ok, "job.started"),
            (ok, "job.finished"),
            (failed, "job.started"),
            (failed, "job.finished"),
            (failed, "job.failed"),
            (canceled, "job.started"),
            (canceled, "job.finished"),
            (canceled, "job.canceled"),
        }

        def accepted() -> list[tuple[str, str]]:
            return [(r.json["job"]["identifier"], r.json["event"]) for r in receiver.accepted()]

        wait_until(accepted, 90, "every event", until=lambda got: set(got) >= expected)
        got = receiver.accepted()
        # Once each: no event accepted twice, none unasked for.
        assert sorted(accepted()) == sorted(expected)
        assert len({r.json["delivery"] for r in got}) == len(got)
        for r in got:
            assert valid_signature(r.headers, r.body), r.headers
            assert r.headers["X-Coinspiders-Event"] == r.json["event"]
            assert r.headers["X-Coinspiders-Delivery"] == r.json["delivery"]
        # In order per job.
        order = defaultdict(list)
        for job_id, event in accepted():
            order[job_id].append(event)
        assert order[ok] == ["job.started", "job.finished"]
        assert order[failed] == ["job.started", "job.finished", "job.failed"]
        assert order[canceled] == ["job.started", "job.finished", "job.canceled"]
        # The job as list-jobs shows it, with its final stats.
        finished = next(
            r.json["job"] for r in got if r.json["event"] == "job.finished" and
            r.json["job"]["identifier"] == ok
        )  # fmt: skip
        assert finished["status"] == "SUCCESSFUL"
        assert finished["stats"]["item_scraped_count"] == 3
        assert finished["anomalies"]["note"].startswith("no history yet")
        # The hang happened, was given up on after the read timeout and retried.
        assert [r.answer for r in receiver.all()].count("hang") == 1
        log = daemon.get("/webhooks/0/deliveries", params={"limit": 1000}).json()
        assert log["pending"] == 0
        answers = [(a["status"], a["outcome"]) for a in log["attempts"]]
        assert answers.count((200, "delivered")) == 8
        assert any(a["status"] is None and "timed out" in a["answer"] for a in log["attempts"]), log
        assert daemon.get("/webhooks/1/deliveries").json()["attempts"][0]["status"] is None
        listing = daemon.get("/webhooks/").json()["webhooks"]
        assert listing[0]["signed"] is True and listing[1]["signed"] is False
        assert daemon.get("/webhooks/2/deliveries").status_code == 404
        assert daemon.get("/webhooks/x/deliveries").status_code == 404

        # The secret is in no reply, no log and no crawl's environment.
        out = daemon.get(f"/get-log/data/{ok}.out")
        assert out.status_code == 404 or SECRET not in out.text
        again = daemon.schedule("items")
        daemon.wait_status(again, ("SUCCESSFUL",))
        text = daemon.get(f"/get-log/data/{again}.out").text
        environ = json.loads(text.split("ENVIRON ", 1)[1].splitlines()[0])
        assert "TOY_HOOK_SECRET" not in environ and SECRET not in text
        assert SECRET not in json.dumps(log) and SECRET not in json.dumps(listing)
        assert SECRET not in daemon.log_path.read_text()


def test_a_firing_missed_while_the_daemon_was_down_is_sent_as_schedule_misfired(
    start_daemon: DaemonFactory,
) -> None:
    with running_receiver() as receiver:
        hooks = [{"url": receiver.url, "events": ["schedule.misfired", "job.started"]}]
        daemon = start_daemon(webhooks=hooks, misfire_grace=1)
        # Far enough ahead that the daemon is surely stopped before it (a loaded machine
        # may take seconds to stop it), so the firing is missed, not run.
        fire_at = time.time() + 15
        when = "at " + datetime.fromtimestamp(fire_at, UTC).isoformat()
        job_id = daemon.schedule("items", when=when)
        daemon.stop()
        assert time.time() < fire_at, "the daemon took too long to stop to miss the firing"
        wait_until(lambda: time.time() > fire_at + 3, 30, "the firing to be missed")
        daemon = start_daemon.restart(daemon)
        (sent,) = wait_until(receiver.accepted, 60, "the schedule.misfired webhook")
        assert sent.json["event"] == "schedule.misfired"
        assert sent.json["job"]["identifier"] == job_id
        assert "beyond misfire_grace 1 s): skipped" in sent.json["detail"]
        assert "coinspiders_schedule_misfires_total 1.0" in daemon.get("/metrics").text
