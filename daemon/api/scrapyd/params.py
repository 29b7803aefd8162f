"""scrapyd's parameter rules, on a request's parsed args (bytes -> list of bytes).

Each endpoint reads its parameters in a fixed order and the first missing one is the
one named in the error; a read parameter is removed from the args, so what is left of a
schedule.json request are the spider's arguments.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from daemon.api.scrapyd.replies import invalid, required

Args = MutableMapping[bytes, list[bytes]]


def take(
    args: Args,
    name: str,
    *,
    optional: bool = False,
    default: Any = None,
    convert: Callable[[bytes], Any] | None = None,
) -> Any:
    """The first value of `name`, decoded (UTF-8) or converted from its bytes; popped."""
    key = name.encode()
    if key not in args:
        if not optional:
            raise required(name)
        return default
    raw = args.pop(key)[0] if args[key] else b""
    try:
        return convert(raw) if convert is not None else raw.decode()
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(name, exc) from None


def take_all(args: Args, name: str) -> list[str]:
    """Every value of a repeated parameter (e.g. `setting`), decoded; popped."""
    key = name.encode()
    try:
        return [raw.decode() for raw in args.pop(key, [])]
    except UnicodeDecodeError as exc:
        raise invalid(name, exc) from None


def rest(args: Args) -> dict[str, str]:
    """What is left: the spider's arguments, first value of each (as scrapyd)."""
    out = {}
    for key, values in args.items():
        try:
            out[key.decode()] = values[0].decode() if values else ""
        except UnicodeDecodeError as exc:
            raise invalid(key.decode("utf-8", "replace"), exc) from None
    return out
