"""Relying parties (council portals): registration and authentication at the token endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
from sqlalchemy import delete, select

from gateway.errors import ProblemError
from gateway.identity.http_basic import decode_basic
from gateway.identity.passwords import dummy_hash, hash_secret, verify_secret
from gateway.identity.replay import ReplayStore
from gateway.sso.errors import InvalidToken, OAuthError
from gateway.sso.keyring import check_times
from gateway.store.engine import Database
from gateway.store.sso_models import SsoClient

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = (*SECRET_METHODS, "private_key_jwt")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Asymmetric only: a client assertion MACed with a shared secret would make the secret a
# second credential, and "none" proves nothing.
ASSERTION_ALGORITHMS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
# How far ahead an assertion may expire: common client libraries (authlib) default to an hour;
# the jti replay window (a day) outlasts it, so a replay is caught for as long as it would pass.
MAX_ASSERTION_LIFETIME = 3600 + 60


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    organisation: str
    auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None
    jwks: Mapping[str, Any] | None
    secret_hash: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: SsoClient) -> Client:
        return cls(
            client_id=row.client_id,
            name=row.name,
            organisation=row.organisation,
            auth_method=row.auth_method,
            redirect_uris=tuple(row.redirect_uris),
            post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
            backchannel_logout_uri=row.backchannel_logout_uri,
            jwks=row.jwks,
            secret_hash=row.secret_hash,
            created_at=row.created_at,
        )

    def to_json(self) -> dict[str, Any]:
        """Registration metadata (RFC 7591 names); never the secret."""
        return {
            "client_id": self.client_id,
            "client_name": self.name,
            "organisation": self.organisation,
            "token_endpoint_auth_method": self.auth_method,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "backchannel_logout_uri": self.backchannel_logout_uri,
            "jwks": self.jwks,
            "created_at": self.created_at.isoformat(),
        }


class ClientRegistry:
    def __init__(
        self,
        db: Database,
        replay: ReplayStore,
        clock: Callable[[], datetime],
        organisations: Callable[[], Iterable[str]],
    ) -> None:
        self._db = db
        self._replay = replay
        self._clock = clock
        self._organisations = organisations

    async def register(
        self,
        *,
        name: str,
        organisation: str,
        redirect_uris: Sequence[str],
        auth_method: str = "client_secret_basic",
        jwks: Mapping[str, Any] | None = None,
        post_logout_redirect_uris: Sequence[str] = (),
        backchannel_logout_uri: str | None = None,
    ) -> tuple[Client, str | None]:
        """A new portal and, for the secret methods, its secret (shown this once only)."""
        if not name.strip() or len(name) > 200:
            raise _invalid("client_name must be 1 to 200 characters")
        if organisation not in set(self._organisations()):
            raise _invalid(f"organisation {organisation!r} is not one this hub routes to")
        if auth_method not in AUTH_METHODS:
            raise _invalid(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
        if not redirect_uris:
            raise _invalid("give at least one redirect URI")
        for uri in (*redirect_uris, *post_logout_redirect_uris, *[backchannel_logout_uri or ""]):
            if uri:
                _check_uri(uri)
        secret: str | None = None
        secret_hash: str | None = None
        if auth_method == "private_key_jwt":
            if not jwks:
                raise _invalid("private_key_jwt needs the portal's public keys (jwks)")
            _check_jwks(jwks)
        else:
            if jwks:
                raise _invalid("jwks are for private_key_jwt only")
            secret = secrets.token_urlsafe(32)
            secret_hash = await asyncio.to_thread(hash_secret, secret)
        row = SsoClient(
            client_id=secrets.token_hex(16),
            name=" ".join(name.split()),
            organisation=organisation,
            auth_method=auth_method,
            secret_hash=secret_hash,
            jwks=dict(jwks) if jwks else None,
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            backchannel_logout_uri=backchannel_logout_uri or None,
            created_at=self._clock(),
        )
        async with self._db.transaction() as session:
            session.add(row)
        return Client.of(row), secret

    async def get(self, client_id: str) -> Client | None:
        if not client_id or len(client_id) > 64:
            return None
        async with self._db.read() as session:
            row = await session.get(SsoClient, client_id)
            return Client.of(row) if row is not None else None

    async def list(self) -> list[Client]:
        async with self._db.read() as session:
            rows = await session.scalars(select(SsoClient).order_by(SsoClient.created_at))
            return [Client.of(r) for r in rows]

    async def remove(self, client_id: str) -> bool:
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(SsoClient).where(SsoClient.client_id == client_id)
            )
            return bool(getattr(result, "rowcount", 0))

    async def authenticate(
        self, form: Mapping[str, str], authorization: str | None, audiences: Sequence[str]
    ) -> Client:
        """The client a token request comes from, by the method it registered, or invalid_client."""
        if form.get("client_assertion_type") or form.get("client_assertion"):
            return await self._by_assertion(form, audiences)
        # RFC 6749 §5.2: a client that tried the Authorization header MUST get a challenge
        # with its 401, whatever else was wrong.
        basic = bool(authorization)
        if authorization and authorization.lower().startswith("basic "):
            client_id, secret = _basic(authorization)
            method = "client_secret_basic"
        elif form.get("client_secret"):
            client_id, secret = form.get("client_id", ""), form["client_secret"]
            method = "client_secret_post"
        else:
            raise _invalid_client(
                "authenticate the client (client_secret_basic, "
                "client_secret_post or private_key_jwt)",
                basic=basic,
            )
        client = await self.get(client_id)
        stored = client.secret_hash if client is not None else None
        ok = await asyncio.to_thread(verify_secret, secret, stored or dummy_hash())
        if client is None or stored is None or not ok:
            raise _invalid_client("the client ID or secret was not recognised", basic=basic)
        if client.auth_method != method:
            raise _invalid_client(f"this client authenticates by {client.auth_method}", basic=basic)
        return client

    async def _by_assertion(self, form: Mapping[str, str], audiences: Sequence[str]) -> Client:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _invalid_client(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid_client("the client assertion is not a JWT") from None
        client_id = str(unverified.get("iss", ""))
        if form.get("client_id") not in (None, client_id):
            raise _invalid_client("client_id and the assertion's issuer differ")
        client = await self.get(client_id)
        if client is None or client.auth_method != "private_key_jwt" or not client.jwks:
            raise _invalid_client("no client registered for private_key_jwt with this ID")
        alg = header.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise _invalid_client(
                f"client assertions are signed with {', '.join(ASSERTION_ALGORITHMS)}"
            )
        claims: dict[str, Any] | None = None
        for key in _keys_for(client.jwks, header.get("kid"), str(alg)):
            try:
                claims = jwt.decode(
                    assertion,
                    key,
                    algorithms=[str(alg)],
                    audience=list(audiences),
                    issuer=client_id,
                    options={
                        "require": ["iss", "sub", "aud", "exp", "jti"],
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                    },
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise _invalid_client(f"the client assertion was refused: {exc}") from None
        if claims is None:
            raise _invalid_client("the client assertion's signature does not verify")
        if claims["sub"] != client_id:
            raise _invalid_client("the assertion's sub must be the client ID")
        now = self._clock()
        try:
            check_times(claims, now)
        except InvalidToken as exc:
            raise _invalid_client(f"the client assertion: {exc.detail}") from None
        if not isinstance(claims["exp"], int | float) or claims["exp"] > now.timestamp() + (
            MAX_ASSERTION_LIFETIME
        ):
            raise _invalid_client(f"client assertions may live {MAX_ASSERTION_LIFETIME} s at most")
        marker = hashlib.sha256(f"client_assertion\x00{client_id}\x00{claims['jti']}".encode())
        if await self._replay.seen_or_record([marker.hexdigest()]):
            raise _invalid_client("this client assertion (jti) was used before")
        return client


def _keys_for(jwks: Mapping[str, Any], kid: Any, alg: str) -> list[Any]:
    keys = []
    for data in jwks.get("keys", []):
        if kid is not None and data.get("kid") not in (None, kid):
            continue
        try:
            keys.append(jwt.PyJWK(dict(data), algorithm=alg).key)
        except jwt.PyJWTError:
            continue
    return keys


def _basic(header: str) -> tuple[str, str]:
    decoded = decode_basic(header)
    if decoded is None:
        raise _invalid_client("the Authorization header is not valid HTTP Basic", basic=True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    client_id, secret = unquote(decoded[0]), unquote(decoded[1])
    if "\0" in client_id + secret:
        raise _invalid_client("the Authorization header is not valid HTTP Basic", basic=True)
    return client_id, secret


def _check_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise _invalid(f"{uri!r} must be an absolute http(s) URL without a fragment")
    if parts.scheme == "http" and not _is_local(parts.hostname):
        raise _invalid(f"{uri!r}: plain http is for localhost portals only")


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_jwks(jwks: Mapping[str, Any]) -> None:
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise _invalid("jwks must be a JSON Web Key Set with at least one key")
    for data in keys:
        if not isinstance(data, dict) or "d" in data or "k" in data:
            raise _invalid("jwks must hold public keys only")
        try:
            jwt.PyJWK(data)
        except jwt.PyJWTError as exc:
            raise _invalid(f"jwks: {exc}") from None


def _invalid(detail: str) -> ProblemError:
    return ProblemError(400, "Invalid client metadata", detail)


def _invalid_client(description: str, *, basic: bool = False) -> OAuthError:
    headers = {"WWW-Authenticate": 'Basic realm="Government Gateway"'} if basic else None
    return OAuthError("invalid_client", description, 401, headers=headers)
