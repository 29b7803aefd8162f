"""Pushed-archive checks on hand-built zips, hostile ones included; all in memory."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from scrapy_do.client.archive import build_project_archive

from daemon.archive import (
    ArchiveError,
    ArchiveLimits,
    check_member_name,
    check_project_name,
    read_archive,
)

CFG = b"[settings]\ndefault = tiny.settings\n\n[deploy]\nproject = tiny\n"
LIMITS = ArchiveLimits()


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], **kw: object) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, **kw) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def project(prefix: str = "tiny/", cfg: bytes = CFG, extra: list | None = None) -> bytes:
    entries = [
        (f"{prefix}scrapy.cfg", cfg),
        (f"{prefix}tiny/__init__.py", b""),
        (f"{prefix}tiny/settings.py", b"BOT_NAME = 'tiny'\n"),
    ]
    return make_zip(entries + (extra or []))


def rejected(data: bytes, limits: ArchiveLimits = LIMITS) -> ArchiveError:
    with pytest.raises(ArchiveError) as info:
        read_archive(data, limits)
    return info.value


def test_archive_built_by_scrapy_do_client(tmp_path: Path) -> None:
    root = tmp_path / "quotes"
    (root / "quotes" / "spiders").mkdir(parents=True)
    (root / "scrapy.cfg").write_text(
        "[settings]\ndefault = quotes.settings\n[deploy]\nproject = quotes\n"
    )
    (root / "quotes" / "__init__.py").write_text("")
    (root / "quotes" / "settings.py").write_text("BOT_NAME = 'quotes'\n")
    (root / "quotes" / "spiders" / "__init__.py").write_text("")
    _name, data = build_project_archive(str(root))
    archive = read_archive(data, LIMITS)
    assert (archive.name, archive.prefix) == ("quotes", "quotes")
    paths = {str(m.path) for m in archive.members}
    assert paths == {
        "scrapy.cfg",
        "quotes/__init__.py",
        "quotes/settings.py",
        "quotes/spiders/__init__.py",
    }
    assert archive.unpacked_bytes == sum(
        len(p.read_bytes()) for p in root.rglob("*") if p.is_file()
    )


def test_scrapy_cfg_at_the_root_and_settings_fallback() -> None:
    archive = read_archive(project(prefix=""), LIMITS)
    assert archive.name == "tiny" and archive.prefix == ""
    assert PurePosixPath("tiny/settings.py") in {m.path for m in archive.members}
    only_settings = project(cfg=b"[settings]\ndefault = other_pkg.settings\n")
    assert read_archive(only_settings, LIMITS).name == "other_pkg"


def test_macos_folder_is_ignored_other_strays_are_not() -> None:
    mac = project(extra=[("__MACOSX/tiny/._scrapy.cfg", b"junk")])
    assert all(m.path.parts[0] != "__MACOSX" for m in read_archive(mac, LIMITS).members)
    stray = project(extra=[("README", b"hello")])
    assert "outside the project folder" in rejected(stray).message


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04" + b"\0" * 100])
def test_not_a_zip(data: bytes) -> None:
    assert rejected(data).message == "archive is not a zip file"


def test_no_scrapy_cfg_where_it_belongs() -> None:
    assert "no scrapy.cfg" in rejected(make_zip([("tiny/x.py", b"")])).message
    deep = make_zip([("a/b/scrapy.cfg", CFG)])
    assert "no scrapy.cfg" in rejected(deep).message
    two = make_zip([("a/scrapy.cfg", CFG), ("b/scrapy.cfg", CFG)])
    assert "several projects" in rejected(two).message


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../evil", "'..'"),
        ("tiny/../../evil", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:/Windows/evil", "drive letter"),
        ("c:evil", "drive letter"),
        ("..\\evil", "backslash"),
        ("tiny//x", "empty"),
        ("tiny/./x", "'.'"),
        ("tiny/x\nname", "control"),
        ("tiny/" + "x" * 300, "over 255"),
    ],
)
def test_unsafe_entry_names(name: str, words: str) -> None:
    data = project(extra=[(name, b"x")])
    error = rejected(data)
    assert words in error.message and error.http_status == 400
    with pytest.raises(ArchiveError):
        check_member_name(name)


def test_symlink_and_device_entries() -> None:
    link = zipfile.ZipInfo("tiny/tiny/link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    assert "symbolic link" in rejected(project(extra=[(link, b"/etc/passwd")])).message
    fifo = zipfile.ZipInfo("tiny/tiny/fifo")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    assert "not a regular file" in rejected(project(extra=[(fifo, b"")])).message
    encrypted = _patch_headers(project(), 6, 8, "<H", 0x1)
    assert "encrypted" in rejected(encrypted).message


def test_duplicates_and_file_folder_clash() -> None:
    with pytest.warns(UserWarning):
        dup = project(extra=[("tiny/tiny/a.py", b"1"), ("tiny/tiny/a.py", b"2")])
    assert "twice" in rejected(dup).message
    clash = project(extra=[("tiny/tiny/a", b"1"), ("tiny/tiny/a/b.py", b"2")])
    assert "both a file and a folder" in rejected(clash).message


def test_zip_bomb_of_zeros_is_stopped_by_its_size() -> None:
    bomb = project(extra=[("tiny/tiny/zeros.bin", b"\0" * (30 * 1024 * 1024))])
    assert len(bomb) < 100_000
    error = rejected(bomb)
    assert error.http_status == 413 and "limit per file" in error.message
    # Many files, each under the per-file cap, together over the total cap.
    parts = [(f"tiny/tiny/z{i}.bin", b"\0" * (1024 * 1024)) for i in range(6)]
    limits = ArchiveLimits(max_unpacked_bytes=5 * 1024 * 1024, max_file_bytes=2 * 1024 * 1024)
    error = rejected(project(extra=parts), limits)
    assert error.http_status == 413 and "expands to" in error.message


def _patch_headers(
    data: bytes, local_at: int, central_at: int, fmt: str, value: int, only: str = ""
) -> bytes:
    """Rewrite one field in the local and central headers (of entry `only`, or all)."""
    out = bytearray(data)
    for signature, offset, name_len_at, name_at in (
        (b"PK\x03\x04", local_at, 26, 30),
        (b"PK\x01\x02", central_at, 28, 46),
    ):
        pos = 0
        while (pos := out.find(signature, pos)) != -1:
            (name_len,) = struct.unpack_from("<H", out, pos + name_len_at)
            name = bytes(out[pos + name_at : pos + name_at + name_len]).decode()
            if not only or name == only:
                struct.pack_into(fmt, out, pos + offset, value)
            pos += 4
    return bytes(out)


def _lie_about_sizes(data: bytes, size: int, only: str = "") -> bytes:
    return _patch_headers(data, 22, 24, "<I", size, only)


def test_zip_bomb_with_lying_headers_is_refused() -> None:
    bomb = make_zip([("tiny/scrapy.cfg", CFG), ("tiny/zeros.bin", b"\0" * (30 * 1024 * 1024))])
    liar = _lie_about_sizes(bomb, 10, only="tiny/zeros.bin")
    assert zipfile.ZipFile(io.BytesIO(liar)).getinfo("tiny/zeros.bin").file_size == 10
    # Expansion stops at the claimed size, so the lie shows as a checksum error: had it
    # read on, the 1 MiB caps would have refused the member as too large instead.
    tight = ArchiveLimits(max_unpacked_bytes=1024 * 1024, max_file_bytes=1024 * 1024)
    error = rejected(liar, tight)
    assert "'tiny/zeros.bin' cannot be read" in error.message and "CRC" in error.message


def test_ten_thousand_tiny_files() -> None:
    many = project(extra=[(f"tiny/tiny/f{i}.py", b"") for i in range(10_000)])
    error = rejected(many)
    assert error.http_status == 413 and "entries" in error.message


def test_upload_over_the_archive_cap() -> None:
    data = project()
    error = rejected(data, ArchiveLimits(max_archive_bytes=len(data) - 1))
    assert error.http_status == 413


@pytest.mark.parametrize("name", ["tiny", "Tiny_2", "a-b.c", "x" * 64, "..a", "1"])
def test_plain_project_names(name: str) -> None:
    assert check_project_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "/abs", "../evil", "x" * 65, "x" * 300, "a b", "ä", "a\\b"]
)
def test_bad_project_names(name: str) -> None:
    with pytest.raises(ArchiveError):
        check_project_name(name)


@pytest.mark.parametrize("bad", ["../evil", "/etc", "a/b", "x" * 300, "..", "sp ace"])
def test_bad_project_name_in_scrapy_cfg(bad: str) -> None:
    cfg = f"[deploy]\nproject = {bad}\n".encode()
    assert "project name" in rejected(project(cfg=cfg)).message


def test_scrapy_cfg_without_a_name_or_unreadable() -> None:
    assert "names no project" in rejected(project(cfg=b"[deploy]\nurl = x\n")).message
    assert "names no project" in rejected(project(cfg=b"")).message
    assert "cannot be parsed" in rejected(project(cfg=b"no section header\n")).message
    assert "UTF-8" in rejected(project(cfg=b"[deploy]\nproject = \xff\n")).message
