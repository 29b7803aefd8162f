"""Pure functions from CoinMarketCap pages and API payloads to plain dicts (no network)."""
