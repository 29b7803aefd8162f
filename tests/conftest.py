"""Shared pytest fixtures.

CoinMarketCap look-alike (tests/cmc_server.py):
- `cmc_server`: one server for the whole session, 5,000 ranked coins, on 127.0.0.1.
- `cmc`: the same server, clean for this test: no faults, an empty request log and the
  default API key before the test and again after it. Use this one in tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cmc_server import CMCServer

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
