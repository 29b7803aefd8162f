"""What every child process of the daemon (crawls, `scrapy list`) starts with.

One place decides the environment a child inherits and how it becomes the leader of a
session of its own, so a crawl and a spider listing can never differ on either.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

from daemon.config import PASSWORD_ENV

#: Variables never handed to a child: the daemon's own password, and Scrapy's project
#: selectors (Scrapy keeps SCRAPY_SETTINGS_MODULE when it is set, so a daemon started
#: with it would run every project with the wrong settings instead of its scrapy.cfg's).
#: CMC_* (the spiders' API key and URLs) pass through on purpose.
ALWAYS_HIDDEN = (PASSWORD_ENV, "SCRAPY_SETTINGS_MODULE", "SCRAPY_PROJECT")

#: The live stats extension every crawl gets (daemon.runner.stats), with its order: after
#: CoreStats (0), so `finish_reason` and `elapsed_time_seconds` are set when it writes.
LIVE_STATS_EXTENSION = ("daemon.runner.stats.LiveStats", 1000)

# The child becomes a session (and process group) leader, then runs Scrapy's own
# `python -m scrapy` entry point in the same interpreter: one Python start, no wrapper.
# Before that it adds the live stats extension to Scrapy's default EXTENSIONS_BASE:
# `-s EXTENSIONS=...` would replace a project's EXTENSIONS dict and `-s EXTENSIONS_BASE`
# Scrapy's own extensions, while a default is merged under both (getwithbase), so the
# project keeps every extension it has (and can still turn this one off with None).
_BOOT = (
    "import os, runpy, sys\n"
    "os.setsid()\n"
    "sys.argv = ['scrapy', *sys.argv[1:]]\n"
    "try:\n"
    f"    import {LIVE_STATS_EXTENSION[0].rpartition('.')[0]}\n"
    "    import scrapy.settings.default_settings as d\n"
    "except Exception as exc:  # a crawl runs without live stats rather than not at all\n"
    "    print('live stats off:', exc, file=sys.stderr)\n"
    "else:\n"
    f"    d.EXTENSIONS_BASE = {{**d.EXTENSIONS_BASE, {LIVE_STATS_EXTENSION[0]!r}: "
    f"{LIVE_STATS_EXTENSION[1]}}}\n"
    "runpy.run_module('scrapy', run_name='__main__', alter_sys=True)\n"
)


def child_env(hidden: Iterable[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment minus ALWAYS_HIDDEN and `hidden` (e.g. the variable
    named by `auth.password_env`)."""
    env = dict(os.environ if base is None else base)
    for name in (*ALWAYS_HIDDEN, *hidden):
        env.pop(name, None)
    return env


def scrapy_command(args: list[str], python: str = sys.executable) -> list[str]:
    """argv that runs `python -m scrapy <args>` as the leader of a new session."""
    return [python, "-c", _BOOT, *args]
