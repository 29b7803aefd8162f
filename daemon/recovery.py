"""Crash recovery: what became of the crawls a daemon that died left RUNNING.

A crawl survives its daemon (it runs in its own process group), so at start each
RUNNING job is either still alive, to be re-attached and followed to its end, or gone,
to be judged by its job.json alone (its exit status went with the dead daemon). This
module decides which; the jobs service records the decisions and follows the crawls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from daemon.job_store import Job
from daemon.launcher import Outcome, find_crawl_process, process_alive
from daemon.verdict import read_manifest, verdict

__all__ = ["Ended", "Locate", "Reattach", "locate_crawl", "survey", "time_left"]

#: Finds a job's live crawl process: (pid, process start time), or None when it is gone.
Locate = Callable[[Job], tuple[int, float | None] | None]


@dataclass(frozen=True)
class Reattach:
    """A crawl still running: follow process `pid` until it ends."""

    job: Job
    pid: int
    proc_start: float | None
    #: Seconds of its max_runtime left (None: no limit); 0 stops it at once.
    time_left: float | None


@dataclass(frozen=True)
class Ended:
    """A crawl that ended while no daemon watched: its final status and why."""

    job: Job
    status: str
    reason: str | None


def locate_crawl(job: Job) -> tuple[int, float | None] | None:
    """The live process of a RUNNING job. pid + start time identify the process; without
    a start time only the command line (JOB_ID=<id>) can tell it from a process that
    reused the pid."""
    known = job.pid is not None and job.proc_start is not None
    if known and job.pid is not None and process_alive(job.pid, job.proc_start):
        return job.pid, job.proc_start
    return find_crawl_process(job.id)


def time_left(job: Job, default_max_runtime: float, now: float) -> float | None:
    """What is left of a re-attached crawl's max_runtime (its own, else the daemon's),
    counted from when it really started; None when it has no limit."""
    max_runtime = job.max_runtime if job.max_runtime is not None else default_max_runtime
    if not max_runtime:
        return None
    ran = now - (job.started or now)
    return max(0.0, max_runtime - ran)


def survey(
    running: Iterable[Job],
    *,
    data_dir: Path,
    default_max_runtime: float,
    now: float,
    locate: Locate = locate_crawl,
) -> list[Reattach | Ended]:
    """One decision per job left RUNNING, in the order given."""
    found: list[Reattach | Ended] = []
    for job in running:
        alive = locate(job)
        if alive is None:
            outcome = Outcome(None, None, None, orphan=True)
            status, reason = verdict(outcome, read_manifest(data_dir / job.id))
            found.append(Ended(job, status, reason))
            continue
        pid, start = alive
        found.append(Reattach(job, pid, start, time_left(job, default_max_runtime, now)))
    return found
