"""Install both halves of coinspiders: the Scrapy project and the crawl daemon."""

from setuptools import find_packages, setup

setup(
    name="coinspiders",
    version="0.1.0",
    description="CoinMarketCap spiders and the crawl daemon that runs and schedules them",
    python_requires=">=3.11",
    packages=find_packages(include=["coinspiders", "coinspiders.*", "daemon", "daemon.*"]),
    package_data={
        "daemon": ["openapi.json"],
        "daemon.ui": ["templates/*.html", "static/*", "VENDORED.md"],
    },
    install_requires=[
        "scrapy>=2.19,<3",
        "twisted>=24.7",
        "klein>=23.12",
        "croniter>=2.0,<8",
        "psutil>=5.9",
        "pyyaml>=6.0",
        # /metrics in the Prometheus text format (daemon.metrics).
        "prometheus-client>=0.20",
        # The dashboard's server-rendered pages (daemon/ui/).
        "jinja2>=3.1",
        # Many machines (daemon/cluster): Redis holds leases, Celery carries the tasks.
        "redis>=5.0",
        "celery[redis]>=5.4",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            # `make test` runs test files side by side: most of their time is spent waiting
            # for crawls and daemons, not computing.
            "pytest-xdist>=3.5",
            # scrapy-do's own client, to prove our API is a drop-in for it.
            "scrapy-do==0.5.0",
            "ruff>=0.6",
            # `make lint` type-checks daemon/ and coinspiders/; mypy-zope teaches mypy
            # zope.interface, which Twisted's own annotations lean on.
            "mypy>=2.4,<2.5",
            "mypy-zope==1.0.17",
            "types-PyYAML>=6.0",
            "types-croniter>=6.0",
            "types-psutil>=7.0",
            # Fuzzes the live daemon against daemon/openapi.json.
            "schemathesis>=4.32,<5",
            # scrapyd's own clients, to prove our scrapyd API is a drop-in for scrapyd.
            "python-scrapyd-api==2.1.2",
            "scrapyd-client==2.0.3",
            # The dashboard's browser tests drive Debian's Chromium (never a downloaded one).
            "playwright==1.65.2",
        ],
    },
    entry_points={
        "console_scripts": ["coinspiders-daemon=daemon.__main__:main"],
        "scrapy": ["settings = coinspiders.settings"],
    },
)
