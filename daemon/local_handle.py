"""The handle of a crawl run by the local executor: its process id and the process's
start time (which tells it from a later process that reused the pid), as text.

Pure, and apart from daemon.local_executor so that the store can show a local job's
pid (scrapyd's listjobs has one) without importing the launcher.
"""

from __future__ import annotations

__all__ = ["LOCAL_NODE", "format_handle", "parse_handle"]

#: The node name of jobs the local executor runs.
LOCAL_NODE = "local"


def format_handle(pid: int, proc_start: float | None) -> str:
    """`<pid>:<start time>` (the start time empty when unknown)."""
    return f"{pid}:{'' if proc_start is None else repr(float(proc_start))}"


def parse_handle(handle: str | None) -> tuple[int, float | None] | None:
    """(pid, start time) of a local handle; None for anything else."""
    if not handle:
        return None
    pid_text, _sep, start_text = handle.partition(":")
    try:
        pid = int(pid_text)
        start = float(start_text) if start_text else None
    except ValueError:
        return None
    if pid <= 0:
        return None
    return pid, start
