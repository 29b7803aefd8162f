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
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster_support import WorkerFactory
from tests.cmc_server import CMCServer
from tests.daemon_support import DaemonFactory
from tests.redis_support import RedisServer

CMC_SESSION_COINS = 5000


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


def _daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonFactory]:
    factory = DaemonFactory(tmp_path_factory.mktemp)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def start_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonFactory]:
    yield from _daemons(tmp_path_factory)


@pytest.fixture(scope="module")
def start_module_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonFactory]:
    yield from _daemons(tmp_path_factory)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server of this test's own (tests/redis_support.py), stopped by pid."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFactory]:
    """Starts `python -m daemon worker` processes (tests/cluster_support.py) for a daemon
    with `executor: celery`; every one is stopped when the test ends."""
    factory = WorkerFactory(tmp_path_factory.mktemp)
    try:
        yield factory
    finally:
        factory.stop_all()
