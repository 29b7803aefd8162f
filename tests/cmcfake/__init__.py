"""A CoinMarketCap look-alike served on 127.0.0.1 for tests and benchmarks.

The public entry point is `tests.cmc_server`; this package holds its parts: the coin
catalogue (`coins`), the page renderer (`pages`), the Pro API payloads (`api`), logos
(`png`), fault rules and the request log (`faults`) and the HTTP server (`server`).
"""
