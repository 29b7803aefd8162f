"""coinspiders: a Scrapy project that collects CoinMarketCap coin data into job folders."""
