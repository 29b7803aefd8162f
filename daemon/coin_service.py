"""The coin service: keeps the coin index fed from job folders and answers the coin API.

The index is fed on job events (a run started or ended) and on request (a status poll
reads whatever the running crawl appended since the last poll), so a coin shows up as
soon as its line is in items.jl. Every index call, file read included, runs in a small
thread pool of its own: the reactor thread only routes and shapes JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from coinspiders.jobfolder import DATA_FILE, ITEMS_FILE, MANIFEST_FILE, coin_output, coin_task
from daemon.coin_index import CoinFilter, CoinIndex
from daemon.coin_records import (
    DEFAULT_CURRENCY,
    is_cmc_id,
    is_job_id,
    task_id,
    task_outputs,
    unknown_coin_message,
)
from daemon.errors import DaemonError
from daemon.events import JOB_CHANGED, EventBus

log = Logger()
T = TypeVar("T")

# A job folder holds at least one of these once its crawl started.
JOB_FILES = (MANIFEST_FILE, ITEMS_FILE)
FINAL_STATUSES = ("SUCCESSFUL", "FAILED", "CANCELED")
# Largest data.json served whole (a 5,000-coin listing is about 10 MB).
MAX_DATA_BYTES = 64 * 1024 * 1024


class JobLike(Protocol):
    """A job as the coin service reads it (read-only: the store's Job is frozen)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


class JobsLike(Protocol):
    """What the coin service needs of the jobs service (daemon/jobs.py)."""

    def submit(
        self, project: str, spider: str, *, description: str = ..., payload: str = ...
    ) -> Any: ...


class JobReadsLike(Protocol):
    """What the coin service reads of the job store (daemon.job_store.JobReads)."""

    def get(self, job_id: str) -> JobLike | None: ...

    def list_jobs(self, statuses: Iterable[str] | None, *args: Any, **kwargs: Any) -> list[Any]: ...


class CoinApiError(DaemonError):
    """A request the coin API refuses; `http_status` is the reply's status."""


@dataclass(frozen=True)
class Started:
    job_id: str
    task_ids: dict[str, str]


class CoinService(Service):
    """One per daemon: owns the coin index and the thread pool that touches it."""

    name = "coins"

    def __init__(
        self,
        data_dir: Path,
        jobs: JobsLike,
        bus: EventBus,
        reactor: Any = None,
        *,
        reads: JobReadsLike,
        project: str = "coinspiders",
        spider: str = "coin",
        threads: int = 1,
        projects: Any = None,
        sweep_every: float = 60.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.data_dir = Path(data_dir).resolve()
        self.jobs = jobs
        self.reads = reads
        self.bus = bus
        self._unsubscribe: Callable[[], None] | None = None
        self.project = project
        self.spider = spider
        # The daemon's project store (supports `in`); None skips the check.
        self.projects = projects
        self.index = CoinIndex(self.data_dir)
        # One thread by default: index work runs in the order it was asked (a job's
        # final read before the queries that follow it); each query takes milliseconds.
        self.pool = ThreadPool(minthreads=1, maxthreads=threads, name="coin-index")
        # Runs whose items.jl may still grow: read again before answering a list query.
        self.active: set[str] = set()
        self._ready = False
        self._waiting: list[Deferred[None]] = []
        # Crawls started from a shell into the same data/ are no job of ours: a sweep now
        # and then reads them (and forgets removed folders); 0 turns it off.
        self.sweep_every = sweep_every
        self._sweep: LoopingCall | None = None
        self._sweeping = False

    # -- service life --------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.pool.start()
        self._unsubscribe = self.bus.subscribe(JOB_CHANGED, self._on_job)
        for job in self.reads.list_jobs(["RUNNING"], limit=10_000):
            self.active.add(job.id)
        d = deferToThreadPool(self.reactor, self.pool, self._open)
        d.addErrback(lambda f: log.failure("coin index could not be opened", f))
        d.addBoth(self._set_ready)
        if self.sweep_every > 0:
            self._sweep = LoopingCall(self._sweep_folders)
            self._sweep.clock = self.reactor
            self._sweep.start(self.sweep_every, now=False)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self.pool.stop()
        self.index.close()
        return None

    def _open(self) -> None:
        if self.index.open():
            count = self.index.rebuild()
            log.info("coin index rebuilt from {dir}: {n} records", dir=self.data_dir, n=count)
        else:
            count = self.index.catch_up()
            if count:
                log.info("coin index caught up: {n} new records", n=count)

    def _set_ready(self, _: Any) -> None:
        self._ready = True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def when_ready(self) -> Deferred[None]:
        """Fires once the index is open (and rebuilt, if it had to be)."""
        if self._ready:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    def _run(self, fn: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run `fn(*args)` in the index's thread pool once the index is ready."""
        ready = self.when_ready()
        return ready.addCallback(lambda _: deferToThreadPool(self.reactor, self.pool, fn, *args))

    def _sweep_folders(self) -> None:
        if self._sweeping or not self._ready:
            return
        self._sweeping = True
        d = self._run(self.index.catch_up)
        d.addErrback(lambda f: log.failure("coin index: sweep of data/ failed", f))
        d.addBoth(lambda _: setattr(self, "_sweeping", False))

    # -- job events ----------------------------------------------------------

    def _on_job(self, job: Any) -> None:
        if job.status == "RUNNING":
            self.active.add(job.id)
        elif job.status in FINAL_STATUSES:
            self.active.discard(job.id)
            d = self._run(self.index.ingest_job, job.id)
            d.addErrback(lambda f: log.failure("coin index: ingest of {job} failed", f, job=job.id))

    def _refresh(self, job_ids: Iterable[str]) -> None:
        """In the pool: read what running crawls appended (a stat each when nothing did)."""
        for job_id in job_ids:
            self.index.ingest_job(job_id)

    # -- start / status -------------------------------------------------------

    def start(self, coins: list[str]) -> Started:
        """One `coin` crawl for `coins`, started now; the task ids are stable per coin."""
        if self.projects is not None and self.project not in self.projects:
            raise CoinApiError(f"The {self.project} project is not available in this daemon", 503)
        try:
            job = self.jobs.submit(
                self.project,
                self.spider,
                description=f"coin API: {', '.join(coins)[:200]}",
                payload=json.dumps({"coins": coins}, ensure_ascii=False),
            )
        except Exception as exc:
            status = getattr(exc, "http_status", 500)
            message = getattr(exc, "message", None) or "The job could not be started"
            raise CoinApiError(message, status) from None
        # A job that submit already ended has had its final event: adding it now would
        # leave it in `active` for good.
        if job.status in ("PENDING", "RUNNING"):
            self.active.add(job.id)
        return Started(job.id, {coin: task_id(job.id, coin) for coin in coins})

    def _job(self, job_id: str) -> JobLike | None:
        try:
            return self.reads.get(job_id)
        except Exception:  # a malformed id is simply not a job
            return None

    def _known_job(self, job_id: str) -> tuple[bool, JobLike | None]:
        """(exists, the daemon's job if it has one): a UUID the daemon knows, or whose
        folder a crawl wrote (a run the daemon forgot, or one started from a shell)."""
        if not is_job_id(job_id):
            return False, None
        job = self._job(job_id)
        if job is not None:
            return True, job
        folder = self.data_dir / job_id
        return any((folder / name).is_file() for name in JOB_FILES), None

    def job_exists(self, job_id: str) -> bool:
        return self._known_job(job_id)[0]

    def status(self, job_id: str, coins: list[str]) -> Deferred[dict[str, Any]]:
        """Each asked coin's output: its figures or error once its line is in items.jl."""
        exists, job = self._known_job(job_id)
        if not exists:
            raise CoinApiError(f"Job {job_id} not found", 404)
        # Whether the job ended is taken here, on the reactor, before items.jl is read:
        # a job that ends while the read runs may have lines the read missed, and its
        # coins must not be reported as never collected.
        ended = (
            (job.status, job.reason) if job is not None and job.status in FINAL_STATUSES else None
        )

        def read() -> dict[str, dict[str, Any]]:
            self.index.ingest_job(job_id)
            return self.index.task_records(job_id, coins)

        def shape(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
            return {"job_id": job_id, "tasks": task_outputs(coins, found, ended)}

        return self._run(read).addCallback(shape)

    # -- coin data -----------------------------------------------------------

    def coins(
        self, filters: CoinFilter, limit: int, offset: int, sort: str = "rank"
    ) -> Deferred[list[dict]]:
        active = sorted(self.active)
        if filters.job is not None:
            active.append(filters.job)

        def read() -> list[dict[str, Any]]:
            self._refresh(active)
            return self.index.coins(filters, limit, offset, sort)

        return self._run(read)

    def _never_collected(self, key: str) -> CoinApiError:
        """In the pool: the 404 for a coin path that names no collected coin."""
        same = [] if is_cmc_id(key) else self.index.same_symbol(key)
        return CoinApiError(unknown_coin_message(key, same), 404)

    def coin(self, key: str, currency: str = DEFAULT_CURRENCY) -> Deferred[dict[str, Any]]:
        """The latest record of a coin in `currency`; CoinApiError 404 when there is none."""
        active = sorted(self.active)

        def read() -> dict[str, Any]:
            self._refresh(active)
            doc = self.index.coin(key, currency)
            if doc is not None:
                return doc
            collected_in = self.index.currencies(key)
            if not collected_in:
                raise self._never_collected(key)
            raise CoinApiError(
                f"Coin {key!r} was never collected in {currency}; it was collected in "
                f"{', '.join(collected_in)} (ask with ?currency={collected_in[0]})",
                404,
            )

        return self._run(read)

    def history(
        self,
        key: str,
        since: str | None,
        until: str | None,
        limit: int,
        offset: int,
        currency: str = DEFAULT_CURRENCY,
    ) -> Deferred[list[dict[str, Any]]]:
        """A coin's records in one currency, oldest first (empty in a currency it was never
        collected in); CoinApiError 404 for a coin never collected at all."""
        active = sorted(self.active)

        def read() -> list[dict[str, Any]]:
            self._refresh(active)
            rows = self.index.history(key, since, until, limit, offset, currency)
            if rows is None:
                raise self._never_collected(key)
            return rows

        return self._run(read)

    def logo(self, key: str) -> Deferred[bytes | None]:
        """The newest stored logo of a coin; None when there is none (CoinApiError 404 for
        a coin never collected)."""
        active = sorted(self.active)

        def read() -> bytes | None:
            self._refresh(active)
            found = self.index.latest_logo(key)
            if found is None:
                if not self.index.known(key):
                    raise self._never_collected(key)
                return None
            job_id, relpath = found
            folder = (self.data_dir / job_id).resolve()
            path = (folder / relpath).resolve()
            # A record names the file; it must still be a file inside its job folder,
            # and that folder inside data/ (links resolved).
            inside = path.is_relative_to(folder) and folder.is_relative_to(self.data_dir)
            if not inside or not path.is_file():
                return None
            return path.read_bytes()

        return self._run(read)

    def job_data(self, job_id: str) -> Deferred[tuple[bool, Any]]:
        """(complete, document): data.json's bytes, else the records read so far."""
        if not self.job_exists(job_id):
            raise CoinApiError(f"Job {job_id} not found", 404)

        def read() -> tuple[bool, Any]:
            folder = (self.data_dir / job_id).resolve()
            path = (folder / DATA_FILE).resolve()
            # As for logos: data.json must be a file inside its job folder, and the folder
            # inside data/ (links resolved); otherwise the records of items.jl are served.
            inside = path.is_relative_to(folder) and folder.is_relative_to(self.data_dir)
            if inside:
                try:
                    with path.open("rb") as fh:
                        raw = fh.read(MAX_DATA_BYTES + 1)
                    if len(raw) <= MAX_DATA_BYTES:
                        return True, raw
                except (FileNotFoundError, IsADirectoryError):
                    pass
            self.index.ingest_job(job_id)
            return False, [_data_entry(r) for r in self.index.job_records(job_id)]

        return self._run(read)


def _data_entry(record: dict[str, Any]) -> dict[str, Any]:
    """A record as data.json shows it: `{"coin", "output"}` for a coin asked by name."""
    if record.get("query") is not None:
        return coin_task(record["query"], coin_output(record))
    return record
