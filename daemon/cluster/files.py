"""File work of the daemon's side for workers, kept pure of Twisted so it is tested
directly: where an uploaded name may land, appending a chunk at an offset (retries of a
chunk already written change nothing), staging a job folder until its attempt ends, and
the zip of a project version a worker downloads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from daemon.errors import DaemonError

#: Deepest folder nesting accepted in an uploaded job folder.
MAX_DEPTH = 8
MAX_NAME = 255
#: Folders of a project never shipped to workers: caches (built on their side) and
#: hidden ones (.git, a virtualenv, tool caches), which a crawl does not import from.
_SKIPPED_DIRS = {"__pycache__", "node_modules"}


class UploadError(DaemonError):
    """A refused upload; `http_status` is what the API answers."""


def safe_relpath(text: str) -> PurePosixPath:
    """A relative path inside a job folder, or UploadError: no absolute path, no `..`,
    no empty or hidden-trick parts, no NUL, not too deep (a worker is trusted to run
    crawls, not to write outside data/<id>/)."""
    if not text or "\x00" in text or "\\" in text or len(text) > 1024:
        raise UploadError(f"Bad file name {text[:80]!r}", 400)
    path = PurePosixPath(text)
    parts = text.split("/")  # unnormalized: "a//b" and "a/./b" are refused, not cleaned
    if path.is_absolute() or len(parts) > MAX_DEPTH:
        raise UploadError(f"Bad file name {text[:80]!r}", 400)
    for part in parts:
        if part in ("", ".", "..") or len(part) > MAX_NAME:
            raise UploadError(f"Bad file name {text[:80]!r}", 400)
    return path


def append_at(path: Path, offset: int, data: bytes, max_bytes: int) -> int:
    """Write `data` so that it starts at byte `offset` of `path`; returns the file's
    size after. Bytes before the current end are already there (a retried chunk):
    only the rest is appended. An offset past the end (a chunk lost in between) is
    refused with 409, as is a file growing past `max_bytes` (413)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o644)
    try:
        size = os.fstat(fd).st_size
        if offset > size:
            raise UploadError(f"Chunk at offset {offset} leaves a gap: the file has {size}", 409)
        new = data[size - offset :]
        if max_bytes and size + len(new) > max_bytes:
            raise UploadError(f"File would grow past the cap of {max_bytes} bytes", 413)
        while new:
            written = os.write(fd, new)
            new = new[written:]
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(total bytes, files) under `folder` (0, 0 when it is missing)."""
    total = files = 0
    for path in _files(folder):
        with contextlib.suppress(OSError):
            total += path.lstat().st_size
            files += 1
    return total, files


def _files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
        for name in names:
            path = Path(root, name)
            if path.is_file() and not path.is_symlink():
                yield path


def project_files(folder: Path) -> list[Path]:
    """The files of a project folder a worker gets, sorted."""
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _SKIPPED_DIRS and not d.startswith(".") and not Path(root, d).is_symlink()
        )
        for name in sorted(names):
            path = Path(root, name)
            if path.suffix != ".pyc" and path.is_file() and not path.is_symlink():
                out.append(path)
    return out


def commit_folder(staged: Path, job_dir: Path) -> int:
    """Move every staged file into the job folder (each replaced atomically, so a
    reader sees the old or the new file, never half); returns how many moved."""
    moved = 0
    for path in sorted(_files(staged)):
        target = job_dir / path.relative_to(staged)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved += 1
    shutil.rmtree(staged, ignore_errors=True)
    return moved


def project_zip(folder: Path, dest: Path) -> Path:
    """The zip of a project folder (scrapy.cfg at its root), written once per version
    to `dest` (replaced atomically): a later download of the same version reads the
    file made the first time."""
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".zip-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in project_files(folder):
                zf.write(path, path.relative_to(folder).as_posix())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest
