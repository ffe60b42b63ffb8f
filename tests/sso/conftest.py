"""Council portals as real OpenID Connect relying parties (authlib), and a citizen's user agent."""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest
from aiohttp import web
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import html

from gateway.clock import MovableClock
from gateway.demo import certificate_paths
from gateway.pki.ca import Pki
from gateway.pki.tls import client_ssl_context
from tests.conftest import Hub, free_port

SUNDERLAND, SEDGEMOOR = "E08000024", "E07000188"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def hub_ca(hub: Hub) -> Path:
    return Pki.load(hub.config.pki_dir).ca_bundle_path


async def admin(hub: Hub, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with hub.session.request(method, f"{hub.url}{path}", json=body) as resp:
        data = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, data


@dataclass
class Portal:
    """A council portal: its own HTTP server, an authlib OIDC client, its signed-in users."""

    name: str
    hub: Hub
    organisation: str
    auth_method: str
    port: int = field(default_factory=free_port)
    client_id: str = ""
    client_secret: str | None = None
    private_key_pem: bytes | None = None
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)  # state → verifier, nonce
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # portal cookie → claims
    logout_tokens: list[dict[str, Any]] = field(default_factory=list)
    refuse_logouts: int = 0  # answer this many back-channel logouts 503 (the portal is down)
    runner: web.AppRunner | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # portal cookie → token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.url}/callback"

    async def register(self) -> None:
        body: dict[str, Any] = {
            "client_name": self.name,
            "organisation": self.organisation,
            "redirect_uris": [self.redirect_uri],
            "post_logout_redirect_uris": [f"{self.url}/signed-out"],
            "backchannel_logout_uri": f"{self.url}/backchannel-logout",
            "token_endpoint_auth_method": self.auth_method,
        }
        if self.auth_method == "private_key_jwt":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.private_key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            public = JsonWebKey.import_key(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                {"kty": "RSA", "kid": f"{self.name}-1"},
            )
            body["jwks"] = {"keys": [public.as_dict()]}
        status, data = await admin(self.hub, "POST", "/admin/sso/clients", body)
        assert status == 201, data
        self.client_id = data["client_id"]
        self.client_secret = data.get("client_secret")

    def oauth(self) -> AsyncOAuth2Client:
        verify = ssl.create_default_context(cafile=str(hub_ca(self.hub)))
        if self.auth_method == "private_key_jwt":
            token_endpoint = self.metadata["token_endpoint"]
            return AsyncOAuth2Client(
                self.client_id,
                self.private_key_pem,
                token_endpoint_auth_method=PrivateKeyJWT(token_endpoint),
                scope="openid profile enrolments gateway",
                redirect_uri=self.redirect_uri,
                code_challenge_method="S256",
                verify=verify,
            )
        return AsyncOAuth2Client(
            self.client_id,
            self.client_secret,
            token_endpoint_auth_method=self.auth_method,
            scope="openid profile enrolments gateway",
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            verify=verify,
        )

    async def discover(self) -> None:
        verify = ssl.create_default_context(cafile=str(hub_ca(self.hub)))
        async with httpx.AsyncClient(verify=verify) as http:
            issuer = self.hub.config.sso_issuer
            self.metadata = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()
            self.jwks = (await http.get(self.metadata["jwks_uri"])).json()

    async def start(self) -> None:
        await self.discover()
        app = web.Application()
        app.router.add_get("/", self.home)
        app.router.add_get("/login", self.login)
        app.router.add_get("/callback", self.callback)
        app.router.add_get("/signed-out", self.signed_out)
        app.router.add_post("/backchannel-logout", self.backchannel)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def home(self, request: web.Request) -> web.Response:
        user = self.users.get(request.cookies.get("portal", ""))
        if user is None:
            raise web.HTTPFound("/login")
        return web.Response(text=f"{self.name}: signed in as {user['sub']}")

    async def login(self, request: web.Request) -> web.Response:
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        async with self.oauth() as client:
            url, state = client.create_authorization_url(
                self.metadata["authorization_endpoint"],
                code_verifier=verifier,
                nonce=nonce,
                **dict(request.query),
            )
        self.pending[state] = (verifier, nonce)
        raise web.HTTPFound(url)

    async def callback(self, request: web.Request) -> web.Response:
        if "error" in request.query:
            return web.Response(status=401, text=f"refused: {request.query['error']}")
        assert request.query.get("iss") == self.metadata["issuer"]
        verifier, nonce = self.pending.pop(request.query["state"])
        async with self.oauth() as client:
            token = await client.fetch_token(
                self.metadata["token_endpoint"],
                authorization_response=str(request.url),
                code_verifier=verifier,
                state=request.query["state"],
            )
        claims = self.validate_id_token(token["id_token"], nonce)
        cookie = secrets.token_urlsafe(16)
        self.users[cookie] = dict(claims)
        self.tokens[cookie] = dict(token)
        response = web.HTTPFound("/")
        response.set_cookie("portal", cookie)
        raise response

    def validate_id_token(self, id_token: str, nonce: str) -> Any:
        claims = jwt.decode(
            id_token,
            JsonWebKey.import_key_set(self.jwks),
            claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": self.metadata["issuer"]}},
            claims_params={"nonce": nonce, "client_id": self.client_id},
        )
        claims.validate()
        return claims

    async def signed_out(self, request: web.Request) -> web.Response:
        return web.Response(text=f"{self.name}: signed out (state={request.query.get('state')})")

    async def backchannel(self, request: web.Request) -> web.Response:
        if self.refuse_logouts:
            self.refuse_logouts -= 1
            return web.Response(status=503, text="down for maintenance")
        token = (await request.post())["logout_token"]
        assert isinstance(token, str)
        claims = jwt.decode(
            token,
            JsonWebKey.import_key_set(self.jwks),
            claims_options={
                "iss": {"essential": True, "value": self.metadata["issuer"]},
                "aud": {"essential": True, "value": self.client_id},
                "jti": {"essential": True},
                "events": {"essential": True},
            },
        )
        claims.validate()
        assert BACKCHANNEL_EVENT in claims["events"] and "nonce" not in claims
        self.logout_tokens.append(dict(claims))
        for cookie, user in list(self.users.items()):
            if user.get("sid") == claims["sid"]:
                del self.users[cookie]
        return web.Response(status=200)


@dataclass
class Browser:
    """A citizen's user agent: cookies, redirects, and forms filled in as a person would."""

    session: aiohttp.ClientSession
    ssl_context: ssl.SSLContext

    async def get(self, url: str) -> tuple[int, str, str]:
        async with self.session.get(url, ssl=self.ssl_context) as resp:
            return resp.status, str(resp.url), await resp.text()

    async def submit(
        self, page_url: str, page: str, form_id: str, **fields: str
    ) -> tuple[int, str, str]:
        """Fill in and submit the form with this id, following the redirects after it."""
        doc = html.fromstring(page)
        form = doc.get_element_by_id(form_id)
        data = {i.get("name"): i.get("value") or "" for i in form.inputs if i.get("name")}
        data.update(fields)
        target = urlsplit(page_url)._replace(path=form.get("action"), query="").geturl()
        async with self.session.post(target, data=data, ssl=self.ssl_context) as resp:
            return resp.status, str(resp.url), await resp.text()


@pytest.fixture
async def sso_hub(hub_factory: Callable[..., Any]) -> Hub:
    # Back-channel logouts a portal refused are retried every 0.2 s here (10 s by default).
    hub: Hub = await hub_factory(
        {"sso": {"backchannel_retry_seconds": 0.2}}, https=True, clock=MovableClock()
    )
    return hub


@pytest.fixture
async def portals(sso_hub: Hub) -> AsyncIterator[Callable[..., Any]]:
    started: list[Portal] = []

    async def make(name: str, organisation: str, auth_method: str) -> Portal:
        portal = Portal(name, sso_hub, organisation, auth_method)
        await portal.register()
        await portal.start()
        started.append(portal)
        return portal

    yield make
    for portal in started:
        await portal.stop()


@pytest.fixture
async def browser_factory(sso_hub: Hub) -> AsyncIterator[Callable[..., Browser]]:
    sessions: list[aiohttp.ClientSession] = []

    def make(user_id: str | None = None) -> Browser:
        """A browser; with a User ID, one that offers that demo citizen's certificate."""
        cert, key = certificate_paths(sso_hub.config, user_id) if user_id else (None, None)
        context = client_ssl_context(hub_ca(sso_hub), cert, key)
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        return Browser(session, context)

    yield make
    for session in sessions:
        await session.close()
    await asyncio.sleep(0)
