"""How long the reactor thread is held: the daemon's own measure of a blocked loop."""

from __future__ import annotations

import time
from typing import Any

from twisted.application.service import Service


class StallMonitor(Service):
    """Measures how late the reactor runs a timer (the longest stall since start), so a
    blocking call on the reactor thread shows up in status.json.

    `max_stall` is wall-clock lateness, so it also counts time the daemon waited for a
    CPU that other programs held. `max_busy` is the longest stretch of CPU time the
    reactor thread spent in one loop iteration (timers, or the I/O handlers of one poll)
    without going back to the loop: the stalls of the daemon's own making.
    """

    name = "stall-monitor"

    def __init__(self, reactor: Any, interval: float = 0.05) -> None:
        self.reactor = reactor
        self.interval = interval
        self.max_stall = 0.0
        self.max_busy = 0.0
        #: CPU seconds the reactor thread spent in loop iterations since start (/metrics).
        self.busy_total = 0.0
        self._loop: Any = None
        self._last = 0.0
        self._timed: list[tuple[str, Any]] = []

    def startService(self) -> None:
        super().startService()
        from twisted.internet.task import LoopingCall

        self._last = self.reactor.seconds()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)
        for name in ("runUntilCurrent", "doIteration"):
            inner = getattr(self.reactor, name, None)
            if inner is not None:
                self._timed.append((name, inner))
                setattr(self.reactor, name, self._timing(inner))

    def _timing(self, inner: Any) -> Any:
        def timed(*args: Any) -> Any:
            start = time.thread_time()
            try:
                return inner(*args)
            finally:
                busy = time.thread_time() - start
                self.busy_total += busy
                if busy > self.max_busy:
                    self.max_busy = busy

        return timed

    def _tick(self) -> None:
        now = self.reactor.seconds()
        self.max_stall = max(self.max_stall, now - self._last - self.interval)
        self._last = now

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for name, inner in self._timed:
            setattr(self.reactor, name, inner)
        self._timed = []
