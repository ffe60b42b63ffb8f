"""The OpenID Connect provider: authorization requests, codes, tokens, userinfo, sign-out.

No HTTP here: the views hand in request parameters and get back values or OAuthErrors.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import delete, update

from gateway.config import SsoConfig
from gateway.identity.certificates import CertificateRefused
from gateway.identity.enrolment import EnrolmentView
from gateway.sso.clients import ASSERTION_ALGORITHMS, AUTH_METHODS, Client, ClientRegistry
from gateway.sso.errors import InvalidToken, OAuthError, RedirectableError
from gateway.sso.keyring import ALGORITHM, Keyring, b64url
from gateway.sso.sessions import CERTIFICATE, OwedLogout, Session, SessionStore
from gateway.store.engine import Database
from gateway.store.models import ACTIVE
from gateway.store.sso_models import SsoCode

SCOPES = ("openid", "profile", "enrolments", "gateway")
# `gateway`: the access token also works at the hub's citizen JSON API (mail, enrolments,
# journeys), so a portal can act for the signed-in citizen across councils.
API_SCOPE = "gateway"
ACCESS_TOKEN_TYPE = "at+jwt"
LOGOUT_TOKEN_TYPE = "logout+jwt"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
CLAIMS = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "acr", "amr", "cnf",
    "name", "gateway_enrolments",
)  # fmt: skip
ACR = {1: "urn:gateway:level:1", 2: "urn:gateway:level:2"}
_PKCE_VERIFIER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

Enrolments = Callable[[str], Awaitable[Sequence[EnrolmentView]]]
# The user a TLS client certificate (DER) is registered to, once validated (chain, dates,
# revocation); CertificateRefused says why not.
CertificateUser = Callable[[bytes], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class PresentedCertificate:
    """The TLS client certificate a request arrived with."""

    der: bytes

    @property
    def thumbprint(self) -> str:
        """x5t#S256, as certificate-bound tokens (cnf) and certificate sign-ons name it."""
        return b64url(hashlib.sha256(self.der).digest())


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked authorization request: a registered portal, its exact redirect URI, PKCE."""

    client: Client
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    # From a verified id_token_hint: the council (pairwise sector) it was issued for and its
    # subject there, i.e. which citizen the portal expects.
    hint_subject: tuple[str, str] | None = None

    def params(self) -> dict[str, str]:
        """The request again, as the sign-in form carries it through the POST."""
        params = {
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        for name, value in (("state", self.state), ("nonce", self.nonce)):
            if value is not None:
                params[name] = value
        if self.max_age is not None:
            params["max_age"] = str(self.max_age)
        return params


@dataclass(frozen=True, slots=True)
class LogoutNotice:
    """A back-channel logout owed to one portal."""

    client: Client
    token: str
    sid: str


class CodeReplayed(OAuthError):
    """A code presented again: refused, and if it had issued tokens, its sign-on was ended
    (RFC 6749 §4.1.2); the back-channel logouts that ending owes are for the caller to send."""

    def __init__(self, client_id: str, sid: str, notices: list[LogoutNotice]) -> None:
        super().__init__("invalid_grant", "the code has been used already")
        self.client_id = client_id
        self.sid = sid
        self.notices = notices


class Provider:
    def __init__(
        self,
        *,
        config: SsoConfig,
        issuer: str,
        db: Database,
        keyring: Keyring,
        clients: ClientRegistry,
        sessions: SessionStore,
        enrolments: Enrolments,
        certificate_user: CertificateUser,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.issuer = issuer
        self.keyring = keyring
        self.clients = clients
        self.sessions = sessions
        self._db = db
        self._enrolments = enrolments
        self._certificate_user = certificate_user
        self._clock = clock

    # -- discovery ---------------------------------------------------------------------------

    def endpoint(self, path: str) -> str:
        return self.issuer + path

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("/sso/authorize"),
            "token_endpoint": self.endpoint("/sso/token"),
            "userinfo_endpoint": self.endpoint("/sso/userinfo"),
            "jwks_uri": self.endpoint("/sso/jwks"),
            "end_session_endpoint": self.endpoint("/sso/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "userinfo_signing_alg_values_supported": [],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(SCOPES),
            "claims_supported": list(CLAIMS),
            "acr_values_supported": list(ACR.values()),
            "authorization_response_iss_parameter_supported": True,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "tls_client_certificate_bound_access_tokens": True,
            "prompt_values_supported": ["none", "login", "select_account"],
            # Discovery's default for request_uri is true: said outright, as neither is offered.
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        }

    # -- authorization -----------------------------------------------------------------------

    async def authorization_request(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """Check an authorization request; OAuthError before the redirect URI is trusted,
        RedirectableError after (RFC 6749 §4.1.2.1)."""
        client = await self.clients.get(params.get("client_id", ""))
        if client is None:
            raise OAuthError("invalid_request", "no portal is registered with this client_id")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OAuthError("invalid_request", "redirect_uri is not one the portal registered")
        state = params.get("state")

        def refuse(error: str, description: str) -> RedirectableError:
            return RedirectableError(error, description, redirect_uri, state)

        if params.get("response_type") != "code":
            raise refuse("unsupported_response_type", "only the authorization code flow (code)")
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            raise refuse("invalid_scope", "the scope must include openid")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise refuse("invalid_scope", f"unknown scope(s): {' '.join(unknown)}")
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
            raise refuse("invalid_request", "PKCE is required: code_challenge with method S256")
        if "request_uri" in params:
            raise refuse("request_uri_not_supported", "pass the request as parameters")
        if "request" in params:
            raise refuse("request_not_supported", "pass the request as parameters")
        prompt = frozenset(params.get("prompt", "").split())
        if "none" in prompt and len(prompt) > 1:
            raise refuse("invalid_request", "prompt=none cannot be combined")
        if "consent" in prompt:
            # OIDC Core §3.1.2.1: consent the OP cannot obtain MUST be an error, and the hub
            # has no consent screen (a registered portal is trusted with its scopes).
            raise refuse("consent_required", "the hub does not ask for consent")
        hint_subject: tuple[str, str] | None = None
        if params.get("id_token_hint"):
            try:
                hinted, claims = await self._id_token_hint(params["id_token_hint"])
            except OAuthError as exc:
                raise refuse("invalid_request", exc.detail) from None
            hint_subject = (hinted.organisation, str(claims["sub"]))
        max_age: int | None = None
        if params.get("max_age"):
            try:
                max_age = int(params["max_age"])
            except ValueError:
                raise refuse("invalid_request", "max_age must be whole seconds") from None
        return AuthorizationRequest(
            client=client,
            redirect_uri=redirect_uri,
            scope=" ".join(dict.fromkeys(scopes)),
            state=state,
            nonce=params.get("nonce"),
            code_challenge=challenge,
            prompt=prompt,
            max_age=max_age,
            hint_subject=hint_subject,
        )

    def satisfies(self, request: AuthorizationRequest, session: Session | None) -> bool:
        """Whether an existing sign-in may answer this request without asking again."""
        # select_account is met by the sign-in page: the citizen chooses the account by
        # signing in with it, as with login.
        if session is None or request.prompt & {"login", "select_account"}:
            return False
        if request.hint_subject is not None:
            sector, subject = request.hint_subject
            # The portal expects another citizen than the one signed in here: not this sign-on.
            if not hmac.compare_digest(
                self.keyring.pairwise_subject(sector, session.user_id), subject
            ):
                return False
        if request.max_age is not None:
            return (self._clock() - session.auth_time).total_seconds() <= request.max_age
        return True

    async def certificate_refusal(
        self, session: Session, presented: PresentedCertificate
    ) -> str | None:
        """Why the certificate a sign-on was made with no longer holds for it; None if it does."""
        # Level 2 is only as good as the certificate behind it, so it is checked again (chain,
        # dates, revocation, registration) on every use; the checker caches revocation answers.
        try:
            user_id = await self._certificate_user(presented.der)
        except CertificateRefused as exc:
            return exc.reason
        if user_id != session.user_id:
            return "certificate no longer registered to the signed-in citizen"
        return None

    async def issue_code(self, request: AuthorizationRequest, session: Session) -> str:
        code = secrets.token_urlsafe(32)
        now = self._clock()
        async with self._db.transaction() as db:
            await db.execute(delete(SsoCode).where(SsoCode.expires_at < now - timedelta(hours=1)))
            db.add(
                SsoCode(
                    code_hash=_digest(code),
                    client_id=request.client.client_id,
                    sid=session.sid,
                    redirect_uri=request.redirect_uri,
                    scope=request.scope,
                    nonce=request.nonce,
                    code_challenge=request.code_challenge,
                    expires_at=now + timedelta(seconds=self.config.code_seconds),
                )
            )
        return code

    # -- tokens -------------------------------------------------------------------------------

    async def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token endpoint: authorization_code with PKCE, after client authentication."""
        client = await self.clients.authenticate(
            form, authorization, [self.endpoint("/sso/token"), self.issuer]
        )
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization_code is offered")
        code, verifier = form.get("code", ""), form.get("code_verifier", "")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        if not 43 <= len(verifier) <= 128 or not set(verifier) <= _PKCE_VERIFIER:
            raise OAuthError("invalid_grant", "code_verifier is required (RFC 7636)")
        now = self._clock()
        async with self._db.transaction() as db:
            row = await db.get(SsoCode, _digest(code))
            if row is None or row.client_id != client.client_id:
                raise OAuthError("invalid_grant", "the code is unknown or for another portal")
            # Single use, atomically: of two concurrent exchanges only one updates the row.
            claimed = await db.execute(
                update(SsoCode)
                .where(SsoCode.code_hash == row.code_hash, SsoCode.used_at.is_(None))
                .values(used_at=now)
            )
            replayed = not getattr(claimed, "rowcount", 0)
        if replayed:
            # RFC 6749 §4.1.2: revoke what the code issued. Tokens are only as live as their
            # sign-on, so that ends, everywhere (the code may have leaked with the browser).
            notices = await self.end_session(row.sid) if row.issued_at is not None else []
            raise CodeReplayed(client.client_id, row.sid, notices)
        if row.expires_at <= now:
            raise OAuthError("invalid_grant", "the code has expired")
        if form.get("redirect_uri") != row.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization's")
        expected = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        if not hmac.compare_digest(expected, row.code_challenge):
            raise OAuthError("invalid_grant", "the code_verifier does not match the challenge")
        session = await self.sessions.active(row.sid)
        if session is None:
            raise OAuthError("invalid_grant", "the sign-in behind this code has ended")
        async with self._db.transaction() as db:
            await db.execute(
                update(SsoCode).where(SsoCode.code_hash == row.code_hash).values(issued_at=now)
            )
        await self.sessions.join(session.sid, client.client_id)
        subject = self.keyring.pairwise_subject(client.organisation, session.user_id)
        lifetime = int(self.config.access_token_minutes * 60)
        common: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "iat": int(now.timestamp()),
            "auth_time": int(session.auth_time.timestamp()),
            "sid": session.sid,
            "acr": ACR[session.level],
            "amr": ["swk"] if session.auth_method == CERTIFICATE else ["pwd"],
        }
        if session.cert_thumbprint:
            common["cnf"] = {"x5t#S256": session.cert_thumbprint}
        access = dict(
            common,
            aud=self.issuer,
            exp=int(now.timestamp()) + lifetime,
            jti=secrets.token_urlsafe(16),
            client_id=client.client_id,
            scope=row.scope,
        )
        id_claims = dict(
            common,
            aud=client.client_id,
            azp=client.client_id,
            exp=int(now.timestamp() + self.config.id_token_minutes * 60),
            jti=secrets.token_urlsafe(16),
        )
        if row.nonce is not None:
            id_claims["nonce"] = row.nonce
        id_claims.update(await self._claims(client, session, row.scope.split()))
        return {
            "access_token": self.keyring.sign(access, ACCESS_TOKEN_TYPE),
            "token_type": "Bearer",
            "expires_in": lifetime,
            "id_token": self.keyring.sign(id_claims),
            "scope": row.scope,
        }

    async def access(
        self, token: str, presented: PresentedCertificate | None
    ) -> tuple[dict[str, Any], Session, Client]:
        """The claims, live session and still-registered portal of an access token, or
        InvalidToken.

        A certificate-bound token (cnf) is honoured only over a TLS connection presenting
        that same certificate (RFC 8705), and only while the certificate is still accepted.
        """
        claims = self.keyring.verify(
            token,
            audience=self.issuer,
            issuer=self.issuer,
            require=["iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "scope"],
            typ=ACCESS_TOKEN_TYPE,
        )
        bound = (claims.get("cnf") or {}).get("x5t#S256")
        if bound and not (presented and hmac.compare_digest(bound, presented.thumbprint)):
            raise InvalidToken(
                "the token is bound to a certificate this connection did not present"
            )
        session = await self.sessions.active(str(claims["sid"]))
        if session is None:
            raise InvalidToken("the sign-in behind this token has ended")
        # Removing a portal withdraws everything it was given, at every endpoint taking tokens.
        client = await self.clients.get(str(claims["client_id"]))
        if client is None:
            raise InvalidToken("the portal this token was issued to is no longer registered")
        if bound and presented is not None:
            refusal = await self.certificate_refusal(session, presented)
            if refusal is not None:
                raise InvalidToken(f"the token's certificate is no longer accepted: {refusal}")
        return claims, session, client

    async def userinfo(self, token: str, presented: PresentedCertificate | None) -> dict[str, Any]:
        claims, session, client = await self.access(token, presented)
        info = {"sub": claims["sub"]}
        info.update(await self._claims(client, session, str(claims["scope"]).split()))
        return info

    async def _claims(
        self, client: Client, session: Session, scopes: Sequence[str]
    ) -> dict[str, Any]:
        """Profile and enrolment claims; enrolments only for the portal's own council."""
        claims: dict[str, Any] = {}
        if "profile" in scopes:
            claims["name"] = session.user_id
        if "enrolments" in scopes:
            claims["gateway_enrolments"] = [
                {"service": e.class_, "identifiers": dict(e.keys)}
                for e in await self._enrolments(session.user_id)
                if e.organisation == client.organisation and e.state == ACTIVE
            ]
        return claims

    # -- sign-out -----------------------------------------------------------------------------

    async def logout_hint(self, id_token_hint: str) -> tuple[Client, str | None]:
        """The portal an id_token_hint was issued to, and the (public) sid of the session it
        names."""
        client, claims = await self._id_token_hint(id_token_hint)
        sid = claims.get("sid")
        return client, sid if isinstance(sid, str) else None

    async def _id_token_hint(self, id_token_hint: str) -> tuple[Client, dict[str, Any]]:
        """An ID token of this hub's, its signature checked, and the portal it was issued to.

        Its expiry is not checked: an expired hint still says who the citizen is (OIDC Core
        §3.1.2.1, RP-Initiated Logout §2).
        """
        try:
            audience = jwt.decode(id_token_hint, options={"verify_signature": False}).get("aud")
        except jwt.PyJWTError:
            raise OAuthError("invalid_request", "id_token_hint is not a JWT") from None
        client = await self.clients.get(audience if isinstance(audience, str) else "")
        if client is None:
            raise OAuthError(
                "invalid_request", "id_token_hint was not issued to a registered portal"
            )
        try:
            claims = self.keyring.verify(
                id_token_hint,
                audience=client.client_id,
                issuer=self.issuer,
                require=["iss", "sub", "aud"],
                check_expiry=False,
            )
        except InvalidToken as exc:
            raise OAuthError("invalid_request", f"id_token_hint: {exc.detail}") from None
        return client, claims

    async def end_session(self, sid: str) -> list[LogoutNotice]:
        """End a sign-on everywhere: the back-channel logout tokens owed to its portals."""
        session = await self.sessions.active(sid)
        # The sign-out's own attempt has its timeout (and a margin) before the retry pass may.
        first_try = timedelta(seconds=self.config.backchannel_timeout + 5)
        joined = await self.sessions.end(sid, retry_from=first_try)
        owed = [OwedLogout(sid, c, session.user_id if session else None) for c in joined]
        return await self.logout_notices(owed)

    async def due_logouts(self) -> list[LogoutNotice]:
        """Back-channel logouts to send again (claimed by this hub), with fresh tokens."""
        claim_for = timedelta(seconds=self.config.backchannel_timeout + 30)
        return await self.logout_notices(await self.sessions.logouts_due(claim_for))

    async def logout_notices(self, owed: list[OwedLogout]) -> list[LogoutNotice]:
        """A signed logout token for each; a portal with no back-channel URI is owed nothing."""
        now = int(self._clock().timestamp())
        notices = []
        for logout in owed:
            client = await self.clients.get(logout.client_id)
            if client is None or not client.backchannel_logout_uri:
                await self.sessions.logout_outcome(logout.sid, logout.client_id, None)
                continue
            claims: dict[str, Any] = {
                "iss": self.issuer,
                "aud": client.client_id,
                "iat": now,
                "exp": now + 120,
                "jti": secrets.token_urlsafe(16),
                "sid": logout.sid,
                "events": {BACKCHANNEL_EVENT: {}},
            }
            if logout.user_id is not None:
                claims["sub"] = self.keyring.pairwise_subject(client.organisation, logout.user_id)
            token = self.keyring.sign(claims, LOGOUT_TOKEN_TYPE)
            notices.append(LogoutNotice(client, token, logout.sid))
        return notices


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode("ascii", "replace")).hexdigest()
