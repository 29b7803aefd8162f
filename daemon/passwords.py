"""Stored password hashes (`auth.password_hash`) and their check.

With a hash in config.yaml the plaintext password lives nowhere on the daemon's host:
not in the config, not in a file, not in the daemon's environment (which anyone with the
daemon's uid reads from /proc/<pid>/environ).

Format: ``pbkdf2_sha256$<iterations>$<salt, base64>$<derived key, base64>``.

PBKDF2 is slow on purpose, too slow to run per request on the reactor thread. So the
first check of a password runs in a thread, and a password that matched is remembered
as an HMAC under a key made fresh at each start (never the password itself): later
requests with it cost one HMAC. Wrong passwords are not remembered, so each one costs a
PBKDF2 run in the thread pool, which is what makes guessing slow.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import sys
from typing import TextIO

SCHEME = "pbkdf2_sha256"
#: Iterations of a new hash: a few tenths of a second of one core (in a thread, which
#: hashlib runs without holding the GIL, so the reactor thread keeps going).
DEFAULT_ITERATIONS = 200_000
_MIN_ITERATIONS = 10_000
_MAX_ITERATIONS = 10_000_000


class PasswordHashError(ValueError):
    """A `password_hash` value the daemon cannot use; the message says why."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(
    password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """The `password_hash` line for `password` (UTF-8), with a random 16-byte salt."""
    salt = os.urandom(16) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise PasswordHashError(
            f"expected {SCHEME}$<iterations>$<salt>$<hash> (make one with "
            f"`python -m daemon hash-password`)"
        )
    try:
        iterations = int(parts[1])
        salt = base64.b64decode(parts[2], validate=True)
        key = base64.b64decode(parts[3], validate=True)
    except (ValueError, binascii.Error):
        raise PasswordHashError("iterations, salt or hash is malformed") from None
    if not _MIN_ITERATIONS <= iterations <= _MAX_ITERATIONS:
        raise PasswordHashError(
            f"iterations must be between {_MIN_ITERATIONS} and {_MAX_ITERATIONS}"
        )
    if len(salt) < 8 or len(key) < 16:
        raise PasswordHashError("salt or hash is too short")
    return iterations, salt, key


def check_hash_format(stored: str) -> None:
    """Raise PasswordHashError unless `stored` is a usable hash."""
    _parse(stored)


def verify_password(password: bytes, stored: str) -> bool:
    """PBKDF2 check of `password` (the raw bytes a client sent); slow: call in a thread."""
    iterations, salt, key = _parse(stored)
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", password, salt, iterations), key)


class VerifiedPasswords:
    """Passwords that matched the hash, remembered as HMACs under a per-start key."""

    def __init__(self, stored: str) -> None:
        check_hash_format(stored)
        self.stored = stored
        self._key = os.urandom(32)
        # Replaced, never mutated: the reactor thread reads it while a thread adds.
        self._known: tuple[bytes, ...] = ()

    def _tag(self, password: bytes) -> bytes:
        return hmac.new(self._key, password, hashlib.sha256).digest()

    def known(self, password: bytes) -> bool:
        """True for a password that matched before: cheap, safe on the reactor thread."""
        tag = self._tag(password)
        return any(hmac.compare_digest(tag, k) for k in self._known)

    def verify(self, password: bytes) -> bool:
        """The full PBKDF2 check (call in a thread); a match is remembered."""
        ok = verify_password(password, self.stored)
        if ok and len(self._known) < 8:
            self._known = (*self._known, self._tag(password))
        return ok


def hash_password_main(stdin: TextIO | None = None) -> int:
    """`python -m daemon hash-password`: read the password from stdin (one line, no
    echo when it is a terminal) and print the line for `auth.password_hash`."""
    import getpass

    stream = sys.stdin if stdin is None else stdin
    if getattr(stream, "isatty", lambda: False)():
        password = getpass.getpass("password: ")
    else:
        password = stream.readline().rstrip("\r\n")
    if not password:
        print("error: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
