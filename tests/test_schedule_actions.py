"""What a restart makes of a resumed or edited schedule: the jobs service over a real store
hands the scheduler (on a test clock) the fire times the action armed, never the ones
that fell in a pause or belong to the spec before an edit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import Clock

from daemon.config import LocalProject
from daemon.events import EventBus
from daemon.job_store import Store
from daemon.jobs import JobsService
from daemon.launcher import Launcher
from daemon.local_executor import LocalExecutor
from daemon.projects import ProjectStore
from daemon.scheduler import Scheduler
from tests.daemon_support import write_toy_project

T0 = 1_800_000_000


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


class Setup:
    def __init__(self, root: Path) -> None:
        self.t = float(T0)
        toy = write_toy_project(root / "toy")
        self.store = Store(root / "daemon.sqlite", clock=lambda: self.t)
        launcher = Launcher(reactor, root / "data", root / "logs", cancel_grace=5)
        projects = ProjectStore(root / "projects", {"toy": LocalProject(toy, {})})
        bus = EventBus()
        self.jobs = JobsService(
            self.store,
            LocalExecutor(launcher, bus),
            projects,
            bus,
            reactor=reactor,
            slots=1,
            data_dir=root / "data",
            now=lambda: datetime.fromtimestamp(self.t, UTC),
        )

    def restarted_scheduler(self) -> tuple[Clock, Scheduler]:
        """A scheduler started as the daemon starts it, at the current time."""
        clock = Clock()
        clock.advance(self.t)
        scheduler = Scheduler(clock, self.jobs)
        scheduler.start()
        clock.advance(0)
        return clock, scheduler


def test_a_restart_after_resume_does_not_catch_up_the_pause(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    job = s.jobs.submit("toy", "items", plan=s.jobs.plan("every 10 seconds"))
    s.store.fire(job.id, at(10).timestamp(), at(20).timestamp(), None)  # last fire: 10
    s.t = T0 + 12
    assert s.jobs.pause(job.id).paused is True
    s.t = T0 + 100
    _, scheduler = s.restarted_scheduler()
    assert job.id not in scheduler  # paused: not armed at start
    resumed = s.jobs.resume(job.id)
    assert resumed.paused is False and resumed.next_run == at(110).timestamp()

    s.t = T0 + 101
    _, scheduler = s.restarted_scheduler()
    assert scheduler.next_run(job.id) == at(110)
    stored = s.store.get(job.id)
    assert stored is not None and stored.misfires == 0 and stored.last_fire == at(10).timestamp()
    assert s.store.active_runs_of(job.id) == []  # nothing fired at start


def test_a_restart_after_an_edit_keeps_the_edited_fire_times(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    job = s.jobs.submit("toy", "items", plan=s.jobs.plan("every 10 seconds"))
    s.store.fire(job.id, at(10).timestamp(), at(20).timestamp(), None)
    s.t = T0 + 200
    edited = s.jobs.edit(job.id, s.jobs.plan("every 7 seconds"))
    assert edited.schedule == "every 7 seconds" and edited.next_run == at(207).timestamp()
    s.t = T0 + 201
    _, scheduler = s.restarted_scheduler()
    # parsed from the edit (200 + 7k), not from the job's creation (7k: 203)
    assert scheduler.next_run(job.id) == at(207)
    assert s.store.active_runs_of(job.id) == []
    stored = s.store.get(job.id)
    assert stored is not None and stored.misfires == 0
