"""Throwaway virtualenvs for the peers, outside the repo, installed from the package index.

They live in $COINSPIDERS_BENCH_CACHE or $XDG_CACHE_HOME/coinspiders-bench (default
~/.cache/coinspiders-bench) and are reused while the pinned version is what they hold.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.common import BenchError, log

PEERS = {"scrapy-do": "scrapy-do==0.5.0", "scrapyd": "scrapyd==1.6.0"}


def cache_root() -> Path:
    explicit = os.environ.get("COINSPIDERS_BENCH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coinspiders-bench"


def _installed(venv: Path, requirement: str) -> bool:
    dist, version = requirement.split("==")
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    result = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0 and result.stdout.strip() == version


def ensure(kind: str) -> Path:
    """Return the venv of a peer, creating it with `pip install <pin>` the first time."""
    requirement = PEERS[kind]
    venv = cache_root() / "peers" / kind
    if _installed(venv, requirement):
        return venv
    log(f"installing {requirement} into {venv} (once; reused by later runs)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base_python, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if result.returncode:
            raise BenchError(f"could not set up {kind}: {' '.join(step)}\n{result.stderr[-1500:]}")
    if not _installed(venv, requirement):
        raise BenchError(f"{requirement} is not importable in {venv} after install")
    return venv


def versions(venv: Path) -> dict[str, str]:
    script = (
        "import importlib.metadata as m\n"
        "for d in ('scrapy-do', 'scrapyd', 'scrapy', 'twisted'):\n"
        "    try: print(d, m.version(d))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True
    )
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
