"""Version names as scrapyd shows them; the rules live in daemon.version_names, which
the project store orders its versions by too."""

from __future__ import annotations

from daemon.version_names import listed_name, same_version, sort_versions

__all__ = ["listed_name", "same_version", "sort_versions"]
