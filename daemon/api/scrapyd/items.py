"""A crawl's items.jl served as scrapyd serves its items_dir, without trusting the file.

The crawl writes the job folder (as the crawl user, when one is set), so it may leave a
link, a FIFO or some other non-file where items.jl should be: serving it would hand out
whatever the link points at (the daemon reads as itself). Only a regular file is
served, opened without following a link, so a swap between the check and the open
fails instead of leaking.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO, Any

from twisted.web.static import File


def is_plain_file(path: Path) -> bool:
    """Whether `path` itself (not what a link names) is a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def open_plain(path: Path) -> IO[bytes]:
    """`path` opened for reading only if it is a regular file and not a link; else
    OSError(EACCES), which static.File answers with 403."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise OSError(errno.EACCES, f"{path.name} is not a plain file") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EACCES, f"{path.name} is not a plain file")
    return os.fdopen(fd, "rb")


class PlainFile(File):
    """static.File (Range, HEAD, streaming) over a file opened with open_plain."""

    def openForReading(self) -> Any:
        return open_plain(Path(self.path))
