"""Reading a crawl's live stats (the `stats.json` daemon.runner.stats writes in the
job's folder).

The crawl writes that folder (as the crawl user, when one is configured), so the file
is opened without following links, non-blocking (a FIFO put there cannot hang the
daemon) and read to at most MAX_BYTES: small enough to read on the reactor thread.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

FILE_NAME = "stats.json"
MAX_BYTES = 1024 * 1024


def live_stats_path(data_dir: Path, job_id: str) -> Path:
    return Path(data_dir).resolve() / job_id / FILE_NAME


def read_stats(data_dir: Path, job_id: str) -> str | None:
    """The job's stats as compact JSON text of an object; None when there is no file,
    or it is not a regular file, too big, or not a JSON object (a crawl mid-way
    through its first write, or one that wrote something else there)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(live_stats_path(data_dir, job_id), flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        return None
    return canonical(data)


def canonical(data: bytes | str) -> str | None:
    """`data` re-written by json.dumps when it is a JSON object, else None: text that
    is pasted into replies as it is must be valid JSON."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN or an infinity: not JSON
        return None
