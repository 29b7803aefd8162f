"""A coin's links, sorted into official links and socials by what they point at.

CMC keeps links in buckets (`website`, `technical_doc`, `chat`, …) and mixes Telegram
and Discord in `chat`, so the bucket alone does not name a social: the host does.
The Pro API's `urls` object has the same buckets, so both spiders can share this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

# Bucket -> name in `official_links`, in the order CMC shows them.
OFFICIAL_BUCKETS: tuple[tuple[str, str], ...] = (
    ("website", "website"),
    ("technical_doc", "whitepaper"),
    ("source_code", "source_code"),
)
# Buckets whose links are socials, named after the bucket; `chat` mixes Telegram and
# Discord, so a chat link is named after its host.
SOCIAL_BUCKETS: tuple[str, ...] = (
    "twitter",
    "chat",
    "reddit",
    "facebook",
    "message_board",
    "announcement",
)
# Host (or a parent domain of it) -> social name.
_SOCIAL_HOSTS: dict[str, str] = {
    "twitter.com": "twitter",
    "x.com": "twitter",
    "t.me": "telegram",
    "telegram.me": "telegram",
    "telegram.org": "telegram",
    "discord.gg": "discord",
    "discord.com": "discord",
    "discordapp.com": "discord",
    "reddit.com": "reddit",
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "medium.com": "medium",
    "youtube.com": "youtube",
    "youtu.be": "youtube",
    "instagram.com": "instagram",
    "linkedin.com": "linkedin",
    "tiktok.com": "tiktok",
    "bitcointalk.org": "bitcointalk",
    "github.com": "github",
    "gitlab.com": "gitlab",
}
# CMC's own pages (its community feed) are not the coin's links.
_OWN_HOSTS = ("coinmarketcap.com",)


def normalize_url(url: Any) -> str | None:
    """An absolute http(s) URL, or None: HTML hrefs come as `//host/path`."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def _matches(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def social_name(url: str, default: str) -> str:
    """twitter / telegram / discord / … from the URL's host; `default` when unknown.

    Used where CMC gives no bucket (the HTML's social chips) and for `chat` links.
    """
    host = _host(url)
    for domain, name in _SOCIAL_HOSTS.items():
        if _matches(host, domain):
            return name
    return default


def _links(urls: Mapping[str, Any], bucket: str) -> Iterable[str]:
    value = urls.get(bucket)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [u for u in (normalize_url(v) for v in value) if u]


def official_links(urls: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """`[{name, link}]` for website, whitepaper and source code, duplicates dropped."""
    if not isinstance(urls, Mapping):
        return []
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for bucket, name in OFFICIAL_BUCKETS:
        for link in _links(urls, bucket):
            if link not in seen:
                seen.add(link)
                out.append({"name": name, "link": link})
    return out


def socials(urls: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """`[{name, url}]`: Twitter, Telegram/Discord (told apart by host), Reddit, …"""
    if not isinstance(urls, Mapping):
        return []
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for bucket in SOCIAL_BUCKETS:
        for url in _links(urls, bucket):
            if url in seen or any(_matches(_host(url), h) for h in _OWN_HOSTS):
                continue
            seen.add(url)
            name = social_name(url, "chat") if bucket == "chat" else bucket
            out.append({"name": name, "url": url})
    return out
