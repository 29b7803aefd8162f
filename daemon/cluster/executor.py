"""The Celery executor (`executor: celery`): crawls run on worker hosts.

The daemon stays the owner of truth. For each attempt of a job it offers the attempt
in Redis and publishes one Celery task (from a thread: Celery's client blocks); a
worker claims it (daemon/cluster/leases.py), runs it and reports through the worker
gate (daemon/cluster/gate.py), which turns the reports into the executor seam's events
(daemon/executor.py). A reaper looks at the leases: a claimed attempt whose lease ran
out (its worker died, froze or lost the network) becomes the next attempt, while
`celery.retries` allows, else the job ends FAILED "node lost". When Redis restarts
empty, queued attempts are published again and running ones offered again, and the
reaper waits a lease time before judging anyone.

The handle of a job is `celery:<attempt>:<worker>:<pid>`, so the ledger records which
attempt runs where. Stopping the daemon leaves crawls running on their workers: a
restarted daemon re-attaches them (their workers keep renewing and retry their reports
meanwhile).
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from daemon.cluster.files import project_files
from daemon.cluster.gate import WorkerGate
from daemon.cluster.leases import Lease, Leases, Node
from daemon.cluster.tasks import celery_app, publish, revoke
from daemon.config import Config
from daemon.events import EventBus
from daemon.executor import (
    CRAWL_ENDED,
    CRAWL_STARTED,
    CRAWL_STATS,
    CrawlEnded,
    CrawlStarted,
    CrawlStats,
    IExecutor,
    JobSpec,
    LeftRunning,
    Outcome,
    StartError,
)

__all__ = ["NODE_LOST", "CeleryExecutor", "format_handle", "parse_handle"]

log = Logger()

#: The stop reason (and the verdict's reason) of a job whose worker was lost for good.
NODE_LOST = "node lost"
HANDLE_PREFIX = "celery"
JOB_FOLDER_MAX_BYTES = 20 * 1024**3
JOB_FOLDER_MAX_FILES = 500_000


def format_handle(attempt: int, worker: str, pid: int) -> str:
    return f"{HANDLE_PREFIX}:{attempt}:{worker}:{pid}"


def parse_handle(handle: str | None) -> tuple[int, str, int] | None:
    """(attempt, worker, pid) of a Celery handle; None for anything else."""
    if not handle:
        return None
    parts = handle.split(":")
    if len(parts) != 4 or parts[0] != HANDLE_PREFIX:
        return None
    try:
        return int(parts[1]), parts[2], int(parts[3])
    except ValueError:
        return None


def version_key(project: str, folder: Path) -> str:
    """A name for the project folder's exact content: the same files give the same key
    (so a worker fetches each version once), any change gives another."""
    digest = hashlib.sha1(str(folder.resolve()).encode())
    for path in project_files(folder):
        try:
            st = path.stat()
        except OSError:
            continue
        rel = path.relative_to(folder).as_posix()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in project)[:60]
    return f"{safe}-{digest.hexdigest()[:20]}"


@dataclass
class Run:
    """One job this executor runs now: its current attempt and what is known of it."""

    job_id: str
    attempt: int
    body: dict[str, Any] | None  # the task (None until known after a re-attach)
    first_attempt: int = 1
    started: Deferred[str] | None = None  # start()'s answer, fired at the first claim
    worker: str | None = None
    claimed: bool = False  # a lease was seen (or the worker reported its start)
    published: bool = False
    stop_reason: str | None = None
    stop_sig: int | None = None
    flag_raised: bool = False
    missing_since: float | None = None  # when the reaper first found no lease
    max_runtime: float | None = None  # counted from the first claim, not the queue
    waiters: list[Deferred[None]] = field(default_factory=list)
    timers: list[IDelayedCall] = field(default_factory=list)
    ended: bool = False


@implementer(IExecutor)
class CeleryExecutor:
    """Every method runs on the reactor thread; Redis and Celery calls go to threads."""

    node = HANDLE_PREFIX

    def __init__(
        self,
        reactor: Any,
        bus: EventBus,
        config: Config,
        *,
        leases: Leases | None = None,
        in_thread: Callable[..., Deferred[Any]] = deferToThread,
    ) -> None:
        self.reactor = reactor
        self.bus = bus
        self.celery = config.celery
        self.cancel_grace = config.cancel_grace
        self.logs_dir = Path(config.logs_dir).resolve()
        self.data_dir = Path(config.data_dir).resolve()
        lease_ms = int(self.celery.lease * 1000)
        self.leases = leases or Leases.from_url(self.celery.broker, self.celery.prefix, lease_ms)
        self.app = celery_app(self.celery.broker, self.celery.queue)
        self.gate = WorkerGate(
            self,
            self.data_dir,
            self.logs_dir,
            # A job folder (items, data.json, a logo per coin) outgrows a project
            # archive's caps by far; these only stop a runaway worker.
            max_job_bytes=max(config.unpacked_max_bytes, JOB_FOLDER_MAX_BYTES),
            max_job_files=max(config.unpacked_max_files, JOB_FOLDER_MAX_FILES),
        )
        self.runs: dict[str, Run] = {}
        self._folders: dict[str, Path] = {}
        self._in_thread = in_thread
        self._loop: LoopingCall | None = None
        self._run_id: str | None = None
        self._judge_after = 0.0
        self._looking = False
        self.nodes_seen: list[Node] = []
        # The reaper also keeps the list of worker hosts fresh for status.json.
        reactor.callWhenRunning(self._ensure_loop)

    # -- IExecutor -------------------------------------------------------------

    def start(self, spec: JobSpec) -> Deferred[str]:
        run = Run(spec.id, spec.attempt, None, first_attempt=spec.attempt)
        run.started = Deferred()
        self.runs[spec.id] = run
        self._ensure_loop()
        run.max_runtime = spec.max_runtime

        def keyed(key: str) -> None:
            self._folders[key] = spec.cwd
            run.body = {
                "job_id": spec.id,
                "attempt": run.attempt,
                "project": spec.project,
                "project_key": key,
                "spider": spec.spider,
                "settings": dict(spec.settings),
                "payload": spec.payload,
                "grace": self.cancel_grace,
            }
            if run.stop_reason is None:
                self._publish(run)

        def failed(reason: Failure) -> None:
            self._drop(run)
            assert run.started is not None
            if not run.started.called:
                run.started.errback(StartError(f"cannot read the project: {reason.value}"))

        self._in_thread(version_key, spec.project, spec.cwd).addCallbacks(keyed, failed)
        return run.started

    def cancel(self, job_id: str, why: str, sig: int | None = None) -> Deferred[None] | None:
        run = self.runs.get(job_id)
        if run is None or run.ended:
            return None
        waiter: Deferred[None] = Deferred()
        run.waiters.append(waiter)
        if run.stop_reason is None:
            run.stop_reason = why
        run.stop_sig = sig or signal.SIGTERM
        if run.body is None or not run.published:
            # Not published yet (or its publish failed): nobody can have claimed it.
            self._end(run, Outcome(None, None, run.stop_reason))
            return waiter
        self._raise_flag(run)
        return waiter

    def reattach(self, left: Sequence[LeftRunning]) -> None:
        if not left:
            return
        self._ensure_loop()
        # Workers get one lease time to show their leases before anyone is judged.
        self._judge_after = time.monotonic() + self.celery.lease * 1.5
        for job in left:
            found = parse_handle(job.handle)
            attempt = found[0] if found else job.attempt
            run = Run(job.id, attempt, None, first_attempt=1, published=True)
            self.runs[job.id] = run
            if found:
                run.worker, run.claimed = found[1], True
                handle = job.handle or ""
                self.bus.publish(CRAWL_STARTED, CrawlStarted(job.id, handle, found[1]))
            if job.time_left is not None:
                run.timers.append(self.reactor.callLater(job.time_left, self._timeout, job.id))
            log.info(
                "job {id}: attempt {n} left running{on}; following it",
                id=job.id,
                n=attempt,
                on=f" on {found[1]}" if found else " (queued)",
            )
        ids = [job.id for job in left]
        self._in_thread(self._bodies, ids).addCallback(self._got_bodies)

    def running_ids(self) -> Collection[str]:
        return self.runs.keys()

    def running_count(self) -> int:
        return len(self.runs)

    def stop_all(self, why: str) -> Deferred[Any]:
        """Crawls on workers outlive the daemon: a restarted one re-attaches them."""
        if self.runs:
            log.info("leaving {n} job(s) running on workers", n=len(self.runs))
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for run in self.runs.values():
            for timer in run.timers:
                if timer.active():
                    timer.cancel()
        return succeed(None)

    def log_path(self, job_id: str, kind: str, attempt: int | None = None) -> Path:
        if attempt is None:
            return self.logs_dir / f"{job_id}.{kind}"
        return self.logs_dir / f"{job_id}.{attempt}.{kind}"

    def forget(self, job_id: str) -> None:
        for kind in ("out", "err"):
            self.log_path(job_id, kind).unlink(missing_ok=True)
            for aside in self.logs_dir.glob(f"{job_id}.*.{kind}"):
                aside.unlink(missing_ok=True)

    # -- what the worker gate asks (daemon.cluster.gate.Attempts) ---------------

    def fence(self, job_id: str, attempt: int, worker: str) -> str | None:
        run = self.runs.get(job_id)
        if run is None or run.ended:
            return "the job does not run"
        if run.attempt != attempt:
            return f"attempt {run.attempt} is current"
        if run.worker is not None and run.worker != worker:
            return f"the attempt runs on {run.worker}"
        return None

    def project_folder(self, key: str) -> Path | None:
        return self._folders.get(key)

    def on_started(self, job_id: str, attempt: int, worker: str, pid: int) -> Deferred[None]:
        run = self.runs[job_id]
        run.worker, run.claimed = worker, True
        handle = format_handle(attempt, worker, pid)
        log.info("job {id}: attempt {n} runs on {w}", id=job_id, n=attempt, w=worker)
        self.bus.publish(CRAWL_STARTED, CrawlStarted(job_id, handle, worker))
        if run.max_runtime:  # the time spent waiting for a free worker does not count
            run.timers.append(self.reactor.callLater(run.max_runtime, self._timeout, job_id))
            run.max_runtime = None
        if run.started is not None and not run.started.called:
            run.started.callback(handle)
        if run.stop_reason is not None:
            self._raise_flag(run)  # a cancel that came while it was being claimed
        return succeed(None)

    def nodes(self) -> list[dict[str, Any]]:
        return [
            {
                "name": node.name,
                "slots": node.slots,
                "running": node.running,
                "last-heartbeat": node.seen,
                "state": "alive" if node.alive else "lost",
            }
            for node in self.nodes_seen
        ]

    def on_stats(self, job_id: str, stats: str) -> None:
        self.bus.publish(CRAWL_STATS, CrawlStats(job_id, stats))

    def on_ended(self, job_id: str, attempt: int, worker: str, report: Mapping[str, Any]) -> None:
        run = self.runs.get(job_id)
        if run is None or run.ended or run.attempt != attempt:
            return
        start_error = report.get("start_error")
        if start_error:
            if run.started is not None and not run.started.called:
                self._drop(run)
                self._retire(run)
                run.started.errback(StartError(str(start_error)))
                return
            outcome = Outcome(1, None, run.stop_reason)
            self._end(run, outcome, log_close_reason=str(start_error))
            return
        canceled = bool(report.get("canceled"))
        outcome = Outcome(
            _int_or_none(report.get("exit_code")),
            _int_or_none(report.get("signal")),
            run.stop_reason if canceled or run.stop_reason else None,
            killed=bool(report.get("killed")),
        )
        manifest = report.get("manifest")
        stats = report.get("stats")
        self._end(
            run,
            outcome,
            manifest if isinstance(manifest, dict) else None,
            stats if isinstance(stats, str) else None,
            _text_or_none(report.get("log_close_reason")),
        )

    # -- inner workings ----------------------------------------------------------

    def _timeout(self, job_id: str) -> None:
        self.cancel(job_id, "timeout")

    def _publish(self, run: Run) -> None:
        body = dict(run.body or {})
        body["attempt"] = run.attempt
        attempt = run.attempt

        def send() -> str:
            self.leases.r.set(self.leases._k(run.job_id, "body"), json.dumps(body))
            self.leases.offer(run.job_id, attempt)
            publish(self.app, self.celery.queue, body)
            return self.leases.run_id()

        def sent(run_id: str) -> None:
            if self._run_id is None:  # the Redis the first attempts were offered in
                self._run_id = run_id
            if run.attempt == attempt:
                run.published = True

        def failed(reason: Failure) -> None:
            log.warn(
                "job {id}: cannot publish attempt {n} yet: {why}",
                id=run.job_id,
                n=attempt,
                why=reason.getErrorMessage(),
            )

        self._in_thread(send).addCallbacks(sent, failed)

    def _raise_flag(self, run: Run) -> None:
        sig = run.stop_sig or signal.SIGTERM
        attempt = run.attempt

        def raised(state: str) -> None:
            run.flag_raised = True
            if state == "queued":
                # Claimed by nobody and now it cannot be: it ends here and now.
                self._in_thread(revoke, self.app, run.job_id, attempt).addErrback(lambda _: None)
                self._end(run, Outcome(None, None, run.stop_reason))
            elif state == "none" and not run.claimed:
                self._end(run, Outcome(None, None, run.stop_reason))
            # 'running': the worker stops it and reports; a dead one, the reaper.

        def failed(reason: Failure) -> None:
            log.warn("job {id}: cannot raise its cancel flag yet", id=run.job_id)

        self._in_thread(self.leases.cancel, run.job_id, sig).addCallbacks(raised, failed)

    def _end(
        self,
        run: Run,
        outcome: Outcome,
        manifest: Mapping[str, Any] | None = None,
        stats: str | None = None,
        log_close_reason: str | None = None,
    ) -> None:
        if run.ended:
            return
        self._drop(run)
        self._retire(run)
        self.bus.publish(
            CRAWL_ENDED, CrawlEnded(run.job_id, outcome, manifest, stats, log_close_reason)
        )
        for waiter in run.waiters:
            if not waiter.called:
                waiter.callback(None)

    def _drop(self, run: Run) -> None:
        run.ended = True
        for timer in run.timers:
            if timer.active():
                timer.cancel()
        if self.runs.get(run.job_id) is run:
            del self.runs[run.job_id]

    def _retire(self, run: Run) -> None:
        def retire() -> None:
            self.leases.retire(run.job_id, run.attempt)
            self.leases.r.delete(self.leases._k(run.job_id, "body"))

        self._in_thread(retire).addErrback(
            lambda f: log.warn("job {id}: lease not retired: {why}", id=run.job_id, why=f.value)
        )

    def _bodies(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        out = {}
        for job_id in ids:
            raw = self.leases.r.get(self.leases._k(job_id, "body"))
            if raw:
                out[job_id] = json.loads(raw)
        return out

    def _got_bodies(self, bodies: dict[str, dict[str, Any]]) -> None:
        for job_id, body in bodies.items():
            run = self.runs.get(job_id)
            if run is not None and run.body is None:
                run.body = body
                run.first_attempt = int(body.get("first_attempt", 1))
                if not run.claimed and run.stop_reason is None:
                    # Its message may be gone (Redis restarted while the daemon was
                    # away): published again; a worker that did claim it keeps it (a
                    # second claim finds its lease and fails).
                    self._publish(run)

    # -- the reaper ------------------------------------------------------------------

    def _ensure_loop(self) -> None:
        if self._loop is None or not self._loop.running:
            self._loop = LoopingCall(self._look)
            self._loop.clock = self.reactor
            self._loop.start(max(0.25, self.celery.lease / 4), now=False)

    def _look(self) -> None:
        if self._looking:
            return
        self._looking = True
        ids = list(self.runs)

        def survey() -> tuple[str, dict[str, Lease | None], list[Node]]:
            return (
                self.leases.run_id(),
                {job_id: self.leases.lease(job_id) for job_id in ids},
                self.leases.nodes(),
            )

        def done(result: Any) -> None:
            self._looking = False
            if isinstance(result, Failure):
                log.warn("reaper: Redis is not answering: {why}", why=result.getErrorMessage())
                return
            run_id, leases, nodes = result
            self.nodes_seen = nodes
            self._judge(run_id, leases)

        self._in_thread(survey).addBoth(done)

    def _judge(self, run_id: str, leases: dict[str, Lease | None]) -> None:
        now = time.monotonic()
        if self._run_id is not None and run_id != self._run_id:
            log.warn("Redis restarted (it forgot the leases): offering the attempts again")
            self._judge_after = now + self.celery.lease * 1.5
            for each in list(self.runs.values()):
                if each.claimed:
                    self._in_thread(self.leases.reoffer, each.job_id, each.attempt)
                elif each.body is not None:
                    self._publish(each)
                if each.stop_reason is not None:
                    self._raise_flag(each)
        self._run_id = run_id
        for job_id, lease in leases.items():
            run = self.runs.get(job_id)
            if run is None or run.ended:
                continue
            held = lease is not None and lease.attempt == run.attempt
            if held:
                run.claimed = True
                run.missing_since = None
                continue
            if not run.published and run.body is not None and run.stop_reason is None:
                self._publish(run)  # an earlier publish failed
            elif run.stop_reason is not None and not run.flag_raised:
                self._raise_flag(run)
            if not run.claimed or now < self._judge_after:
                continue
            # Lost once the lease stays missing for half a lease time more: a worker
            # renews every third of one, so a live one shows up again by then (after a
            # Redis restart the reaper may not have seen, say).
            if run.missing_since is None:
                run.missing_since = now
            elif now - run.missing_since >= self.celery.lease / 2:
                self._lost(run)

    def _lost(self, run: Run) -> None:
        worker = run.worker or "its worker"
        self._in_thread(self.gate.drop_staging, run.job_id, run.attempt)
        if run.stop_reason is not None:
            log.warn("job {id}: {w} was lost while it stopped", id=run.job_id, w=worker)
            self._end(run, Outcome(None, None, run.stop_reason))
            return
        used = run.attempt - run.first_attempt
        if run.body is not None and used < self.celery.retries:
            run.attempt += 1
            run.worker, run.claimed, run.published = None, False, False
            run.missing_since = None
            log.warn(
                "job {id}: {w} lost its lease; attempt {n} goes to another worker",
                id=run.job_id,
                w=worker,
                n=run.attempt,
            )
            self._publish(run)
            return
        log.warn("job {id}: {w} lost its lease; no attempt left", id=run.job_id, w=worker)
        self._end(run, Outcome(None, None, NODE_LOST))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
