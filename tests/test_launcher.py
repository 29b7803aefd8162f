"""The launcher on its own: real `scrapy crawl` children of the toy project, spawned by
the real reactor (trial test cases run by pytest spin it), and how each one ended.

Timers (max_runtime, the cancel grace) run on a test clock where a test needs them:
the processes are real, only the time that decides when to signal them is the test's.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from daemon.launcher import Crawl, Launcher, Outcome, process_alive
from tests.daemon_support import pid_alive, write_toy_project
from tests.waiting import wait_until


def async_test(
    method: Callable[[Any], Coroutine[Any, Any, None]],
) -> Callable[[Any], defer.Deferred[None]]:
    """A trial test written as a coroutine (trial waits for the Deferred it returns)."""

    @functools.wraps(method)
    def run(self: Any) -> defer.Deferred[None]:
        return defer.ensureDeferred(method(self))

    return run


class ClockedReactor:
    """The real reactor's processes with a test clock's timers: a crawl really runs,
    and its max_runtime or grace period ends when the test advances the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def spawnProcess(self, *args: Any, **kwargs: Any) -> Any:
        return reactor.spawnProcess(*args, **kwargs)

    def callLater(self, *args: Any, **kwargs: Any) -> Any:
        return self.clock.callLater(*args, **kwargs)

    def seconds(self) -> float:
        return self.clock.seconds()


class LauncherTest(unittest.TestCase):
    timeout = 90

    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="launcher-test-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.toy = write_toy_project(self.root / "toy")
        self.clock = Clock()

    def launcher(self, clocked: bool = False, cancel_grace: float = 5.0) -> Launcher:
        launcher = Launcher(
            ClockedReactor(self.clock) if clocked else reactor,
            self.root / "data",
            self.root / "logs",
            cancel_grace=cancel_grace,
        )
        self.addCleanup(self._kill_left_over, launcher)
        return launcher

    @staticmethod
    def _kill_left_over(launcher: Launcher) -> None:
        for crawl in list(launcher.running.values()):
            if process_alive(crawl.pid, crawl.proc_start):
                os.killpg(crawl.pid, signal.SIGKILL)

    def start(self, launcher: Launcher, spider: str, **kwargs: Any) -> Crawl:
        # A launcher without zygotes starts cold: its Deferred has fired already.
        return self.successResultOf(launcher.start(f"job-{spider}", spider, self.toy, **kwargs))

    def wait_log(self, launcher: Launcher, crawl: Crawl, needle: str) -> str:
        """Blocks the reactor while it waits: the crawl writes its log itself."""
        path = launcher.log_path(crawl.job_id, "out")
        return wait_until(
            lambda: path.read_text() if path.exists() else "",
            60,
            f"{needle!r} in {path}",
            until=lambda text: needle in text,
        )

    # -- how a crawl ended ---------------------------------------------------------

    @async_test
    async def test_a_crawl_gets_its_settings_and_payload_and_ends_with_exit_0(self) -> None:
        os.environ["COINSPIDERS_PASSWORD"] = "never-in-a-crawl"
        self.addCleanup(os.environ.pop, "COINSPIDERS_PASSWORD", None)
        launcher = self.launcher()
        crawl = self.start(
            launcher,
            "items",
            settings={"TOY_SETTING": "from-test", "JOB_ID": "not-the-daemons"},
            payload='{"n": 1}',
        )
        self.assertEqual(launcher.running, {"job-items": crawl})
        outcome = await crawl.ended
        self.assertEqual(outcome, Outcome(0, None, None, leftovers_killed=0))
        self.assertEqual(launcher.running, {})
        out = launcher.log_path("job-items", "out").read_text()
        self.assertIn("START job-items", out)  # the daemon's JOB_ID wins over the job's
        self.assertIn("SETTING from-test", out)
        self.assertIn("ARGS " + json.dumps('{"n": 1}'), out)
        self.assertIn(f"ENV {(self.root / 'data').resolve()}", out)
        self.assertIn("SECRET None", out)
        self.assertIn("Spider closed (finished)", launcher.log_path("job-items", "err").read_text())

    @async_test
    async def test_exit_status_of_a_failing_crawl(self) -> None:
        launcher = self.launcher()
        outcome = await self.start(launcher, "fails").ended
        self.assertEqual(outcome, Outcome(3, None, None, leftovers_killed=0))

    @async_test
    async def test_a_crawl_killed_from_outside_ends_with_the_signal(self) -> None:
        launcher = self.launcher()
        crawl = self.start(launcher, "sleepy")
        self.wait_log(launcher, crawl, "START")
        os.kill(crawl.pid, signal.SIGKILL)
        outcome = await crawl.ended
        self.assertEqual(outcome, Outcome(None, signal.SIGKILL, None, leftovers_killed=0))
        self.assertIsNone(launcher.stop(crawl.job_id, "cancel"))  # nothing left to stop

    # -- stopping a crawl ------------------------------------------------------------

    @async_test
    async def test_stop_kills_a_group_that_ignores_sigterm_after_the_grace(self) -> None:
        launcher = self.launcher(clocked=True, cancel_grace=10)
        crawl = self.start(launcher, "stubborn")
        out = self.wait_log(launcher, crawl, "CHILD")
        child = int(out.split("CHILD")[1].split()[0])
        first = launcher.stop(crawl.job_id, "cancel")
        second = launcher.stop(crawl.job_id, "cancel")  # asked twice: one grace period
        assert first is not None and second is not None
        self.clock.advance(9.9)
        self.assertFalse(first.called)
        self.assertTrue(process_alive(crawl.pid, crawl.proc_start))  # SIGTERM was ignored
        self.clock.advance(0.1)
        outcome = await first
        self.assertEqual(
            outcome, Outcome(None, signal.SIGKILL, "cancel", killed=True, leftovers_killed=0)
        )
        self.assertEqual(await second, outcome)
        # The crawl's own child ignored SIGTERM too and went with the group.
        wait_until(lambda: not pid_alive(child), 10, f"the crawl's child {child} to be killed")

    @async_test
    async def test_max_runtime_stops_the_crawl_when_its_time_is_up(self) -> None:
        launcher = self.launcher(clocked=True, cancel_grace=10)
        crawl = self.start(launcher, "sleepy", max_runtime=30)
        self.wait_log(launcher, crawl, "START")
        self.clock.advance(29.9)
        self.assertIsNone(crawl.stop_reason)
        self.assertTrue(process_alive(crawl.pid, crawl.proc_start))
        self.clock.advance(0.1)
        self.assertEqual(crawl.stop_reason, "timeout")
        outcome = await crawl.ended  # Scrapy closes on SIGTERM, well within the grace
        self.assertEqual(
            (outcome.stop_reason, outcome.killed, outcome.signal), ("timeout", False, None)
        )
        self.assertIn("CLOSED shutdown", launcher.log_path(crawl.job_id, "out").read_text())
        # Its timers (the grace period's SIGKILL) went with it.
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])
