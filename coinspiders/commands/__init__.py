"""Project commands; `crawl` here replaces Scrapy's to give a truthful exit status."""
