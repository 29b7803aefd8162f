"""Shared by the scrapyd API tests and tools/capture_scrapyd_replies.py: a small Scrapy
project packed as an egg, and the table of requests whose replies must be scrapyd's.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

from tests.daemon_support import DaemonProcess, write_scrapy_project
from tests.waiting import wait_until

ECHO_SPIDER = """
import scrapy


class Echo(scrapy.Spider):
    name = "echo"

    async def start(self):
        self.logger.info("ECHO-ARG %s", getattr(self, "word", None))
        self.logger.info("ECHO-SETTING %s", self.settings.get("ECHO_SETTING"))
        for n in range(2):
            yield {"n": n}


class Other(scrapy.Spider):
    name = "other"

    async def start(self):
        return
        yield
"""


def write_egg_project(folder: Path, name: str = "eggy") -> Path:
    """A Scrapy project `name` whose `echo` spider logs its `word` argument."""
    return write_scrapy_project(folder, name, {"echo.py": ECHO_SPIDER})


def make_egg(project: Path, package: str, *, entry_point: bool = True) -> bytes:
    """An egg as `setup.py bdist_egg` lays it out: the package at the top, metadata
    under EGG-INFO/, the settings module named by the `scrapy` entry point."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((project / package).rglob("*.py")):
            zf.write(path, path.relative_to(project).as_posix())
        zf.writestr("EGG-INFO/PKG-INFO", f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
        zf.writestr("EGG-INFO/top_level.txt", package + "\n")
        if entry_point:
            zf.writestr("EGG-INFO/entry_points.txt", f"[scrapy]\nsettings = {package}.settings\n")
    return buf.getvalue()


# (method, path, form fields): replies that must match scrapyd 1.6.0's byte for byte
# (apart from node_name). Project "toy" exists (version 1.0, spiders echo and other).
REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/daemonstatus.json", {}),
    ("GET", "/listprojects.json", {}),
    ("GET", "/listversions.json", {"project": "toy"}),
    ("GET", "/listspiders.json", {"project": "toy"}),
    ("GET", "/listspiders.json", {"project": "toy", "_version": "1.0"}),
    ("GET", "/listjobs.json", {}),
    ("GET", "/listjobs.json", {"project": "toy"}),
    ("POST", "/schedule.json", {}),
    ("POST", "/schedule.json", {"project": "toy"}),
    ("POST", "/schedule.json", {"project": "nope", "spider": "echo"}),
    ("POST", "/schedule.json", {"project": "toy", "spider": "nope"}),
    ("POST", "/schedule.json", {"project": "toy", "spider": "echo", "_version": "9.9"}),
    ("POST", "/schedule.json", {"project": "toy", "spider": "echo", "priority": "high"}),
    ("GET", "/schedule.json", {}),
    ("POST", "/cancel.json", {}),
    ("POST", "/cancel.json", {"project": "toy"}),
    ("POST", "/cancel.json", {"project": "nope", "job": "abc"}),
    ("POST", "/cancel.json", {"project": "toy", "job": "abc"}),
    ("GET", "/status.json", {}),
    ("GET", "/status.json", {"job": "abc", "project": "nope"}),
    ("GET", "/status.json", {"job": "abc"}),
    ("GET", "/listversions.json", {}),
    ("GET", "/listversions.json", {"project": "nope"}),
    ("GET", "/listversions.json", {"project": "../p"}),
    ("GET", "/listspiders.json", {}),
    ("GET", "/listspiders.json", {"project": "nope"}),
    ("GET", "/listspiders.json", {"project": "toy", "_version": "9.9"}),
    ("GET", "/listjobs.json", {"project": "nope"}),
    ("POST", "/delversion.json", {}),
    ("POST", "/delversion.json", {"project": "toy"}),
    ("POST", "/delversion.json", {"project": "nope", "version": "1"}),
    ("POST", "/delversion.json", {"project": "toy", "version": "9.9"}),
    ("POST", "/delproject.json", {}),
    ("POST", "/delproject.json", {"project": "nope"}),
    ("POST", "/delproject.json", {"project": "../p"}),
    ("POST", "/addversion.json", {}),
    ("POST", "/addversion.json", {"project": "toy"}),
    ("POST", "/addversion.json", {"project": "toy", "version": "2"}),
    ("POST", "/addversion.json", {"project": "toy", "version": "2", "egg": "not a zip"}),
    ("OPTIONS", "/schedule.json", {}),
    ("OPTIONS", "/listjobs.json", {}),
    ("OPTIONS", "/daemonstatus.json", {}),
]


WAIT_SPIDER = """
import asyncio
from pathlib import Path

import scrapy


class Waits(scrapy.Spider):
    name = "waits"

    async def start(self):
        self.logger.info("WAITS-STARTED")
        while not Path(self.until_file).exists():
            await asyncio.sleep(0.05)
        yield {"done": True}
"""


def no_projects(work: Path) -> dict[str, dict[str, Any]]:
    """The `projects` of a scrapyd test's daemon: none; the tests push theirs as eggs."""
    return {}


def scrapyd_config(**scrapyd: Any) -> dict[str, Any]:
    """Config keys for DaemonFactory: scrapyd's API on both listeners (`scrapyd` keys
    over the defaults), and one slot, so that a second job stays pending."""
    return {"slots": 1, "scrapyd": {"enabled": True, "port": 0, "node_name": "NODE", **scrapyd}}


_LISTENING = re.compile(r"scrapyd API listening on https?://[^:]+:(\d+)")


def scrapyd_port(daemon: DaemonProcess, timeout: float = 20.0) -> int:
    """The second listener's port, as the daemon printed it."""
    log = wait_until(
        daemon.log,
        timeout,
        "the scrapyd listener in the daemon log",
        until=_LISTENING.search,
        interval=0.02,
    )
    return int(_LISTENING.search(log).group(1))
