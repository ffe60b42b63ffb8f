"""Single sign-on: two council portals (authlib relying parties) and one citizen."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import html
from sqlalchemy import select
from yarl import URL

from gateway.demo import certificate_paths, citizens_list
from gateway.pki import Pki
from gateway.pki.tls import client_ssl_context
from gateway.store.audit_models import AuditRecord
from gateway.web.app import CLOCK
from gateway.web.keys import AUDIT, DB, SSO
from tests.conftest import Hub
from tests.sso.conftest import SEDGEMOOR, SUNDERLAND, Browser, Portal, admin, hub_ca

MOVER = next(c for c in citizens_list() if c.user_id == "DEMO0MOV0001")
SUN = next(c for c in citizens_list() if c.user_id == "DEMO0SUN0001")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def account(organisation: str) -> str:
    return next(
        e.account_ref
        for e in MOVER.enrolments
        if e.organisation == organisation and e.class_ == "LA-CTAX-VIEW"
    )


async def sign_in_with_password(browser: Browser, portal: Portal) -> tuple[int, str, str]:
    status, url, page = await browser.get(f"{portal.url}/login")
    assert status == 200 and f"Sign in to {portal.name}" in page, (url, page)
    return await browser.submit(
        url, page, "password-form", user_id=MOVER.user_id, password=MOVER.password
    )


def portal_user(portal: Portal) -> dict[str, Any]:
    assert len(portal.users) == 1, portal.users
    return next(iter(portal.users.values()))


def portal_token(portal: Portal) -> dict[str, Any]:
    return next(iter(portal.tokens.values()))


async def userinfo(
    hub: Hub, token: str, ssl_context: Any = None, *, base: str | None = None
) -> tuple[int, Any, str]:
    url = f"{base or hub.config.sso_issuer}/sso/userinfo"
    async with aiohttp.ClientSession() as session:
        async with session.get(
            url, headers={"Authorization": f"Bearer {token}"}, ssl=ssl_context or False
        ) as resp:
            return (
                resp.status,
                await resp.json(content_type=None),
                resp.headers.get("WWW-Authenticate", ""),
            )


async def test_discovery_and_keys_are_what_oidc_clients_expect(sso_hub: Hub, portals) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    meta, issuer = portal.metadata, sso_hub.config.sso_issuer
    assert meta["issuer"] == issuer and issuer.startswith("https://")
    for name in ("authorization", "token", "userinfo", "end_session"):
        assert meta[f"{name}_endpoint"].startswith(issuer + "/sso/")
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
    assert {"client_secret_basic", "private_key_jwt"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    assert meta["backchannel_logout_supported"] and meta["subject_types_supported"] == ["pairwise"]
    [key] = portal.jwks["keys"]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and key["kid"] and "d" not in key


async def test_one_sign_in_carries_the_citizen_across_portals_and_sign_out_ends_it_everywhere(
    sso_hub: Hub, portals, browser_factory
) -> None:
    sunderland = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    sedgemoor = await portals("Sedgemoor portal", SEDGEMOOR, "private_key_jwt")
    browser = browser_factory()

    status, url, page = await sign_in_with_password(browser, sunderland)
    assert status == 200 and url == f"{sunderland.url}/", page
    first = portal_user(sunderland)
    assert page == f"Sunderland portal: signed in as {first['sub']}"
    assert first["acr"] == "urn:gateway:level:1" and first["amr"] == ["pwd"]
    # Enrolments are claims only for the council they belong to.
    assert first["gateway_enrolments"] == [
        {"service": "LA-CTAX-VIEW", "identifiers": {"CTaxAccountRef": account(SUNDERLAND)}},
        {"service": "LA-CTAX-SPD", "identifiers": {"CTaxAccountRef": account(SUNDERLAND)}},
    ]

    # The second portal: no sign-in page, straight in (its client authenticates by
    # private_key_jwt), under the same sign-on but another pairwise subject.
    status, url, page = await browser.get(f"{sedgemoor.url}/login")
    assert status == 200 and url == f"{sedgemoor.url}/", page
    second = portal_user(sedgemoor)
    assert second["sid"] == first["sid"]
    assert second["sub"] != first["sub"]
    assert {e["identifiers"]["CTaxAccountRef"] for e in second["gateway_enrolments"]} == {
        account(SEDGEMOOR)
    }
    access = portal_token(sedgemoor)["access_token"]
    status, info, _ = await userinfo(sso_hub, access, aiohttp_ssl(sso_hub))
    assert status == 200 and info["sub"] == second["sub"]

    # Signing out at one portal signs the citizen out of both, over the back channel.
    hint = portal_token(sunderland)["id_token"]
    query = urlencode(
        {
            "id_token_hint": hint,
            "post_logout_redirect_uri": f"{sunderland.url}/signed-out",
            "state": "bye",
        }
    )
    status, url, page = await browser.get(f"{sunderland.metadata['end_session_endpoint']}?{query}")
    assert url == f"{sunderland.url}/signed-out?state=bye" and "signed out" in page
    for portal in (sunderland, sedgemoor):
        [logout] = portal.logout_tokens
        assert logout["sid"] == first["sid"]
        assert portal.users == {}
    assert sunderland.logout_tokens[0]["sub"] == first["sub"]
    assert sedgemoor.logout_tokens[0]["sub"] == second["sub"]
    status, info, challenge = await userinfo(sso_hub, access, aiohttp_ssl(sso_hub))
    assert status == 401 and info["error"] == "invalid_token" and "ended" in challenge
    status, url, page = await browser.get(f"{sedgemoor.url}/login")
    assert status == 200 and "Sign in to Sedgemoor portal" in page


def aiohttp_ssl(hub: Hub, user_id: str | None = None) -> Any:
    cert, key = certificate_paths(hub.config, user_id) if user_id else (None, None)
    return client_ssl_context(hub_ca(hub), cert, key)


async def test_certificate_sign_in_is_one_click_and_binds_the_tokens(
    sso_hub: Hub, portals, browser_factory
) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_post")
    browser = browser_factory(MOVER.user_id)
    status, url, page = await browser.get(f"{portal.url}/login")
    assert "Sign in with your certificate" in page and "Demo" in page
    status, url, page = await browser.submit(url, page, "certificate")
    assert status == 200 and url == f"{portal.url}/", page
    user = portal_user(portal)
    assert user["acr"] == "urn:gateway:level:2" and user["amr"] == ["swk"]
    der = x509.load_pem_x509_certificate(
        certificate_paths(sso_hub.config, MOVER.user_id)[0].read_bytes()
    ).public_bytes(serialization.Encoding.DER)
    assert user["cnf"] == {"x5t#S256": b64url(hashlib.sha256(der).digest())}
    access = portal_token(portal)["access_token"]
    status, info, _ = await userinfo(sso_hub, access, aiohttp_ssl(sso_hub, MOVER.user_id))
    assert status == 200 and info["sub"] == user["sub"]
    # The token is bound to the certificate: stolen and replayed without it, it is refused.
    status, info, _ = await userinfo(sso_hub, access, aiohttp_ssl(sso_hub))
    assert status == 401 and "bound to a certificate" in info["error_description"]


async def test_a_revoked_certificate_ends_what_was_signed_on_with_it(
    sso_hub: Hub, portals, browser_factory
) -> None:
    sunderland = await portals("Sunderland portal", SUNDERLAND, "client_secret_post")
    sedgemoor = await portals("Sedgemoor portal", SEDGEMOOR, "client_secret_post")
    browser = browser_factory(MOVER.user_id)
    status, url, page = await browser.get(f"{sunderland.url}/login")
    status, url, page = await browser.submit(url, page, "certificate")
    assert status == 200 and url == f"{sunderland.url}/", page
    # While the certificate holds, the sign-on serves another portal at level 2 unasked.
    status, url, page = await browser.get(f"{sedgemoor.url}/login")
    assert url == f"{sedgemoor.url}/" and portal_user(sedgemoor)["acr"] == "urn:gateway:level:2"
    access = portal_token(sunderland)["access_token"]
    with_certificate = aiohttp_ssl(sso_hub, MOVER.user_id)
    assert (await userinfo(sso_hub, access, with_certificate))[0] == 200

    pki = Pki.load(sso_hub.config.pki_dir)
    serial = next(e.serial for e in pki.entries() if e.name == MOVER.user_id)
    async with sso_hub.session.post(
        f"{sso_hub.url}/admin/certificates/{serial:x}/revoke", json={"reason": "keyCompromise"}
    ) as resp:
        assert resp.status == 200

    # A token bound to the certificate is only as good as the certificate, here and at the API.
    status, info, challenge = await userinfo(sso_hub, access, with_certificate)
    assert status == 401 and 'error="invalid_token"' in challenge
    assert "revoked (keyCompromise)" in info["error_description"]
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{sso_hub.config.sso_issuer}/api/enrolments",
            headers={"Authorization": f"Bearer {access}"},
            ssl=with_certificate,
        ) as resp:
            assert resp.status == 401
    # The sign-on gives no more level-2 sign-ins: it ends, and its portals are told.
    status, url, page = await browser.get(f"{sedgemoor.url}/login")
    assert url.startswith(f"{sso_hub.config.sso_issuer}/sso/authorize?"), url
    assert "Your certificate was not accepted" in page and "revoked" in page
    assert sunderland.users == {} and sedgemoor.users == {}
    assert len(sunderland.logout_tokens) == len(sedgemoor.logout_tokens) == 1


async def test_access_token_acts_for_the_citizen_at_the_hub_api(
    sso_hub: Hub, portals, browser_factory
) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    await sign_in_with_password(browser_factory(), portal)
    access = portal_token(portal)["access_token"]
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{sso_hub.config.sso_issuer}/api/enrolments",
            headers={"Authorization": f"Bearer {access}"},
            ssl=aiohttp_ssl(sso_hub),
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
    assert body["user_id"] == MOVER.user_id
    assert {e["organisation"] for e in body["enrolments"]} == {SUNDERLAND, SEDGEMOOR}


# --- refusals ------------------------------------------------------------------------------------


async def manual_code(
    hub: Hub, portal: Portal, browser: Browser, *, verifier: str, **extra: str
) -> str:
    """Sign in by hand and take the code from the redirect, without the portal exchanging it."""
    params = {
        "client_id": portal.client_id,
        "redirect_uri": portal.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": "s1",
        "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
        "prompt": "login",  # the sign-in page even when signed in, to take the code by hand
        **extra,
    }
    url = f"{portal.metadata['authorization_endpoint']}?{urlencode(params)}"
    status, _, page = await browser.get(url)
    assert status == 200, page
    form = html.fromstring(page).get_element_by_id("password-form")
    data = {i.get("name"): i.get("value") or "" for i in form.inputs if i.get("name")}
    data.update(user_id=MOVER.user_id, password=MOVER.password)
    async with browser.session.post(
        portal.metadata["authorization_endpoint"],
        data=data,
        ssl=browser.ssl_context,
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303, await resp.text()
        location = urlsplit(resp.headers["Location"])
    assert location.netloc == urlsplit(portal.redirect_uri).netloc
    query = parse_qs(location.query)
    assert query["state"] == ["s1"] and query["iss"] == [hub.config.sso_issuer]
    return query["code"][0]


async def token_request(hub: Hub, portal: Portal, **form: str) -> tuple[int, dict[str, Any]]:
    auth = {
        "Authorization": aiohttp.encode_basic_auth(portal.client_id, portal.client_secret or "")
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(
            portal.metadata["token_endpoint"], data=form, headers=auth, ssl=aiohttp_ssl(hub)
        ) as resp:
            assert resp.headers["Cache-Control"] == "no-store"
            return resp.status, await resp.json(content_type=None)


async def test_codes_are_single_use_and_bound_to_pkce(
    sso_hub: Hub, portals, browser_factory
) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    browser = browser_factory()
    verifier = secrets.token_urlsafe(48)
    code = await manual_code(sso_hub, portal, browser, verifier=verifier)
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": portal.redirect_uri,
    }
    status, body = await token_request(
        sso_hub, portal, **exchange, code_verifier=secrets.token_urlsafe(48)
    )
    assert status == 400 and body["error"] == "invalid_grant"
    assert "code_verifier" in body["error_description"]
    # The failed attempt spent the code: a stolen code cannot be tried against many verifiers.
    status, body = await token_request(sso_hub, portal, **exchange, code_verifier=verifier)
    assert (
        status == 400 and body["error"] == "invalid_grant" and "used" in body["error_description"]
    )

    code = await manual_code(sso_hub, portal, browser, verifier=verifier)
    status, body = await token_request(
        sso_hub, portal, **exchange | {"code": code}, code_verifier=verifier
    )
    assert status == 200 and body["token_type"] == "Bearer", body
    status, body = await token_request(
        sso_hub, portal, **exchange | {"code": code}, code_verifier=verifier
    )
    assert status == 400 and body["error"] == "invalid_grant"

    portal.client_secret = "not-the-secret"
    status, body = await token_request(sso_hub, portal, **exchange, code_verifier=verifier)
    assert status == 401 and body["error"] == "invalid_client"


async def test_client_assertions_cannot_be_replayed(sso_hub: Hub, portals, browser_factory) -> None:
    portal = await portals("Sedgemoor portal", SEDGEMOOR, "private_key_jwt")
    browser = browser_factory()
    verifier = secrets.token_urlsafe(48)
    assert portal.private_key_pem is not None
    now = int(sso_hub.app[CLOCK]().timestamp())
    assertion = jwt.encode(
        {
            "iss": portal.client_id,
            "sub": portal.client_id,
            "aud": portal.metadata["token_endpoint"],
            "iat": now,
            "exp": now + 60,
            "jti": "once-only",
        },
        portal.private_key_pem,
        algorithm="RS256",
        headers={"kid": f"{portal.name}-1"},
    )

    async def exchange(code: str) -> tuple[int, dict[str, Any]]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": portal.redirect_uri,
            "code_verifier": verifier,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(
                portal.metadata["token_endpoint"], data=form, ssl=aiohttp_ssl(sso_hub)
            ) as resp:
                return resp.status, await resp.json(content_type=None)

    status, body = await exchange(await manual_code(sso_hub, portal, browser, verifier=verifier))
    assert status == 200, body
    code = await manual_code(sso_hub, portal, browser, verifier=verifier)
    status, body = await exchange(code)
    assert status == 401 and body["error"] == "invalid_client"
    assert "used before" in body["error_description"]


def forge(claims: dict[str, Any], key: Any, alg: str, **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


async def test_forged_expired_and_confused_tokens_are_refused(
    sso_hub: Hub, portals, browser_factory
) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    await sign_in_with_password(browser_factory(), portal)
    token = portal_token(portal)
    access, id_token = token["access_token"], token["id_token"]
    ctx = aiohttp_ssl(sso_hub)
    header = jwt.get_unverified_header(access)
    claims = jwt.decode(access, options={"verify_signature": False})
    assert (await userinfo(sso_hub, access, ctx))[0] == 200

    head, body, signature = access.split(".")
    tampered_claims = dict(claims, sub="someone-else")
    tampered = ".".join((head, b64url(json.dumps(tampered_claims).encode()), signature))
    public_pem = jwt.PyJWK(
        next(k for k in portal.jwks["keys"] if k["kid"] == header["kid"])
    ).key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    stranger = ec.generate_private_key(ec.SECP256R1())
    unsigned = ".".join(
        (
            b64url(json.dumps({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).encode()),
            body,
            "",
        )
    )
    confused_head = b64url(
        json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]}).encode()
    )
    confused_mac = hmac.new(public_pem, f"{confused_head}.{body}".encode(), hashlib.sha256).digest()
    confused = f"{confused_head}.{body}.{b64url(confused_mac)}"
    cases = {
        "tampered payload": tampered,
        "alg none": unsigned,
        "HS256 keyed with the public key": confused,
        "a key the hub does not hold": forge(
            claims, stranger, "ES256", kid="foreign", typ="at+jwt"
        ),
        "the hub's kid on a stranger's signature": forge(
            claims, stranger, "ES256", kid=header["kid"], typ="at+jwt"
        ),
        "an ID token (wrong audience and type)": id_token,
    }
    for case, forged in cases.items():
        status, answer, challenge = await userinfo(sso_hub, forged, ctx)
        assert status == 401, case
        assert answer["error"] == "invalid_token" and challenge.startswith("Bearer"), case

    # Signed by the hub for another audience: refused for its audience alone.
    keyring = sso_hub.app[SSO].keyring
    other_audience = keyring.sign(dict(claims, aud="https://elsewhere.example"), "at+jwt")
    status, answer, _ = await userinfo(sso_hub, other_audience, ctx)
    assert status == 401 and "audience" in answer["error_description"].lower()

    # Expired: the same genuine token, once the hub's clock has passed its exp.
    sso_hub.app[CLOCK].advance(timedelta(minutes=sso_hub.config.sso.access_token_minutes + 5))
    status, answer, _ = await userinfo(sso_hub, access, ctx)
    assert status == 401 and "expired" in answer["error_description"]


async def test_rotated_keys_keep_earlier_tokens_valid(
    sso_hub: Hub, portals, browser_factory
) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    browser = browser_factory()
    await sign_in_with_password(browser, portal)
    before = portal_token(portal)["access_token"]
    async with sso_hub.session.post(f"{sso_hub.url}/admin/sso/keys/rotate") as resp:
        assert resp.status == 200
        rotated = await resp.json()
    assert len(rotated["jwks"]["keys"]) == 2
    assert (await userinfo(sso_hub, before, aiohttp_ssl(sso_hub)))[0] == 200
    await portal.discover()
    portal.users.clear()
    status, url, _ = await browser.get(f"{portal.url}/login")
    assert status == 200
    assert url == f"{portal.url}/"
    after = list(portal.tokens.values())[-1]["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == rotated["kid"]
    assert jwt.get_unverified_header(before)["kid"] != rotated["kid"]


async def test_authorization_requests_are_checked_before_anything_is_shown(
    sso_hub: Hub, portals, browser_factory
) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    browser = browser_factory()
    endpoint = portal.metadata["authorization_endpoint"]
    good = {
        "client_id": portal.client_id,
        "redirect_uri": portal.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": "st",
        "code_challenge": b64url(hashlib.sha256(b"v" * 50).digest()),
        "code_challenge_method": "S256",
    }
    # An unregistered redirect URI is never followed: the citizen sees an error page.
    status, url, page = await browser.get(
        f"{endpoint}?{urlencode(good | {'redirect_uri': 'https://evil.example/cb'})}"
    )
    assert status == 400 and url.startswith(endpoint) and "not valid" in page
    # Without PKCE the portal is told, at its own redirect URI.
    no_pkce = {k: v for k, v in good.items() if not k.startswith("code_challenge")}
    status, url, page = await browser.get(f"{endpoint}?{urlencode(no_pkce)}")
    assert url.startswith(f"{portal.url}/callback") and "invalid_request" in url
    # prompt=none with nobody signed in: login_required, no page.
    status, url, page = await browser.get(f"{endpoint}?{urlencode(good | {'prompt': 'none'})}")
    assert "error=login_required" in url and "state=st" in url
    # A forged sign-in form (no CSRF cookie) is refused.
    async with aiohttp.ClientSession() as other:
        async with other.post(
            endpoint,
            data=good
            | {
                "method": "password",
                "user_id": MOVER.user_id,
                "password": MOVER.password,
                "csrf": "x",
            },
            ssl=aiohttp_ssl(sso_hub),
            allow_redirects=False,
        ) as resp:
            assert resp.status == 400 and "expired" in await resp.text()
    # A wrong password: the page says so, and nobody is signed in.
    status, url, page = await browser.get(f"{endpoint}?{urlencode(good)}")
    status, url, page = await browser.submit(
        url, page, "password-form", user_id=MOVER.user_id, password="wrong-password"
    )
    assert status == 403 and "not recognised" in page and 'aria-invalid="true"' in page
    assert portal.users == {}


async def test_a_portal_starts_a_joined_up_journey_under_the_citizens_sign_on(
    sso_hub: Hub, portals, browser_factory
) -> None:
    from tests.journeys.test_change_of_address import request as move_request

    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    browser = browser_factory()
    await sign_in_with_password(browser, portal)
    bearer = {"Authorization": f"Bearer {portal_token(portal)['access_token']}"}
    base, ctx = sso_hub.config.sso_issuer, aiohttp_ssl(sso_hub)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/api/journeys/change-of-address", json=move_request(), headers=bearer, ssl=ctx
        ) as resp:
            assert resp.status == 202, await resp.text()
            journey = await resp.json()
        for _ in range(200):
            async with session.get(
                f"{base}/api/journeys/{journey['id']}", headers=bearer, ssl=ctx
            ) as resp:
                journey = await resp.json()
            if journey["status"] != "in_progress":
                break
            await asyncio.sleep(0.05)
    assert journey["status"] == "completed", journey
    assert [leg["status"] for leg in journey["legs"]] == ["succeeded"] * 3

    # A token granted without the `gateway` scope signs in to the portal only.
    verifier = secrets.token_urlsafe(48)
    code = await manual_code(sso_hub, portal, browser, verifier=verifier)
    status, tokens = await token_request(
        sso_hub,
        portal,
        grant_type="authorization_code",
        code=code,
        redirect_uri=portal.redirect_uri,
        code_verifier=verifier,
    )
    assert status == 200 and tokens["scope"] == "openid"
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{base}/api/enrolments",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            ssl=ctx,
        ) as resp:
            assert resp.status == 401
            assert "'gateway' scope" in (await resp.json())["error_description"]


async def sign_in(browser: Browser, portal: Portal, who: Any) -> dict[str, Any]:
    """Sign in at the portal with a password; the tokens the portal got for this sign-in."""
    before = set(portal.tokens)
    _, url, page = await browser.get(f"{portal.url}/login")
    _, url, page = await browser.submit(
        url, page, "password-form", user_id=who.user_id, password=who.password
    )
    assert url == f"{portal.url}/", page
    [new] = set(portal.tokens) - before
    return portal.tokens[new]


async def signed_in(browser: Browser, portal: Portal) -> bool:
    """Whether the browser still has a sign-on at the hub (the portal lets it straight in)."""
    _, url, _ = await browser.get(f"{portal.url}/login")
    return url == f"{portal.url}/"


async def test_a_sign_out_link_with_someone_elses_id_token_asks_this_browser_first(
    sso_hub: Hub, portals, browser_factory
) -> None:
    """Anyone's id_token in a link ends that token's sign-on only; the citizen is asked."""
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    attacker, victim = browser_factory(), browser_factory()
    hint = (await sign_in(attacker, portal, SUN))["id_token"]
    attacker_sid = jwt.decode(hint, options={"verify_signature": False})["sid"]
    await sign_in(victim, portal, MOVER)

    link = f"{portal.metadata['end_session_endpoint']}?" + urlencode(
        {
            "id_token_hint": hint,
            "post_logout_redirect_uri": f"{portal.url}/signed-out",
            "state": "s1",
        }
    )
    status, url, page = await victim.get(link)
    assert status == 200 and "Sign out of the Government Gateway?" in page
    assert [t["sid"] for t in portal.logout_tokens] == [attacker_sid]
    assert not await signed_in(attacker, portal)
    assert await signed_in(victim, portal)

    # The spent token keeps being no more than a link: still asked, still signed in.
    status, url, page = await victim.get(link)
    assert "Sign out of the Government Gateway?" in page
    assert await signed_in(victim, portal)

    # Confirming signs the citizen out, back to the portal the link named.
    status, url, page = await victim.submit(url, page, "sign-out")
    assert url == f"{portal.url}/signed-out?state=s1", (url, page)
    assert not await signed_in(victim, portal)


async def test_a_sign_out_form_without_the_browsers_csrf_cookie_signs_nobody_out(
    sso_hub: Hub, portals, browser_factory
) -> None:
    """A forged sign-out POST (csrf "-" or empty, no gw_csrf cookie or an empty one) is asked."""
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    victim = browser_factory()
    await sign_in(victim, portal, MOVER)
    sid = next(c.value for c in victim.session.cookie_jar if c.key == "gw_sso")
    endpoint = portal.metadata["end_session_endpoint"]
    for cookies, csrf in (({}, "-"), ({}, ""), ({"gw_csrf": ""}, "")):
        async with aiohttp.ClientSession(cookies={"gw_sso": sid, **cookies}) as forged:
            async with forged.post(endpoint, data={"csrf": csrf}, ssl=victim.ssl_context) as resp:
                assert "Sign out of the Government Gateway?" in await resp.text(), (cookies, csrf)
        assert await signed_in(victim, portal), (cookies, csrf)
    assert portal.logout_tokens == []


# --- the sign-on's secret, and what ends it ----------------------------------------------------


def authorization(portal: Portal, **extra: str) -> dict[str, str]:
    return {
        "client_id": portal.client_id,
        "redirect_uri": portal.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": "st",
        "code_challenge": b64url(hashlib.sha256(b"v" * 50).digest()),
        "code_challenge_method": "S256",
        **extra,
    }


async def authorize(
    browser: Browser, portal: Portal, *, post: bool = False, **extra: str
) -> tuple[int, dict[str, list[str]], str]:
    """An authorization request from this browser, unfollowed: status, redirect query, page."""
    endpoint, params = portal.metadata["authorization_endpoint"], authorization(portal, **extra)
    request = (
        browser.session.post(endpoint, data=params, ssl=browser.ssl_context, allow_redirects=False)
        if post
        else browser.session.get(
            f"{endpoint}?{urlencode(params)}", ssl=browser.ssl_context, allow_redirects=False
        )
    )
    async with request as resp:
        location = urlsplit(resp.headers.get("Location", ""))
        if location.netloc:
            assert location.netloc == urlsplit(portal.redirect_uri).netloc
        return resp.status, parse_qs(location.query), await resp.text()


async def test_the_sid_portals_are_given_is_not_the_browsers_sign_on(
    sso_hub: Hub, portals, browser_factory
) -> None:
    """Every portal learns the sid; set as the hub's cookie, it must sign nobody in."""
    sunderland = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    sedgemoor = await portals("Sedgemoor portal", SEDGEMOOR, "client_secret_basic")
    victim = browser_factory()
    tokens = await sign_in(victim, sunderland, MOVER)
    sid = jwt.decode(tokens["id_token"], options={"verify_signature": False})["sid"]
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"] == sid
    cookie = next(c.value for c in victim.session.cookie_jar if c.key == "gw_sso")
    assert cookie != sid

    attacker = browser_factory()
    attacker.session.cookie_jar.update_cookies(
        {"gw_sso": sid}, URL(sso_hub.config.sso_issuer + "/sso/")
    )
    status, url, page = await attacker.get(f"{sedgemoor.url}/login")
    assert status == 200 and "Sign in to Sedgemoor portal" in page, (url, page)
    assert sedgemoor.users == {}
    # The victim's own browser still is signed in, under the same public sid.
    assert await signed_in(victim, sedgemoor)
    assert portal_user(sedgemoor)["sid"] == sid


async def test_a_removed_portals_tokens_are_refused_at_the_citizen_api_too(
    sso_hub: Hub, portals, browser_factory
) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    access = (await sign_in(browser_factory(), portal, MOVER))["access_token"]
    status, _ = await admin(sso_hub, "DELETE", f"/admin/sso/clients/{portal.client_id}")
    assert status == 204
    status, info, _ = await userinfo(sso_hub, access, aiohttp_ssl(sso_hub))
    assert status == 401 and "no longer registered" in info["error_description"]
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{sso_hub.config.sso_issuer}/api/enrolments",
            headers={"Authorization": f"Bearer {access}"},
            ssl=aiohttp_ssl(sso_hub),
        ) as resp:
            assert resp.status == 401
            assert "no longer registered" in (await resp.json())["error_description"]


async def test_a_replayed_code_ends_the_sign_on_it_issued_tokens_for(
    sso_hub: Hub, portals, browser_factory
) -> None:
    """RFC 6749 §4.1.2: tokens issued from a code used twice are revoked."""
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    browser = browser_factory()
    verifier = secrets.token_urlsafe(48)
    exchange = {
        "grant_type": "authorization_code",
        "redirect_uri": portal.redirect_uri,
        "code_verifier": verifier,
    }
    code = await manual_code(sso_hub, portal, browser, verifier=verifier)
    status, first = await token_request(sso_hub, portal, **exchange, code=code)
    assert status == 200
    sid = jwt.decode(first["id_token"], options={"verify_signature": False})["sid"]
    assert (await userinfo(sso_hub, first["access_token"], aiohttp_ssl(sso_hub)))[0] == 200

    # A code spent by a failed exchange issued nothing: its replay ends no sign-on.
    spent = await manual_code(sso_hub, portal, browser, verifier=verifier)
    wrong = exchange | {"code": spent, "code_verifier": secrets.token_urlsafe(48)}
    assert (await token_request(sso_hub, portal, **wrong))[0] == 400
    status, body = await token_request(sso_hub, portal, **exchange, code=spent)
    assert status == 400 and body["error"] == "invalid_grant"
    assert await signed_in(browser, portal)
    portal.logout_tokens.clear()

    status, body = await token_request(sso_hub, portal, **exchange, code=code)
    assert status == 400 and body["error"] == "invalid_grant"
    status, info, _ = await userinfo(sso_hub, first["access_token"], aiohttp_ssl(sso_hub))
    assert status == 401 and "ended" in info["error_description"]
    # The portal is told over the back channel that the sign-on behind the code ended.
    assert [t["sid"] for t in portal.logout_tokens] == [sid]
    await sso_hub.app[AUDIT].drained()
    async with sso_hub.app[DB].read() as session:
        records = (
            await session.scalars(
                select(AuditRecord).where(AuditRecord.event == "sso.code_replayed")
            )
        ).all()
    assert [(r.outcome, r.detail["client_id"]) for r in records] == [
        ("refused", portal.client_id)
    ] * 2  # the spent code's replay is audited too, though it ended nothing


async def test_consent_cannot_be_given_and_an_account_is_selected_by_signing_in(
    sso_hub: Hub, portals, browser_factory
) -> None:
    """OIDC Core §3.1.2.1: a prompt the hub cannot honour is an error, never a silent code."""
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    browser = browser_factory()
    await sign_in(browser, portal, MOVER)
    status, query, _ = await authorize(browser, portal, prompt="consent", scope="openid gateway")
    assert status == 302 and query["error"] == ["consent_required"] and "code" not in query
    assert query["state"] == ["st"]
    status, query, page = await authorize(browser, portal, prompt="select_account")
    assert status == 200 and "Sign in to Sunderland portal" in page and not query
    assert "select_account" in portal.metadata["prompt_values_supported"]
    assert "consent" not in portal.metadata["prompt_values_supported"]


async def test_prompt_none_answers_only_for_the_citizen_the_id_token_hint_names(
    sso_hub: Hub, portals, browser_factory
) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    other_portal = await portals("Sedgemoor portal", SEDGEMOOR, "client_secret_basic")
    a, b = browser_factory(), browser_factory()
    someone_else = (await sign_in(a, portal, SUN))["id_token"]
    own = (await sign_in(b, portal, MOVER))["id_token"]
    status, query, _ = await authorize(b, portal, prompt="none", id_token_hint=someone_else)
    assert status == 302 and query["error"] == ["login_required"] and "code" not in query
    # Without prompt=none the citizen is asked to sign in instead.
    status, query, page = await authorize(b, portal, id_token_hint=someone_else)
    assert status == 200 and "Sign in to Sunderland portal" in page
    # One another council's portal was given names the citizen too, by its own subject.
    _, url, _ = await b.get(f"{other_portal.url}/login")
    assert url == f"{other_portal.url}/"
    sedgemoor_hint = portal_token(other_portal)["id_token"]
    status, query, _ = await authorize(b, portal, prompt="none", id_token_hint=sedgemoor_hint)
    assert status == 302 and "code" in query, query
    # Their own hint answers, even once expired.
    sso_hub.app[CLOCK].advance(timedelta(minutes=sso_hub.config.sso.id_token_minutes + 5))
    status, query, _ = await authorize(b, portal, prompt="none", id_token_hint=own)
    assert status == 302 and "code" in query, query
    # A hint the hub did not sign is refused.
    head, body, _ = own.split(".")
    status, query, _ = await authorize(b, portal, prompt="none", id_token_hint=f"{head}.{body}.x")
    assert status == 302 and query["error"] == ["invalid_request"]


async def test_request_objects_are_refused_as_discovery_says(sso_hub: Hub, portals) -> None:
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    # OIDC Discovery: request_uri_parameter_supported is true when left out.
    assert portal.metadata["request_uri_parameter_supported"] is False
    assert portal.metadata["request_parameter_supported"] is False
    async with aiohttp.ClientSession() as session:
        browser = Browser(session, aiohttp_ssl(sso_hub))
        _, query, _ = await authorize(browser, portal, request_uri="https://portal.example/r.jwt")
        assert query["error"] == ["request_uri_not_supported"]
        _, query, _ = await authorize(browser, portal, request="e30.e30.")
        assert query["error"] == ["request_not_supported"]


async def test_a_client_trying_http_basic_is_always_challenged(sso_hub: Hub, portals) -> None:
    """RFC 6749 §5.2: a 401 to a client that used the Authorization header MUST challenge."""
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_post")
    assert portal.client_secret is not None
    for header in (
        aiohttp.encode_basic_auth(portal.client_id, portal.client_secret),  # not its method
        aiohttp.encode_basic_auth(portal.client_id, "wrong"),
        "Bearer something",
    ):
        async with aiohttp.ClientSession() as session:
            async with session.post(
                portal.metadata["token_endpoint"],
                data={"grant_type": "authorization_code", "code": "x"},
                headers={"Authorization": header},
                ssl=aiohttp_ssl(sso_hub),
            ) as resp:
                assert resp.status == 401 and (await resp.json())["error"] == "invalid_client"
                assert resp.headers["WWW-Authenticate"].startswith("Basic"), header


async def test_a_sign_out_naming_two_portals_is_refused(
    sso_hub: Hub, portals, browser_factory
) -> None:
    """RP-Initiated Logout §2: client_id and the id_token_hint's audience MUST match."""
    sunderland = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    sedgemoor = await portals("Sedgemoor portal", SEDGEMOOR, "client_secret_basic")
    browser = browser_factory()
    hint = (await sign_in(browser, sunderland, MOVER))["id_token"]
    link = f"{sunderland.metadata['end_session_endpoint']}?" + urlencode(
        {
            "id_token_hint": hint,
            "client_id": sedgemoor.client_id,
            "post_logout_redirect_uri": f"{sunderland.url}/signed-out",
        }
    )
    status, url, page = await browser.get(link)
    assert status == 400 and "audience" in page and url.startswith(sso_hub.config.sso_issuer)
    assert await signed_in(browser, sunderland) and sunderland.logout_tokens == []
    # Named consistently, the same sign-out goes through.
    status, url, page = await browser.get(link.replace(sedgemoor.client_id, sunderland.client_id))
    assert url == f"{sunderland.url}/signed-out" and not await signed_in(browser, sunderland)


async def test_an_authorization_request_may_be_posted(
    sso_hub: Hub, portals, browser_factory
) -> None:
    """OIDC Core §3.1.2.1: the authorization endpoint MUST support POST as well as GET."""
    portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    browser = browser_factory()
    status, query, page = await authorize(browser, portal, post=True)
    assert status == 200 and "Sign in to Sunderland portal" in page
    await sign_in(browser, portal, MOVER)
    status, query, _ = await authorize(browser, portal, post=True)
    assert status == 302 and "code" in query and query["state"] == ["st"], query
    status, query, _ = await authorize(browser, portal, post=True, prompt="none", scope="email")
    assert status == 302 and query["error"] == ["invalid_scope"]
