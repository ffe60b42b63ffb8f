"""Each step kind, done over the hub's real interfaces (DSP, JSON APIs, admin API, pages)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from lxml import etree, html

from gateway.govtalk import requests
from gateway.govtalk.model import Qualifier
from gateway.govtalk.parse import parse
from gateway.govtalk.serialise import serialise
from gateway.pki.tls import client_ssl_context
from gateway.scenario.checks import Observed, StepFailed, mapping
from gateway.scenario.model import DURATION, WHOLE, Scenario, inside
from gateway.scenario.target import Target

PIN = re.compile(r"activation PIN is:\s*(\S+)")

# How a run polls an acknowledged transaction. "eager": again within 0.1 s, so a step's latency is
# the hub's, to a tenth of a second. "interval": not before the PollInterval the hub asked for, as a
# GovTalk client does, so a load puts on the hub the polls real clients would.
Polling = Literal["eager", "interval"]
EAGER_POLL_S = 0.1


@dataclass(slots=True)
class Run:
    """One scenario's run: its target, variables, actors' state and HTTP sessions."""

    scenario: Scenario
    target: Target
    workdir: Path
    variables: dict[str, Any]
    actors: dict[str, dict[str, Any]]
    session: aiohttp.ClientSession
    browsers: dict[str, aiohttp.ClientSession] = field(default_factory=dict)
    polling: Polling = "eager"
    where: str = ""  # the running step's file:line, for errors found only when it runs
    # interval polling: per CorrelationID, when the last acknowledgement said to poll again
    poll_due: dict[str, float] = field(default_factory=dict)

    def actor(self, params: Mapping[str, Any], role: str = "actor") -> dict[str, Any]:
        name = params.get(role)
        if not isinstance(name, str) or name not in self.actors:
            raise StepFailed(f"give the {role}: one of {', '.join(self.actors) or '(none)'}")
        return self.actors[name]

    def tls(self, actor: dict[str, Any] | None = None) -> ssl.SSLContext:
        if self.target.ca_bundle is None:
            raise StepFailed("the hub's CA bundle is unknown (GET /pki/ca-bundle.pem failed)")
        cert = actor.get("certificate") if actor else None
        key = actor.get("key") if actor else None
        if actor is not None and not cert:
            raise StepFailed(f"{actor['name']} has no certificate (issue_certificate first)")
        return client_ssl_context(
            self.target.ca_bundle, Path(cert) if cert else None, Path(key) if key else None
        )

    def https(self) -> str:
        if self.target.https_url is None:
            raise StepFailed("the hub has no HTTPS URL (give --hub-https)")
        return self.target.https_url

    async def browser(self, actor: dict[str, Any]) -> aiohttp.ClientSession:
        """A cookie-keeping user agent per citizen (SSO sign-on lives in its cookies)."""
        name = actor["name"]
        if name not in self.browsers:
            self.browsers[name] = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        return self.browsers[name]

    def acknowledged(self, seen: Observed) -> None:
        """Note when the hub said to poll this acknowledged transaction again."""
        cid = seen.facts.get("correlation_id")
        if seen.facts.get("qualifier") == Qualifier.ACKNOWLEDGEMENT and cid:
            interval = float(seen.facts.get("poll_interval") or 1)
            self.poll_due[str(cid)] = time.monotonic() + interval

    def poll_wait(self, cid: str, *, again: bool) -> float:
        """Seconds to wait before polling `cid`: `again` after an acknowledgement in this step."""
        if self.polling == "interval":
            return max(0.0, self.poll_due.get(cid, 0.0) - time.monotonic())
        return EAGER_POLL_S if again else 0.0

    async def aclose(self) -> None:
        for browser in self.browsers.values():
            await browser.close()


def _basic(actor: Mapping[str, Any]) -> dict[str, str]:
    if not actor.get("user_id") or not actor.get("password"):
        raise StepFailed(f"{actor['name']} has no User ID and password")
    return {"Authorization": aiohttp.encode_basic_auth(actor["user_id"], actor["password"])}


async def _http(
    run: Run,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    session: aiohttp.ClientSession | None = None,
    allow_redirects: bool = True,
) -> Observed:
    http = session or run.session
    async with http.request(
        method,
        url,
        json=json_body,
        data=data,
        headers=dict(headers or {}),
        ssl=ssl_context
        if ssl_context is not None
        else (run.tls() if url.startswith("https") else True),
        allow_redirects=allow_redirects,
    ) as resp:
        text = await resp.text(errors="replace")
        seen = Observed(
            facts={
                "status": resp.status,
                "url": str(resp.url),
                "location": resp.headers.get("Location"),
            },
            sent=f"{method} {url}"
            + (f"\n{json.dumps(json_body, indent=2)}" if json_body is not None else ""),
            received=f"HTTP {resp.status}\n{text}",
        )
        if "json" in resp.headers.get("Content-Type", ""):
            try:
                seen.json = json.loads(text)
            except ValueError:
                pass
    seen.received = text
    return seen


def flag(p: Mapping[str, Any], name: str, default: bool) -> bool:
    """A true/false parameter; text such as "false" (a variable's value) is not taken as true."""
    value = p.get(name, default)
    if not isinstance(value, bool):
        raise StepFailed(f"{name} must be true or false, not {value!r}")
    return value


def number(p: Mapping[str, Any], name: str, default: float) -> float:
    """A numeric parameter; its value may come from a variable, so it is checked here too."""
    value = p.get(name, default)
    if not isinstance(value, bool):
        with contextlib.suppress(TypeError, ValueError):
            return float(value)
    raise StepFailed(f"{name} must be a number, not {value!r}")


def whole(p: Mapping[str, Any], name: str, default: int) -> int:
    """A whole-number parameter (amounts in pence), checked here as its value may be a variable's."""
    value = p.get(name, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and WHOLE.match(value):
        return int(value)
    raise StepFailed(f"{name} must be a whole number, not {value!r}")


def _must(seen: Observed, *statuses: int) -> Observed:
    if seen.facts["status"] not in statuses:
        raise StepFailed(
            f"HTTP {seen.facts['status']} from {seen.sent.splitlines()[0]}: {seen.received[:300]}"
        )
    return seen


# --- identity --------------------------------------------------------------------------------------


async def register(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p)
    password = p.get("password") or secrets.token_urlsafe(12)
    body = {"password": password, "display_name": p.get("display_name", actor["name"])}
    if p.get("kind"):
        body["kind"] = p["kind"]
    seen = await _http(run, "POST", f"{run.target.url}/api/registrations", json_body=body)
    if seen.facts["status"] == 201 and isinstance(seen.json, dict):
        actor.update(user_id=seen.json["user_id"], password=password)
        seen.facts["user_id"] = seen.json["user_id"]
    return seen


async def issue_certificate(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p)
    body = {"user_id": actor.get("user_id"), "common_name": p.get("common_name") or actor["name"]}
    seen = _must(
        await _http(run, "POST", f"{run.target.url}/admin/certificates", json_body=body), 201
    )
    issued = seen.json
    cert = run.workdir / f"{actor['name']}-{issued['serial']}.pem"
    key = run.workdir / f"{actor['name']}-{issued['serial']}.key"
    cert.write_text(issued["certificate_pem"])
    key.write_text(issued["key_pem"])
    key.chmod(0o600)
    actor.update(certificate=str(cert), key=str(key), serial=issued["serial"])
    seen.facts["serial"] = issued["serial"]
    return seen


async def revoke_certificate(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p)
    if not actor.get("serial"):
        raise StepFailed(f"{actor['name']} has no certificate issued in this scenario")
    url = f"{run.target.url}/admin/certificates/{actor['serial']}/revoke"
    return await _http(run, "POST", url, json_body={"reason": p.get("reason", "keyCompromise")})


async def enrol(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p)
    body = {
        "class": p.get("class"),
        "organisation": p.get("organisation"),
        "facts": p.get("facts", {}),
    }
    seen = await _http(
        run, "POST", f"{run.target.url}/api/enrolments", json_body=body, headers=_basic(actor)
    )
    if isinstance(seen.json, dict) and "id" in seen.json:
        actor["enrolment"] = seen.json["id"]
        seen.facts["enrolment"] = seen.json["id"]
    return seen


async def activate(run: Run, p: Mapping[str, Any]) -> Observed:
    """Read the newest letter the hub posted to the citizen, and activate with its PIN."""
    actor = run.actor(p)
    pin = p.get("pin")
    if pin is None:
        query = urlencode({"user_id": actor.get("user_id", "")})
        letters = _must(await _http(run, "GET", f"{run.target.url}/admin/letters?{query}"), 200)
        found = [PIN.search(letter["text"]) for letter in letters.json["letters"]]
        pins = [m.group(1) for m in found if m]
        if not pins:
            raise StepFailed(f"no activation PIN letter for {actor.get('user_id')}")
        pin = pins[-1]
    enrolment = p.get("enrolment", actor.get("enrolment"))
    url = f"{run.target.url}/api/enrolments/{enrolment}/activation"
    seen = await _http(run, "POST", url, json_body={"pin": str(pin)}, headers=_basic(actor))
    seen.facts["pin"] = pin
    return seen


async def sign_in(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p)
    method = p.get("method", "password")
    if method == "password":
        return await _http(run, "GET", f"{run.target.url}/api/enrolments", headers=_basic(actor))
    if method == "certificate":
        return await _http(run, "GET", f"{run.https()}/api/enrolments", ssl_context=run.tls(actor))
    if method == "sso":
        credential = str(p.get("credential", "password"))
        if credential not in ("password", "certificate"):
            raise StepFailed("sign_in credential is password or certificate")
        return await _sso(
            run, actor, run.actor(p, "portal"), str(p.get("scope", "openid gateway")), credential
        )
    raise StepFailed("sign_in method is password, certificate or sso")


async def _sso(
    run: Run, citizen: dict[str, Any], portal: dict[str, Any], scope: str, credential: str
) -> Observed:
    """The authorization code flow with PKCE, as the portal and the citizen's browser."""
    meta_seen = _must(
        await _http(run, "GET", f"{run.target.url}/.well-known/openid-configuration"), 200
    )
    meta = meta_seen.json
    if not portal.get("client_id"):
        redirect = f"http://127.0.0.1:9/{portal['name']}/callback"  # never fetched: the code is read off the redirect
        registered = _must(
            await _http(
                run,
                "POST",
                f"{run.target.url}/admin/sso/clients",
                json_body={
                    "client_name": portal.get("title") or portal["name"],
                    "organisation": portal["organisation"],
                    "redirect_uris": [redirect],
                },
            ),
            201,
        )
        portal.update(
            client_id=registered.json["client_id"],
            client_secret=registered.json["client_secret"],
            redirect_uri=redirect,
        )
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    state = secrets.token_urlsafe(8)
    query = urlencode(
        {
            "client_id": portal["client_id"],
            "redirect_uri": portal["redirect_uri"],
            "response_type": "code",
            "scope": scope,
            "state": state,
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    browser = await run.browser(citizen)
    with_certificate = credential == "certificate"
    tls = run.tls(citizen) if with_certificate else run.tls()
    seen = await _http(
        run,
        "GET",
        f"{meta['authorization_endpoint']}?{query}",
        session=browser,
        ssl_context=tls,
        allow_redirects=False,
    )
    location = seen.facts.get("location")
    page_shown = seen.facts["status"] == 200
    if page_shown:
        form_id = "certificate" if with_certificate else "password-form"
        found = html.fromstring(seen.received).xpath(f"//form[@id='{form_id}']")
        form = found[0] if isinstance(found, list) and found else None
        if not isinstance(form, html.FormElement):
            raise StepFailed(f"the sign-in page has no {form_id} form")
        data = {i.get("name"): i.get("value") or "" for i in form.inputs if i.get("name")}
        if form_id == "password-form":
            data.update(user_id=citizen.get("user_id", ""), password=citizen.get("password", ""))
        seen = await _http(
            run,
            "POST",
            meta["authorization_endpoint"],
            data=data,
            session=browser,
            ssl_context=tls,
            allow_redirects=False,
        )
        location = seen.facts.get("location")
    if not location:
        raise StepFailed(
            f"sign-in did not return to the portal (HTTP {seen.facts['status']}): {seen.received[:300]}"
        )
    params = parse_qs(urlsplit(location).query)
    if "code" not in params:
        seen.facts.update(status=401, error=params.get("error", ["?"])[0])
        return seen
    token = await _http(
        run,
        "POST",
        meta["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": portal["redirect_uri"],
            "code_verifier": verifier,
        },
        headers={
            "Authorization": aiohttp.encode_basic_auth(portal["client_id"], portal["client_secret"])
        },
        ssl_context=tls,
    )
    token.facts["sign_in_page"] = page_shown
    if token.facts["status"] == 200:
        tokens = token.json
        citizen.update(access_token=tokens["access_token"], id_token=tokens["id_token"])
        claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
        token.json = claims
        token.facts.update(sub=claims["sub"], acr=claims.get("acr"), sid=claims.get("sid"))
    return token


# --- GovTalk ---------------------------------------------------------------------------------------


def _demo_enrolment(actor: Mapping[str, Any], class_: str, organisation: str | None) -> Any:
    for enrolment in actor.get("demo_enrolments", ()):
        if enrolment.class_ == class_.removesuffix("-TIL") and organisation in (
            None,
            enrolment.organisation,
        ):
            return enrolment
    return None


def _body(
    run: Run, p: Mapping[str, Any], actor: Mapping[str, Any] | None, class_: str, where: str
) -> bytes:
    from gateway.scenario.checks import substitute

    if p.get("body") is not None:
        return str(p["body"]).encode("utf-8")
    if p.get("body_file"):
        return inside(run.scenario.directory, p["body_file"], where).read_bytes()
    if p.get("template"):
        text = inside(run.scenario.directory, p["template"], where).read_text(encoding="utf-8")
        return str(substitute(text, {**run.actors, **run.variables})).encode("utf-8")
    found = _demo_enrolment(actor or {}, class_, p.get("organisation"))
    if found is None:
        raise StepFailed("give body, body_file or template (no demo example for this class)")
    return str(found.example_body()).encode("utf-8")


def _observe_reply(sent: bytes, received: bytes, status: int) -> Observed:
    seen = Observed(
        facts={"status": status},
        sent=sent.decode("utf-8", "replace"),
        received=received.decode("utf-8", "replace"),
    )
    if status != 200:
        return seen
    reply = parse(received)
    message = reply.message
    seen.xml = etree.fromstring(received)
    seen.facts.update(
        qualifier=message.qualifier,
        function=message.function,
        correlation_id=message.correlation_id,
        poll_interval=message.poll_interval,
        response_end_point=message.response_end_point,
        gateway_timestamp=message.gateway_timestamp,
    )
    errors = seen.xml.xpath("//*[local-name()='Error']/*[local-name()='Number']/text()")
    if isinstance(errors, list) and errors:
        seen.facts["error_number"] = int(str(errors[0]))
        texts = seen.xml.xpath("//*[local-name()='Error']/*[local-name()='Text']/text()")
        seen.facts["error_text"] = str(texts[0]) if isinstance(texts, list) and texts else ""
    return seen


async def _post_envelope(run: Run, url: str, data: bytes, tls: ssl.SSLContext | None) -> Observed:
    async with run.session.post(
        url, data=data, headers={"Content-Type": "text/xml"}, ssl=tls if tls is not None else True
    ) as resp:
        seen = _observe_reply(data, await resp.read(), resp.status)
    run.acknowledged(seen)
    return seen


async def _until_final(
    run: Run, first: Observed, class_: str, base: str, tls: ssl.SSLContext | None, limit: float
) -> Observed:
    seen = first
    deadline = time.monotonic() + limit
    while seen.facts.get("qualifier") == Qualifier.ACKNOWLEDGEMENT and seen.facts.get(
        "correlation_id"
    ):
        cid = str(seen.facts["correlation_id"])
        wait = run.poll_wait(cid, again=True)
        if time.monotonic() + wait > deadline:
            asked = (
                f" (the hub asked to poll again after {wait:.1f} s)" if wait > EAGER_POLL_S else ""
            )
            raise StepFailed(f"no final answer within {limit:g} s{asked}")
        await asyncio.sleep(wait)
        envelope = serialise(requests.poll(class_, cid))
        seen = await _post_envelope(run, f"{base}/poll", envelope, tls)
    return seen


def _auth(
    run: Run, p: Mapping[str, Any], actor: dict[str, Any] | None
) -> tuple[str, str, ssl.SSLContext | None]:
    default = "password" if actor and actor.get("password") else "none"
    auth = str(p.get("auth", default))
    if auth not in ("password", "tls", "signed", "none"):
        raise StepFailed("auth is password, tls, signed or none")
    if auth == "tls":
        return auth, run.https(), run.tls(actor)
    return auth, run.target.url, None


async def submit(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p) if p.get("actor") else None
    class_ = str(p.get("class") or "")
    if not class_:
        raise StepFailed("submit needs a class")
    organisation = p.get("organisation")
    demo = _demo_enrolment(actor or {}, class_, organisation)
    keys = mapping(p, "keys") or (demo.keys if demo is not None else {})
    auth, base, tls = _auth(run, p, actor)
    envelope = requests.submission(
        class_,
        _body(run, p, actor, class_, run.where),
        sender_id=actor.get("user_id") if actor and auth != "none" else None,
        password=actor.get("password") if actor and auth == "password" else None,
        keys={str(k): str(v) for k, v in keys.items()},
        organisation=str(organisation or (demo.organisation if demo is not None else "")) or None,
        transaction_id=str(p.get("transaction_id", "1")),
        gateway_test=flag(p, "gateway_test", False),
        gateway_timestamp=str(p["gateway_timestamp"]) if p.get("gateway_timestamp") else None,
    )
    data = serialise(envelope)
    if auth == "signed":
        from gateway.identity.signing import sign_envelope

        assert actor is not None
        if not actor.get("certificate"):
            raise StepFailed(f"{actor['name']} has no certificate to sign with")
        cert, key = Path(actor["certificate"]), Path(actor["key"])
        data = await asyncio.to_thread(
            lambda: sign_envelope(data, cert.read_bytes(), key.read_bytes())
        )
    seen = await _post_envelope(run, f"{base}/submission", data, tls)
    if flag(p, "until_final", False):
        final = await _until_final(run, seen, class_, base, tls, number(p, "timeout", 30))
        final.sent = seen.sent
        final.facts.setdefault("correlation_id", seen.facts.get("correlation_id"))
        return final
    return seen


async def poll(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p) if p.get("actor") else None
    _, base, tls = _auth(run, p, actor)
    class_, cid = str(p.get("class")), str(p.get("correlation_id"))
    await asyncio.sleep(run.poll_wait(cid, again=False))
    seen = await _post_envelope(run, f"{base}/poll", serialise(requests.poll(class_, cid)), tls)
    if flag(p, "until_final", True):
        return await _until_final(run, seen, class_, base, tls, number(p, "timeout", 30))
    return seen


async def delete(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p) if p.get("actor") else None
    _, base, tls = _auth(run, p, actor)
    envelope = requests.delete(str(p.get("class")), str(p.get("correlation_id")))
    return await _post_envelope(run, f"{base}/submission", serialise(envelope), tls)


async def list_(run: Run, p: Mapping[str, Any]) -> Observed:
    actor = run.actor(p)
    envelope = requests.data_request(
        str(p.get("class")), sender_id=actor.get("user_id", ""), password=actor.get("password", "")
    )
    seen = await _post_envelope(run, f"{run.target.url}/submission", serialise(envelope), None)
    if seen.xml is not None:
        seen.facts["count"] = len(seen.xml.xpath("//*[local-name()='StatusRecord']"))  # type: ignore[arg-type]
    return seen


# --- mail, payments --------------------------------------------------------------------------------


def _council_headers(council: Mapping[str, Any]) -> dict[str, str]:
    if council.get("token"):
        return {"Authorization": f"Bearer {council['token']}"}
    return {"X-Council": str(council["organisation"])}


async def send_mail(run: Run, p: Mapping[str, Any]) -> Observed:
    council = run.actor(p, "council")
    body = {
        "class": p.get("class", "LA-CTAX-VIEW"),
        "key_type": p.get("identifier_type", "CTaxAccountRef"),
        "key_value": p.get("identifier"),
        "subject": p.get("subject", "A message from your council"),
        "body": p.get("body", "Please read this message."),
        "sender_message_id": p.get("sender_message_id") or secrets.token_hex(8),
    }
    if p.get("expires_at"):
        body["expires_at"] = p["expires_at"]
    seen = await _http(
        run,
        "POST",
        f"{run.target.url}/api/council/mail",
        json_body=body,
        headers=_council_headers(council),
    )
    if isinstance(seen.json, dict) and "id" in seen.json:
        seen.facts["message_id"] = seen.json["id"]
    return seen


async def read_mail(run: Run, p: Mapping[str, Any]) -> Observed:
    """Open the newest message (with this subject, if given) from the citizen's mailbox."""
    actor = run.actor(p)
    headers = (
        {"Authorization": f"Bearer {actor['access_token']}"}
        if p.get("via") == "sso"
        else _basic(actor)
    )
    listing = _must(await _http(run, "GET", f"{run.target.url}/api/mail", headers=headers), 200)
    # Newest first; subjects are encrypted at rest and listed only when a message is opened.
    for summary in sorted(listing.json["messages"], key=lambda m: m["created_at"], reverse=True):
        seen = await _http(
            run, "GET", f"{run.target.url}/api/mail/{summary['id']}", headers=headers
        )
        if not p.get("subject") or (
            isinstance(seen.json, dict) and seen.json.get("subject") == p["subject"]
        ):
            seen.facts.update(message_id=summary["id"], count=len(listing.json["messages"]))
            return seen
    listing.facts.update(status=404, count=0)
    return listing


async def pay(run: Run, p: Mapping[str, Any]) -> Observed:
    """Create a payment as the council, then pay on the hosted page as a person would."""
    council = run.actor(p, "council")
    body = {
        "amount": whole(p, "amount_pence", 1000),
        "reference": str(p.get("reference", "")),
        "council": council["organisation"],
        "description": str(p.get("description", "Council Tax")),
        "return_url": "https://council.example/return",
    }
    created = _must(
        await _http(
            run, "POST", f"{run.target.url}/api/payments", json_body=body,
            headers={**_council_headers(council), "Idempotency-Key": secrets.token_hex(12)},
        ),
        201,
    )  # fmt: skip
    payment = created.json
    page_url = payment["next_url"]
    page = _must(await _http(run, "GET", page_url), 200)
    expiry_month, _, expiry_year = str(p.get("expiry", "12/2030")).partition("/")
    form = {
        "action": "pay",
        "card-number": str(p.get("card", "4242424242424242")),
        "expiry-month": expiry_month,
        "expiry-year": expiry_year,
        "cardholder-name": "Scenario Runner",
        "cvc": str(p.get("cvc", "123")),
    }
    # The page sends the person back to the council's return_url: not followed, as a portal would.
    await _http(run, "POST", page_url, data=form, allow_redirects=False)
    seen = await _http(
        run,
        "GET",
        f"{run.target.url}/api/payments/{payment['payment_id']}",
        headers=_council_headers(council),
    )
    seen.sent = f"{page.sent}\ncard {form['card-number']}"
    if isinstance(seen.json, dict):
        seen.facts.update(payment_id=payment["payment_id"], state=seen.json.get("state"))
    return seen


# --- the hub itself --------------------------------------------------------------------------------


def seconds(value: Any) -> float:
    """A duration: a number of seconds, or text like 90s, 15m, 2h, 29d."""
    match = DURATION.match(str(value))
    if match is None:
        raise StepFailed(f"{value!r} is not a duration (e.g. 30, 15m, 2h, 29d)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


async def clock(run: Run, p: Mapping[str, Any]) -> Observed:
    body = {"set": p["set"]} if p.get("set") else {"advance_seconds": seconds(p.get("advance", 0))}
    return _must(await _http(run, "POST", f"{run.target.url}/admin/clock", json_body=body), 200)


async def fault(run: Run, p: Mapping[str, Any]) -> Observed:
    url = f"{run.target.url}/admin/faults/{p.get('connector')}"
    if flag(p, "clear", False):
        return await _http(run, "DELETE", url)
    return await _http(
        run, "PUT", url, json_body={"fault": p.get("set"), "params": p.get("params", {})}
    )


async def http_call(run: Run, p: Mapping[str, Any]) -> Observed:
    method = str(p.get("method", "GET")).upper()
    path = str(p.get("path", "/"))
    headers = {str(k): str(v) for k, v in mapping(p, "headers").items()}
    auth = p.get("auth")
    tls = None
    base = run.target.url
    if auth is not None or p.get("actor"):
        actor = run.actor(p)
        if auth in (None, "password"):
            headers.update(_basic(actor))
        elif auth == "tls":
            base, tls = run.https(), run.tls(actor)
        elif auth == "bearer":
            headers["Authorization"] = f"Bearer {actor.get('access_token') or actor.get('token')}"
        elif auth != "none":
            raise StepFailed("http auth is password, tls, bearer or none")
    url = path if path.startswith(("http://", "https://")) else f"{base}{path}"
    body = p.get("body")
    return await _http(
        run,
        method,
        url,
        json_body=p.get("json"),
        data=body.encode() if isinstance(body, str) else None,
        headers=headers,
        ssl_context=tls,
    )


async def sleep(run: Run, p: Mapping[str, Any]) -> Observed:
    await asyncio.sleep(seconds(p.get("seconds", 1)))
    return Observed(facts={"status": 200})


STEPS: dict[str, Callable[[Run, Mapping[str, Any]], Awaitable[Observed]]] = {
    "register": register,
    "issue_certificate": issue_certificate,
    "enrol": enrol,
    "activate": activate,
    "sign_in": sign_in,
    "submit": submit,
    "poll": poll,
    "delete": delete,
    "list": list_,
    "send_mail": send_mail,
    "read_mail": read_mail,
    "pay": pay,
    "revoke_certificate": revoke_certificate,
    "clock": clock,
    "fault": fault,
    "http": http_call,
    "sleep": sleep,
}
