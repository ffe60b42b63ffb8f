"""Single sign-on over HTTP: the OpenID Connect endpoints, the sign-in page, the admin API.

GET  /.well-known/openid-configuration    discovery
GET  /sso/jwks                             the provider's public keys
GET  /sso/authorize                        sign-in page, or straight back when signed in
POST /sso/authorize                        the sign-in form (certificate or password), or an
                                           authorization request sent as a form
POST /sso/token                            authorization_code + PKCE → ID and access tokens
GET|POST /sso/userinfo                     claims for a Bearer access token
GET|POST /sso/logout                       end the sign-on everywhere (back-channel logout)
GET|POST /admin/sso/clients, DELETE /admin/sso/clients/{id}, POST /admin/sso/keys/rotate
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from html import escape
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import structlog
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.audit.log import audit
from gateway.errors import ProblemError
from gateway.identity.certificates import CertificateRefused
from gateway.identity.replay import ReplayStore
from gateway.sso import backchannel
from gateway.sso.clients import Client, ClientRegistry
from gateway.sso.errors import OAuthError, RedirectableError
from gateway.sso.keyring import Keyring
from gateway.sso.provider import AuthorizationRequest, CodeReplayed, PresentedCertificate, Provider
from gateway.sso.sessions import CERTIFICATE, PASSWORD, Session, SessionStore
from gateway.web.background import sleep_unless_stopped, stop_task
from gateway.web.bodies import form as read_form
from gateway.web.bodies import json_object
from gateway.web.csrf import double_submitted
from gateway.web.dsp_views import client_certificate
from gateway.web.html import html_response, origin, page
from gateway.web.identity_views import (
    ENROLMENTS,
    guarded_password_check,
    require_admin,
)
from gateway.web.keys import CLIENT_CERTIFICATES, CONFIG, DB, ROUTES, SSO

log = structlog.get_logger("gateway.sso")

SESSION_COOKIE = "gw_sso"
CSRF_COOKIE = "gw_csrf"
BACKCHANNEL_HTTP = web.AppKey("sso_backchannel_http", aiohttp.ClientSession)


def add_sso_routes(app: web.Application) -> None:
    app.router.add_get("/.well-known/openid-configuration", discovery_view)
    app.router.add_get("/sso/jwks", jwks_view)
    app.router.add_get("/sso/authorize", authorize_view)
    app.router.add_post("/sso/authorize", sign_in_view)
    app.router.add_post("/sso/token", token_view)
    app.router.add_route("GET", "/sso/userinfo", userinfo_view)
    app.router.add_route("POST", "/sso/userinfo", userinfo_view)
    app.router.add_route("GET", "/sso/logout", logout_view)
    app.router.add_route("POST", "/sso/logout", logout_view)
    app.router.add_get("/admin/sso/clients", list_clients_view)
    app.router.add_post("/admin/sso/clients", register_client_view)
    app.router.add_delete("/admin/sso/clients/{id}", remove_client_view)
    app.router.add_post("/admin/sso/keys/rotate", rotate_keys_view)


async def sso_services(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, after the identity services: the provider, its back-channel client and the
    pass that retries back-channel logouts a portal did not accept."""
    provider = app[SSO] = await build_provider(app)
    stopping = asyncio.Event()

    async def retry_logouts(http: aiohttp.ClientSession) -> None:
        while await sleep_unless_stopped(stopping, provider.config.backchannel_retry_seconds):
            try:
                await backchannel.retry_pass(http, provider)
            except Exception:
                log.exception("sso.backchannel_retry_failed")

    async with aiohttp.ClientSession() as http:
        app[BACKCHANNEL_HTTP] = http
        task = asyncio.create_task(retry_logouts(http), name="sso-backchannel")
        yield
        await stop_task(task, stopping.set)


async def build_provider(app: web.Application) -> Provider:
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports the views

    config, db, clock = app[CONFIG], app[DB], app[CLOCK]
    keyring = Keyring(db, clock, timedelta(days=config.sso.retired_key_days))
    await keyring.load()
    replay = ReplayStore(db, timedelta(seconds=config.pki.replay_window_seconds), clock=clock)
    routes = app[ROUTES]
    return Provider(
        config=config.sso,
        issuer=config.sso_issuer,
        db=db,
        keyring=keyring,
        clients=ClientRegistry(db, replay, clock, routes.organisations),
        sessions=SessionStore(db, clock, timedelta(minutes=config.sso.session_minutes)),
        enrolments=app[ENROLMENTS].list,
        certificate_user=app[CLIENT_CERTIFICATES].user_for,
        clock=clock,
    )


def presented_certificate(request: web.Request) -> PresentedCertificate | None:
    """The TLS client certificate of the request, which certificate-bound tokens need."""
    der = client_certificate(request)
    return PresentedCertificate(der) if der is not None else None


# --- discovery and tokens ------------------------------------------------------------------------


async def discovery_view(request: web.Request) -> web.Response:
    response = web.json_response(request.app[SSO].discovery())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


async def jwks_view(request: web.Request) -> web.Response:
    provider = request.app[SSO]
    await provider.keyring.refresh()
    response = web.json_response(provider.keyring.jwks(), content_type="application/jwk-set+json")
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


async def token_view(request: web.Request) -> web.Response:
    provider = request.app[SSO]
    await provider.keyring.refresh()
    form = await _form(request)
    try:
        tokens = await provider.token(form, request.headers.get("Authorization"))
    except CodeReplayed as exc:
        told = await backchannel.deliver(request.app[BACKCHANNEL_HTTP], provider, exc.notices)
        audit(
            "sso.code_replayed",
            outcome="refused",
            client_id=exc.client_id,
            sid_prefix=exc.sid[:8],
            portals=len(told),
        )
        raise
    return web.json_response(tokens, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def userinfo_view(request: web.Request) -> web.Response:
    provider = request.app[SSO]
    await provider.keyring.refresh()
    token = bearer_token(request)
    if token is None and request.method == "POST":
        token = (await _form(request)).get("access_token")
    if not token:
        raise OAuthError(
            "invalid_request",
            "send the access token as a Bearer token",
            401,
            headers={"WWW-Authenticate": 'Bearer realm="Government Gateway"'},
        )
    info = await provider.userinfo(token, presented_certificate(request))
    return web.json_response(info, headers={"Cache-Control": "no-store"})


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    try:
        data = await read_form(request)
    except ProblemError as exc:
        raise OAuthError("invalid_request", exc.detail) from None
    form: dict[str, str] = {}
    for name in set(data):
        values = data.getall(name)
        # RFC 6749 §3.1: parameters must not be repeated.
        if len(values) != 1 or not isinstance(values[0], str):
            raise OAuthError("invalid_request", f"'{name}' must be given once, as text")
        form[name] = values[0]
    return form


# --- the sign-in page ----------------------------------------------------------------------------


async def authorize_view(request: web.Request) -> web.StreamResponse:
    return await _authorize(request, request.query)


async def _authorize(request: web.Request, params: Mapping[str, str]) -> web.StreamResponse:
    """An authorization request, by GET or (OIDC Core §3.1.2.1) as a POSTed form."""
    provider = request.app[SSO]
    await provider.keyring.refresh()  # to verify an id_token_hint after another hub rotated
    try:
        authz = await provider.authorization_request(params)
    except RedirectableError as exc:
        return _redirect_error(provider, exc, status=302)
    except OAuthError as exc:
        return _error_page(exc)
    session = await provider.sessions.by_cookie(request.cookies.get(SESSION_COOKIE))
    error: tuple[str, str] | None = None
    if session is not None and session.auth_method == CERTIFICATE:
        session, error = await _certificate_still_holds(request, session)
    if provider.satisfies(authz, session):
        assert session is not None
        return await _signed_in(provider, authz, session, status=302)
    if "none" in authz.prompt:
        refusal = RedirectableError(
            "login_required", "the citizen is not signed in", authz.redirect_uri, authz.state
        )
        return _redirect_error(provider, refusal, status=302)
    return _sign_in_page(request, authz, error=error)


async def _certificate_still_holds(
    request: web.Request, session: Session
) -> tuple[Session | None, tuple[str, str] | None]:
    """The certificate sign-on, if this browser presents its certificate and it still holds."""
    # Reused only over a connection presenting that certificate, so that it can be checked:
    # a level-2 sign-on must not outlive the certificate's revocation. A refused certificate
    # ends the sign-on everywhere, its portals told over the back channel.
    presented = presented_certificate(request)
    if presented is None or presented.thumbprint != session.cert_thumbprint:
        return None, None
    refusal = await request.app[SSO].certificate_refusal(session, presented)
    if refusal is None:
        return session, None
    audit("sso.sign_in_refused", outcome="refused", method=CERTIFICATE, reason=refusal)
    await _end_sessions(request, [session.sid])
    return None, ("#certificate", f"Your certificate was not accepted: {refusal}.")


async def sign_in_view(request: web.Request) -> web.StreamResponse:
    provider = request.app[SSO]
    data = await read_form(request)
    form = {k: v for k, v in data.items() if isinstance(v, str)}
    if "method" not in form and "csrf" not in form:
        # Not the sign-in page's form (which always carries both): an authorization request.
        return await _authorize(request, form)
    try:
        authz = await provider.authorization_request(form)
    except RedirectableError as exc:
        return _redirect_error(provider, exc, status=303)
    except OAuthError as exc:
        return _error_page(exc)
    if not double_submitted(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
        return _sign_in_page(
            request,
            authz,
            error=("#main", "Your sign-in form expired. Please try again."),
            status=400,
        )
    method = form.get("method")
    if method == CERTIFICATE:
        der = client_certificate(request)
        if der is None:
            return _sign_in_page(
                request,
                authz,
                error=("#certificate", "Your browser did not offer a certificate."),
                status=403,
            )
        try:
            user_id = await request.app[CLIENT_CERTIFICATES].user_for(der)
        except CertificateRefused as exc:
            audit("sso.sign_in_refused", outcome="refused", method=method, reason=exc.reason)
            return _sign_in_page(
                request,
                authz,
                error=("#certificate", f"Your certificate was not accepted: {exc.reason}."),
                status=403,
            )
        session, cookie = await provider.sessions.start(
            user_id, CERTIFICATE, PresentedCertificate(der).thumbprint
        )
    elif method == PASSWORD:
        user_id = form.get("user_id", "").strip()
        if not user_id or not form.get("password"):
            return _sign_in_page(
                request, authz, error=("#user_id", "Enter your User ID and password."), status=400
            )
        try:
            accepted = await guarded_password_check(request, user_id, form.get("password", ""))
        except ProblemError as exc:  # locked out: the page says so, and until when
            return _sign_in_page(
                request, authz, user_id=user_id, error=("#user_id", exc.detail), status=429
            )
        if not accepted:
            audit(
                "sso.sign_in_refused",
                outcome="refused",
                method=method,
                actor=user_id[:64],
                reason="the User ID or password was not recognised",
            )
            return _sign_in_page(
                request,
                authz,
                user_id=user_id,
                error=("#user_id", "The User ID or password was not recognised."),
                status=403,
            )
        session, cookie = await provider.sessions.start(user_id, PASSWORD, None)
    else:
        return _sign_in_page(request, authz, error=("#main", "Choose how to sign in."), status=400)
    audit("sso.signed_in", actor=user_id, method=method, client_id=authz.client.client_id)
    response = await _signed_in(provider, authz, session, status=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,  # a secret of its own: the sid goes to every portal
        path="/sso",
        httponly=True,
        secure=provider.issuer.startswith("https:"),
        samesite="Lax",
        max_age=int((session.expires_at - session.auth_time).total_seconds()),
    )
    return response


async def _signed_in(
    provider: Provider, authz: AuthorizationRequest, session: Session, *, status: int
) -> web.StreamResponse:
    code = await provider.issue_code(authz, session)
    params = {"code": code, "iss": provider.issuer}
    if authz.state is not None:
        params["state"] = authz.state
    return _redirect(authz.redirect_uri, params, status)


def _redirect(uri: str, params: Mapping[str, str], status: int) -> web.StreamResponse:
    separator = "&" if urlsplit(uri).query else "?"
    location = uri + separator + urlencode(params)
    response = web.Response(status=status, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    return response


def _redirect_error(
    provider: Provider, exc: RedirectableError, *, status: int
) -> web.StreamResponse:
    params = {"error": exc.error, "error_description": exc.detail, "iss": provider.issuer}
    if exc.state is not None:
        params["state"] = exc.state
    return _redirect(exc.redirect_uri, params, status)


def _error_page(exc: OAuthError) -> web.Response:
    main = (
        "<h1>Sorry, the sign-in link is not valid</h1>"
        f"<p>{escape(exc.detail)}</p>"
        "<p>Go back to the council’s website and try again.</p>"
    )
    return html_response(page("Sign-in link not valid", main), 400)


def _hidden(values: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in values.items()
    )


def _certificate_name(der: bytes) -> str:
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME
        )
    except ValueError:
        return "your certificate"
    return str(names[0].value) if names else "your certificate"


def _sign_in_page(
    request: web.Request,
    authz: AuthorizationRequest,
    *,
    error: tuple[str, str] | None = None,
    user_id: str = "",
    status: int = 200,
) -> web.Response:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    hidden = _hidden({**authz.params(), "csrf": csrf})
    summary = ""
    if error is not None:
        target, message = error
        summary = (
            '<div role="alert" aria-labelledby="error-summary-title" tabindex="-1">'
            '<h2 id="error-summary-title">There is a problem</h2>'
            f'<ul><li><a href="{target}">{escape(message)}</a></li></ul></div>'
        )
    der = client_certificate(request)
    if der is not None:
        certificate = (
            f'<form method="post" action="/sso/authorize" id="certificate">{hidden}'
            '<input type="hidden" name="method" value="certificate">'
            f"<p>Your browser offered the certificate of "
            f"<strong>{escape(_certificate_name(der))}</strong>.</p>"
            '<button type="submit">Sign in with your certificate</button></form>'
        )
    else:
        certificate = (
            '<p id="certificate">Your browser did not offer a digital certificate. To use one, '
            "install it in your browser and open this page over HTTPS.</p>"
        )
    user_error = error is not None and error[0] == "#user_id"
    invalid = ' aria-invalid="true" aria-describedby="user_id-error"' if user_error else ""
    message = (
        f'<p id="user_id-error" class="error">Error: {escape(error[1])}</p>'
        if user_error and error is not None
        else ""
    )
    main = (
        f"{summary}<h1>Sign in to {escape(authz.client.name)}</h1>"
        "<p>Signing in once lets you use every council service on the Government Gateway "
        "until you sign out.</p>"
        "<h2>With your digital certificate</h2>"
        f"{certificate}"
        "<h2>With your User ID and password</h2>"
        f'<form method="post" action="/sso/authorize" id="password-form">{hidden}'
        '<input type="hidden" name="method" value="password">'
        f'<div><label for="user_id">User ID</label>{message}'
        f'<input id="user_id" name="user_id" type="text" autocomplete="username" '
        f'spellcheck="false" value="{escape(user_id)}"{invalid}></div>'
        '<div><label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password">'
        "</div>"
        '<button type="submit">Sign in</button></form>'
    )
    title = ("Error: " if error else "") + "Sign in"
    response = html_response(page(title, main), status, form_targets=[origin(authz.redirect_uri)])
    return _with_csrf(request, response, csrf)


def _with_csrf(request: web.Request, response: web.Response, csrf: str) -> web.Response:
    """The double-submit cookie a page's form must echo back (no forged sign-ins or sign-outs)."""
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        path="/sso",
        httponly=True,
        secure=request.app[SSO].issuer.startswith("https:"),
        samesite="Lax",
    )
    return response


# --- sign-out ------------------------------------------------------------------------------------


async def logout_view(request: web.Request) -> web.StreamResponse:
    provider = request.app[SSO]
    await provider.keyring.refresh()
    params: dict[str, str] = dict(request.query)
    if request.method == "POST":
        data = await read_form(request)
        params.update({k: v for k, v in data.items() if isinstance(v, str)})
    try:
        client, hint_sid = None, None
        if params.get("id_token_hint"):
            client, hint_sid = await provider.logout_hint(params["id_token_hint"])
            if params.get("client_id") and params["client_id"] != client.client_id:
                # RP-Initiated Logout §2: both given, they MUST name the same portal.
                raise OAuthError("invalid_request", "client_id is not the id_token_hint's audience")
        elif params.get("client_id"):
            client = await provider.clients.get(params["client_id"])
            if client is None:
                raise OAuthError("invalid_request", "no portal is registered with this client_id")
        target = params.get("post_logout_redirect_uri")
        if target and (client is None or target not in client.post_logout_redirect_uris):
            raise OAuthError(
                "invalid_request", "post_logout_redirect_uri is not one the portal registered"
            )
    except OAuthError as exc:
        return _error_page(exc)
    cookie_sid = await provider.sessions.cookie_sid(request.cookies.get(SESSION_COOKIE))
    confirmed = request.method == "POST" and double_submitted(
        request.cookies.get(CSRF_COOKIE), params.get("csrf")
    )
    # A hint proves only that its own session is to end: anyone's id_token (even a spent one)
    # can be put in a link, so the sign-on in this browser ends unasked only if it is that one.
    ending = [hint_sid] if hint_sid else []
    if cookie_sid and (confirmed or cookie_sid == hint_sid):
        ending.append(cookie_sid)
    ended = await _end_sessions(request, ending)
    if not confirmed and (hint_sid is None or cookie_sid not in (None, hint_sid)):
        # Without proof the citizen or their portal asked, a link alone signs nobody out.
        return _confirm_sign_out(request, params, client)
    if target:
        back = {"state": params["state"]} if params.get("state") else {}
        response = _redirect(target, back, 303)
    else:
        told = "".join(f"<li>{escape(d.client_name)}</li>" for d in ended)
        main = (
            "<h1>You have signed out</h1>"
            "<p>You are signed out of the Government Gateway and every council service "
            "you used with it.</p>"
            + (f"<p>These services were told:</p><ul>{told}</ul>" if told else "")
        )
        response = html_response(page("Signed out", main))
    response.del_cookie(SESSION_COOKIE, path="/sso")
    return response


async def _end_sessions(request: web.Request, sids: list[str]) -> list[backchannel.Delivery]:
    """End each sign-on and tell its portals over the back channel; what they were told."""
    provider = request.app[SSO]
    ended = []
    for sid in dict.fromkeys(sids):
        notices = await provider.end_session(sid)
        ended.extend(await backchannel.deliver(request.app[BACKCHANNEL_HTTP], provider, notices))
        audit("sso.signed_out", sid_prefix=sid[:8], portals=len(notices))
    return ended


def _confirm_sign_out(
    request: web.Request, params: Mapping[str, str], client: Client | None
) -> web.Response:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    keep = {
        k: v for k, v in params.items() if k in ("client_id", "post_logout_redirect_uri", "state")
    }
    if client is not None:  # named by an id_token_hint, which the form does not carry
        keep["client_id"] = client.client_id
    main = (
        "<h1>Sign out of the Government Gateway?</h1>"
        "<p>You will be signed out of every council service you used with this sign-in.</p>"
        '<form method="post" action="/sso/logout" id="sign-out">'
        f"{_hidden({**keep, 'csrf': csrf})}"
        '<button type="submit">Sign out</button></form>'
    )
    target = params.get("post_logout_redirect_uri")
    response = html_response(
        page("Sign out", main), form_targets=[origin(target)] if target else []
    )
    return _with_csrf(request, response, csrf)


# --- admin ---------------------------------------------------------------------------------------


async def list_clients_view(request: web.Request) -> web.Response:
    require_admin(request)
    clients = await request.app[SSO].clients.list()
    return web.json_response({"clients": [c.to_json() for c in clients]})


async def register_client_view(request: web.Request) -> web.Response:
    require_admin(request)
    data = await json_object(request)

    def strings(name: str) -> list[str]:
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ProblemError(400, "Invalid client metadata", f"'{name}' must be a list of URLs")
        return value

    for name in ("client_name", "organisation"):
        if not isinstance(data.get(name), str):
            raise ProblemError(400, "Invalid client metadata", f"'{name}' is required")
    jwks = data.get("jwks")
    if jwks is not None and not isinstance(jwks, dict):
        raise ProblemError(400, "Invalid client metadata", "'jwks' must be a JSON Web Key Set")
    backchannel_uri = data.get("backchannel_logout_uri")
    if backchannel_uri is not None and not isinstance(backchannel_uri, str):
        raise ProblemError(400, "Invalid client metadata", "'backchannel_logout_uri' is a URL")
    client, secret = await request.app[SSO].clients.register(
        name=data["client_name"],
        organisation=data["organisation"],
        redirect_uris=strings("redirect_uris"),
        auth_method=str(data.get("token_endpoint_auth_method", "client_secret_basic")),
        jwks=jwks,
        post_logout_redirect_uris=strings("post_logout_redirect_uris"),
        backchannel_logout_uri=backchannel_uri,
    )
    body: dict[str, Any] = client.to_json()
    if secret is not None:
        body["client_secret"] = secret
    audit(
        "admin.sso_client_registered",
        client_id=client.client_id,
        organisation=client.organisation,
    )
    return web.json_response(
        body, status=201, headers={"Location": f"/admin/sso/clients/{client.client_id}"}
    )


async def remove_client_view(request: web.Request) -> web.Response:
    require_admin(request)
    if not await request.app[SSO].clients.remove(request.match_info["id"]):
        raise ProblemError(404, "Not Found", "no such client")
    return web.Response(status=204)


async def rotate_keys_view(request: web.Request) -> web.Response:
    require_admin(request)
    keyring = request.app[SSO].keyring
    key = await keyring.rotate()
    audit("admin.sso_keys_rotated", kid=key.kid)
    return web.json_response({"kid": key.kid, "jwks": keyring.jwks()})
