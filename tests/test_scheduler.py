"""The scheduler (daemon.scheduler) on a controlled clock: no sleeping, exact times.

The host here is a small in-memory stand-in for the jobs service that keeps the same
promises: one run per firing unless the last run is still active (then a skip), and
last_fire persisted with every firing so a "restart" (a new Scheduler on the same host)
sees what the store would.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from daemon.scheduler import ScheduledJob, Scheduler
from daemon.triggers import parse_when

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z, a whole second


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


class MemoryHost:
    """Runs last `run_seconds`; `fire` answers after `answer_delay` seconds (a slow
    host returns a Deferred) or at once."""

    def __init__(self, clock: Clock, run_seconds: float = 0, answer_delay: float = 0) -> None:
        self.clock = clock
        self.run_seconds = run_seconds
        self.answer_delay = answer_delay
        self.jobs: dict[str, ScheduledJob] = {}
        self.fired: list[tuple[str, datetime, datetime | None, float]] = []
        self.runs: list[tuple[str, datetime]] = []
        self.skips: list[tuple[str, datetime]] = []
        self.events: list[tuple[str, str]] = []
        self.misfires: dict[str, int] = {}
        self.finished: list[tuple[str, float]] = []
        self.next_runs: dict[str, datetime | None] = {}
        self.active: set[str] = set()
        self.scheduler: Scheduler | None = None
        self.fail = False

    def schedule(self, job_id: str, spec: str, tz: str = "UTC") -> ScheduledJob:
        now = datetime.fromtimestamp(self.clock.seconds(), UTC)
        job = ScheduledJob(job_id, spec, tz, None, now)
        self.jobs[job_id] = job
        if self.scheduler is not None:
            self.next_runs[job_id] = self.scheduler.add(job_id, parse_when(spec, now, tz))
        return job

    # -- the host protocol --

    def scheduled_jobs(self) -> list[ScheduledJob]:
        return list(self.jobs.values())

    def fire(self, job_id: str, fire_time: datetime, next_run: datetime | None):
        if self.fail:
            raise RuntimeError("store is read-only")
        if self.scheduler is not None:
            # the scheduler has already moved on: next_run is readable during the call
            assert self.scheduler.next_run(job_id) == next_run
        self.fired.append((job_id, fire_time, next_run, self.clock.seconds()))
        self.jobs[job_id] = dataclasses.replace(self.jobs[job_id], last_fire=fire_time)
        self.next_runs[job_id] = next_run
        if job_id in self.active:
            self.skips.append((job_id, fire_time))
            result = None
        else:
            self.runs.append((job_id, fire_time))
            result = f"{job_id}-run{len(self.runs)}"
            if self.run_seconds:
                self.active.add(job_id)
                self.clock.callLater(self.run_seconds, self.active.discard, job_id)
        if not self.answer_delay:
            return result
        d: Deferred[str | None] = Deferred()
        self.clock.callLater(self.answer_delay, d.callback, result)
        return d

    def record_event(self, job_id: str, text: str) -> None:
        self.events.append((job_id, text))

    def record_misfires(self, job_id: str, count: int) -> None:
        self.misfires[job_id] = self.misfires.get(job_id, 0) + count

    def schedule_finished(self, job_id: str) -> None:
        self.finished.append((job_id, self.clock.seconds()))

    def set_next_run(self, job_id: str, next_run: datetime | None) -> None:
        self.next_runs[job_id] = next_run


def make(grace: float = 3600, **host_kw) -> tuple[Clock, MemoryHost, Scheduler]:
    clock = Clock()
    clock.advance(T0)
    host = MemoryHost(clock, **host_kw)
    scheduler = Scheduler(clock, host, misfire_grace=grace)
    host.scheduler = scheduler
    scheduler.start()
    return clock, host, scheduler


def tick(clock: Clock, seconds: int) -> None:
    """Let time pass second by second (one big `advance` is a held-up reactor)."""
    for _ in range(seconds):
        clock.advance(1)


def fire_times(host: MemoryHost, job_id: str) -> list[datetime]:
    return [t for j, t, _, _ in host.fired if j == job_id]


def pending_calls(clock: Clock) -> int:
    return len([c for c in clock.getDelayedCalls() if c.func.__name__ == "_tick"])


# -- exact times -------------------------------------------------------------------------


def test_no_drift_over_1000_firings_with_a_slow_host_and_a_coarse_clock() -> None:
    """The host takes 7 s to answer and runs last 3 s; the clock moves in 3 s steps, so
    most ticks come late. Fire times stay exactly on the 10 s grid."""
    clock, host, scheduler = make(run_seconds=3, answer_delay=7)
    host.schedule("a", "every 10 seconds")
    for _ in range(3334):
        clock.advance(3)
    times = fire_times(host, "a")
    assert len(times) == 1000
    assert times == [at(10 * (k + 1)) for k in range(1000)]
    # each firing happened at or after its scheduled time, never more than a step late
    for _, t, _, when in host.fired:
        assert 0 <= when - t.timestamp() < 3
    # the next_run handed over with each firing is the following grid point
    assert [n for _, _, n, _ in host.fired] == [at(10 * (k + 2)) for k in range(1000)]
    assert not host.events and not host.skips
    assert scheduler.next_run("a") == at(10_010)


def test_ticks_fire_exactly_on_time() -> None:
    clock, host, _ = make()
    host.schedule("a", "every 7 seconds")
    host.schedule("b", "cron * * * * * */15")
    while len(host.fired) < 300:
        clock.advance(min(c.getTime() for c in clock.getDelayedCalls()) - clock.seconds())
    for _, t, _, when in host.fired:
        assert when == t.timestamp()
    assert fire_times(host, "a")[:3] == [at(7), at(14), at(21)]
    assert fire_times(host, "b")[:3] == [at(15), at(30), at(45)]


def test_a_firing_while_the_last_run_is_active_is_skipped() -> None:
    """Runs take 25 s on a 10 s schedule: the host refuses (returns None) while a run is
    active, and the schedule keeps its grid instead of waiting for the run."""
    clock, host, _ = make(run_seconds=25)
    host.schedule("a", "every 10 seconds")
    for _ in range(90):
        clock.advance(1)
    assert fire_times(host, "a") == [at(s) for s in range(10, 91, 10)]
    assert [t for _, t in host.runs] == [at(10), at(40), at(70)]
    assert [t for _, t in host.skips] == [at(20), at(30), at(50), at(60), at(80), at(90)]


def test_a_held_up_reactor_coalesces_the_missed_firings() -> None:
    clock, host, scheduler = make()
    host.schedule("a", "every 10 seconds")
    clock.advance(10)
    clock.advance(35)  # blocked: 20, 30 and 40 all passed
    assert fire_times(host, "a") == [at(10), at(40)]
    [(job_id, text)] = host.events
    assert job_id == "a"
    assert "missed 3 firings" in text and "coalesced" in text
    assert host.misfires == {"a": 2}  # 20 and 30 gave no run; 40 ran
    assert scheduler.next_run("a") == at(50)
    clock.advance(5)
    assert fire_times(host, "a") == [at(10), at(40), at(50)]


# -- remove / cancel -----------------------------------------------------------------------


def test_remove_stops_firings_and_leaves_the_others() -> None:
    clock, host, scheduler = make()
    host.schedule("a", "every 10 seconds")
    host.schedule("b", "every 15 seconds")
    tick(clock, 30)
    assert scheduler.remove("a") is True
    assert scheduler.remove("a") is False
    assert scheduler.remove("nope") is False
    assert scheduler.next_run("a") is None
    tick(clock, 60)
    assert fire_times(host, "a") == [at(10), at(20), at(30)]
    assert fire_times(host, "b") == [at(s) for s in range(15, 91, 15)]
    scheduler.remove("b")
    assert pending_calls(clock) == 0
    tick(clock, 1000)
    assert len(host.fired) == 9


def test_a_job_removed_by_the_host_while_firing_stops() -> None:
    clock, host, scheduler = make()
    original = host.fire

    def fire_and_cancel(job_id: str, fire_time: datetime, next_run: datetime | None):
        result = original(job_id, fire_time, next_run)
        if len(fire_times(host, job_id)) == 2:
            scheduler.remove(job_id)
        return result

    host.fire = fire_and_cancel  # type: ignore[method-assign]
    host.schedule("a", "every 5 seconds")
    host.schedule("b", "every 5 seconds")  # due at the same instants as "a"
    tick(clock, 60)
    assert fire_times(host, "a") == [at(5), at(10)]
    assert fire_times(host, "b") == [at(5), at(10)]
    assert len(scheduler) == 0 and pending_calls(clock) == 0


def test_re_adding_a_job_replaces_its_schedule() -> None:
    clock, host, _ = make()
    host.schedule("a", "every 10 seconds")
    clock.advance(10)
    host.schedule("a", "every 3 seconds")
    tick(clock, 9)
    assert fire_times(host, "a") == [at(10), at(13), at(16), at(19)]
    assert pending_calls(clock) == 1


def test_a_job_armed_again_from_a_given_fire_time_fires_from_there() -> None:
    """A resumed or edited schedule is armed at a fire time after now: the ones before
    it (a pause) are neither fired nor counted as misfires."""
    clock, host, scheduler = make()
    host.schedule("a", "every 10 seconds")
    clock.advance(10)
    scheduler.remove("a")  # paused
    tick(clock, 45)  # 20 .. 50 pass while paused
    when = parse_when("every 10 seconds", at(0), "UTC")
    assert scheduler.add("a", when, at=when.next_after(at(55))) == at(60)
    tick(clock, 15)
    assert fire_times(host, "a") == [at(10), at(60), at(70)]
    assert host.misfires == {} and host.events == []


# -- one-shot schedules finish ------------------------------------------------------------


def test_timestamps_fire_each_then_the_job_finishes_after_the_last_answer() -> None:
    clock, host, scheduler = make(answer_delay=4)
    host.schedule("a", f"at {at(30).isoformat()}, {at(20).isoformat()}, {at(-5).isoformat()}")
    tick(clock, 29)
    assert fire_times(host, "a") == [at(20)]
    assert host.next_runs["a"] == at(30)
    clock.advance(1)
    assert fire_times(host, "a") == [at(20), at(30)]
    assert host.next_runs["a"] is None
    assert host.finished == []  # the last firing has not answered yet
    clock.advance(4)
    assert host.finished == [("a", T0 + 34)]
    assert "a" not in scheduler and pending_calls(clock) == 0


# -- restarts ----------------------------------------------------------------------------------


def restart(clock: Clock, host: MemoryHost, old: Scheduler, grace: float = 3600) -> Scheduler:
    old.stop()
    new = Scheduler(clock, host, misfire_grace=grace)
    host.scheduler = new
    return new


def test_misfires_while_down_are_coalesced_into_one_run() -> None:
    clock, host, scheduler = make()
    host.schedule("a", "every 60 seconds")
    tick(clock, 180)
    assert fire_times(host, "a") == [at(60), at(120), at(180)]
    scheduler.stop()
    assert pending_calls(clock) == 0
    clock.advance(30 * 60 + 25)  # down for 30 minutes and 25 s: 30 firings missed
    scheduler = restart(clock, host, scheduler)
    assert scheduler.start() == 1
    clock.advance(0)
    assert fire_times(host, "a")[3:] == [at(180 + 30 * 60)]  # one run, for the newest miss
    [(_, text)] = host.events
    assert "missed 30 firings while the daemon was down" in text
    assert "coalesced into one run" in text
    assert host.misfires == {"a": 29}
    assert scheduler.next_run("a") == at(180 + 31 * 60)  # still on the creation grid
    tick(clock, 35)
    assert fire_times(host, "a")[4:] == [at(180 + 31 * 60)]


def test_misfires_beyond_the_grace_are_skipped() -> None:
    clock, host, scheduler = make(grace=600)
    host.schedule("a", "every 1 hours")
    clock.advance(3600)
    scheduler.stop()
    clock.advance(8400)  # down until 12000 s: 7200 and 10800 missed, the newest 1200 s ago
    scheduler = restart(clock, host, scheduler, grace=600)
    scheduler.start()
    clock.advance(0)
    assert fire_times(host, "a") == [at(3600)]
    [(_, text)] = host.events
    assert "missed 2 firings while the daemon was down" in text
    assert "1200 s late, beyond misfire_grace 600 s): skipped" in text
    assert host.misfires == {"a": 2}
    assert host.next_runs["a"] == at(14400)
    assert scheduler.next_run("a") == at(14400)
    clock.advance(2400)
    assert fire_times(host, "a") == [at(3600), at(14400)]


def test_random_interval_misses_are_walked_and_coalesced() -> None:
    clock, host, scheduler = make()
    job = host.schedule("a", "every 10 to 20 seconds")
    when = parse_when(job.spec, job.created)
    chain = [when.first()]
    while len(chain) < 40:
        chain.append(when.next_after(chain[-1]))
    tick(clock, int((chain[1] - at(0)).total_seconds()))
    assert fire_times(host, "a") == chain[:2]
    scheduler.stop()
    clock.advance((chain[30] - chain[1]).total_seconds() + 1)
    scheduler = restart(clock, host, scheduler)
    scheduler.start()
    clock.advance(0)
    assert fire_times(host, "a") == [*chain[:2], chain[30]]
    assert "missed 29 firings" in host.events[0][1]
    assert scheduler.next_run("a") == chain[31]


def test_a_long_stop_of_a_frequent_cron_is_counted_with_a_cap() -> None:
    clock, host, scheduler = make(grace=7 * 86400)
    host.schedule("a", "cron * * * * *")
    scheduler.stop()
    clock.advance(3 * 86400 + 30)  # three days of minutes missed
    scheduler = restart(clock, host, scheduler, grace=7 * 86400)
    scheduler.start()
    clock.advance(0)
    assert fire_times(host, "a") == [at(3 * 86400)]
    assert "missed at least 1000 firings" in host.events[0][1]
    assert scheduler.next_run("a") == at(3 * 86400 + 60)


def test_a_single_miss_within_the_grace_runs_late_and_says_so() -> None:
    clock, host, scheduler = make()
    host.schedule("a", "every 1 hours")
    scheduler.stop()
    clock.advance(3600 + 120)
    scheduler = restart(clock, host, scheduler)
    scheduler.start()
    clock.advance(0)
    assert fire_times(host, "a") == [at(3600)]
    [(_, text)] = host.events
    assert "missed while the daemon was down: run now" in text


def test_one_shot_missed_while_down() -> None:
    """A one-shot timestamp missed by less than the grace still runs, then the job is
    finished; missed by more, it is skipped and the job is finished too."""
    clock, host, scheduler = make(grace=300)
    host.schedule("near", f"at {at(100).isoformat()}")
    host.schedule("far", f"at {at(10).isoformat()}")
    scheduler.stop()
    clock.advance(400)
    scheduler = restart(clock, host, scheduler, grace=300)
    scheduler.start()
    clock.advance(0)
    assert [(j, t) for j, t, _, _ in host.fired] == [("near", at(100))]
    assert sorted(j for j, _ in host.finished) == ["far", "near"]
    assert any(j == "far" and "skipped" in text for j, text in host.events)
    assert len(scheduler) == 0 and pending_calls(clock) == 0


def test_start_finishes_exhausted_one_shots_and_reports_bad_specs() -> None:
    clock = Clock()
    clock.advance(T0)
    host = MemoryHost(clock)
    host.jobs["done"] = ScheduledJob("done", f"at {at(10).isoformat()}", "UTC", at(10), at(0))
    host.jobs["bad"] = ScheduledJob("bad", "every 0 minutes", "UTC", None, at(0))
    host.jobs["ok"] = ScheduledJob("ok", "every 5 seconds", "Europe/Berlin", None, at(0))
    clock.advance(20)
    scheduler = Scheduler(clock, host)
    assert scheduler.start() == 1
    assert [j for j, _ in host.finished] == ["done"]
    [(job_id, text)] = host.events
    assert job_id == "bad" and "interval '0'" in text
    clock.advance(0)
    # "ok" was created at 0 and never fired: its 20 s of misses collapse to the newest
    assert fire_times(host, "ok") == [at(20)]


def test_a_failing_host_is_recorded_and_the_schedule_goes_on() -> None:
    clock, host, _ = make()
    host.schedule("a", "every 10 seconds")
    host.fail = True
    clock.advance(10)
    host.fail = False
    clock.advance(10)
    assert fire_times(host, "a") == [at(20)]
    [(job_id, text)] = host.events
    assert job_id == "a" and "failed: store is read-only" in text


# -- scale --------------------------------------------------------------------------------------


def test_10000_schedules_keep_exactly_one_pending_delayed_call() -> None:
    clock, host, scheduler = make()
    periods = {}
    for i in range(10_000):
        n = 100 + (i * 37) % 900
        periods[f"j{i}"] = n
        host.schedule(f"j{i}", f"every {n} seconds")
        assert pending_calls(clock) == 1
    assert len(clock.getDelayedCalls()) == 1
    for _ in range(20):
        clock.advance(100)
        assert len(clock.getDelayedCalls()) == 1
    expected = sum(2000 // n for n in periods.values())
    assert len(host.fired) == expected
    for j, t, _, _ in host.fired[:500]:
        assert (t - at(0)) % timedelta(seconds=periods[j]) == timedelta(0)
    for i in range(0, 10_000, 2):
        scheduler.remove(f"j{i}")
    assert len(scheduler) == 5000
    assert len(clock.getDelayedCalls()) == 1
    assert len(scheduler._heap) <= 2 * len(scheduler) + 64  # removed entries are compacted
    before = len(host.fired)
    clock.advance(1000)
    assert all(int(j[1:]) % 2 for j, *_ in host.fired[before:])


@pytest.mark.parametrize("grace", [0, 3600])
def test_stop_disarms_and_start_rearms(grace: float) -> None:
    clock, host, scheduler = make(grace=grace)
    host.schedule("a", "every 10 seconds")
    scheduler.stop()
    assert pending_calls(clock) == 0
    clock.advance(5)
    scheduler.start()
    assert pending_calls(clock) == 1
    clock.advance(5)
    assert fire_times(host, "a") == [at(10)]
