"""Where the cluster tests' processes live on the network.

A topology answers two questions for each role (HUB: the daemon, Redis and the CMC
look-alike; a worker's name: that worker): which address the role listens on and is
reached at, and how a command is started there. The loopback topology puts everything
on 127.0.0.1 of this machine (`make test`); tests/netns_support.py's NetnsLab puts each
role in a network namespace of its own (`make test-cluster`). The fixtures of
tests/conftest.py (`redis_server`, `start_daemon`, `start_worker`) take their topology
from the `topology` fixture, so one scenario runs unchanged in both.
"""

from __future__ import annotations

from typing import Protocol

#: The role of the daemon, its Redis and the services crawls reach (the CMC look-alike).
HUB = "hub"


class Topology(Protocol):
    name: str

    def host(self, role: str) -> str:
        """The address `role` listens on, and others reach it at."""
        ...

    def command(self, role: str, argv: list[str]) -> list[str]:
        """`argv` as it is started so that it runs as `role`."""
        ...


class Loopback:
    """Every role on 127.0.0.1 of this machine, started as it is."""

    name = "loopback"

    def host(self, role: str) -> str:
        return "127.0.0.1"

    def command(self, role: str, argv: list[str]) -> list[str]:
        return list(argv)


LOOPBACK = Loopback()
