"""Processes a crawl leaves behind, found and killed when it ends; orphans reaped.

A spider may start helpers that leave the crawl's process group (setsid, double fork):
killing the group misses them, and they outlive the crawl. Three things find them:

- every crawl runs with `COINSPIDERS_JOB_ID=<job id>` in its environment, which every
  descendant inherits whatever its group, session or parent; /proc/<pid>/environ shows
  it for the life of the process (it is the environment the process was started with);
- the crawl's process group (its pid), for a member that cleared its environment;
- the daemon makes itself a child subreaper (Linux 3.4+), so an orphaned descendant of
  a crawl is re-parented to the daemon instead of init. Once a crawl's main process has
  ended, all its surviving descendants are under the daemon's children that Twisted did
  not spawn: the search walks only those (no scan of every process), and when no other
  crawl runs, such a child is a leftover even without the tag (started with a scrubbed
  environment and a session of its own, the one case the first two miss).

`reap_orphans` collects the exit statuses of those re-parented children, so neither a
leftover killed here nor a helper that exits on its own stays a zombie (when the daemon
runs as pid 1 of a container there is no other reaper).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Container, Iterable

JOB_ENV = "COINSPIDERS_JOB_ID"
_PR_SET_CHILD_SUBREAPER = 36
_PROC = "/proc"


def become_subreaper() -> bool:
    """prctl(PR_SET_CHILD_SUBREAPER, 1) for this process; False where unsupported.

    A ctypes call into the C library: Python's standard library has no prctl, and one
    constant does not justify a dependency.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start time in clock ticks) of a process, from /proc/<pid>/stat."""
    text = _read(f"{_PROC}/{pid}/stat")
    if text is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _tagged(pid: int, tag: bytes) -> bool:
    environ = _read(f"{_PROC}/{pid}/environ") or b""
    return environ.startswith(tag) or b"\0" + tag in environ


def children_of(pid: int) -> list[int]:
    """The children of `pid`, from /proc/<pid>/task/*/children (Linux 3.5+)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"{_PROC}/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        out.extend(int(c) for c in (_read(f"{_PROC}/{pid}/task/{tid}/children") or b"").split())
    return out


def _processes(roots: Iterable[int] | None) -> dict[int, tuple[str, int, int, int]]:
    """stat of every process (roots None), or of `roots` and all their descendants."""
    stats = {}
    if roots is None:
        with contextlib.suppress(OSError):
            for entry in os.scandir(_PROC):
                if entry.name.isdigit():
                    stat = _stat(int(entry.name))
                    if stat is not None:
                        stats[int(entry.name)] = stat
        return stats
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in stats:
            continue
        stat = _stat(pid)
        if stat is not None:
            stats[pid] = stat
            todo.extend(children_of(pid))
    return stats


def find_leftovers(
    job_id: str,
    pgid: int | None,
    roots: Iterable[int] | None = None,
    take_untagged_roots: bool = False,
) -> list[tuple[int, int]]:
    """Live processes of an ended crawl, as (pid, start ticks): every process carrying
    the crawl's JOB_ENV tag or in its process group `pgid` (None: not matched by group),
    and every descendant of one of those.

    `roots`: where to look. The daemon, a subreaper, passes its children that Twisted
    did not spawn: every surviving descendant of an ended crawl is among them or under
    them, so the walk costs in proportion to what it finds. None reads every process
    (~120 processes: tens of milliseconds on a loaded machine), for a crawl started by
    an earlier daemon, whose descendants went to init. `take_untagged_roots`: every
    root counts as a leftover (no crawl runs any more that could own one whose
    environment was scrubbed)."""
    tag = f"{JOB_ENV}={job_id}\0".encode()
    own = os.getpid()
    roots = None if roots is None else list(roots)
    stats = _processes(roots)
    stats.pop(own, None)
    children: dict[int, list[int]] = {}
    for pid, (_state, ppid, _group, _start) in stats.items():
        children.setdefault(ppid, []).append(pid)
    todo = [
        pid
        for pid, (_state, _ppid, group, _start) in stats.items()
        if (pgid is not None and group == pgid) or _tagged(pid, tag)
    ]
    if take_untagged_roots and roots is not None:
        todo.extend(pid for pid in roots if pid in stats)
    found: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid not in found and pid in stats:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return sorted((pid, stats[pid][3]) for pid in found if stats[pid][0] not in ("Z", "X"))


def kill_leftovers(
    job_id: str,
    pgid: int | None,
    roots: Callable[[], Iterable[int]] | None = None,
    take_untagged_roots: bool = False,
    passes: int = 3,
) -> int:
    """SIGKILL every leftover of an ended crawl (see find_leftovers; `roots` is called
    for each pass); returns how many were killed.

    A new pass looks again after the kills, for children forked while the previous pass
    read /proc (at most `passes` passes)."""
    killed: set[tuple[int, int]] = set()
    for _ in range(passes):
        found = find_leftovers(
            job_id, pgid, roots() if roots is not None else None, take_untagged_roots
        )
        fresh = [p for p in found if p not in killed]
        if not fresh:
            break
        for pid, start in fresh:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add((pid, start))
    return len(killed)


def reap_orphans(known: Container[int]) -> list[int]:
    """Collect the exit status of every ended child that is not in `known` (the pids
    Twisted spawned and reaps itself: their statuses are the crawls' exit codes, so
    they must not be taken). Returns the reaped pids.

    `waitid(..., WNOWAIT)` looks at a waitable child without reaping it; when that child
    is a known one, the rest waits for the next call (after Twisted reaped it)."""
    reaped: list[int] = []
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, flags)
        except ChildProcessError:
            return reaped
        if info is None or info.si_pid == 0 or info.si_pid in known:
            return reaped
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, os.WNOHANG)
        reaped.append(info.si_pid)
