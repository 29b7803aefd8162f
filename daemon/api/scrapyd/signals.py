"""cancel.json's `signal`, read as scrapyd 1.6.0 reads it.

scrapyd hands the value to Twisted's signalProcess: one of the names it knows (HUP,
STOP, INT, KILL, TERM) or a number given in digits. Anything else fails there with
Python's own message, which clients have seen; the same message comes back here, but
before anything is signalled and for a pending job too.
"""

from __future__ import annotations

import signal

from daemon.api.scrapyd.replies import ScrapydError

#: The names Twisted's signalProcess accepts.
NAMES = ("HUP", "STOP", "INT", "KILL", "TERM")


def parse_signal(value: str) -> int:
    """The signal number `value` names; ScrapydError with scrapyd's message if none."""
    if value in NAMES:
        return int(getattr(signal, f"SIG{value}"))
    if value.isascii() and value.isdigit():
        number = int(value)
        if number in {int(s) for s in signal.valid_signals()}:
            return number
        if number == 0:  # kill(2)'s "is it alive" probe: nothing to send to a crawl
            raise ScrapydError("signal is invalid: 0 sends no signal", 400)
        if number >= 2**63:
            raise ScrapydError("OverflowError: Python int too large to convert to C ssize_t", 400)
        raise ScrapydError("OSError: [Errno 22] Invalid argument", 400)
    raise ScrapydError("TypeError: 'str' object cannot be interpreted as an integer", 400)
