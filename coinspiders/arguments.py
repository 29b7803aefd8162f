"""Whether a spider of this project can run with the arguments it is given, decided
without Scrapy.

A crawl daemon that ships with coinspiders schedules its spiders with a payload; a
`coin` job with no coins would fail at every run of its schedule. The daemon asks here
when the job is scheduled and refuses it with the spider's own message. Kept free of
Scrapy (identity is pure), so the daemon can import it without loading a crawler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from coinspiders.parsing import identity


def _coin(arguments: Mapping[str, Any]) -> None:
    # The same call the coin spider makes on start (CoinSpider.__init__).
    identity.split_coins(arguments.get("coins"))


#: spider name -> a check raising ValueError with the message the spider would give.
CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {"coin": _coin}


def argument_problem(spider: str, arguments: Mapping[str, Any]) -> str | None:
    """Why `spider` would refuse `arguments` at start, or None (also for a spider
    without a check here: it decides when it runs)."""
    check = CHECKS.get(spider)
    if check is None:
        return None
    try:
        check(arguments)
    except ValueError as exc:
        return str(exc)
    return None
