"""Password hashing: salted scrypt, for the clear password and for its GovTalk MD5 form."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache

from gateway.govtalk.credentials import md5_value

# n=2**14 keeps a verification near 40 ms: costly to guess, cheap enough per submission.
_N, _R, _P = 2**14, 8, 1
_SCHEME = "scrypt"


def hash_secret(secret: str, *, n: int = _N) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=_R, p=_P, dklen=32)
    return "$".join((_SCHEME, str(n), salt.hex(), key.hex()))


@cache
def dummy_hash() -> str:
    """A hash no secret matches, verified against when none is stored (the same cost: no timing
    tell). Made on first use: at import, each of its users paid a scrypt to every start."""
    return hash_secret(secrets.token_hex(16))


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n_text, salt_hex, key_hex = stored.split("$")
        n = int(n_text)
    except ValueError:
        return False
    if scheme != _SCHEME:
        return False
    key = hashlib.scrypt(
        secret.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=n, r=_R, p=_P, dklen=32
    )
    return hmac.compare_digest(key, bytes.fromhex(key_hex))


def hash_password(password: str) -> tuple[str, str]:
    """(hash of the password, hash of its MD5 form): neither lets anyone sign in."""
    return hash_secret(password), hash_secret(md5_value(password))
