"""The pieces behind scrapyd's versions and cancel signals, tested directly: the jobs
table's `version` column (added on open to a store made before it) and the reading of
cancel.json's `signal`."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from daemon.api.scrapyd.items import PlainFile, is_plain_file, open_plain
from daemon.api.scrapyd.replies import ScrapydError
from daemon.api.scrapyd.signals import parse_signal
from daemon.domain import PENDING, USER
from daemon.job_store import Job, Store
from tests.daemon_support import write_store_without_added_columns


def test_a_store_without_versions_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sqlite"
    write_store_without_added_columns(path)  # with one PENDING job "old" in p/s
    store = Store(path)
    try:
        kept = store.get("old")
        assert kept is not None and kept.version is None and kept.project == "p"
        job = Job(
            id="pinned",
            status=PENDING,
            actor=USER,
            schedule="now",
            project="p",
            spider="s",
            version="1_9",
        )
        store.insert(job)
        assert store.get("pinned").version == "1_9"
    finally:
        store.close()
    again = Store(path)  # migrated already: nothing changes
    try:
        assert again.get("pinned").version == "1_9" and again.get("old").version is None
    finally:
        again.close()


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("INT", signal.SIGINT),
        ("TERM", signal.SIGTERM),
        ("KILL", signal.SIGKILL),
        ("HUP", signal.SIGHUP),
        ("STOP", signal.SIGSTOP),
        ("9", 9),
        ("2", 2),
    ],
)
def test_signals_scrapyd_takes(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Twisted's signalProcess knows only these five names (not SIGKILL, not USR1).
        ("SIGKILL", "TypeError: 'str' object cannot be interpreted as an integer"),
        ("USR1", "TypeError: 'str' object cannot be interpreted as an integer"),
        ("kill", "TypeError: 'str' object cannot be interpreted as an integer"),
        ("", "TypeError: 'str' object cannot be interpreted as an integer"),
        ("-9", "TypeError: 'str' object cannot be interpreted as an integer"),
        ("٩", "TypeError: 'str' object cannot be interpreted as an integer"),
        ("999", "OSError: [Errno 22] Invalid argument"),
        (str(2**31), "OSError: [Errno 22] Invalid argument"),
        ("99999999999999999999", "OverflowError: Python int too large to convert to C ssize_t"),
        # scrapyd sends it (a no-op); here a cancel always stops the crawl, so say so.
        ("0", "signal is invalid: 0 sends no signal"),
    ],
)
def test_signals_scrapyd_refuses(text: str, message: str) -> None:
    with pytest.raises(ScrapydError) as refused:
        parse_signal(text)
    assert refused.value.message == message and refused.value.code == 400


def test_items_are_opened_only_as_plain_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("SECRET")
    plain = tmp_path / "items.jl"
    plain.write_text('{"n": 1}\n')
    link = tmp_path / "link.jl"
    link.symlink_to(secret)
    fifo = tmp_path / "fifo.jl"
    os.mkfifo(fifo)
    assert is_plain_file(plain)
    assert not any(is_plain_file(p) for p in (link, fifo, tmp_path, tmp_path / "none"))
    with open_plain(plain) as fh:
        assert fh.read() == b'{"n": 1}\n'
    # What a swap after the check would leave: refused at the open, not followed.
    for path in (link, fifo):
        with pytest.raises(OSError) as refused:
            PlainFile(str(path)).openForReading()
        assert refused.value.errno == errno.EACCES
