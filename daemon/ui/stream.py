"""The dashboard's live updates: one Server-Sent Events stream per browser tab.

What goes down a stream:
- `changed` events: the ids of jobs whose state changed, coalesced over COALESCE
  seconds, so a burst of hundreds of changes is a few small events; the page then
  re-fetches what it shows (the first render already carried the state, so nothing is
  lost between page load and connect);
- with `log=<job>.<out|err>`: the log from `from` (or the Last-Event-ID a reconnecting
  browser sends), as `log` events whose id is the byte offset after them, so a
  reconnect resumes with neither a gap nor a duplicate; then `logend` once the crawl
  has ended and the file is drained. Chunks are read in a worker thread;
- with a log, `stats` events: the crawl's live stats when they change;
- a comment every HEARTBEAT seconds, so proxies and the browser keep the stream.

Twisted buffers whatever is written to a slow connection without limit, so each stream
counts what it writes while the connection says it is full (paused); past `cap` bytes
the subscriber is dropped, and its browser reconnects from the last offset it got.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from zope.interface import implementer

from daemon.events import JOB_ADDED, JOB_CHANGED, SCHEDULE_ADDED, SCHEDULE_REMOVED, EventBus
from daemon.ui.logtail import Chunk, lines_html, read_from

log = Logger()

COALESCE = 0.25
HEARTBEAT = 15.0
FOLLOW_TICK = 0.25
UNSENT_CAP = 512 * 1024
MAX_IDS = 200


def sse_event(kind: str, data: str, event_id: str | None = None) -> bytes:
    """One SSE event; `data` must hold no newline (every payload here is one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


@implementer(IPushProducer)
class Stream:
    """One open stream: writes through the request, counting bytes while paused."""

    def __init__(self, hub: Hub, request: Any, cap: int) -> None:
        self.hub = hub
        self.request = request
        self.cap = cap
        self.paused = False
        self.unsent = 0
        self.closed = False
        self.follower: LogFollower | None = None
        self.done: Deferred[None] = Deferred(lambda _: self.close())
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(lambda _: self.close())

    # IPushProducer: told by the connection when its buffer is full and drained.
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.unsent = 0
        if self.follower is not None:
            self.follower.kick()

    def stopProducing(self) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.paused:
            self.unsent += len(data)
            if self.unsent > self.cap:
                self.drop()
                return
        self.request.write(data)

    def drop(self) -> None:
        """The subscriber does not read: cut it off (it reconnects from its last id)."""
        log.info("ui: dropped a stream whose unsent bytes passed {cap}", cap=self.cap)
        transport = getattr(self.request.channel, "transport", None)
        self.close()
        if transport is not None:
            transport.abortConnection()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.follower is not None:
            self.follower.stop()
        self.hub.detach(self)
        if getattr(self.request, "channel", None) is not None:
            self.request.unregisterProducer()
        if not self.done.called:
            self.done.callback(None)


class LogFollower:
    """Sends a log from an offset on, chunk by chunk, read in a worker thread; stops once
    the crawl has ended and the file is drained (then sends `logend`)."""

    def __init__(
        self,
        stream: Stream,
        path: Path,
        offset: int,
        is_final: Callable[[], bool],
        stats: Callable[[], str | None],
        clock: Any,
    ) -> None:
        self.stream = stream
        self.path = path
        self.offset = offset
        self.is_final = is_final
        self.stats = stats
        self.last_stats: str | None = None
        self.reading = False
        self.ended = False
        self.clock = clock
        self.loop = LoopingCall(self.tick)
        self.loop.clock = clock

    def start(self) -> None:
        self.loop.start(FOLLOW_TICK, now=True)

    def stop(self) -> None:
        self.ended = True
        if self.loop.running:
            self.loop.stop()

    def kick(self) -> None:
        if not self.ended:
            self.clock.callLater(0, self.tick)

    def tick(self) -> None:
        # Also while the connection is full: what is written then counts against the
        # stream's cap, so a subscriber that stops reading is dropped, not buffered for.
        if self.ended or self.reading:
            return
        stats = self.stats()
        if stats is not None and stats != self.last_stats:
            self.last_stats = stats
            self.stream.send(sse_event("stats", stats))
        # The state is read before the file: a job seen final has written its last byte.
        final = self.is_final()
        self.reading = True
        d = deferToThread(read_from, self.path, self.offset, final)
        d.addCallbacks(self.got, self.failed, callbackArgs=(final,))

    def got(self, chunk: Chunk, final: bool) -> None:
        self.reading = False
        if self.ended:
            return
        if chunk.data:
            self.offset = chunk.end
            self.stream.send(sse_event("log", lines_html(chunk.data.rstrip(b"\n")), str(chunk.end)))
        if chunk.end < chunk.size:
            if not self.stream.paused:
                self.kick()  # more is there and the client keeps up: no need to wait
        elif final:
            self.stream.send(sse_event("logend", str(chunk.end), str(chunk.end)))
            self.stop()

    def failed(self, failure: Any) -> None:
        self.reading = False
        self.stream.send(sse_event("logend", "unreadable"))
        self.stop()


class Hub:
    """Every open stream of the daemon, fed from the event bus."""

    def __init__(
        self,
        reactor: Any,
        bus: EventBus | None,
        coalesce: float = COALESCE,
        heartbeat: float = HEARTBEAT,
        cap: int = UNSENT_CAP,
    ) -> None:
        self.reactor = reactor
        self.coalesce = coalesce
        self.cap = cap
        self.streams: set[Stream] = set()
        self._changed: set[str] = set()
        self._flush_call: Any = None
        self._beat = LoopingCall(self.heartbeat)
        self._beat.clock = reactor
        self._beat_interval = heartbeat
        if bus is not None:
            bus.subscribe(JOB_CHANGED, lambda job: self.note(job.id))
            bus.subscribe(JOB_ADDED, self.note)
            bus.subscribe(SCHEDULE_ADDED, lambda added: self.note(added[0]))
            bus.subscribe(SCHEDULE_REMOVED, self.note)

    def note(self, job_id: str) -> None:
        """A job changed: tell every stream soon, with whatever else changed meanwhile."""
        if not self.streams:
            return
        self._changed.add(job_id)
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(self.coalesce, self.flush)

    def flush(self) -> None:
        self._flush_call = None
        ids = sorted(self._changed)[:MAX_IDS]
        self._changed.clear()
        event = sse_event("changed", json.dumps({"jobs": ids}))
        for stream in list(self.streams):
            stream.send(event)

    def heartbeat(self) -> None:
        for stream in list(self.streams):
            stream.send(b": keep-alive\n\n")

    def open(self, request: Any) -> Stream:
        """Start an event stream on `request` (its reply headers and first bytes)."""
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Accel-Buffering", b"no")  # nginx: do not hold events back
        stream = Stream(self, request, self.cap)
        self.streams.add(stream)
        if not self._beat.running:
            self._beat.start(self._beat_interval, now=False)
        stream.send(b"retry: 2000\n: open\n\n")
        return stream

    def detach(self, stream: Stream) -> None:
        self.streams.discard(stream)
        if not self.streams and self._beat.running:
            self._beat.stop()
