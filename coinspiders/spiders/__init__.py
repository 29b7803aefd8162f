"""The spiders: `coin` (detail pages) and `cmc_api` (the Pro API)."""
