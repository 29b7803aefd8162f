"""Jobs an earlier daemon left RUNNING, and finding their crawls again.

A crawl survives its daemon (it runs in its own process group), so at start each
RUNNING job is either still alive, to be re-attached and followed to its end, or gone,
to be judged by its job.json alone (its exit status went with the dead daemon). The jobs
service turns the store's RUNNING jobs into `LeftRunning` records (`left_running`) and
hands them to its executor's `reattach`; the local executor finds each crawl's process
with `locate_crawl`.
"""

from __future__ import annotations

from collections.abc import Iterable

from daemon.executor import LeftRunning
from daemon.job_store import Job
from daemon.launcher import find_crawl_process, process_alive
from daemon.local_handle import parse_handle

__all__ = ["left_running", "locate_crawl", "time_left"]


def locate_crawl(job_id: str, handle: str | None) -> tuple[int, float | None] | None:
    """The live process of a RUNNING local job: (pid, process start time), or None when
    it is gone. pid + start time (the handle) identify the process; without them only
    the command line (JOB_ID=<id>) can tell it from a process that reused the pid."""
    known = parse_handle(handle)
    if known is not None and known[1] is not None and process_alive(*known):
        return known
    return find_crawl_process(job_id)


def time_left(job: Job, default_max_runtime: float, now: float) -> float | None:
    """What is left of a re-attached crawl's max_runtime (its own, else the daemon's),
    counted from when it really started; None when it has no limit."""
    max_runtime = job.max_runtime if job.max_runtime is not None else default_max_runtime
    if not max_runtime:
        return None
    ran = now - (job.started or now)
    return max(0.0, max_runtime - ran)


def left_running(
    running: Iterable[Job], *, default_max_runtime: float, now: float
) -> list[LeftRunning]:
    """One record per job left RUNNING, in the order given."""
    return [
        LeftRunning(
            id=job.id,
            project=job.project,
            version=job.version,
            spider=job.spider,
            handle=job.handle,
            node=job.node,
            time_left=time_left(job, default_max_runtime, now),
        )
        for job in running
    ]
