"""Crawl daemon: runs and schedules Scrapy projects behind scrapy-do's REST API."""
