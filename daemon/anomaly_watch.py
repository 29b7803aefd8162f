"""Compares every run that ends with its own history (daemon.anomalies), keeps the report
on the job, and announces the end with it (JOB_ENDED), so webhooks and metrics see a
run's end and its anomalies together.

Synchronous, on the reactor thread, inside the JOB_CHANGED of the end: the history read
is one bounded, indexed statement (Store.history) and the comparison a few medians. Done
later (in a thread) it would open a window in which a stopping daemon has recorded the
end but not announced it, and a webhook would never hear of it.
"""

from __future__ import annotations

import dataclasses
import json

from twisted.logger import Logger

from daemon.anomalies import compare, figures
from daemon.config import AnomalyConfig
from daemon.domain import COMPLETED_STATUSES, FAILED, SUCCESSFUL
from daemon.events import JOB_CHANGED, JOB_ENDED, EventBus
from daemon.job_store import Job, Store, StoreFull

log = Logger()


def _duration(started: float | None, finished: float | None) -> float | None:
    return finished - started if started is not None and finished is not None else None


class AnomalyWatch:
    def __init__(self, store: Store, bus: EventBus, limits: AnomalyConfig) -> None:
        self.store = store
        self.bus = bus
        self.limits = limits
        bus.subscribe(JOB_CHANGED, self.job_changed)

    def job_changed(self, job: Job) -> None:
        if job.status not in COMPLETED_STATUSES:
            return
        try:
            job = self.compared(job)
        finally:
            self.bus.publish(JOB_ENDED, job)

    def compared(self, job: Job) -> Job:
        """`job` with its report; unchanged when it is not compared (canceled, never
        started: nothing it did says anything about the site)."""
        if job.status not in (SUCCESSFUL, FAILED) or job.started is None:
            return job
        rows = self.store.history(job, self.limits.history)
        history = [
            figures(stats, _duration(started, finished)) for stats, started, finished in rows
        ]
        run = figures(job.stats, _duration(job.started, job.finished))
        report = compare(run, history, self.limits)
        text = json.dumps(report, ensure_ascii=False, allow_nan=False)
        if report["findings"]:
            log.warn(
                "job {id} ({project}/{spider}) differs from its history: {what}",
                id=job.id,
                project=job.project,
                spider=job.spider,
                what=", ".join(
                    f["what"] + (f" {f['field']}" if "field" in f else "")
                    for f in report["findings"]
                ),
            )
        try:
            self.store.set_anomalies(job.id, text)
        except StoreFull:
            log.warn("job {id}: disk full, its anomaly report is not kept", id=job.id)
        return dataclasses.replace(job, anomalies=text)
