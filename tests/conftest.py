"""Shared pytest fixtures.

CoinMarketCap look-alike (tests/cmc_server.py):
- `cmc_server`: one server for the whole session, 5,000 ranked coins, on 127.0.0.1.
- `cmc`: the same server, clean for this test: no faults, an empty request log and the
  default API key before the test and again after it. Use this one in tests.

Daemons (tests/daemon_support.py): `start_daemon(projects=toy_projects, env=None,
data_dir=None, python=PYTHON, start=True, **config)` starts a real daemon process in a fresh
folder and returns it (`start=False`: configured, not started); every daemon it made is
stopped when the test ends
(`start_module_daemon`: when the module ends, for the daemon a whole test module shares).
`start_daemon.restart(daemon)` starts the same config and data folder again after the
test stopped or killed it.

Redis (tests/redis_support.py): `redis_server` is a real `redis-server` of the test's own
on a free port, persistence off, stopped by pid; `redis_server.restart()` brings it back
empty on the same port.

Topology (tests/topology.py): `start_daemon`, `redis_server` and `start_worker` place
their processes by the `topology` fixture: 127.0.0.1 here. A test module may override it
(tests/test_cluster.py runs its scenarios on loopback and in `netns_lab`, the session's
network namespaces of tests/netns_support.py). Tests marked `cluster_netns` need root and
run only with `-m cluster_netns` (`make test-cluster`); `make test` leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster_support import WorkerFactory
from tests.cmc_server import CMCServer
from tests.daemon_support import DaemonFactory
from tests.netns_support import NetnsLab, unavailable
from tests.redis_support import RedisServer
from tests.topology import HUB, LOOPBACK, Topology

CMC_SESSION_COINS = 5000
NETNS_MARK = "cluster_netns"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{NETNS_MARK}: in network namespaces (root; run by `make test-cluster` only)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the namespace tests out unless the marker expression names them."""
    if NETNS_MARK in (config.option.markexpr or ""):
        return
    left_out = [item for item in items if item.get_closest_marker(NETNS_MARK)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker(NETNS_MARK)]


@pytest.fixture(scope="session")
def cmc_server() -> Iterator[CMCServer]:
    server = CMCServer(coins=CMC_SESSION_COINS).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cmc(cmc_server: CMCServer) -> Iterator[CMCServer]:
    cmc_server.reset()
    try:
        yield cmc_server
    finally:
        cmc_server.reset()


@pytest.fixture
def topology() -> Topology:
    """Where the cluster fixtures put their processes: all on 127.0.0.1."""
    return LOOPBACK


@pytest.fixture(scope="session")
def netns_lab() -> Iterator[NetnsLab]:
    """The session's network namespaces (tests/netns_support.py): hub, client, w1-w3,
    with the root namespace's guard route while they exist."""
    why = unavailable()
    if why:
        pytest.skip(f"no network namespaces on this machine: {why}")
    lab = NetnsLab().create()
    try:
        yield lab
    finally:
        lab.destroy()


@pytest.fixture(scope="session")
def netns_cmc_server(netns_lab: NetnsLab) -> Iterator[CMCServer]:
    """The CMC look-alike in the lab's hub, on the hub's address: the one crawls on
    workers in their namespaces reach (its socket is made inside the hub)."""
    with netns_lab.inside(HUB):
        server = CMCServer(coins=CMC_SESSION_COINS, host=netns_lab.host(HUB))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _daemons(
    tmp_path_factory: pytest.TempPathFactory, topology: Topology = LOOPBACK
) -> Iterator[DaemonFactory]:
    factory = DaemonFactory(tmp_path_factory.mktemp, topology)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def start_daemon(
    tmp_path_factory: pytest.TempPathFactory, topology: Topology
) -> Iterator[DaemonFactory]:
    yield from _daemons(tmp_path_factory, topology)


@pytest.fixture(scope="module")
def start_module_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonFactory]:
    yield from _daemons(tmp_path_factory)


@pytest.fixture
def redis_server(
    tmp_path_factory: pytest.TempPathFactory, topology: Topology
) -> Iterator[RedisServer]:
    """A real redis-server of this test's own (tests/redis_support.py), stopped by pid."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), topology=topology).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_worker(
    tmp_path_factory: pytest.TempPathFactory, topology: Topology
) -> Iterator[WorkerFactory]:
    """Starts `python -m daemon worker` processes (tests/cluster_support.py) for a daemon
    with `executor: celery`; every one is stopped when the test ends."""
    factory = WorkerFactory(tmp_path_factory.mktemp, topology)
    try:
        yield factory
    finally:
        factory.stop_all()
