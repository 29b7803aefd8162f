"""The counters of each crawl over its life, for the job page's chart.

A crawl writes only its current stats (daemon/runner/stats.py); the chart needs their
history. While a job runs, its stats file is sampled every `interval` seconds (a small
non-blocking read, see daemon.live_stats) into at most `points` samples: when full,
every other sample is dropped and the job is sampled half as often, so a long crawl
keeps a whole-life picture in bounded memory. Ended jobs keep their series in a small
LRU for pages opened after the end.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.task import LoopingCall

from daemon.domain import RUNNING
from daemon.events import JOB_CHANGED, EventBus

INTERVAL = 2.0
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
    """Samples the running jobs; `columns(job_id)` is uPlot's data for one job."""

    def __init__(
        self,
        reactor: Any,
        bus: EventBus | None,
        read: Callable[[str], str | None],
        interval: float = INTERVAL,
        points: int = POINTS,
    ) -> None:
        self.read = read
        self.points = points
        self.clock = reactor
        self.running: dict[str, _Track] = {}
        self.ended: OrderedDict[str, list[Point]] = OrderedDict()
        self.loop = LoopingCall(self.sample)
        self.loop.clock = reactor
        self.interval = interval
        if bus is not None:
            bus.subscribe(JOB_CHANGED, self.changed)

    def changed(self, job: Any) -> None:
        if job.status == RUNNING:
            self.running.setdefault(job.id, _Track())
            if not self.loop.running:
                self.loop.start(self.interval, now=False)
            return
        track = self.running.pop(job.id, None)
        if track is None:
            return
        if job.stats:
            with contextlib.suppress(ValueError):
                self._add(track, counters(json.loads(job.stats), self.clock.seconds()))
        self.ended[job.id] = track.points
        while len(self.ended) > KEEP_ENDED:
            self.ended.popitem(last=False)
        if not self.running and self.loop.running:
            self.loop.stop()

    def _add(self, track: _Track, point: Point) -> None:
        track.points.append(point)
        if len(track.points) >= self.points:
            track.points = track.points[::2]
            track.stride *= 2

    def sample(self) -> None:
        now = self.clock.seconds()
        for job_id, track in self.running.items():
            track.ticks += 1
            if track.ticks % track.stride:
                continue
            text = self.read(job_id)
            if text is None:
                continue
            try:
                self._add(track, counters(json.loads(text), now))
            except ValueError:
                continue

    def columns(self, job_id: str) -> list[list[float]]:
        """[[times], [items], [requests], [errors]] of a job (empty lists when unknown)."""
        track = self.running.get(job_id)
        points = track.points if track is not None else self.ended.get(job_id, [])
        return [list(column) for column in zip(*points, strict=True)] or [[], [], [], []]
