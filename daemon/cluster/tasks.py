"""The one Celery task of the cluster and the Celery settings both ends share.

Celery only carries "run attempt n of job j" to some worker. It is not the retry
mechanism and not the job's status: the daemon's ledger and the Redis leases are
(daemon/cluster/leases.py). Hence: `acks_late` with prefetch 1 (a worker holds no more
tasks than it runs), a visibility timeout far above the longest run (Celery's own
redelivery of a dead worker's task then comes after the reaper has moved on, and its
claim fails), no result backend, no beat, ETA or countdown.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

TASK_NAME = "coinspiders.run_attempt"
#: Far above any crawl: Celery must not redeliver a running task on its own.
VISIBILITY_TIMEOUT = 7 * 24 * 3600


def celery_app(broker: str, queue: str) -> Celery:
    app = Celery("coinspiders", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=queue,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        # A publish while Redis is down fails after a few seconds instead of hanging:
        # the daemon publishes again (the claim makes a duplicate harmless).
        task_publish_retry_policy={
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
    )
    return app


def task_id(job_id: str, attempt: int) -> str:
    return f"{job_id}.{attempt}"


def publish(app: Celery, queue: str, body: dict[str, Any]) -> str:
    """Send one attempt (blocking: the daemon calls it from a thread). Straight into
    the queue's list (the anonymous exchange), not through an exchange binding: the
    bindings live in Redis, and a Redis restarted empty would drop the message."""
    tid = task_id(body["job_id"], body["attempt"])
    app.send_task(TASK_NAME, args=[body], exchange="", routing_key=queue, task_id=tid)
    return tid


def revoke(app: Celery, job_id: str, attempt: int) -> None:
    """Drop a queued attempt's task where a worker has not started it (blocking)."""
    app.control.revoke(task_id(job_id, attempt))
