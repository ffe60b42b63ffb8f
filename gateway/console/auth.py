"""Who is an admin: trusted local peers (if allowed), a signed-in console session, HTTP Basic with
the admin credentials, or a registered admin client certificate; and the console's CSRF token.

Nothing here is open by default off loopback: with no credentials and no certificates
configured, `admin_identity` is None for every other peer, and the gate (routes.py) refuses.
A loopback peer naming another host in its Host header (a DNS-rebound page) is one such peer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from markupsafe import Markup, escape

from gateway.audit.log import audit
from gateway.errors import ProblemError
from gateway.identity.certificates import CertificateRefused, CertificateValidator, fingerprint
from gateway.identity.http_basic import decode_basic
from gateway.identity.passwords import dummy_hash, verify_secret
from gateway.identity.revocation import RevocationChecker
from gateway.limits import is_loopback
from gateway.web.csrf import double_submitted
from gateway.web.keys import AUTH_GUARD, CONFIG
from gateway.web.local_peers import is_trusted_local_peer

if TYPE_CHECKING:
    from gateway.config import AdminConfig

SESSION_COOKIE = "gw_console"
CSRF_COOKIE = "gw_console_csrf"
CSRF_FIELD = "csrf_token"
# A hash to verify against when no password is configured, so a wrong user costs the same.


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """An admin and how they proved it (loopback, session, basic, certificate)."""

    name: str
    method: str

    def describe(self) -> str:
        return {
            "loopback": "a loopback peer (allow_loopback)",
            "session": f"{self.name}, signed in",
            "basic": f"{self.name}, HTTP Basic",
            "certificate": f"{self.name}, admin certificate",
        }.get(self.method, self.name)


ADMIN = web.RequestKey("gateway_admin", AdminIdentity)
# Per-app state filled on first use: the session signing key.
_STATE: web.AppKey[dict[str, Any]] = web.AppKey("console_auth_state")


class AdminRefused(ProblemError):
    """Not an admin: 401 when credentials could help, 403 when nothing configured would."""


def install(app: web.Application) -> None:
    """Per-app state the checks need (called by routes.add_console_routes)."""
    app[_STATE] = {}
    app.cleanup_ctx.append(_certificates)


def admin_name(request: web.Request) -> str | None:
    """The name of the admin the gate let through, for the audit trail's actor."""
    admin = request.get(ADMIN)
    return admin.name if admin is not None else None


def installed(app: web.Application) -> bool:
    """Whether this app has the admin gate (then only the gate makes admins)."""
    return _STATE in app


async def _certificates(app: web.Application) -> AsyncIterator[None]:
    """A validator for admin certificates: dates, chain and revocation, as for citizens'."""
    from gateway.web.app import CLOCK, PKI  # app.py imports the console

    config = app[CONFIG]
    if not config.admin.certificate_fingerprints:
        yield
        return
    pki = await asyncio.to_thread(app[PKI])
    revocation = RevocationChecker(
        timeout=config.pki.status_timeout,
        fail_open=config.pki.fail_open,
        clock=app[CLOCK],
        revocations_changed=pki.index_version,
    )
    app[_STATE]["validator"] = CertificateValidator(pki.trust_anchors, revocation, clock=app[CLOCK])
    yield
    await revocation.aclose()


def configured(config: AdminConfig) -> bool:
    """Whether anyone off loopback could become an admin."""
    return bool(config.password_hash or config.certificate_fingerprints)


async def admin_identity(request: web.Request) -> AdminIdentity | None:
    """The admin making this request, or None."""
    config = request.app[CONFIG].admin
    certified = await _certificate_admin(request, config)
    if certified is not None:
        return certified
    session = _session_admin(request, config)
    if session is not None:
        return session
    basic = await _basic_admin(request, config)
    if basic is not None:
        return basic
    if config.allow_loopback and is_loopback(request.remote):
        if is_trusted_local_peer(request):
            return AdminIdentity("loopback", "loopback")
        request[_REASON_KEY] = "loopback peers are admins only at the hub's own host names"
    return None


def refusal(request: web.Request) -> AdminRefused:
    """The refusal for a request that is not an admin's (the gate raises or renders it)."""
    config = request.app[CONFIG].admin
    reason = request.get(_REASON_KEY)
    if not configured(config):
        return AdminRefused(
            403,
            "Forbidden",
            reason
            or "the admin console and API answer only loopback peers here; configure [admin] "
            "credentials or certificates to use them from elsewhere",
        )
    headers = {"WWW-Authenticate": 'Basic realm="gateway admin"'} if config.password_hash else {}
    return AdminRefused(
        401, "Unauthorized", reason or "admin authentication is required", headers=headers
    )


_REASON_KEY = web.RequestKey("gateway_admin_reason", str)


# --- certificates -------------------------------------------------------------------------


async def _certificate_admin(request: web.Request, config: AdminConfig) -> AdminIdentity | None:
    if not config.certificate_fingerprints:
        return None
    from gateway.web.dsp_views import client_certificate  # dsp_views imports the web layer

    der = client_certificate(request)
    if der is None or fingerprint(der) not in config.certificate_fingerprints:
        return None
    validator = request.app[_STATE].get("validator")
    if not isinstance(validator, CertificateValidator):
        return None
    try:
        # The handshake checked the chain; dates and revocation are checked here.
        validated = await validator.validate(der)
    except CertificateRefused as exc:
        request[_REASON_KEY] = f"admin certificate refused: {exc.reason}"
        audit("console.certificate_refused", outcome="refused", reason=exc.reason)
        return None
    return AdminIdentity(validated.subject, "certificate")


# --- sessions -----------------------------------------------------------------------------


def _now(request: web.Request) -> datetime:
    from gateway.web.app import CLOCK  # app.py imports the console

    return request.app[CLOCK]()


def _session_key(app: web.Application) -> bytes:
    """HMAC key for session cookies: derived from the hub's server key, so every worker and
    host sharing the PKI directory agrees, and nobody without that key can forge one."""
    state = app[_STATE]
    key = state.get("session_key")
    if key is None:
        from gateway.web.app import PKI

        pem = app[PKI]().server_key_path.read_bytes()
        key = hashlib.sha256(b"gateway console session\0" + pem).digest()
        state["session_key"] = key
    assert isinstance(key, bytes)
    return key


def _password_tag(config: AdminConfig) -> str:
    # In the cookie so that changing the password ends every session signed in with the old one.
    return hashlib.sha256(config.password_hash.encode()).hexdigest()[:16]


def _sign(app: web.Application, payload: str) -> str:
    mac = hmac.new(_session_key(app), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def session_cookie(request: web.Request, user: str) -> str:
    """A signed cookie value naming the admin until [admin] session_minutes from now."""
    config = request.app[CONFIG].admin
    expires = _now(request) + timedelta(minutes=config.session_minutes)
    payload = f"{user}|{int(expires.timestamp())}|{_password_tag(config)}"
    encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{encoded}.{_sign(request.app, payload)}"


def _session_admin(request: web.Request, config: AdminConfig) -> AdminIdentity | None:
    value = request.cookies.get(SESSION_COOKIE)
    if not value or not config.password_hash or "." not in value:
        return None
    encoded, signature = value.rsplit(".", 1)
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        user, expires, tag = payload.split("|")
        expires_at = int(expires)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _sign(request.app, payload)):
        return None
    if user != config.user or tag != _password_tag(config):
        return None
    if expires_at <= _now(request).timestamp():
        return None
    return AdminIdentity(user, "session")


def set_session(request: web.Request, response: web.StreamResponse, user: str) -> None:
    """Sign the admin in: HttpOnly, SameSite=Strict, Secure on HTTPS, for the console only.

    Not for /admin: its JSON endpoints have no CSRF token, so a browser's cookie must not
    reach them (tooling uses Basic, a certificate or loopback there).
    """
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie(request, user),
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=int(request.app[CONFIG].admin.session_minutes * 60),
    )


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/console")


# --- passwords ----------------------------------------------------------------------------


async def check_credentials(request: web.Request, user: str, password: str) -> bool:
    """The admin user name and password, behind the same lockout as citizens' passwords."""
    config = request.app[CONFIG].admin
    guard, now = request.app[AUTH_GUARD], _now(request)
    sender = f"admin:{user[:64]}"
    locked = await guard.locked(sender, request.remote, now)
    if locked is not None:
        raise AdminRefused(
            429,
            "Too Many Requests",
            locked.text(),
            headers={"Retry-After": str(locked.seconds(now))},
        )
    stored = config.password_hash or dummy_hash()
    # scrypt is deliberately slow: keep it off the event loop.
    ok = await asyncio.to_thread(verify_secret, password, stored)
    ok = ok and bool(config.password_hash) and hmac.compare_digest(user, config.user)
    if ok:
        await guard.succeeded(sender)
    else:
        await guard.failed(sender, request.remote, now)
    return ok


async def _basic_admin(request: web.Request, config: AdminConfig) -> AdminIdentity | None:
    header = request.headers.get("Authorization")
    if not header or not config.password_hash:
        return None
    decoded = decode_basic(header)
    if decoded is None or decoded[0] != config.user:
        return None  # a citizen's credentials for the JSON API, not an admin's
    if await check_credentials(request, *decoded):
        return AdminIdentity(decoded[0], "basic")
    request[_REASON_KEY] = "wrong admin user name or password"
    audit("console.sign_in_refused", outcome="refused", user=decoded[0], via="basic")
    return None


# --- CSRF: a double-submit cookie -----------------------------------------------------------

_CSRF_NEW = web.RequestKey("gateway_console_csrf_new", str)


def csrf_token(request: web.Request) -> str:
    """This browser's CSRF token (made now if it has none; `layout.render` sets the cookie)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) == 43 and token.replace("-", "").replace("_", "").isalnum():
        return token
    if _CSRF_NEW not in request:
        request[_CSRF_NEW] = secrets.token_urlsafe(32)
    return request[_CSRF_NEW]


def csrf_field(request: web.Request) -> str:
    """The hidden form field every console POST form carries."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, escape(csrf_token(request))
    )


def set_csrf_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Send the token made for this request, if one was (HttpOnly: only the form carries it)."""
    token = request.get(_CSRF_NEW)
    if token is not None:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path="/console",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )


def refuse_cross_site(request: web.Request) -> None:
    """Refuse (403) a request a browser sent on another site's behalf.

    Tooling (the CLI, curl, scenario runs) sends neither header; a browser sends at least one.
    On /admin this is what stops a page in the admin's browser from posting to the loopback
    admin API, which takes no CSRF token.
    """
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    # Hosts, not schemes: behind a TLS-terminating proxy the hub itself sees http.
    if (origin is not None and urlsplit(origin).netloc != request.host) or (
        fetch_site is not None and fetch_site not in ("same-origin", "none")
    ):
        raise ProblemError(
            403, "Forbidden", "admin requests are accepted from the hub's own pages only"
        )


def check_csrf(request: web.Request, form: Any) -> None:
    """Refuse (403) a POST from another site, or whose form token is not this browser's cookie.

    The Origin and Sec-Fetch-Site checks close what a double-submit cookie alone leaves open:
    a page on another port of the same host is "same-site" and could plant the cookie.
    """
    refuse_cross_site(request)
    sent = form.get(CSRF_FIELD) if form is not None else None
    if not double_submitted(request.cookies.get(CSRF_COOKIE), sent):
        raise ProblemError(
            403,
            "Forbidden",
            "the form's security token is missing or out of date: reload the page and try again",
        )
