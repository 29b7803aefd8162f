"""The coin catalogue: a dozen hand-made coins with known figures plus N generated ones.

Built-in coins cover the cases the spiders must get right (colliding symbols, a native
coin, no max supply, a tiny price, an untracked coin, the recorded page itself);
generated coins give the benchmarks thousands of plausible coins. Everything is
deterministic for a given (count, seed), so two processes serve the same catalogue.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

# A fixed "now" of the catalogue, so generated data never depends on the clock.
LAST_UPDATED = "2025-08-20T16:00:00.000Z"

# Contract platforms: name as the API's info shows it, the platform coin, page fields.
PLATFORMS: dict[str, dict[str, Any]] = {
    "ethereum": {
        "name": "Ethereum",
        "coin": {"id": 1027, "name": "Ethereum", "symbol": "ETH", "slug": "ethereum"},
        "platform_id": 1,
        "chain_id": 1,
        "explorer": "https://etherscan.io",
        "token_url": "https://etherscan.io/token/{address}",
        "native": ("Ethereum", "ETH", 18),
    },
    "bnb": {
        "name": "BNB Smart Chain (BEP20)",
        "coin": {"id": 1839, "name": "BNB", "symbol": "BNB", "slug": "bnb"},
        "platform_id": 14,
        "chain_id": 56,
        "explorer": "https://bscscan.com",
        "token_url": "https://bscscan.com/token/{address}",
        "native": ("BNB", "BNB", 18),
    },
    "solana": {
        "name": "Solana",
        "coin": {"id": 5426, "name": "Solana", "symbol": "SOL", "slug": "solana"},
        "platform_id": 16,
        "chain_id": None,
        "explorer": "https://solscan.io",
        "token_url": "https://solscan.io/token/{address}",
        "native": ("Solana", "SOL", 9),
    },
    "ton": {
        "name": "TON",
        "coin": {"id": 11419, "name": "Toncoin", "symbol": "TON", "slug": "toncoin"},
        "platform_id": 173,
        "chain_id": None,
        "explorer": "https://tonviewer.com",
        "token_url": "https://tonviewer.com/{address}",
        "native": ("Toncoin", "TON", 9),
    },
}

URL_KEYS = (
    "website",
    "technical_doc",
    "explorer",
    "source_code",
    "message_board",
    "chat",
    "announcement",
    "reddit",
    "facebook",
    "twitter",
)


@dataclass
class Contract:
    platform: str  # a key of PLATFORMS
    address: str


@dataclass
class Coin:
    """One coin as the site and the API know it; figures are in USD."""

    id: int
    name: str
    symbol: str
    slug: str
    price: float
    percent_change_24h: float
    volume_24h: float
    volume_change_24h: float
    circulating_supply: float
    total_supply: float
    max_supply: float | None
    # "value": statistics.maxSupply is a number; "null": present as null; "absent": no key.
    max_supply_mode: str = "value"
    status: str = "active"  # active | inactive | untracked
    preferred_rank: int | None = None
    rank: int | None = None  # cmc_rank, assigned by the catalogue
    volume_rank: int | None = None
    contracts: list[Contract] = field(default_factory=list)
    urls: dict[str, list[str]] = field(default_factory=dict)
    date_added: str = "2021-01-01T00:00:00.000Z"
    tags: list[str] = field(default_factory=list)
    num_market_pairs: int = 10
    market_cap_override: float | None = None
    fdv_override: float | None = None
    recorded: bool = False  # served as the recorded page, byte for byte
    builtin: bool = False

    @property
    def is_active(self) -> bool:
        return self.status != "inactive"

    @property
    def tracked(self) -> bool:
        return self.status == "active"

    @property
    def market_cap(self) -> float:
        if not self.tracked:
            return 0
        if self.market_cap_override is not None:
            return self.market_cap_override
        return self.price * self.circulating_supply

    @property
    def fully_diluted_market_cap(self) -> float:
        if self.fdv_override is not None:
            return self.fdv_override
        return round(self.price * (self.max_supply or self.total_supply), 2)

    @property
    def category(self) -> str:
        return "token" if self.contracts else "coin"

    def full_urls(self) -> dict[str, list[str]]:
        return {key: list(self.urls.get(key, [])) for key in URL_KEYS}

    def public(self) -> dict[str, Any]:
        """The identity and figures tests compare against, as plain JSON."""
        return {
            "id": self.id,
            "name": self.name,
            "symbol": self.symbol,
            "slug": self.slug,
            "status": self.status,
            "rank": self.rank,
            "volume_rank": self.volume_rank,
            "price": self.price,
            "percent_change_24h": self.percent_change_24h,
            "market_cap": self.market_cap,
            "volume_24h": self.volume_24h if self.tracked else 0,
            "volume_change_24h": self.volume_change_24h,
            "circulating_supply": self.circulating_supply if self.tracked else 0,
            "total_supply": self.total_supply,
            "max_supply": self.max_supply,
            "fully_diluted_market_cap": self.fully_diluted_market_cap,
            "contracts": [
                {"platform": PLATFORMS[c.platform]["name"], "address": c.address}
                for c in self.contracts
            ],
            "urls": self.full_urls(),
            "builtin": self.builtin,
        }


def _builtin_coins() -> list[Coin]:
    """The hand-made coins. Ids of real coins are CMC's; the others are our own."""
    return [
        Coin(
            id=1,
            name="Bitcoin",
            symbol="BTC",
            slug="bitcoin",
            price=113542.91846522,
            percent_change_24h=-1.12537,
            volume_24h=58213657124.59,
            volume_change_24h=12.4821,
            circulating_supply=19910843,
            total_supply=19910843,
            max_supply=21000000,
            preferred_rank=1,
            urls={
                "website": ["https://bitcoin.org/"],
                "technical_doc": ["https://bitcoin.org/bitcoin.pdf"],
                "source_code": ["https://github.com/bitcoin/bitcoin"],
                "reddit": ["https://reddit.com/r/bitcoin"],
                "message_board": ["https://bitcointalk.org"],
                "explorer": ["https://blockchain.info/", "https://live.blockcypher.com/btc/"],
            },
            date_added="2013-04-28T00:00:00.000Z",
            tags=["mineable", "pow", "sha-256", "store-of-value"],
            num_market_pairs=12083,
        ),
        Coin(
            id=1027,
            name="Ethereum",
            symbol="ETH",
            slug="ethereum",
            price=4285.3712934,
            percent_change_24h=2.48113,
            volume_24h=38912663418.21,
            volume_change_24h=-4.1183,
            circulating_supply=120706582.72,
            total_supply=120706582.72,
            max_supply=None,
            max_supply_mode="absent",
            preferred_rank=2,
            urls={
                "website": ["https://www.ethereum.org/"],
                "technical_doc": ["https://github.com/ethereum/wiki/wiki/White-Paper"],
                "source_code": ["https://github.com/ethereum"],
                "twitter": ["https://twitter.com/ethereum"],
                "reddit": ["https://reddit.com/r/ethereum"],
                "chat": ["https://gitter.im/orgs/ethereum/rooms"],
                "explorer": ["https://etherscan.io/"],
            },
            date_added="2015-08-07T00:00:00.000Z",
            tags=["pos", "smart-contracts", "ethereum-ecosystem"],
            num_market_pairs=10271,
        ),
        Coin(
            id=74,
            name="Dogecoin",
            symbol="DOGE",
            slug="dogecoin",
            price=0.22131542,
            percent_change_24h=4.0212,
            volume_24h=2913442871.55,
            volume_change_24h=31.554,
            circulating_supply=150388506383.7,
            total_supply=150388506383.7,
            max_supply=None,
            max_supply_mode="null",
            preferred_rank=8,
            urls={
                "website": ["http://dogecoin.com/"],
                "source_code": ["https://github.com/dogecoin/dogecoin"],
                "twitter": ["https://twitter.com/dogecoin"],
                "reddit": ["https://reddit.com/r/dogecoin"],
                "chat": ["https://discord.gg/dogecoin"],
                "explorer": ["https://dogechain.info/"],
            },
            date_added="2013-12-15T00:00:00.000Z",
            tags=["mineable", "pow", "scrypt", "memes"],
            num_market_pairs=1122,
        ),
        Coin(
            id=5994,
            name="Shiba Inu",
            symbol="SHIB",
            slug="shiba-inu",
            price=0.00003913,
            percent_change_24h=-2.7719,
            volume_24h=312448190.12,
            volume_change_24h=-8.02,
            circulating_supply=589247875569349.9,
            total_supply=589500703631985.9,
            max_supply=589500703631985.9,
            preferred_rank=19,
            contracts=[Contract("ethereum", "0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce")],
            urls={
                "website": ["https://shibatoken.com/"],
                "twitter": ["https://twitter.com/Shibtoken"],
                "chat": ["https://t.me/ShibaInu_Dogecoinkiller", "https://discord.gg/shibatoken"],
                "reddit": ["https://reddit.com/r/SHIBArmy"],
                "explorer": [
                    "https://etherscan.io/token/0x95ad61b0a150d79219dcf64e1e6cc01f0b64c4ce"
                ],
            },
            date_added="2020-08-01T00:00:00.000Z",
            tags=["memes", "ethereum-ecosystem", "doggone-doggerel"],
            num_market_pairs=817,
        ),
        Coin(
            id=28850,
            name="Notcoin",
            symbol="NOT",
            slug="notcoin",
            price=0.002104417,
            percent_change_24h=1.9831,
            volume_24h=41290311.4,
            volume_change_24h=-17.31,
            circulating_supply=99671536584.0,
            total_supply=102456373545.0,
            max_supply=102701033769.0,
            preferred_rank=95,
            contracts=[Contract("ton", "EQAvlWFDxGF2lXm67y4yzC17wYKD9A0guwPkMs1gOsM__NOT")],
            urls={
                "website": ["https://notco.in/"],
                "twitter": ["https://twitter.com/thenotcoin"],
                "chat": ["https://t.me/notcoin"],
                "explorer": [
                    "https://tonviewer.com/EQAvlWFDxGF2lXm67y4yzC17wYKD9A0guwPkMs1gOsM__NOT"
                ],
            },
            date_added="2024-05-16T00:00:00.000Z",
            tags=["gaming", "memes", "ton-ecosystem"],
            num_market_pairs=233,
        ),
        Coin(
            id=2682,
            name="Holo",
            symbol="HOT",
            slug="holo",
            price=0.001122857,
            percent_change_24h=0.3354,
            volume_24h=11284337.9,
            volume_change_24h=5.21,
            circulating_supply=173838216779.0,
            total_supply=177619433541.0,
            max_supply=None,
            max_supply_mode="null",
            preferred_rank=180,
            contracts=[Contract("ethereum", "0x6c6ee5e31d828de241282b9606c8e98ea48526e2")],
            urls={
                "website": ["https://holo.host/"],
                "technical_doc": ["https://files.holo.host/2017/11/Holo-Green-Paper.pdf"],
                "twitter": ["https://twitter.com/H_O_L_O_"],
                "chat": ["https://t.me/channelHolo"],
                "reddit": ["https://reddit.com/r/holochain"],
            },
            date_added="2018-04-30T00:00:00.000Z",
            tags=["platform", "distributed-computing"],
            num_market_pairs=301,
        ),
        Coin(
            id=30229,
            name="DUKO",
            symbol="DUKO",
            slug="duko",
            price=0.003913,
            percent_change_24h=-5.44,
            volume_24h=4583151,
            volume_change_24h=12.21,
            circulating_supply=9663955990,
            total_supply=9999609598,
            max_supply=9999609598,
            preferred_rank=740,
            market_cap_override=37814377,
            fdv_override=39127766,
            contracts=[Contract("solana", "HLptm5e6rTgh4EKgDpYFrnRHbjpkMyVdEeREEa2G7rf9")],
            urls={
                "website": ["https://dukocoin.com"],
                "twitter": ["https://twitter.com/dukocoin"],
                "chat": ["https://t.me/+jlScZmFrQ8g2MDg8"],
                "explorer": [
                    "https://solscan.io/token/HLptm5e6rTgh4EKgDpYFrnRHbjpkMyVdEeREEa2G7rf9"
                ],
            },
            date_added="2024-04-02T00:00:00.000Z",
            tags=["memes", "solana-ecosystem"],
            num_market_pairs=21,
        ),
        Coin(
            id=31305,
            name="Gorilla",
            symbol="GORILLA",
            slug="gorilla",
            price=0.01127342,
            percent_change_24h=7.3382,
            volume_24h=1208433.17,
            volume_change_24h=-22.9,
            circulating_supply=1000000000,
            total_supply=1000000000,
            max_supply=1000000000,
            preferred_rank=1850,
            contracts=[Contract("bnb", "0xcf640fdf9b3d9e45cbd69fda91d7e22579c14444")],
            urls={
                "website": ["https://gorillabsc.com/"],
                "twitter": ["https://x.com/gorillabsc"],
                "chat": ["https://t.me/gorillabsc"],
                "explorer": [
                    "https://bscscan.com/token/0xcf640fdf9b3d9e45cbd69fda91d7e22579c14444"
                ],
            },
            date_added="2024-06-11T00:00:00.000Z",
            tags=["memes", "bnb-chain-ecosystem"],
            num_market_pairs=9,
        ),
        Coin(
            id=2430,
            name="Hydro Protocol",
            symbol="HOT",
            slug="hydro-protocol",
            price=0.0004218,
            percent_change_24h=-0.921,
            volume_24h=20311.4,
            volume_change_24h=3.3,
            circulating_supply=700000000,
            total_supply=1560000000,
            max_supply=1560000000,
            preferred_rank=2900,
            contracts=[Contract("ethereum", "0x9af839687f6c94542ac5ece2e317daae355493a1")],
            urls={
                "website": ["https://hydroprotocol.io/"],
                "twitter": ["https://twitter.com/HydroProtocol"],
                "chat": ["https://discord.gg/hydroprotocol"],
            },
            date_added="2018-03-12T00:00:00.000Z",
            tags=["decentralized-exchange-dex-token"],
            num_market_pairs=4,
        ),
        Coin(
            id=32975,
            name="HOT Token",
            symbol="HOT",
            slug="hot-token",
            price=0.00018442,
            percent_change_24h=12.81,
            volume_24h=5220.9,
            volume_change_24h=-40.2,
            circulating_supply=450000000,
            total_supply=1000000000,
            max_supply=1000000000,
            preferred_rank=4100,
            contracts=[Contract("solana", "HoTz8hXc3vGzW6tTnjQ8uYxhUjcJh6aQoD3kGj5sVqzR")],
            urls={"website": ["https://hottoken.fun/"], "twitter": ["https://x.com/hottokensol"]},
            date_added="2024-09-03T00:00:00.000Z",
            tags=["memes", "solana-ecosystem"],
            num_market_pairs=2,
        ),
        Coin(
            id=1807,
            name="Santiment Network Token",
            symbol="SAN",
            slug="santiment",
            price=0.15003467910476828,
            percent_change_24h=0,
            volume_24h=0,
            volume_change_24h=0,
            circulating_supply=0,
            total_supply=83337000,
            max_supply=83337000,
            preferred_rank=6708,
            fdv_override=12503440.05,
            contracts=[Contract("ethereum", "0x7c5a0ce9267ed19b22f8cae653f198e3e8daf098")],
            urls={
                "website": ["https://santiment.net/"],
                "explorer": [
                    "https://etherscan.io/token/SAN",
                    "https://app.nansen.ai/token-god-mode?chain=ethereum&tab=transactions"
                    "&tokenAddress=0x7c5a0ce9267ed19b22f8cae653f198e3e8daf098",
                    "https://ethplorer.io/address/0x7c5a0ce9267ed19b22f8cae653f198e3e8daf098",
                ],
                "source_code": ["https://github.com/santiment"],
                "message_board": [
                    "https://coinmarketcap.com/community/profile/Santiment",
                    "https://coinmarketcap.com/community/search/top/santiment",
                    "https://medium.com/santiment",
                ],
                "chat": ["https://t.me/santiment_network"],
                "announcement": ["https://bitcointalk.org/index.php?topic=1783230.0"],
                "twitter": ["https://twitter.com/santimentfeed"],
            },
            date_added="2017-07-12T00:00:00.000Z",
            tags=["asset-management", "ai-big-data", "crowdsourcing"],
            num_market_pairs=12,
            recorded=True,
        ),
        Coin(
            id=35555,
            name="Untracked Token",
            symbol="UNTR",
            slug="untracked-token",
            price=0.0417,
            percent_change_24h=0,
            volume_24h=0,
            volume_change_24h=0,
            circulating_supply=0,
            total_supply=1000000000,
            max_supply=1000000000,
            status="untracked",
            contracts=[Contract("bnb", "0x5e1a3c2b0d9f8e7a6b5c4d3e2f1a0b9c8d7e6f50")],
            urls={"website": ["https://untracked-token.io/"]},
            date_added="2025-06-01T00:00:00.000Z",
            num_market_pairs=1,
        ),
        Coin(
            id=3105,
            name="Nothing Token",
            symbol="NOT",
            slug="nothing-token",
            price=0.0000081,
            percent_change_24h=0,
            volume_24h=0,
            volume_change_24h=0,
            circulating_supply=0,
            total_supply=5000000000,
            max_supply=5000000000,
            status="inactive",
            contracts=[Contract("ethereum", "0x2c1ba59d6f58433fb1eaee7d20b26ed83bda51a3")],
            urls={"website": ["https://nothing-token.org/"]},
            date_added="2018-08-14T00:00:00.000Z",
            num_market_pairs=0,
        ),
    ]


# Generated names: syllables and suffixes that read like coin names.
_SYLLABLES = [
    "ar",
    "bo",
    "ca",
    "da",
    "el",
    "fi",
    "go",
    "ha",
    "in",
    "jo",
    "ka",
    "lu",
    "mo",
    "ne",
    "or",
    "pa",
    "qu",
    "ri",
    "so",
    "ta",
    "ul",
    "ve",
    "wo",
    "xa",
    "yo",
    "ze",
    "bit",
    "coin",
    "chain",
    "dex",
    "flux",
    "gem",
    "hash",
    "ion",
    "kai",
    "lum",
    "mint",
    "nova",
    "orb",
    "pix",
    "quant",
    "rex",
    "sol",
    "tera",
    "vox",
    "wave",
    "zen",
    "astr",
    "byte",
    "cryp",
    "dao",
    "ether",
    "fort",
    "grid",
    "hyper",
]
_SUFFIXES = ("", "", "", " Coin", " Token", " Finance", " Protocol", " Network", " AI", " Swap")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
FIRST_GENERATED_ID = 40001


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _address(rng: random.Random, platform: str) -> str:
    if platform in ("ethereum", "bnb"):
        return "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40))
    if platform == "ton":
        return "EQ" + "".join(rng.choice(_B58 + "_-") for _ in range(46))
    return "".join(rng.choice(_B58) for _ in range(44))


def _generated_coin(coin_id: int, rank: int, seed: int) -> Coin:
    """A plausible coin whose identity depends on its id and figures on its rank."""
    rng = random.Random(f"{seed}:{coin_id}")
    parts = [rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))]
    base = "".join(parts).capitalize()
    name = base + rng.choice(_SUFFIXES)
    symbol = re.sub(r"[^A-Z]", "", base.upper())[: rng.randint(3, 5)]
    market_cap = 2.2e12 * rank**-1.45
    price = 10 ** rng.uniform(-7.5, 3.5)
    circulating = market_cap / price
    total = circulating * rng.uniform(1.0, 1.6)
    max_mode = rng.choice(("value", "value", "value", "null", "absent"))
    max_supply = round(total * rng.choice((1.0, 1.0, 1.25, 2.0))) if max_mode == "value" else None
    contracts: list[Contract] = []
    if rng.random() < 0.6:
        first = rng.choice(("ethereum", "ethereum", "bnb", "solana", "ton"))
        contracts.append(Contract(first, _address(rng, first)))
        if rng.random() < 0.15:
            second = "bnb" if first != "bnb" else "ethereum"
            contracts.append(Contract(second, _address(rng, second)))
    slug_hint = slugify(name)
    urls: dict[str, list[str]] = {
        "website": [f"https://{slug_hint}.io/"],
        "twitter": [f"https://twitter.com/{slug_hint.replace('-', '')}"],
    }
    if rng.random() < 0.7:
        urls["chat"] = [f"https://t.me/{slug_hint.replace('-', '_')}"]
        if rng.random() < 0.4:
            urls["chat"].append(f"https://discord.gg/{slug_hint.replace('-', '')}")
    if rng.random() < 0.4:
        urls["technical_doc"] = [f"https://{slug_hint}.io/whitepaper.pdf"]
    if rng.random() < 0.4:
        urls["source_code"] = [f"https://github.com/{slug_hint}"]
    if rng.random() < 0.3:
        urls["reddit"] = [f"https://reddit.com/r/{slug_hint.replace('-', '')}"]
    if contracts:
        urls["explorer"] = [
            PLATFORMS[c.platform]["token_url"].format(address=c.address) for c in contracts
        ]
    year = rng.randint(2014, 2025)
    return Coin(
        id=coin_id,
        name=name,
        symbol=symbol,
        slug=slug_hint,
        price=float(f"{price:.6g}"),
        percent_change_24h=round(rng.uniform(-25, 25), 4),
        volume_24h=round(market_cap * rng.uniform(0.002, 0.4), 2),
        volume_change_24h=round(rng.uniform(-60, 120), 4),
        circulating_supply=round(circulating, 2),
        total_supply=round(total, 2),
        max_supply=max_supply,
        max_supply_mode=max_mode,
        preferred_rank=rank,
        contracts=contracts,
        urls=urls,
        date_added=f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T00:00:00.000Z",
        tags=rng.sample(["memes", "defi", "gaming", "ai-big-data", "layer-1", "rwa"], 2),
        num_market_pairs=rng.randint(1, 400),
    )


class Catalogue:
    """All coins, with the lookups the server needs (by id, slug, symbol, rank)."""

    def __init__(self, count: int = 5000, seed: int = 1) -> None:
        self.seed = seed
        builtins = _builtin_coins()
        for coin in builtins:
            coin.builtin = True
        ranked = sorted(
            (c for c in builtins if c.tracked and c.preferred_rank),
            key=lambda c: c.preferred_rank or 0,
        )
        total = max(count, len(ranked))
        self.count = total
        # Built-ins keep their real rank when it fits, else they are packed at the end.
        previous = 0
        taken: set[int] = set()
        for index, coin in enumerate(ranked):
            latest = total - (len(ranked) - 1 - index)
            coin.rank = max(previous + 1, min(coin.preferred_rank or 0, latest))
            previous = coin.rank
            taken.add(coin.rank)
        reserved_symbols = {c.symbol for c in builtins}
        slugs = {c.slug for c in builtins}
        generated: list[Coin] = []
        next_id = FIRST_GENERATED_ID
        for rank in range(1, total + 1):
            if rank in taken:
                continue
            coin = _generated_coin(next_id, rank, seed)
            next_id += 1
            if coin.symbol in reserved_symbols:
                coin.symbol += "X"
            slug, suffix = coin.slug, 2
            while slug in slugs:
                slug, suffix = f"{coin.slug}-{suffix}", suffix + 1
            coin.slug = slug
            slugs.add(slug)
            coin.rank = rank
            generated.append(coin)
        self.coins: list[Coin] = builtins + generated
        self.ranked: list[Coin] = sorted(
            (c for c in self.coins if c.rank is not None), key=lambda c: c.rank or 0
        )
        by_volume = sorted(self.ranked, key=lambda c: -c.volume_24h)
        for position, coin in enumerate(by_volume, start=1):
            coin.volume_rank = position
        self.by_id: dict[int, Coin] = {c.id: c for c in self.coins}
        self.by_slug: dict[str, Coin] = {c.slug: c for c in self.coins}
        self.by_symbol: dict[str, list[Coin]] = {}
        for coin in self.coins:
            self.by_symbol.setdefault(coin.symbol.upper(), []).append(coin)

    def builtins(self) -> list[Coin]:
        return [c for c in self.coins if c.builtin]

    def generated(self) -> list[Coin]:
        return [c for c in self.coins if not c.builtin]

    def digest(self) -> str:
        """A short fingerprint of the catalogue, to check two processes agree."""
        h = hashlib.sha256()
        for coin in self.coins:
            h.update(f"{coin.id}|{coin.slug}|{coin.symbol}|{coin.rank}|{coin.price};".encode())
        return h.hexdigest()[:16]
