"""The provider's signing keys: ES256 only, named by `kid`, rotated without breaking portals."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select, update

from gateway.sso.errors import InvalidToken
from gateway.store.engine import Database
from gateway.store.sso_models import SsoKey, SsoSetting

# One algorithm family for everything the hub signs: a token in any other algorithm is refused
# before a key is even chosen, which closes alg=none and HS256-with-the-public-key confusion.
ALGORITHM = "ES256"
RELOAD_SECONDS = 30.0  # another hub process may have rotated


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey
    created_at: datetime
    retired_at: datetime | None

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        jwk.update(kid=self.kid, use="sig", alg=ALGORITHM)
        return jwk


class Keyring:
    """Keys kept in the database so every hub process signs and verifies alike."""

    def __init__(self, db: Database, clock: Callable[[], datetime], retired_for: timedelta) -> None:
        self._db = db
        self._clock = clock
        self._retired_for = retired_for
        self._keys: dict[str, SigningKey] = {}
        self._pairwise_salt = b""
        self._loaded_at: float | None = None

    async def load(self) -> None:
        """Read the keys, making the first key and the pairwise salt on a new database."""
        async with self._db.transaction() as session:
            # Migration 0011 made the salt; locking its row makes processes starting together on
            # PostgreSQL take turns here, so only the first makes the first key.
            salt = await session.scalar(
                select(SsoSetting.value).where(SsoSetting.name == "pairwise_salt").with_for_update()
            )
            if salt is None:
                raise RuntimeError("no SSO pairwise salt: the database is not migrated")
            self._pairwise_salt = bytes.fromhex(salt)
            rows = list(await session.scalars(select(SsoKey).order_by(SsoKey.created_at)))
            if not any(r.retired_at is None for r in rows):
                rows.append(_new_key_row(self._clock()))
                session.add(rows[-1])
        self._keys = {r.kid: _key_of(r) for r in rows}
        self._loaded_at = asyncio.get_running_loop().time()

    async def refresh(self) -> None:
        """Reload when the copy in memory is older than RELOAD_SECONDS."""
        now = asyncio.get_running_loop().time()
        if self._loaded_at is None or now - self._loaded_at > RELOAD_SECONDS:
            await self.load()

    async def rotate(self) -> SigningKey:
        """A new signing key; the old one retires but keeps verifying for `retired_for`."""
        now = self._clock()
        row = _new_key_row(now)
        async with self._db.transaction() as session:
            await session.execute(
                update(SsoKey).where(SsoKey.retired_at.is_(None)).values(retired_at=now)
            )
            session.add(row)
        await self.load()
        return self._keys[row.kid]

    def signing_key(self) -> SigningKey:
        active = [k for k in self._keys.values() if k.retired_at is None]
        return max(active, key=lambda k: k.created_at)

    def keys(self) -> list[SigningKey]:
        """Keys that still verify: the active ones and those retired within the window."""
        now = self._clock()
        return [
            k
            for k in self._keys.values()
            if k.retired_at is None or k.retired_at + self._retired_for > now
        ]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys()]}

    def pairwise_subject(self, sector: str, user_id: str) -> str:
        """The citizen's identifier as one council sees it; councils cannot correlate them."""
        digest = hashlib.sha256(self._pairwise_salt + f"{sector}\x00{user_id}".encode()).digest()
        return b64url(digest)

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        key = self.signing_key()
        return jwt.encode(
            dict(claims), key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": typ}
        )

    def verify(
        self,
        token: str,
        *,
        audience: str,
        issuer: str,
        require: Sequence[str],
        typ: str | None = None,
        check_expiry: bool = True,
    ) -> dict[str, Any]:
        """The claims of a token this hub signed for `audience`, or InvalidToken."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is not a JWT") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"the hub signs with {ALGORITHM} only")
        if typ is not None and str(header.get("typ", "")).lower() != typ:
            raise InvalidToken(f"the token is not of type {typ}")
        key = next((k for k in self.keys() if k.kid == header.get("kid")), None)
        if key is None:
            raise InvalidToken("the token names a key the hub does not hold")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private.public_key(),
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=issuer,
                # Time is checked below against the hub's clock, which tests can move.
                options={
                    "require": list(require),
                    "strict_aud": True,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token was refused: {exc}") from None
        if check_expiry:
            check_times(claims, self._clock())
        return claims


def check_times(claims: Mapping[str, Any], now: datetime, leeway: float = 30) -> None:
    """exp and nbf against `now`; InvalidToken when outside them."""
    stamp = now.timestamp()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is not None and (not isinstance(exp, int | float) or stamp > exp + leeway):
        raise InvalidToken("the token has expired")
    if nbf is not None and (not isinstance(nbf, int | float) or stamp + leeway < nbf):
        raise InvalidToken("the token is not yet valid")


def _new_key_row(now: datetime) -> SsoKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The kid is the key's own thumbprint, so a kid names exactly one key, forever.
    return SsoKey(kid=b64url(hashlib.sha256(public).digest())[:22], private_pem=pem, created_at=now)


def _key_of(row: SsoKey) -> SigningKey:
    private = serialization.load_pem_private_key(row.private_pem.encode("ascii"), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return SigningKey(row.kid, private, row.created_at, row.retired_at)
