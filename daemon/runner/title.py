"""A crawl's process title: what `ps` and psutil show as its command line.

The title is written over the process's own argv area through /proc/self/mem, and
nothing else. (The setproctitle library also takes over the environment area after
argv and blanks it, which would erase the COINSPIDERS_JOB_ID tag that
/proc/<pid>/environ shows and daemon.leftovers relies on.) The last byte of the area is
left non-NUL: the kernel then shows the title up to its first NUL, so psutil splits it
on spaces into clean words (`['coinspiders', 'crawl', 'coin', 'JOB_ID=...']`).
"""

from __future__ import annotations

import contextlib


def crawl_title(spider: str, job_id: str) -> str:
    """`JOB_ID=<id>` is one word of it: daemon.launcher.find_crawl_process looks for it."""
    return f"coinspiders crawl {spider} JOB_ID={job_id}"


def _argv_area() -> tuple[int, int]:
    with open("/proc/self/stat", "rb") as fh:
        data = fh.read()
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48 and 49)


def set_title(title: str) -> bool:
    """Show `title` as this process's command line (cut to the argv area's length);
    False where it cannot be done (no /proc, a kernel without arg_start in stat)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        start, end = _argv_area()
        room = end - start
        if room < 2:
            return False
        raw = title.encode("utf-8", "replace")[: room - 1]
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            mem.write(raw + b"\0" * (room - len(raw) - 1) + b" ")
        return True
    return False
