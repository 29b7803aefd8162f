"""Scrapy settings for coinspiders.

Every CMC_* setting, DATA_DIR and JOB_ID can also come from the environment variable of
the same name, so a daemon started with `CMC_SITE_URL=...` sends its crawls there, and
tests point the real spiders at a local server with `-s` or the environment.
"""

import os

BOT_NAME = "coinspiders"
SPIDER_MODULES = ["coinspiders.spiders"]
NEWSPIDER_MODULE = "coinspiders.spiders"
COMMANDS_MODULE = "coinspiders.commands"

# Where the data comes from.
CMC_SITE_URL = os.environ.get("CMC_SITE_URL", "https://coinmarketcap.com")
CMC_API_URL = os.environ.get("CMC_API_URL", "https://pro-api.coinmarketcap.com")
CMC_LOGO_URL = os.environ.get(
    "CMC_LOGO_URL", "https://s2.coinmarketcap.com/static/img/coins/64x64/{id}.png"
)
# The Pro API key: from the environment (or `-s CMC_API_KEY=...`); never logged.
CMC_API_KEY = os.environ.get("CMC_API_KEY", "")
# Seconds to wait after a 429 / error_code 1008 (per-minute limit) before asking again.
CMC_RATE_LIMIT_DELAY = float(os.environ.get("CMC_RATE_LIMIT_DELAY", "60"))
CMC_RATE_LIMIT_RETRIES = int(os.environ.get("CMC_RATE_LIMIT_RETRIES", "3"))

# Where the job folders go: DATA_DIR/<JOB_ID>/. An empty JOB_ID means a fresh UUID4.
DATA_DIR = os.environ.get("DATA_DIR", "data")
JOB_ID = os.environ.get("JOB_ID", "")

# This crawler ignores robots.txt and presents a desktop browser's user agent: the site's
# bot protection turns away clients that announce themselves as crawlers. What keeps its
# load on the site low is the throttling below (AutoThrottle, at most 8 requests at once
# per domain, retries with back-off) and the API spider's rate limit.
ROBOTSTXT_OBEY = False
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_MAX_DELAY = 30
AUTOTHROTTLE_TARGET_CONCURRENCY = 4.0
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
DOWNLOAD_TIMEOUT = 30

# Scrapy 2.19 starts a remote-control HTTP server in every crawl; we do not use it.
REMOTE_CONTROL_ENABLED = False
TELNETCONSOLE_ENABLED = False

ITEM_PIPELINES = {
    "coinspiders.pipelines.LogoPipeline": 100,
    "coinspiders.pipelines.JobFolderPipeline": 900,
}
# Logos are stored by LogoPipeline under DATA_DIR/<job-id>/Images/<id>.png.
FILES_STORE = DATA_DIR
MEDIA_ALLOW_REDIRECTS = True

REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
