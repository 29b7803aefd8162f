"""Network namespaces for `make test-cluster`: the daemon, Redis and the CMC look-alike in
one namespace ("hub"), each worker in one of its own, and the test's own HTTP client in
another ("client"), joined by veth links to a bridge inside the hub, on a private /24
with no default route anywhere.

The guard: before a lab makes anything, the root namespace gets an `unreachable` route
for the lab's prefix, and it stays until the lab is gone. A process left in the root
namespace that tries a lab address gets EHOSTUNREACH at once instead of sending a packet
toward the machine's default route, and no namespace of the lab has a route out of the
prefix. Nothing of the lab but that route is in the root namespace: each veth pair is
created straight inside its two namespaces.

Clients: a network namespace is a property of a thread, so the test's own thread enters
one with setns(2) (`inside`) and the helpers of tests/daemon_support.py work unchanged:
the sockets their `requests` calls open, and every child the thread starts, are in that
namespace. (Python 3.11 has no os.setns; libc's is called through ctypes.) Servers and
workers start with `ip netns exec NS argv`, which execs argv: the pid the test holds is
the server's own, and it is stopped by that pid.

Cleanup: `destroy()` runs in a finally, and every `create()` first removes what labs of
a dead owner left behind (a killed run): a lab writes its state file (owner pid and
start time, prefix, namespaces) before it makes anything, and namespaces are named
after their owner's pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from tests.topology import HUB
from tests.waiting import wait_until

CLONE_NEWNET = 0x40000000
#: Every namespace of a lab is named csnet<owner pid><tag>-<role>.
NAME_PREFIX = "csnet"
NETNS_DIR = Path("/run/netns")
STATE_DIR = Path("/run/coinspiders-netns")
#: Labs take 10.213.K.0/24, K the first /24 that no route of the root namespace covers
#: (another lab's guard route included, so two runs at once do not collide).
BASE = ipaddress.IPv4Network("10.213.0.0/16")
BRIDGE = "br0"
#: A port nothing in the hub listens on (servers there take ephemeral ports).
DISCARD_PORT = 9
CLIENT = "client"

_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _this_thread_netns() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY)


@contextlib.contextmanager
def _entered(fd: int) -> Iterator[None]:
    """This thread in the network namespace `fd` for the block, then back."""
    back = _this_thread_netns()
    try:
        _setns(fd)
        yield
    finally:
        _setns(back)
        os.close(back)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and run.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {run.stderr.strip()}")
    return run


def unavailable() -> str | None:
    """Why no lab can be made on this machine, or None: a namespace is made and removed."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"{NAME_PREFIX}{os.getpid()}probe"
    run = ip("netns", "add", probe, check=False)
    if run.returncode != 0:
        return f"`ip netns add` failed ({run.stderr.strip()}): network namespaces need root"
    ip("netns", "del", probe, check=False)
    return None


def _owner_alive(pid: int, started: float | None) -> bool:
    try:
        proc = psutil.Process(pid)
        return started is None or abs(proc.create_time() - started) < 0.01
    except psutil.Error:
        return False


def our_namespaces() -> list[str]:
    """The lab namespaces on this machine, any owner's."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(NAME_PREFIX))


def guard_routes() -> list[str]:
    """The `unreachable` routes of the root namespace inside BASE (the labs' guards)."""
    found = []
    for route in json.loads(ip("-j", "-4", "route", "show", "type", "unreachable").stdout):
        dst = route.get("dst", "")
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(dst).subnet_of(BASE):
                found.append(dst)
    return found


def _remove(namespaces: list[str], prefix: str | None) -> None:
    for name in namespaces:
        if (NETNS_DIR / name).exists():
            ip("netns", "del", name, check=False)
    if prefix:
        ip("route", "del", "unreachable", prefix, check=False)


def clean_stale() -> list[str]:
    """Remove what labs whose owner is gone left behind; returns the namespaces and
    routes removed. Runs in the root namespace (the guard routes live there)."""
    removed: list[str] = []
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            state: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _owner_alive(int(state["owner"]), state.get("started")):
            continue
        _remove(state.get("namespaces", []), state.get("prefix"))
        removed += [*state.get("namespaces", []), *filter(None, [state.get("prefix")])]
        path.unlink(missing_ok=True)
    for name in our_namespaces():  # named after their owner's pid
        owner = re.match(rf"{NAME_PREFIX}(\d+)", name)
        if owner and not _owner_alive(int(owner[1]), None):
            _remove([name], None)
            removed.append(name)
    return removed


class NetnsLab:
    """One lab: the hub, a client and `workers` namespaces (a Topology: roles are HUB,
    CLIENT and the worker names). `create()` makes it, `destroy()` removes it."""

    name = "netns"

    def __init__(self, workers: tuple[str, ...] = ("w1", "w2", "w3"), tag: str = "") -> None:
        self.owner = os.getpid()
        self.id = f"{self.owner}{tag}"
        self.roles = (HUB, CLIENT, *workers)
        self.names = {role: f"{NAME_PREFIX}{self.id}-{role}" for role in self.roles}
        self.prefix: ipaddress.IPv4Network | None = None
        self.addresses: dict[str, str] = {}
        self.state_path = STATE_DIR / f"{self.id}.json"
        self._root: int | None = None

    # -- the Topology ---------------------------------------------------------

    def _role(self, role: str) -> str:
        if role not in self.names:
            raise LabError(f"the lab has no namespace for {role!r} (roles: {self.roles})")
        return role

    def host(self, role: str) -> str:
        return self.addresses[self._role(role)]

    def command(self, role: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.names[self._role(role)], *argv]

    # -- making and removing ----------------------------------------------------

    def create(self) -> NetnsLab:
        """Make the lab from the namespace this thread is in now (the root one): the
        guard route first, then the namespaces and links."""
        clean_stale()
        self._root = _this_thread_netns()
        try:
            self._claim_prefix()
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {
            "owner": self.owner,
            "started": psutil.Process(self.owner).create_time(),
            "prefix": str(self.prefix) if self.prefix else None,
            "namespaces": list(self.names.values()),
        }
        self.state_path.write_text(json.dumps(state))

    def _claim_prefix(self) -> None:
        routed = []
        for route in json.loads(ip("-j", "-4", "route", "show", "table", "all").stdout):
            with contextlib.suppress(ValueError):
                routed.append(ipaddress.IPv4Network(route.get("dst", "")))
        for candidate in BASE.subnets(new_prefix=24):
            if any(candidate.overlaps(net) for net in routed):
                continue
            self.prefix = candidate
            self._write_state()  # before the route: a killed run leaves it findable
            added = ip("route", "add", "unreachable", str(candidate), check=False)
            if added.returncode == 0:
                return
            self.prefix = None  # taken meanwhile by another run: the next one
            self._write_state()
        raise LabError(f"no free /24 in {BASE} for a lab")

    def _build(self) -> None:
        assert self.prefix is not None
        hosts = list(self.prefix.hosts())
        self.addresses = {HUB: str(hosts[0]), CLIENT: str(hosts[1])}
        for n, role in enumerate(self.roles[2:]):
            self.addresses[role] = str(hosts[10 + n])
        width = f"/{self.prefix.prefixlen}"
        for ns in self.names.values():
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        hub = self.names[HUB]
        ip("-n", hub, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", hub, "addr", "add", self.addresses[HUB] + width, "dev", BRIDGE)
        ip("-n", hub, "link", "set", BRIDGE, "up")
        for role in self.roles[1:]:
            ns = self.names[role]
            port = self.port(role)
            pair = ["link", "add", "eth0", "netns", ns, "type", "veth"]
            ip(*pair, "peer", "name", port, "netns", hub)  # made inside the two namespaces
            ip("-n", hub, "link", "set", port, "master", BRIDGE, "up")
            ip("-n", ns, "addr", "add", self.addresses[role] + width, "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def destroy(self) -> None:
        """Remove the namespaces, then the guard route and the state file."""
        with self.in_root():
            _remove(list(self.names.values()), str(self.prefix) if self.prefix else None)
        self.state_path.unlink(missing_ok=True)
        if self._root is not None:
            os.close(self._root)
            self._root = None

    # -- using it ----------------------------------------------------------------

    @contextlib.contextmanager
    def inside(self, role: str) -> Iterator[None]:
        """This thread (the test's) in `role`'s namespace for the block: its sockets,
        and the children it starts, are there."""
        fd = os.open(NETNS_DIR / self.names[self._role(role)], os.O_RDONLY)
        try:
            with _entered(fd):
                yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def in_root(self) -> Iterator[None]:
        """This thread back in the namespace the lab was made from, for the block."""
        if self._root is None:
            yield
            return
        with _entered(self._root):
            yield

    def port(self, role: str) -> str:
        """The hub's end of `role`'s link (on the bridge)."""
        return f"v{self._role(role)}"

    def link(self, role: str, up: bool) -> None:
        """Cut (`up=False`) or restore `role`'s link at the hub: a partition of that
        namespace from all others, which no process in it is told about. Restored, it
        returns once a connection from `role` reaches the hub again (address resolution
        that failed during the cut is not retried at once)."""
        ip("-n", self.names[HUB], "link", "set", "dev", self.port(role), "up" if up else "down")
        if up:
            wait_until(lambda: self._reaches_hub(role), 30, f"{role}'s link to the hub to work")

    def _reaches_hub(self, role: str) -> bool:
        with self.inside(role):
            try:
                socket.create_connection((self.host(HUB), DISCARD_PORT), timeout=2).close()
            except ConnectionRefusedError:
                return True  # the hub's kernel answered: nothing listens on that port
            except OSError:
                return False
        return True
