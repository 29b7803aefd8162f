"""One benchmark run's surroundings: a tmp folder, the page server, the trivial project, and
a factory for daemons by kind ("ours", "scrapy-do", "scrapyd")."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench import venvs
from bench.adapters import Daemon, Ours, Scrapyd, ScrapyDo
from bench.project import page_server, write_project

KINDS = ("ours", "scrapy-do", "scrapyd")


class Env:
    def __init__(self, root: Path, url: str):
        self.root = root
        self.url = url
        self.top = write_project(root / "project", url)
        self._count = 0

    def daemon(self, kind: str, slots: int = 3, auth: bool = False) -> Daemon:
        self._count += 1
        work = self.root / f"{kind}-{self._count}"
        if kind == "ours":
            return Ours(work, self.top, slots=slots, auth=auth)
        venv = venvs.ensure(kind)
        if kind == "scrapy-do":
            return ScrapyDo(venv, work, self.top, slots=slots, auth=auth)
        if kind == "scrapyd":
            return Scrapyd(venv, work, self.top, slots=slots, auth=auth)
        raise ValueError(f"unknown daemon kind {kind!r}")


@contextlib.contextmanager
def bench_env() -> Iterator[Env]:
    root = Path(tempfile.mkdtemp(prefix="coinspiders-bench-"))
    try:
        with page_server() as url:
            yield Env(root, url)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def arguments(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--daemon",
        action="append",
        choices=KINDS,
        help="daemon(s) to measure (repeatable; default: ours)",
    )
    parser.add_argument("--quick", action="store_true", help="small samples, for a smoke run")
    return parser
