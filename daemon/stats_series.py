"""The counters of each crawl over its life, for the job page's chart.

A crawl writes only its current stats (daemon/runner/stats.py); the chart needs their
history. The executor publishes a running crawl's stats on the bus when they change
(CRAWL_STATS); each is kept as a point, at most `points` per job: when full, every
other point is dropped and only every other later event is kept, so a long crawl keeps
a whole-life picture in bounded memory. Ended jobs keep their series in a small LRU for
pages opened after the end. Built once, in daemon/app.py, from the daemon's start: a
page opened later still sees the whole life.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from typing import Any

from daemon.domain import RUNNING
from daemon.events import JOB_CHANGED, EventBus
from daemon.executor import CRAWL_STATS, CrawlStats

POINTS = 600
KEEP_ENDED = 50

#: (time, items, requests, errors)
Point = tuple[float, float, float, float]


def counters(stats: dict[str, Any], at: float) -> Point:
    """The charted counters of a stats document (Scrapy's names)."""
    errors = sum(
        v for k, v in stats.items() if k.startswith("log_count/ERROR") and isinstance(v, int)
    )
    items = stats.get("item_scraped_count")
    requests = stats.get("downloader/request_count")
    return (
        at,
        float(items) if isinstance(items, (int, float)) else 0.0,
        float(requests) if isinstance(requests, (int, float)) else 0.0,
        float(errors),
    )


class _Track:
    def __init__(self) -> None:
        self.points: list[Point] = []
        self.stride = 1
        self.ticks = 0


class StatsSeries:
    """Keeps the running jobs' counters; `columns(job_id)` is uPlot's data for one job."""

    def __init__(self, clock: Any, bus: EventBus, points: int = POINTS) -> None:
        self.points = points
        self.clock = clock
        self.running: dict[str, _Track] = {}
        self.ended: OrderedDict[str, list[Point]] = OrderedDict()
        bus.subscribe(CRAWL_STATS, self.sampled)
        bus.subscribe(JOB_CHANGED, self.changed)

    def sampled(self, event: CrawlStats) -> None:
        track = self.running.setdefault(event.job_id, _Track())
        track.ticks += 1
        if track.ticks % track.stride:
            return
        with contextlib.suppress(ValueError, AttributeError):
            self._add(track, counters(json.loads(event.stats), self.clock.seconds()))

    def changed(self, job: Any) -> None:
        if job.status == RUNNING:
            self.running.setdefault(job.id, _Track())
            return
        track = self.running.pop(job.id, None)
        if track is None:
            return
        if job.stats:
            with contextlib.suppress(ValueError, AttributeError):
                self._add(track, counters(json.loads(job.stats), self.clock.seconds()))
        self.ended[job.id] = track.points
        while len(self.ended) > KEEP_ENDED:
            self.ended.popitem(last=False)

    def _add(self, track: _Track, point: Point) -> None:
        track.points.append(point)
        if len(track.points) >= self.points:
            track.points = track.points[::2]
            track.stride *= 2

    def columns(self, job_id: str) -> list[list[float]]:
        """[[times], [items], [requests], [errors]] of a job (empty lists when unknown)."""
        track = self.running.get(job_id)
        points = track.points if track is not None else self.ended.get(job_id, [])
        return [list(column) for column in zip(*points, strict=True)] or [[], [], [], []]
