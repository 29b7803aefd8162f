"""The daemon's Prometheus metrics: what a monitoring system needs to alert on crawls
without reading the API's JSON.

Two kinds of figures. Those that are events (a run started after waiting so long, a
run ended after so long, items scraped, webhook attempts, anomalies) are counted as
they happen, from the event bus, and start from zero with each daemon process as
Prometheus counters do. Those that are state (jobs by status, project and spider;
running, pending, slots; the reactor's busy time) are read when scraped, so they are
never stale. The registry is the daemon's own, not prometheus_client's global one: two
daemons in one process (tests) never mix their figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from daemon.anomalies import findings_of
from daemon.domain import COMPLETED_STATUSES, RUNNING
from daemon.events import JOB_CHANGED, JOB_ENDED, SCHEDULE_MISFIRED, WEBHOOK_ATTEMPTED, EventBus
from daemon.job_store import Job, Store

#: What /metrics answers with (the text format prometheus_client writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds from a run's creation to its start: queueing behind busy slots.
_LATENCY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, float("inf"))
#: Seconds from a run's start to its end.
_DURATION_BUCKETS = (1, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600, float("inf"))


def items_of(stats: str | None) -> int:
    """`item_scraped_count` of a job's final stats (JSON text), 0 when there is none."""
    if not stats:
        return 0
    try:
        value = json.loads(stats).get("item_scraped_count", 0)
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class _State:
    """The collector of the figures read at scrape time (set by Metrics.render)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.counts: Sequence[tuple[str, str, str, int]] = ()

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        jobs = GaugeMetricFamily(
            "coinspiders_jobs",
            "Jobs the store holds, by status, project and spider",
            labels=["status", "project", "spider"],
        )
        for status, project, spider, count in self.counts:
            jobs.add_metric([status, project, spider], count)
        yield jobs
        figures = m.jobs.figures()
        for name, key, text in (
            ("coinspiders_jobs_running", "running", "Crawls running now"),
            ("coinspiders_jobs_pending", "pending", "Jobs waiting for a free slot"),
            ("coinspiders_slots", "slots", "Crawls that may run at once"),
        ):
            yield GaugeMetricFamily(name, text, value=figures.get(key) or 0)
        runs = CounterMetricFamily(
            "coinspiders_runs",
            "Runs started and ended since the store was made, by outcome",
            labels=["outcome"],
        )
        for outcome in ("run", "successful", "failed", "canceled"):
            runs.add_metric([outcome], figures.get(f"jobs-{outcome}") or 0)
        yield runs
        if m.stall is not None:
            yield CounterMetricFamily(
                "coinspiders_reactor_busy_seconds",
                "CPU seconds the reactor thread spent running the daemon since its start",
                value=m.stall.busy_total,
            )
            yield GaugeMetricFamily(
                "coinspiders_reactor_max_stall_seconds",
                "The longest a reactor timer ran late since the daemon's start",
                value=m.stall.max_stall,
            )


class Metrics:
    """The figures of one daemon; `render()` writes them for a scrape."""

    def __init__(self, store: Store, jobs: Any, bus: EventBus, stall: Any = None) -> None:
        self.store = store
        self.jobs = jobs  # figures(): running, pending, slots, run counters
        self.stall = stall
        self.registry = CollectorRegistry(auto_describe=False)
        self._state = _State(self)
        self.registry.register(self._state)
        reg = self.registry
        self.dispatch_latency = Histogram(
            "coinspiders_dispatch_latency_seconds",
            "Seconds a run waited from its creation to its start",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.duration = Histogram(
            "coinspiders_job_duration_seconds",
            "Seconds a run took, from its start to its end",
            ["project", "spider", "status"],
            buckets=_DURATION_BUCKETS,
            registry=reg,
        )
        self.items = Counter(
            "coinspiders_items_scraped",
            "Items scraped by runs that ended since the daemon's start",
            ["project", "spider"],
            registry=reg,
        )
        self.webhooks = Counter(
            "coinspiders_webhook_deliveries",
            "Webhook delivery attempts, by webhook (its number in the config) and outcome "
            "(delivered, failed: answered otherwise or not at all, given_up)",
            ["webhook", "outcome"],
            registry=reg,
        )
        self.anomalies = Counter(
            "coinspiders_anomalies",
            "Run-to-run anomalies found in ended runs, by project, spider and kind",
            ["project", "spider", "kind"],
            registry=reg,
        )
        self.misfires = Counter(
            "coinspiders_schedule_misfires",
            "Firings of scheduled jobs skipped, missed beyond misfire_grace",
            registry=reg,
        )
        bus.subscribe(SCHEDULE_MISFIRED, lambda _: self.misfires.inc())
        bus.subscribe(JOB_CHANGED, self.job_changed)
        bus.subscribe(JOB_ENDED, self.job_ended)
        bus.subscribe(WEBHOOK_ATTEMPTED, self.webhook_attempted)

    def job_changed(self, job: Job) -> None:
        if job.status == RUNNING and job.started is not None:
            if job.attempt > 1:  # a retry waited for its due time, not for a slot
                return
            self.dispatch_latency.observe(max(job.started - job.created, 0.0))
        elif job.status in COMPLETED_STATUSES and job.started is not None:
            end = job.finished if job.finished is not None else job.updated
            self.duration.labels(job.project, job.spider, job.status).observe(
                max(end - job.started, 0.0)
            )
            self.items.labels(job.project, job.spider).inc(items_of(job.stats))

    def job_ended(self, job: Job) -> None:
        for finding in findings_of(job.anomalies):
            kind = str(finding.get("what", ""))
            self.anomalies.labels(job.project, job.spider, kind).inc()

    def webhook_attempted(self, payload: tuple[int, str]) -> None:
        webhook, outcome = payload
        self.webhooks.labels(str(webhook), outcome).inc()

    def render(self) -> bytes:
        """The text format of every figure. The job counts come from the store's
        job_counts table (one row per status, project and spider: a short read)."""
        self._state.counts = self.store.job_counts()
        return generate_latest(self.registry)
