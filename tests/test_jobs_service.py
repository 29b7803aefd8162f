"""The jobs state machine on its own: a JobsService over a real store, a real launcher
running real `scrapy crawl` children of the toy project, and the real scheduler on a test
clock; no daemon and no HTTP in between.

PENDING -> RUNNING -> SUCCESSFUL | FAILED | CANCELED for a run; SCHEDULED -> CANCELED |
SUCCESSFUL for a schedule, whose firings make runs. Trial test cases run by pytest spin
the real reactor, so a crawl's end reaches the service as it does in the daemon.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.process import reapAllProcesses
from twisted.internet.task import Clock, LoopingCall
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from daemon.config import LocalProject
from daemon.domain import (
    CANCELED,
    COMPLETED_STATUSES,
    FAILED,
    PENDING,
    RUNNING,
    SCHEDULED,
    SCHEDULER,
    SUCCESSFUL,
)
from daemon.events import JOB_CHANGED, EventBus
from daemon.executor import CRAWL_ENDED, CrawlEnded, IExecutor
from daemon.job_store import Job, Store
from daemon.jobs import JobError, JobsService
from daemon.launcher import Crawl, Launcher, process_alive
from daemon.local_executor import LocalExecutor
from daemon.projects import ProjectStore
from daemon.scheduler import Scheduler
from tests.daemon_support import write_toy_project
from tests.test_launcher import async_test
from tests.waiting import wait_until

# Finishes (its log says "Spider closed (finished)") while its job.json names another
# close reason: the verdict tells which of the two it was made from.
CLAIMS_SPIDER = """
import json
from pathlib import Path

import scrapy


class Claims(scrapy.Spider):
    name = "claims"

    async def start(self):
        yield {"n": 1}

    def closed(self, reason):
        folder = Path(self.settings.get("DATA_DIR")) / self.settings.get("JOB_ID")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "job.json").write_text(json.dumps({"close_reason": "quota_exceeded"}))
"""


class LateLauncher(Launcher):
    """The launcher as a warm start answers: the crawl is spawned, and the Deferred of
    `start` fires, a while after it was asked for."""

    def start(self, *args: Any, **kwargs: Any) -> Any:
        answer: Deferred[Crawl] = Deferred()

        def now() -> None:
            maybeDeferred(Launcher.start, self, *args, **kwargs).chainDeferred(answer)

        self.reactor.callLater(0.3, now)
        return answer


class JobsServiceTest(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jobs-test-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        toy = write_toy_project(self.root / "toy")
        (toy / "toy" / "spiders" / "claims.py").write_text(CLAIMS_SPIDER)
        self.store = Store(self.root / "daemon.sqlite")
        self.addCleanup(self.store.close)
        self.launcher = Launcher(reactor, self.root / "data", self.root / "logs", cancel_grace=5)
        local = {"toy": LocalProject(toy, {"TOY_SETTING": "from-config"})}
        projects = self.projects = ProjectStore(self.root / "projects", local)
        # trial stops the reactor between tests and restores the signal handlers; a
        # SIGCHLD that arrives meanwhile is lost, and that crawl's end never noticed.
        # Collecting ended children on a timer as well makes the tests independent.
        reaper = LoopingCall(reapAllProcesses)
        reaper.start(0.1, now=False)
        self.addCleanup(reaper.stop)
        self.bus = EventBus()
        # Run on each crawl's end before the jobs service hears of it (the bus keeps
        # subscription order), so before the verdict.
        self.before_verdict: list[Callable[[CrawlEnded], object]] = []
        self.bus.subscribe(CRAWL_ENDED, lambda ended: [f(ended) for f in self.before_verdict])
        self.executor = LocalExecutor(self.launcher, self.bus)
        self.jobs = JobsService(
            self.store,
            self.executor,
            projects,
            self.bus,
            reactor=reactor,
            slots=1,
            data_dir=self.root / "data",
        )
        self.changes: list[tuple[str, str]] = []
        self.bus.subscribe(JOB_CHANGED, lambda job: self.changes.append((job.id, job.status)))

    def start_service(self) -> None:
        self.jobs.startService()
        # Stopping the service stops every crawl still running (SIGTERM, then SIGKILL).
        self.addCleanup(lambda: self.jobs.stopService() if self.jobs.running else None)

    def status(self, job_id: str) -> str:
        job = self.store.get(job_id)
        assert job is not None
        return job.status

    def announced(
        self, job_id: str, statuses: tuple[str, ...], bus: EventBus | None = None
    ) -> Deferred[Job]:
        """Fires with the job once the service announces it in one of `statuses` (at
        once when it is in one already). Told on the next reactor turn: the service
        announces RUNNING before it asks the executor to start the crawl."""
        job = self.store.get(job_id)
        assert job is not None
        if job.status in statuses:
            d: Deferred[Job] = Deferred()
            d.callback(job)
            return d
        told: Deferred[Job] = Deferred()
        heard = False

        def hear(changed: Job) -> None:
            nonlocal heard
            if changed.id == job_id and changed.status in statuses and not heard:
                heard = True
                unsubscribe()
                reactor.callLater(0, told.callback, changed)

        unsubscribe = (bus or self.bus).subscribe(JOB_CHANGED, hear)
        return told

    async def ended(self, job_id: str) -> Job:
        """The job once its crawl has ended and the service has recorded the end."""
        return await self.announced(job_id, COMPLETED_STATUSES)

    def gate(self, name: str = "gate") -> tuple[Path, str]:
        """A file that ends a `sleepy` crawl once it exists, and that crawl's payload."""
        path = self.root / name
        return path, json.dumps({"until_file": str(path)})

    # -- runs ----------------------------------------------------------------------

    @async_test
    async def test_a_run_goes_pending_running_successful_and_each_change_is_told(self) -> None:
        job = self.jobs.submit("toy", "items", payload='{"x": 1}')
        self.assertEqual(job.status, PENDING)  # nothing starts before the service does
        self.assertEqual(self.launcher.running, {})
        self.start_service()  # which dispatches what was waiting, at once
        self.assertEqual(self.status(job.id), RUNNING)
        started = self.store.get(job.id)
        self.assertEqual(started.node, "local")
        self.assertEqual(started.pid, self.launcher.running[job.id].pid)
        done = await self.ended(job.id)
        self.assertEqual((done.status, done.reason, done.exit_code), (SUCCESSFUL, None, 0))
        self.assertEqual(self.changes, [(job.id, RUNNING), (job.id, SUCCESSFUL)])
        out = self.launcher.log_path(job.id, "out").read_text()
        self.assertIn("SETTING from-config", out)  # the project's settings reach the crawl
        figures = self.jobs.figures()
        self.assertEqual((figures["jobs-run"], figures["jobs-successful"]), (1, 1))
        self.assertEqual((figures["running"], figures["pending"]), (0, 0))

    def test_the_jobs_service_drives_crawls_through_the_executor_interface(self) -> None:
        self.assertTrue(verifyObject(IExecutor, self.executor))
        self.assertIs(self.jobs.executor, self.executor)
        self.assertFalse(hasattr(self.jobs, "launcher"))

    @async_test
    async def test_the_verdict_comes_from_the_manifest_the_ended_event_carries(self) -> None:
        heard: list[CrawlEnded] = []

        def take_the_manifest_away(ended: CrawlEnded) -> None:
            heard.append(ended)
            (self.root / "data" / ended.job_id / "job.json").unlink()

        self.before_verdict.append(take_the_manifest_away)
        self.start_service()
        job = self.jobs.submit("toy", "claims")
        done = await self.ended(job.id)
        [ended] = heard
        self.assertEqual(ended.job_id, job.id)
        self.assertEqual(ended.manifest, {"close_reason": "quota_exceeded"})
        self.assertEqual((ended.outcome.exit_code, ended.outcome.signal), (0, None))
        self.assertFalse((self.root / "data" / job.id / "job.json").exists())
        # Judged by the job.json the crawl wrote, gone from the disk by then: a verdict
        # read from the disk would have found none and believed the log's "finished".
        self.assertEqual(
            (done.status, done.reason), (FAILED, "crawl closed with reason 'quota_exceeded'")
        )
        self.assertEqual(done.stats, ended.stats)

    @async_test
    async def test_a_start_that_answers_late_holds_its_slot_and_a_cancel_waits_for_it(
        self,
    ) -> None:
        launcher = LateLauncher(reactor, self.root / "data", self.root / "logs", cancel_grace=5)
        bus = EventBus()
        executor = LocalExecutor(launcher, bus)
        jobs = JobsService(
            self.store,
            executor,
            self.projects,
            bus,
            reactor=reactor,
            slots=1,
            data_dir=self.root / "data",
        )
        jobs.startService()
        self.addCleanup(lambda: jobs.stopService() if jobs.running else None)
        _gate, payload = self.gate()
        first = jobs.submit("toy", "sleepy", payload=payload)
        second = jobs.submit("toy", "items")
        await self.announced(first.id, (RUNNING,), bus)
        # Asked to start, not started yet: it counts as running, so nothing else starts.
        self.assertEqual(list(executor.running_ids()), [first.id])
        self.assertNotIn(first.id, launcher.running)
        self.assertEqual(jobs.figures()["running"], 1)
        self.assertEqual(self.status(second.id), PENDING)
        job = await jobs.cancel(first.id)  # stopped the moment its crawl runs
        # "canceled", or "(killed after the grace period)" when a loaded machine has not
        # let the fresh crawl reach its SIGTERM handler within the grace.
        self.assertEqual(job.status, CANCELED)
        self.assertTrue(job.reason.startswith("canceled"), job.reason)
        pid = job.pid
        self.assertIsNotNone(pid)  # its crawl did start, and was stopped
        self.assertFalse(process_alive(pid, None))
        self.assertEqual(
            (await self.announced(second.id, COMPLETED_STATUSES, bus)).status, SUCCESSFUL
        )

    @async_test
    async def test_the_slot_goes_to_the_next_pending_run_the_moment_it_frees(self) -> None:
        self.start_service()
        failing = self.jobs.submit("toy", "fails")
        # A free slot: started once submit's caller (the request) is done, not before.
        self.assertEqual(failing.status, PENDING)
        await self.announced(failing.id, (RUNNING,))
        unknown = self.jobs.submit("gone", "items")
        waiting = self.jobs.submit("toy", "items")
        self.assertEqual((self.status(unknown.id), self.status(waiting.id)), (PENDING, PENDING))
        done = await self.ended(failing.id)
        self.assertEqual((done.status, done.exit_code), (FAILED, 3))
        self.assertEqual(done.reason, "exit code 3")
        # The oldest pending run has no project by the time it starts: it fails to start
        # and says why, and the slot goes on to the next one at once (no poll).
        job = self.store.get(unknown.id)
        self.assertEqual(job.status, FAILED)
        self.assertIn("could not start", job.reason)
        self.assertIn("gone", job.reason)
        self.assertEqual(self.status(waiting.id), RUNNING)
        self.assertEqual((await self.ended(waiting.id)).status, SUCCESSFUL)
        self.assertEqual(self.jobs.figures()["jobs-failed"], 2)

    @async_test
    async def test_cancel_a_pending_then_a_running_run(self) -> None:
        self.start_service()
        _gate, payload = self.gate()
        running = self.jobs.submit("toy", "sleepy", payload=payload)
        await self.announced(running.id, (RUNNING,))
        pending = self.jobs.submit("toy", "items")
        job = await self.jobs.cancel(pending.id)
        self.assertEqual((job.status, job.reason), (CANCELED, "canceled before it started"))
        self.assertEqual(self.status(running.id), RUNNING)
        log_path = self.launcher.log_path(running.id, "out")
        wait_until(log_path.read_text, 60, "the crawl's START", until=lambda t: "START" in t)
        job = await self.jobs.cancel(running.id)  # fires once the crawl has ended
        self.assertEqual((job.status, job.reason), (CANCELED, "canceled"))
        self.assertNotIn(running.id, self.launcher.running)
        for job_id, code in [(running.id, 400), ("no-such-job", 404)]:
            with self.assertRaises(JobError) as refused:
                await self.jobs.cancel(job_id)
            self.assertEqual(refused.exception.http_status, code)
        self.assertEqual(self.jobs.figures()["jobs-canceled"], 2)

    @async_test
    async def test_stopping_the_service_fails_the_running_crawl_and_starts_nothing(
        self,
    ) -> None:
        self.start_service()
        _gate, payload = self.gate()  # never opened: the crawl runs until stopped
        running = self.jobs.submit("toy", "sleepy", payload=payload)
        await self.announced(running.id, (RUNNING,))
        await self.jobs.stopService()
        job = self.store.get(running.id)
        self.assertEqual(job.status, FAILED)
        self.assertIn("the daemon was stopped", job.reason)
        later = self.jobs.submit("toy", "items")
        self.assertEqual(later.status, PENDING)
        self.assertEqual(self.launcher.running, {})

    # -- schedules -------------------------------------------------------------------

    @async_test
    async def test_a_schedule_fires_runs_skips_while_one_is_active_and_cancels_its_own(
        self,
    ) -> None:
        self.start_service()
        scheduler = Scheduler(Clock(), self.jobs)  # fired by hand here
        scheduler.listen(self.bus)
        gate, payload = self.gate()
        blocker = self.jobs.submit("toy", "sleepy", payload=payload)  # holds the only slot
        await self.announced(blocker.id, (RUNNING,))
        parent = self.jobs.submit("toy", "items", plan=self.jobs.plan("every 1 hour"))
        self.assertEqual(parent.status, SCHEDULED)
        self.assertIsNotNone(parent.next_run)
        self.assertIn(parent.id, scheduler)

        first = self.jobs.fire(parent.id, datetime(2030, 1, 1, 1, tzinfo=UTC))
        assert first is not None
        run = self.store.get(first)
        self.assertEqual((run.status, run.actor, run.parent), (PENDING, SCHEDULER, parent.id))
        # The last run is still waiting for a slot: the next firing is skipped, and told.
        self.assertIsNone(self.jobs.fire(parent.id, datetime(2030, 1, 1, 2, tzinfo=UTC)))
        self.assertEqual(self.store.get(parent.id).skipped, 1)
        self.assertIn("skipped", self.store.events(parent.id)[-1][1])

        job = await self.jobs.cancel(parent.id)
        self.assertEqual(job.status, CANCELED)
        self.assertNotIn(parent.id, scheduler)
        run = self.store.get(first)
        self.assertEqual((run.status, run.reason), (CANCELED, "its scheduled job was canceled"))
        self.assertIsNone(self.jobs.fire(parent.id, datetime(2030, 1, 1, 3, tzinfo=UTC)))
        gate.touch()
        self.assertEqual((await self.ended(blocker.id)).status, SUCCESSFUL)
        self.assertEqual(self.launcher.running, {})  # the canceled run never started

    def test_a_schedule_with_no_fire_time_left_completes(self) -> None:
        Scheduler(Clock(), self.jobs).listen(self.bus)
        at = "at 2999-01-01T00:00:00Z"
        parent = self.jobs.submit("toy", "items", plan=self.jobs.plan(at))
        self.assertEqual(parent.status, SCHEDULED)
        self.jobs.schedule_finished(parent.id)
        job = self.store.get(parent.id)
        self.assertEqual(job.status, SUCCESSFUL)
        self.assertIn("no fire time left", job.reason)
        self.assertIsNone(job.next_run)
        # A schedule is not a run: the run counters do not move.
        self.assertEqual(self.jobs.figures()["jobs-successful"], 0)

    def test_now_plans_one_run_started_at_once(self) -> None:
        for spec in ("now", "NOW", "  Now  "):
            plan = self.jobs.plan(spec)
            self.assertEqual((plan.spec, plan.when, plan.next_run), ("now", None, None))
        job = self.jobs.submit("toy", "items", plan=self.jobs.plan(" NOW "))
        self.assertEqual((job.status, job.schedule, job.next_run), (PENDING, "now", None))
        self.start_service()
        self.assertEqual(self.status(job.id), RUNNING)

    def test_the_project_guards_count_every_active_job(self) -> None:
        for n in range(150):
            self.store.insert(Job(str(n), PENDING, "USER", "now", "toy", "items"))
        self.store.insert(Job("last", PENDING, "USER", "now", "toy", "sleepy"))
        self.store.insert(Job("other", PENDING, "USER", "now", "other", "items"))
        refusal = self.jobs.remove_guard("toy", ["items", "sleepy"])
        self.assertIn("it has 151 scheduled, pending or running job(s)", refusal or "")
        refusal = self.jobs.push_guard("toy", ["items"])
        self.assertIn("spider(s) sleepy have", refusal or "")
        self.assertIsNone(self.jobs.push_guard("toy", ["items", "sleepy"]))
        self.assertIsNone(self.jobs.remove_guard("gone", []))

    def test_a_bad_when_is_refused_naming_it(self) -> None:
        for spec, words in [("", "empty"), ("every 10 fortnights", "fortnight")]:
            with self.assertRaises(JobError) as refused:
                self.jobs.plan(spec)
            self.assertIn(words, str(refused.exception))
