"""The trivial job every daemon runs: a Scrapy project whose one spider fetches one local
page and yields one item.

The same project is deployed to each daemon in the form it wants (a folder for ours, a zip
for scrapy-do, an egg for scrapyd), and run directly with `scrapy crawl` for the baseline.
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import BenchError, stop_process

NAME = "benchping"
SPIDER = "ping"

_SETTINGS = """\
BOT_NAME = "benchping"
SPIDER_MODULES = ["benchping.spiders"]
NEWSPIDER_MODULE = "benchping.spiders"
ROBOTSTXT_OBEY = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
BENCH_PAGE_URL = {url!r}
"""

_SPIDER = '''\
import scrapy


class PingSpider(scrapy.Spider):
    """Fetch one page and yield one item: the smallest real crawl."""

    name = "ping"

    async def start(self):
        yield scrapy.Request(self.settings.get("BENCH_PAGE_URL"), callback=self.parse)

    def start_requests(self):
        yield scrapy.Request(self.settings.get("BENCH_PAGE_URL"), callback=self.parse)

    def parse(self, response):
        yield {"title": response.css("h1::text").get(), "price": response.css(".price::text").get()}
'''

_IDLE_SPIDER = '''\
import asyncio
import os

import scrapy


class IdleSpider(scrapy.Spider):
    """Opens and waits, doing nothing, until the file BENCH_IDLE_UNTIL names appears:
    an idle crawl, for the memory of crawls that wait on slow sites."""

    name = "idle"

    async def start(self):
        print("IDLE", flush=True)
        while not os.path.exists(os.environ.get("BENCH_IDLE_UNTIL", "/")):
            await asyncio.sleep(0.2)
        return
        yield
'''

_SETUP = """\
from setuptools import find_packages, setup

setup(
    name="benchping",
    version="1.0",
    packages=find_packages(),
    entry_points={"scrapy": ["settings = benchping.settings"]},
)
"""


def write_project(root: Path, url: str) -> Path:
    """Write the project under root/benchping (scrapy.cfg at its top) and return that folder."""
    top = root / NAME
    package = top / NAME
    (package / "spiders").mkdir(parents=True, exist_ok=True)
    (top / "scrapy.cfg").write_text(
        f"[settings]\ndefault = {NAME}.settings\n\n[deploy]\nproject = {NAME}\n"
    )
    (top / "setup.py").write_text(_SETUP)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(_SETTINGS.format(url=url))
    (package / "spiders" / "__init__.py").write_text("")
    (package / "spiders" / "ping.py").write_text(_SPIDER)
    (package / "spiders" / "idle.py").write_text(_IDLE_SPIDER)
    return top


def zip_project(top: Path) -> bytes:
    """scrapy-do's archive: a zip holding the folder <name>/ with scrapy.cfg in it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.name != "setup.py":
                archive.write(path, Path(NAME) / path.relative_to(top))
    return buffer.getvalue()


def build_egg(top: Path, python: str, work: Path) -> bytes:
    """scrapyd's deployable: an egg built with setuptools by the peer's own interpreter."""
    dist = work / "egg-dist"
    result = subprocess.run(
        [python, "setup.py", "-q", "bdist_egg", "--dist-dir", str(dist)],
        cwd=top,
        capture_output=True,
        text=True,
        timeout=120,
    )
    eggs = list(dist.glob("*.egg"))
    if result.returncode or not eggs:
        raise BenchError(f"building the egg failed: {result.stderr[-800:]}")
    return eggs[0].read_bytes()


@contextmanager
def page_server() -> Iterator[str]:
    """Start the one-page server in its own process and yield its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.pageserver"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise BenchError("the page server did not start")
        yield url
    finally:
        stop_process(proc, 5)


def direct_runs(
    python: str,
    top: Path,
    samples: int,
    cpu_times: list[float] | None = None,
    warm_up: bool = True,
) -> list[float]:
    """Wall times of `scrapy crawl ping` run directly (a first warm-up run not counted);
    the CPU seconds (user + system) of each run go to `cpu_times` when given."""
    times = []
    env = dict(os.environ)
    skip = 1 if warm_up else 0
    for n in range(samples + skip):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(
            [python, "-m", "scrapy", "crawl", SPIDER],
            cwd=top,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if result.returncode or "'item_scraped_count': 1" not in result.stderr:
            raise BenchError(f"direct scrapy crawl failed: {result.stderr[-800:]}")
        if n >= skip:
            times.append(elapsed)
            if cpu_times is not None:
                cpu_times.append(cpu)
    return times
