"""Driving Debian's Chromium (headless) with Playwright for the dashboard's tests.

The browser is the system's `/usr/bin/chromium` (or $COINSPIDERS_CHROMIUM), never one
Playwright downloads. A missing browser FAILS the tests: in CI, `.ci/run` installs the
`chromium` package first, and a skipped browser test would hide a broken dashboard.

Screenshots go to $ARTIFACTS_DIR (default tests/artifacts/, ignored by git).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ENV = "COINSPIDERS_CHROMIUM"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    path = os.environ.get(CHROMIUM_ENV, "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"no Chromium at {path}: install Debian's `chromium` package "
            f"(apt-get install -y chromium) or point ${CHROMIUM_ENV} at one"
        )
    return path


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("ARTIFACTS_DIR") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright Browser)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class ConsoleWatch:
    """Every console error and uncaught page error of the pages it watches."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None
            ),
        )
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        return page


def shoot(page: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Proxy:
    """A tiny Twisted reverse proxy (a subprocess) serving the daemon under `prefix`."""

    SCRIPT = """
import sys
from twisted.internet import reactor
from twisted.web import resource, server
from twisted.web.proxy import ReverseProxyResource

port, parts = int(sys.argv[1]), sys.argv[2].strip("/").split("/")
root = resource.Resource()
node = root
for part in parts[:-1]:
    child = resource.Resource()
    node.putChild(part.encode(), child)
    node = child
node.putChild(parts[-1].encode(), ReverseProxyResource("127.0.0.1", port, b""))
listening = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")
print(listening.getHost().port, flush=True)
reactor.run()
"""

    def __init__(self, backend_port: int, prefix: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(backend_port), prefix],
            stdout=subprocess.PIPE,
            # Twisted's proxy complains on stderr whenever a browser closes a stream.
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/{prefix.strip('/')}/"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
