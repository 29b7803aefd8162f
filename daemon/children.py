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

# The child runs daemon.runner.boot: it becomes a session (and process group) leader,
# adds the live stats extension, shows the job's id in its title and runs Scrapy's own
# `scrapy` command in the same interpreter: one Python start, no wrapper.
BOOT_MODULE = "daemon.runner.boot"


def child_env(hidden: Iterable[str] = (), base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment minus ALWAYS_HIDDEN and `hidden` (e.g. the variable
    named by `auth.password_env`)."""
    env = dict(os.environ if base is None else base)
    for name in (*ALWAYS_HIDDEN, *hidden):
        env.pop(name, None)
    return env


def scrapy_command(args: list[str], python: str = sys.executable) -> list[str]:
    """argv that runs `python -m scrapy <args>` as the leader of a new session."""
    return [python, "-m", BOOT_MODULE, *args]
