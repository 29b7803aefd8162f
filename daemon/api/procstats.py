"""The daemon's own memory and CPU use for status.json, sampled at most once a second.

A sample reads two /proc files through psutil (~35 µs, most of what status.json cost
besides HTTP itself); clients poll status.json thousands of times a second at most, and a
figure a second old is as true as a monitor can use. The CPU figure is psutil's average
since the previous sample, so it covers a second or more instead of the fraction of a
millisecond between two back-to-back requests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

SAMPLE_SECONDS = 1.0


class ProcessFigures:
    """RSS (MiB) and CPU (% of one core) of this process, refreshed when read after
    `interval` seconds; nothing runs while nobody asks."""

    def __init__(
        self, interval: float = SAMPLE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._proc = psutil.Process(os.getpid())
        self._proc.cpu_percent(None)  # primes the counter: the next call measures since now
        self._due = float("-inf")
        self.memory_mib = 0.0
        self.cpu_percent = 0.0
        self.samples = 0

    def read(self) -> tuple[float, float]:
        """(memory MiB, CPU %), at most `interval` seconds old."""
        now = self._clock()
        if now >= self._due:
            self.memory_mib = self._proc.memory_info().rss / 1024.0 / 1024.0
            self.cpu_percent = float(self._proc.cpu_percent(None))
            self.samples += 1
            self._due = now + self.interval
        return self.memory_mib, self.cpu_percent
