"""Password hashing and opaque tokens. No I/O beyond a worker thread.

argon2id hashing is CPU-bound by design (tens of milliseconds), so the async
helpers run it in a thread and never stall the event loop. Tokens are random
and only their SHA-256 is stored: a leaked table does not log anyone in.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["hash_password", "new_token", "token_digest", "verify_password"]

_HASHER = PasswordHasher()

# verified when the login is unknown, so a wrong login costs as long as a wrong password
_DUMMY_HASH = _HASHER.hash("channelhub-no-such-agent")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an unknown agent (``None``) costs the same time and is False."""

    def check() -> bool:
        try:
            return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def new_token() -> str:
    """An opaque bearer/session secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the database keeps instead of the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
