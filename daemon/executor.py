"""The executor seam: where the jobs service hands a crawl to be run, and hears back.

The jobs service decides job states; an executor runs crawls somewhere (this machine's
processes, or worker hosts) and reports what happened as events on the daemon's
EventBus. Nothing of how a crawl runs crosses the seam: a running crawl is known by an
opaque `handle` (text only its executor reads) on a named `node`, and its end comes
with everything the verdict needs (the process outcome, the crawl's job.json, its final
stats, the close reason from its log), so no caller reads a local file or a pid.

Events are topics on the EventBus rather than callbacks on the executor: listeners
other than the jobs service (the dashboard, alerts, the coin service) hear a crawl's
stats and end without the jobs service passing them on, and an executor is built
without knowing who listens, as every other service is. Delivery is on the reactor
thread: an executor whose news arrives in another thread hands it over
(reactor.callFromThread) before publishing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from daemon.events import Topic
from daemon.launcher import Outcome

__all__ = [
    "CRAWL_ENDED",
    "CRAWL_STARTED",
    "CRAWL_STATS",
    "CrawlEnded",
    "CrawlStarted",
    "CrawlStats",
    "IExecutor",
    "JobSpec",
    "LeftRunning",
    "Outcome",
    "StartError",
]


class StartError(Exception):
    """A crawl that could not be started; its message says why (shown as the reason)."""


@dataclass(frozen=True)
class JobSpec:
    """Everything an executor needs to run one attempt of a job."""

    id: str
    project: str
    version: str | None  # None: the project's latest
    spider: str
    #: The project folder on this machine, pinned by the jobs service while the crawl
    #: runs (a remote executor fetches `project`/`version` itself and ignores it).
    cwd: Path
    settings: Mapping[str, str]
    payload: str  # the spider arguments, a JSON object
    max_runtime: float | None  # seconds; None: no limit
    attempt: int = 1


@dataclass(frozen=True)
class LeftRunning:
    """A job the store says is RUNNING when the daemon starts: an earlier daemon's."""

    id: str
    project: str
    version: str | None
    spider: str
    handle: str | None  # as the executor reported it (None: the daemon died first)
    node: str | None
    #: Seconds of its max_runtime left (None: no limit; 0: stop it at once).
    time_left: float | None
    attempt: int = 1


@dataclass(frozen=True)
class CrawlStarted:
    """A crawl is running (or, after a restart, was found running) as `handle`."""

    job_id: str
    handle: str
    node: str


@dataclass(frozen=True)
class CrawlStats:
    """The latest stats of a running crawl (Scrapy's stat names; JSON object text)."""

    job_id: str
    stats: str


@dataclass(frozen=True)
class CrawlEnded:
    """A crawl ended. `manifest` is its job.json (None: it wrote none); `log_close_reason`
    the close reason its log gave (read only when there is no manifest); `stats` its
    final stats as JSON object text."""

    job_id: str
    outcome: Outcome
    manifest: Mapping[str, Any] | None
    stats: str | None = None
    log_close_reason: str | None = None


#: Published once per start (and per crawl re-attached after a restart).
CRAWL_STARTED: Topic[CrawlStarted] = Topic("crawl.started")
#: Published while a crawl runs, when its stats change.
CRAWL_STATS: Topic[CrawlStats] = Topic("crawl.stats")
#: Published exactly once per crawl started or re-attached, after it ended.
CRAWL_ENDED: Topic[CrawlEnded] = Topic("crawl.ended")


class IExecutor(Interface):
    """Runs crawls and reports them on the EventBus it was built with (on the reactor
    thread). A job counts as running here from the call of `start` until its
    CRAWL_ENDED event (or the errback of `start`)."""

    node = Attribute("The node name stored with each job this executor starts (str).")

    def start(spec: JobSpec) -> Deferred[str]:
        """Start one attempt. Fires with the crawl's handle once it runs (CRAWL_STARTED
        is published first); errbacks (StartError or another exception, its message
        the reason) when it could not start, and then no event follows."""

    def cancel(job_id: str, why: str, sig: int | None = None) -> Deferred[None] | None:
        """Stop a running crawl: `sig` (SIGTERM when None) to every process of it,
        SIGKILL after the grace period (`cancel_grace`); `sig` named again while it
        stops is sent again. `why` ("cancel", "timeout", "shutdown") becomes the
        outcome's stop_reason. Fires once CRAWL_ENDED was published (or its start
        failed); None when the job does not run here."""

    def reattach(left: Sequence[LeftRunning]) -> None:
        """Take back jobs an earlier daemon left running: each one still running is
        followed (CRAWL_STARTED, its max_runtime applied from `time_left`), each one
        gone is reported ended at once (CRAWL_ENDED with an orphan outcome)."""

    def running_ids() -> Collection[str]:
        """The ids of the jobs running here now (starting ones included)."""

    def running_count() -> int:
        """len(running_ids()), cheaply: asked on every dispatch and status.json."""

    def stop_all(why: str) -> Deferred[Any]:
        """Stop every crawl (as `cancel` with `why`); fires once all have ended."""

    def log_path(job_id: str, kind: str, attempt: int | None = None) -> Path:
        """Where the job's `out` or `err` (Scrapy's) log is read on this machine: the
        current (or last) attempt's, or with `attempt` an earlier attempt's (an
        executor keeps each attempt's logs when it starts the next one)."""

    def forget(job_id: str) -> None:
        """The job's record is gone from the store: drop what is kept for it (logs)."""
