"""Benchmarks of the crawl daemon and the spiders, and side-by-side runs against peers.

`make bench` (python -m bench) runs every benchmark against our daemon; `make bench-peers`
(python -m bench.peers) runs the daemon benchmarks on scrapy-do and scrapyd too, in the same
run, so every ratio compares figures taken on the same machine at the same time.
"""
