"""Webhooks: a signed JSON POST to each configured receiver when a job starts, ends or
differs from its history.

Each event is written to the store (daemon.webhook_store) in the reactor thread, in the
same turn that hears of it, then sent. Per webhook one delivery is in flight at a time,
the oldest pending first, so a receiver gets a job's events in order (and every job's
in the order they happened). The POST runs in a small thread pool of the service's own
(a blocking HTTP client with connect and read timeouts, no redirects followed), never on
the reactor thread; a failed attempt is retried with a doubling delay until
`webhooks.retry_for` has passed since the event, then given up. A receiver that is down
holds back its own webhook only; its pending deliveries wait on disk, not in memory.

Delivery is at least once: a receiver that answers 2xx after the read timeout, or a
daemon stopped between the answer and its record, sends that delivery again. The body's
`delivery` id is the same each time, for a receiver to drop repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from daemon.anomalies import findings_of
from daemon.config import WebhookConfig, WebhooksConfig
from daemon.domain import CANCELED, FAILED, RUNNING
from daemon.events import (
    JOB_CHANGED,
    JOB_ENDED,
    SCHEDULE_MISFIRED,
    WEBHOOK_ATTEMPTED,
    EventBus,
)
from daemon.job_store import Job
from daemon.webhook_store import DELIVERED, GIVEN_UP, Delivery, WebhookQueue

log = Logger()

SIGNATURE_HEADER = "X-Coinspiders-Signature"
#: The most of a receiver's answer that is read and kept in the delivery log.
ANSWER_BYTES = 500


def signature(secret: str, body: bytes) -> str:
    """The header's value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def shown_url(url: str) -> str:
    """A webhook's URL without what may be a credential (user:password@, the query)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path or '/'}"


def events_of(job: Job, ended: bool) -> list[str]:
    """The webhook events one job change is: a run starting, or a job ending (any end is
    job.finished; a failure or cancel also its own; findings also job.anomaly)."""
    if not ended:
        return ["job.started"] if job.status == RUNNING else []
    events = ["job.finished"]
    if job.status == FAILED:
        events.append("job.failed")
    elif job.status == CANCELED:
        events.append("job.canceled")
    if findings_of(job.anomalies):
        events.append("job.anomaly")
    return events


def retry_delay(attempts: int, first: float, cap: float) -> float:
    """The wait after the `attempts`-th failed attempt: doubling from `first`, capped."""
    return min(first * 2 ** max(attempts - 1, 0), cap)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, timed out, reset)
    text: str


def post(url: str, body: bytes, headers: dict[str, str], connect: float, read: float) -> Answer:
    """One blocking POST (run in a worker thread). http.client follows no redirect: a
    3xx is an answer like any other non-2xx."""
    parts = urlsplit(url)
    factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = factory(parts.hostname or "", parts.port, timeout=connect)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(read)
        conn.request("POST", target, body=body, headers=headers)
        rsp = conn.getresponse()
        text = rsp.read(ANSWER_BYTES).decode("utf-8", "replace")
        if 300 <= rsp.status < 400:
            text = f"redirect to {rsp.getheader('Location', '?')[:200]} (not followed)"
        return Answer(rsp.status, text)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}"[:ANSWER_BYTES])
    finally:
        conn.close()


class WebhookService(Service):
    name = "webhooks"

    def __init__(
        self,
        reactor: Any,
        queue: WebhookQueue,
        config: WebhooksConfig,
        bus: EventBus,
        job_text: Callable[[Job], str],
        iso: Callable[[float | None], str | None],
        send: Callable[[str, bytes, dict[str, str], float, float], Answer] = post,
    ) -> None:
        self.reactor = reactor
        self.queue = queue
        self.config = config
        self.hooks = config.hooks
        self.bus = bus
        self.job_text = job_text  # a job as list-jobs shows it (JSON text)
        self.iso = iso
        self.send = send
        self.pool = ThreadPool(minthreads=0, maxthreads=max(1, min(len(self.hooks), 4)))
        self.pool.name = "webhooks"
        self._busy: set[int] = set()
        self._timers: dict[int, Any] = {}
        if self.hooks:
            bus.subscribe(JOB_CHANGED, lambda job: self.job_event(job, ended=False))
            bus.subscribe(JOB_ENDED, lambda job: self.job_event(job, ended=True))
            bus.subscribe(SCHEDULE_MISFIRED, self.misfired)

    def startService(self) -> None:
        super().startService()
        stale = self.queue.give_up_others({n: hook.url for n, hook in enumerate(self.hooks)})
        if stale:
            log.warn("webhooks: {n} pending deliveries to removed webhooks given up", n=stale)
        if self.hooks:
            self.pool.start()
            for n in range(len(self.hooks)):
                self.pump(n)

    def stopService(self) -> None:
        super().stopService()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        if self.pool.started:
            # Waits for POSTs in flight (at most a read timeout); what they did not
            # record stays pending and goes out after the restart.
            self.pool.stop()

    # -- events ----------------------------------------------------------------

    def job_event(self, job: Job, ended: bool) -> None:
        self._enqueue(job, events_of(job, ended))

    def misfired(self, payload: tuple[str, str]) -> None:
        """A scheduled job's firing skipped: the job as list-jobs shows it, and why."""
        job_id, text = payload
        job = self.queue.store.get(job_id)
        if job is not None:
            self._enqueue(job, ["schedule.misfired"], detail=text)

    def _enqueue(self, job: Job, events: list[str], detail: str | None = None) -> None:
        if not events:
            return
        job_text = self.job_text(job)
        extra = "" if detail is None else f', "detail": {json.dumps(detail, ensure_ascii=False)}'
        rows = []
        for n, hook in enumerate(self.hooks):
            for event in events:
                if event in hook.events:
                    delivery_id = str(uuid.uuid4())
                    body = (
                        f'{{"event": {json.dumps(event)}, "delivery": "{delivery_id}", '
                        f'"job": {job_text}{extra}}}'
                    )
                    rows.append((n, hook.url, event, job.id, delivery_id, body))
        if not rows:
            return
        try:
            self.queue.add(rows)
        except Exception:
            log.failure("webhooks: cannot keep the events of job {id}", id=job.id)
            return
        if self.running:
            for n in sorted({row[0] for row in rows}):
                self.pump(n)

    # -- sending ---------------------------------------------------------------

    def pump(self, n: int) -> None:
        """Send webhook n's oldest pending delivery, if it is due and none is in flight."""
        if n in self._busy or not self.running:
            return
        timer = self._timers.pop(n, None)
        if timer is not None and timer.active():
            timer.cancel()
        delivery = self.queue.head(n)
        if delivery is None:
            return
        wait = delivery.next_try - self.reactor.seconds()
        if wait > 0:
            self._timers[n] = self.reactor.callLater(wait, self.pump, n)
            return
        hook = self.hooks[n]
        body = delivery.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "coinspiders-daemon",
            "X-Coinspiders-Event": delivery.event,
            "X-Coinspiders-Delivery": delivery.delivery_id,
        }
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = signature(hook.secret, body)
        self._busy.add(n)
        d: Deferred[Answer] = deferToThreadPool(
            self.reactor,
            self.pool,
            self.send,
            hook.url,
            body,
            headers,
            self.config.connect_timeout,
            self.config.read_timeout,
        )
        d.addErrback(lambda f: Answer(None, f"cannot send: {f.getErrorMessage()}"))
        d.addCallback(self._answered, n, hook, delivery)

    def _answered(self, answer: Answer, n: int, hook: WebhookConfig, delivery: Delivery) -> None:
        self._busy.discard(n)
        now = self.reactor.seconds()
        if answer.status is not None and 200 <= answer.status < 300:
            outcome, next_try = DELIVERED, now
        else:
            attempts = delivery.attempts + 1
            next_try = now + retry_delay(
                attempts, self.config.retry_delay, self.config.retry_max_delay
            )
            outcome = GIVEN_UP if next_try - delivery.created > self.config.retry_for else "failed"
            log.warn(
                "webhook {n} ({url}): {event} of job {job} not delivered (attempt {k}): {why}{end}",
                n=n,
                url=shown_url(hook.url),
                event=delivery.event,
                job=delivery.job_id,
                k=attempts,
                why=answer.status if answer.status is not None else answer.text,
                end="; given up" if outcome == GIVEN_UP else "",
            )
        try:
            self.queue.record(delivery, answer.status, answer.text, outcome, next_try)
        except Exception:
            log.failure("webhooks: cannot record an attempt of webhook {n}", n=n)
            next_try = now + self.config.retry_delay
            self._timers[n] = self.reactor.callLater(self.config.retry_delay, self.pump, n)
            return
        self.bus.publish(WEBHOOK_ATTEMPTED, (n, outcome))
        self.pump(n)

    def deliveries(self, n: int, limit: int) -> Deferred[dict[str, Any]]:
        """Webhook n's delivery log (KeyError for no such webhook)."""
        hook = self.hooks[n]
        d = self.queue.log_in_thread(n, limit)

        def shaped(log_: dict[str, Any]) -> dict[str, Any]:
            for attempt in log_["attempts"]:
                attempt["time"] = self.iso(attempt["time"])
            return {
                "webhook": n,
                "url": shown_url(hook.url),
                "events": sorted(hook.events),
                "signed": hook.secret is not None,
                **log_,
            }

        return d.addCallback(shaped)
