"""Checks of pushed project archives, kept pure so every hostile case is testable in memory.

A pushed zip is untrusted: its entry names, types, sizes and even its size headers may
lie. `read_archive` decides everything that can be decided from the bytes alone (layout,
names, entry types, real expanded size, project name) before anything touches the disk;
the store then unpacks exactly the members it returns, counting bytes again.
"""

from __future__ import annotations

import configparser
import io
import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from daemon.errors import DaemonError

MiB = 1024 * 1024

#: Project names become folder names and appear in URLs and argv, so they stay plain
#: and short. The config's names (daemon/config.py) are held to the same length.
MAX_PROJECT_NAME = 64
NAME_RE = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_PROJECT_NAME}}}")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CHUNK = 64 * 1024
_MAX_NAME_CHARS = 1024
_MAX_PART_CHARS = 255
_MAX_CFG_BYTES = 64 * 1024
#: Folders some zip tools add beside the project; they carry no project code.
_IGNORED_TOP = frozenset({"__MACOSX"})
#: Where a project's name came from: scrapy.cfg's `[deploy] project`, or (guessed) the
#: package of its `[settings] default` module.
NAME_FROM_DEPLOY = "deploy"
NAME_FROM_SETTINGS = "settings"


class ArchiveError(DaemonError):
    """A pushed archive that cannot become a project; `http_status` is 400 or 413."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps that keep one push from filling the disk or the memory of the daemon."""

    max_archive_bytes: int = 20 * MiB
    max_unpacked_bytes: int = 100 * MiB
    max_files: int = 2000
    max_file_bytes: int = 20 * MiB


@dataclass(frozen=True)
class Member:
    """One entry to unpack: its name in the zip and its path inside the project folder."""

    index: int
    zip_name: str
    path: PurePosixPath
    is_dir: bool


@dataclass(frozen=True)
class ProjectArchive:
    """An archive that passed every check: what to unpack and under which name."""

    name: str
    prefix: str
    members: tuple[Member, ...]
    unpacked_bytes: int
    #: NAME_FROM_DEPLOY, or NAME_FROM_SETTINGS when the name was only guessed.
    name_from: str = NAME_FROM_DEPLOY
    #: The `[settings] default` module a guessed name was taken from.
    settings_module: str = ""

    @property
    def name_guessed(self) -> bool:
        return self.name_from == NAME_FROM_SETTINGS

    def name_origin(self) -> str:
        """Where the name came from, in words for a reply."""
        if self.name_guessed:
            return (
                f"no [deploy] project in scrapy.cfg; the name {self.name!r} was guessed "
                f"from the settings module {self.settings_module}"
            )
        return f"the name {self.name!r} is scrapy.cfg's [deploy] project"


def check_project_name(name: str) -> str:
    """Refuse any name that could act as a path, an option or an empty folder name."""
    if not isinstance(name, str) or not name:
        raise ArchiveError("project name is empty")
    if len(name) > MAX_PROJECT_NAME:
        raise ArchiveError(
            f"project name is {len(name)} characters long; at most {MAX_PROJECT_NAME} allowed"
        )
    if name in {".", ".."} or not NAME_RE.fullmatch(name):
        raise ArchiveError(
            f"project name {name!r} is not allowed: "
            f"use 1-{MAX_PROJECT_NAME} letters, digits, '_', '-' or '.'"
        )
    return name


def check_member_name(name: str) -> tuple[PurePosixPath, bool]:
    """Turn a zip entry name into a safe relative path, or say why it is unsafe.

    Returns the path and whether the entry is a folder (trailing slash).
    """
    shown = name[:80] + ("..." if len(name) > 80 else "")
    if not name:
        raise ArchiveError("archive has an entry with an empty name")
    if len(name) > _MAX_NAME_CHARS:
        raise ArchiveError(f"entry name is longer than {_MAX_NAME_CHARS} characters: {shown!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ArchiveError(f"entry name has control characters: {shown!r}")
    if "\\" in name:
        raise ArchiveError(f"entry name has a backslash: {shown!r}")
    if name.startswith("/"):
        raise ArchiveError(f"entry has an absolute path: {shown!r}")
    if _DRIVE_RE.match(name):
        raise ArchiveError(f"entry has a drive letter: {shown!r}")
    is_dir = name.endswith("/")
    parts = (name[:-1] if is_dir else name).split("/")
    for part in parts:
        if part == "..":
            raise ArchiveError(f"entry leaves the archive with '..': {shown!r}")
        if part in {"", "."}:
            raise ArchiveError(f"entry name has an empty or '.' component: {shown!r}")
        if len(part) > _MAX_PART_CHARS:
            raise ArchiveError(f"entry name has a component over {_MAX_PART_CHARS} characters")
    return PurePosixPath(*parts), is_dir


def _check_entry_type(info: zipfile.ZipInfo, is_dir: bool) -> None:
    """Allow only plain files and folders: a link or device could point out of the store."""
    if info.flag_bits & 0x1:
        raise ArchiveError(f"entry is encrypted: {info.filename!r}")
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"entry is a symbolic link: {info.filename!r}")
    if kind not in {0, stat.S_IFREG, stat.S_IFDIR}:
        raise ArchiveError(f"entry is not a regular file or folder: {info.filename!r}")
    if kind == stat.S_IFDIR and not is_dir:
        raise ArchiveError(f"entry is marked as a folder but named as a file: {info.filename!r}")
    if is_dir and info.file_size:
        raise ArchiveError(f"folder entry has content: {info.filename!r}")


def iter_member_chunks(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ArchiveLimits, done: int
) -> Iterator[bytes]:
    """Yield the expanded bytes of one entry, failing as soon as a cap is passed.

    `done` is what earlier entries expanded to. The count is of bytes really produced,
    not of what the header claims.
    """
    seen = 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(_CHUNK):
                seen += len(chunk)
                if seen > limits.max_file_bytes:
                    raise ArchiveError(
                        f"entry {info.filename!r} expands beyond the limit per file of "
                        f"{limits.max_file_bytes} bytes",
                        413,
                    )
                if done + seen > limits.max_unpacked_bytes:
                    raise ArchiveError(
                        f"archive expands beyond the limit of {limits.max_unpacked_bytes} bytes",
                        413,
                    )
                yield chunk
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise ArchiveError(f"entry {info.filename!r} cannot be read: {exc}") from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise ArchiveError(f"entry {info.filename!r} cannot be read: {exc}") from None


def open_zip(data: bytes) -> zipfile.ZipFile:
    """Open the bytes as a zip or fail with a message a user can act on."""
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError):
        raise ArchiveError("archive is not a zip file") from None


def _project_prefix(members: list[Member]) -> str:
    """Find the project folder: `scrapy.cfg` at the root, or inside one top folder."""
    files = {m.path for m in members if not m.is_dir}
    if PurePosixPath("scrapy.cfg") in files:
        return ""
    tops = sorted(
        p.parts[0]
        for p in files
        if len(p.parts) == 2 and p.name == "scrapy.cfg" and p.parts[0] not in _IGNORED_TOP
    )
    if not tops:
        raise ArchiveError("archive has no scrapy.cfg at its root or in its top folder")
    if len(tops) > 1:
        raise ArchiveError(f"archive holds several projects ({', '.join(tops)}); push one")
    return tops[0]


def project_name(cfg_bytes: bytes) -> tuple[str, str, str]:
    """Read the name as scrapy-do does ([deploy] project), else guess it from the
    settings package; returns the name, where it came from and the settings module."""
    try:
        text = cfg_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError("scrapy.cfg is not UTF-8 text") from None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source="scrapy.cfg")
    except configparser.Error as exc:
        first_line = str(exc).splitlines()[0]
        raise ArchiveError(f"scrapy.cfg cannot be parsed: {first_line}") from None
    name = parser.get("deploy", "project", fallback="").strip()
    if name:
        return check_project_name(name), NAME_FROM_DEPLOY, ""
    module = parser.get("settings", "default", fallback="").strip()
    name = module.split(".", 1)[0]
    if not name:
        raise ArchiveError(
            "scrapy.cfg names no project: add 'project = NAME' to its [deploy] section"
        )
    return check_project_name(name), NAME_FROM_SETTINGS, module


def read_archive(data: bytes, limits: ArchiveLimits) -> ProjectArchive:
    """Check a pushed archive completely in memory and say what to unpack.

    Every entry is expanded once (and thrown away) so a zip bomb is caught by the bytes
    it really produces, whatever its headers say; the work stops at the first cap passed.
    """
    if len(data) > limits.max_archive_bytes:
        raise ArchiveError(
            f"archive is {len(data)} bytes; the limit is {limits.max_archive_bytes}", 413
        )
    with open_zip(data) as zf:
        infos = zf.infolist()
        if len(infos) > limits.max_files:
            raise ArchiveError(
                f"archive has {len(infos)} entries; the limit is {limits.max_files}", 413
            )
        members: list[Member] = []
        seen: set[PurePosixPath] = set()
        file_paths: set[PurePosixPath] = set()
        dir_paths: set[PurePosixPath] = set()
        declared = 0
        for info in infos:
            path, is_dir = check_member_name(info.filename)
            _check_entry_type(info, is_dir)
            if path in seen:
                raise ArchiveError(f"archive has the entry {str(path)!r} twice")
            seen.add(path)
            (dir_paths if is_dir else file_paths).add(path)
            dir_paths.update(path.parents)
            if not is_dir:
                if info.file_size > limits.max_file_bytes:
                    raise ArchiveError(
                        f"entry {info.filename!r} is {info.file_size} bytes; "
                        f"the limit per file is {limits.max_file_bytes}",
                        413,
                    )
                declared += info.file_size
            members.append(Member(len(members), info.filename, path, is_dir))
        clash = file_paths & dir_paths
        if clash:
            raise ArchiveError(f"archive has {str(min(clash))!r} as both a file and a folder")
        if declared > limits.max_unpacked_bytes:
            raise ArchiveError(
                f"archive expands to {declared} bytes; the limit is {limits.max_unpacked_bytes}",
                413,
            )

        prefix = _project_prefix(members)
        kept: list[Member] = []
        for m in members:
            if not prefix:
                kept.append(m)
                continue
            if m.path.parts[0] in _IGNORED_TOP:
                continue
            if m.path.parts[0] != prefix:
                raise ArchiveError(
                    f"entry {m.zip_name!r} is outside the project folder {prefix + '/'!r}"
                )
            if len(m.path.parts) > 1:
                inner = PurePosixPath(*m.path.parts[1:])
                kept.append(Member(m.index, m.zip_name, inner, m.is_dir))

        total = 0
        cfg_bytes = b""
        for m in kept:
            if m.is_dir:
                continue
            is_cfg = m.path == PurePosixPath("scrapy.cfg")
            size = 0
            for chunk in iter_member_chunks(zf, infos[m.index], limits, total):
                size += len(chunk)
                if is_cfg:
                    if size > _MAX_CFG_BYTES:
                        raise ArchiveError(f"scrapy.cfg is over {_MAX_CFG_BYTES} bytes")
                    cfg_bytes += chunk
            total += size
        name, name_from, module = project_name(cfg_bytes)
    return ProjectArchive(
        name=name,
        prefix=prefix,
        members=tuple(kept),
        unpacked_bytes=total,
        name_from=name_from,
        settings_module=module,
    )
