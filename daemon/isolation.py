"""File ownership and modes that keep a crawl (pushed code) away from the daemon's data.

With `crawl_user` set, crawls and `scrapy list` run as that user (see daemon.children).
That alone stops them reading /proc/<daemon>/environ or signalling the daemon; these
modes stop them reading the store and other jobs' output:

    data/                0711 root   crawls may enter (to reach their job folder), not list
    data/*.sqlite        0600 root   the job store and the coin index, with their -wal/-shm
    data/logs/           0700 root   a crawl writes its logs through descriptors it inherits
    data/projects/       0755 root   pushed code is read (not written) by crawls ...
      records/, tmp/     0700 root   ... but the store's bookkeeping is not
    data/<job-id>/       0700 crawl user while the job runs, root once it ended

Only concurrent crawls share a uid, so they can still reach each other.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from pathlib import Path

from daemon.config import Config, CrawlUser

_JOB_DIR_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

#: The daemon's own files at the top of data/ (a crawl may enter data/ and so open any
#: name it knows): the stores with SQLite's side files, and the lock.
PRIVATE_FILES = (
    *(
        f"{db}{suffix}"
        for db in ("daemon.sqlite", "coins.sqlite")
        for suffix in ("", "-wal", "-shm", ".broken")
    ),
    "daemon.lock",
)


def secure_data_dir(data_dir: Path, logs_dir: Path, projects_dir: Path) -> None:
    """Set the modes above on the daemon's own files (owned by the daemon: root)."""
    os.chmod(data_dir, 0o711)
    os.chmod(logs_dir, 0o700)
    close_private_files(data_dir)
    # Job folders of a daemon that ran without crawl_user were left 0755: close them.
    with os.scandir(data_dir) as entries:
        for entry in entries:
            if _JOB_DIR_RE.match(entry.name) and entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
    if projects_dir.is_dir():
        os.chmod(projects_dir, 0o755)
        for private in ("records", "tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(projects_dir / private, 0o700)


def close_private_files(data_dir: Path) -> None:
    """chmod 0600 each of PRIVATE_FILES that exists: run before every crawl starts, as
    SQLite creates a store or its side files with the process's default mode (0644)."""
    for name in PRIVATE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(data_dir / name, 0o600)


def open_job_dir(folder: Path, user: CrawlUser) -> None:
    """Hand `folder` (created if missing) to the crawl user before its crawl starts.

    Only the folder itself changes hands, never anything under it: a link a crawl
    planted there must not make the daemon chown a file elsewhere. (data/ is root's, so
    no crawl can put a link in place of the folder itself.)
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    os.chown(folder, user.uid, user.gid, follow_symlinks=False)
    os.chmod(folder, 0o700)


def seal_job_dir(folder: Path) -> None:
    """Take a finished job's folder back (root, 0700): later crawls, running as the same
    user, can neither read nor change its output. Its contents keep their owner, but
    no one but root can reach them any more."""
    with contextlib.suppress(FileNotFoundError):
        os.chown(folder, 0, 0, follow_symlinks=False)
        os.chmod(folder, 0o700)


def runnable_by_others(path: Path) -> bool:
    """True when a user with no special rights may run `path`: it and every folder above
    it have the execute bit for others (an ACL or a shared group could still allow it)."""
    real = Path(path).resolve()
    try:
        return all(os.stat(p).st_mode & stat.S_IXOTH for p in [real, *real.parents])
    except OSError:
        return False


def trust_warnings(config: Config, euid: int, python: str = sys.executable) -> list[str]:
    """What the start-up log should warn about: ways pushed code gets more than it
    should, and a crawl user that cannot even start Python."""
    out = [
        f"crawl_consoles: crawls of project {name} may open Scrapy's Telnet console and "
        f"remote-control server (as its settings say); Scrapy writes the console's password "
        f"into the crawl's .err log, which get-log serves to every API user"
        for name in sorted(config.crawl_consoles)
    ]
    if euid == 0 and config.crawl_user is None:
        out.append(
            "the daemon runs as root and crawl_user is not set: every pushed project runs as root"
        )
    if config.crawl_user is not None and not runnable_by_others(Path(python)):
        out.append(
            f"crawl_user {config.crawl_user.name} may be unable to run {Path(python).resolve()} "
            f"(a folder on its path is closed to other users): crawls would fail to start"
        )
    auth = config.auth
    if (
        config.crawl_user is not None
        and auth is not None
        and auth.source == "password"
        and config.source is not None
        and config.source.stat().st_mode & 0o004
    ):
        out.append(
            f"auth.password is in {config.source}, which every user (the crawl user too) "
            f"can read: use auth.password_file or auth.password_hash"
        )
    return out
