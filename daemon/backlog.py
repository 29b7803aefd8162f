"""Store writes that found the disk full, kept in order and retried until they succeed.

A crawl that ends on a full disk has ended whatever the disk says: its final state must
reach the store once space is back, without a restart. The jobs service hands every
state change of a job that already happened (a crawl ended, a pending job was
cancelled) to `WriteBacklog.write`: it is written at once when it can be, else queued
and retried with a growing delay. One queue for all jobs, replayed front to back, so
two changes of one job are never written out of order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from daemon.job_store import StoreFull

log = Logger()

FIRST_DELAY = 0.25
MAX_DELAY = 5.0


@dataclass
class _Write:
    key: str
    label: str
    run: Callable[[], Any]
    then: Callable[[Any], None] | None


class WriteBacklog:
    """Writes waiting for disk space; every method runs on the reactor thread."""

    def __init__(
        self,
        clock: Any,
        on_drained: Callable[[], None] = lambda: None,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.clock = clock
        self.on_drained = on_drained
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._queue: deque[_Write] = deque()
        self._delay = first_delay
        self._timer: IDelayedCall | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def holds(self, key: str) -> bool:
        """Whether a change of `key` (a job id) is still waiting to be written."""
        return any(w.key == key for w in self._queue)

    def write(
        self,
        key: str,
        label: str,
        run: Callable[[], Any],
        then: Callable[[Any], None] | None = None,
    ) -> bool:
        """Run `run()` now and `then(result)` after it; return True. While writes wait,
        or when this one finds the disk full, queue it and return False. Errors other
        than a full disk are raised."""
        item = _Write(key, label, run, then)
        if self._queue:  # behind the others; the next retry writes them all in order
            self._queue.append(item)
            return False
        try:
            result = run()
        except StoreFull:
            self._queue.append(item)
            log.warn("disk full: {what} not written yet; retrying", what=label)
            self._arm()
            return False
        self._after(item, result)
        return True

    def flush(self) -> None:
        """Write what waits, oldest first, until the disk refuses again."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        while self._queue:
            item = self._queue[0]
            try:
                result = item.run()
            except StoreFull:
                self._arm()
                return
            except Exception:
                # Not a lack of space: retrying cannot help, and it must not stop the rest.
                log.failure("dropping a waiting write: {what}", what=item.label)
                self._queue.popleft()
                continue
            self._queue.popleft()
            log.info("written after the disk had been full: {what}", what=item.label)
            self._after(item, result)
        self._delay = self.first_delay
        self.on_drained()

    def _after(self, item: _Write, result: Any) -> None:
        if item.then is not None:
            try:
                item.then(result)
            except Exception:
                log.failure("after writing {what}", what=item.label)

    def _arm(self) -> None:
        if self._timer is None or not self._timer.active():
            self._timer = self.clock.callLater(self._delay, self.flush)
            self._delay = min(self._delay * 2, self.max_delay)

    def cancel(self) -> None:
        """Stop retrying (the daemon stops); what waits is lost with the process, as it
        would be with any write not yet made."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
