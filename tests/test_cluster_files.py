"""The daemon's file work for workers (daemon/cluster/files.py), on real files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from daemon.cluster.files import (
    UploadError,
    append_at,
    commit_folder,
    project_zip,
    safe_relpath,
)


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a\\b", "x\x00", "a/" * 9 + "b"],
)
def test_names_outside_the_job_folder_are_refused(name: str) -> None:
    with pytest.raises(UploadError) as err:
        safe_relpath(name)
    assert err.value.http_status == 400


def test_plain_names_pass() -> None:
    assert str(safe_relpath("logos/btc.png")) == "logos/btc.png"
    assert str(safe_relpath("items.jl")) == "items.jl"


def test_a_retried_chunk_is_written_once_and_a_gap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a" / "log"
    assert append_at(path, 0, b"hello ", 0) == 6
    assert append_at(path, 0, b"hello ", 0) == 6  # the same chunk again: nothing new
    assert append_at(path, 3, b"lo world", 0) == 11  # overlaps: only the new bytes
    with pytest.raises(UploadError) as err:
        append_at(path, 20, b"late", 0)
    assert err.value.http_status == 409
    assert path.read_bytes() == b"hello world"
    with pytest.raises(UploadError) as err:
        append_at(path, 11, b"x" * 10, 15)
    assert err.value.http_status == 413
    assert path.read_bytes() == b"hello world"


def test_commit_moves_every_staged_file_into_the_job_folder(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    (staged / "logos").mkdir(parents=True)
    (staged / "items.jl").write_text("{}\n")
    (staged / "logos" / "btc.png").write_bytes(b"png")
    job = tmp_path / "job"
    job.mkdir()
    (job / "items.jl").write_text("old\n")
    assert commit_folder(staged, job) == 2
    assert (job / "items.jl").read_text() == "{}\n"
    assert (job / "logos" / "btc.png").read_bytes() == b"png"
    assert not staged.exists()


def test_a_project_zip_is_made_once_per_version_without_caches(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    (folder / "p" / "__pycache__").mkdir(parents=True)
    (folder / "scrapy.cfg").write_text("[settings]\ndefault = p.settings\n")
    (folder / "p" / "settings.py").write_text("BOT_NAME = 'p'\n")
    (folder / "p" / "__pycache__" / "settings.cpython-311.pyc").write_bytes(b"\0")
    dest = tmp_path / "zips" / "p-1.zip"
    project_zip(folder, dest)
    with zipfile.ZipFile(dest) as zf:
        assert sorted(zf.namelist()) == ["p/settings.py", "scrapy.cfg"]
    (folder / "p" / "new.py").write_text("")
    project_zip(folder, dest)  # the version's zip is not made again
    with zipfile.ZipFile(dest) as zf:
        assert "p/new.py" not in zf.namelist()
