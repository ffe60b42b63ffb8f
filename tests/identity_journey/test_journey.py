"""Registration, enrolment with known facts, the PIN letter and activation, over real HTTP."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from connectors.simcouncil.dataset import generate
from connectors.simcouncil.examples import example_request
from connectors.simcouncil.known_facts import address_lines
from connectors.simcouncil.model import Property
from tests.hub import wire
from tests.identity_journey.conftest import IdentityHub

SUNDERLAND = "E08000024"
VIEW = "LA-CTAX-VIEW"
PASSWORD = "correct horse battery"
PIN_RE = re.compile(r"activation PIN is: ([A-Z0-9]{6,8})")


def account(index: int = 10) -> Property:
    return generate(SUNDERLAND)[index]


def facts_for(prop: Property, **overrides: str) -> dict[str, str]:
    facts = {
        "CTaxAccountRef": prop.account_ref,
        # Given as people type them: lower case, without the space.
        "PostCode": prop.address.postcode.replace(" ", "").lower(),
        "Surname": prop.liable[0].surname.upper(),
    }
    facts.update(overrides)
    return facts


def self_signed_pem(name: str = "Test Citizen") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


async def register(hub: IdentityHub, **body: str) -> str:
    payload = {"kind": "individual", "display_name": "Ada Citizen", "password": PASSWORD}
    payload.update(body)
    status, data, _ = await hub.call("POST", "/api/registrations", json=payload)
    assert status == 201, data
    user_id = data["user_id"]
    assert isinstance(user_id, str)
    return user_id


async def enrol(hub: IdentityHub, user_id: str, facts: dict[str, str], class_: str = VIEW):
    return await hub.call(
        "POST",
        "/api/enrolments",
        json={"class": class_, "organisation": SUNDERLAND, "facts": facts},
        auth=(user_id, PASSWORD),
    )


async def activate(hub: IdentityHub, user_id: str, enrolment_id: int, pin: str):
    return await hub.call(
        "POST",
        f"/api/enrolments/{enrolment_id}/activation",
        json={"pin": pin},
        auth=(user_id, PASSWORD),
    )


async def letters(hub: IdentityHub, user_id: str) -> list[dict]:
    status, data, _ = await hub.call("GET", f"/admin/letters?user_id={user_id}")
    assert status == 200, data
    return list(data["letters"])


def pin_of(letter: dict) -> str:
    found = PIN_RE.search(letter["text"])
    assert found, letter["text"]
    return found.group(1)


# --- registration --------------------------------------------------------------------------------


async def test_register_each_kind_gets_a_12_character_user_id(ihub: IdentityHub) -> None:
    seen = set()
    for kind in ("individual", "organisation", "agent"):
        status, data, _ = await ihub.call(
            "POST",
            "/api/registrations",
            json={"kind": kind, "display_name": f"A {kind}", "password": PASSWORD},
        )
        assert status == 201, data
        assert data["kind"] == kind
        assert re.fullmatch(r"[A-Z0-9]{12}", data["user_id"])
        seen.add(data["user_id"])
    assert len(seen) == 3


async def test_registration_refusals_are_problems(ihub: IdentityHub) -> None:
    cases = [
        ({"kind": "individual", "password": "short"}, 400, "at least 8"),
        ({"kind": "individual", "display_name": "No credential"}, 400, "password, a certificate"),
        ({"kind": "alien", "password": PASSWORD}, 400, "kind"),
        ({"kind": "individual", "certificate_pem": "not a pem"}, 400, "certificate"),
    ]
    for body, status, words in cases:
        got, data, resp = await ihub.call("POST", "/api/registrations", json=body)
        assert got == status, data
        assert resp.content_type == "application/problem+json"
        assert words in data["detail"]


async def test_register_with_certificate_and_duplicate_is_conflict(ihub: IdentityHub) -> None:
    pem = self_signed_pem().decode()
    status, data, _ = await ihub.call(
        "POST", "/api/registrations", json={"kind": "agent", "certificate_pem": pem}
    )
    assert status == 201, data
    status, data, _ = await ihub.call(
        "POST", "/api/registrations", json={"kind": "individual", "certificate_pem": pem}
    )
    assert status == 409, data
    assert "already registered" in data["detail"]


async def test_enrolments_need_basic_auth(ihub: IdentityHub) -> None:
    user_id = await register(ihub)
    status, data, resp = await ihub.call("GET", "/api/enrolments")
    assert status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic ")
    status, data, _ = await ihub.call("GET", "/api/enrolments", auth=(user_id, "wrong-password"))
    assert status == 401
    status, data, _ = await ihub.call("GET", "/api/enrolments", auth=(user_id, PASSWORD))
    assert status == 200 and data["enrolments"] == []


# --- enrolment -----------------------------------------------------------------------------------


async def test_wrong_facts_count_down_then_lock_until_the_clock_moves(ihub: IdentityHub) -> None:
    user_id = await register(ihub)
    prop = account()
    wrong = facts_for(prop, Surname="Nobody-Of-That-Name")
    for remaining in (2, 1):
        status, data, _ = await enrol(ihub, user_id, wrong)
        assert status == 422, data
        assert data["attempts_remaining"] == remaining
        assert "Surname" not in data["detail"]  # never says which fact was wrong
    status, data, _ = await enrol(ihub, user_id, wrong)
    assert status == 423, data
    until = datetime.fromisoformat(data["locked_until"])
    assert until - ihub.clock() > timedelta(minutes=29)
    # Locked: even the right facts are refused, and no letter goes out.
    status, data, _ = await enrol(ihub, user_id, facts_for(prop))
    assert status == 423, data
    assert await letters(ihub, user_id) == []

    ihub.clock.advance(timedelta(minutes=31))
    status, data, _ = await enrol(ihub, user_id, wrong)
    assert status == 422 and data["attempts_remaining"] == 2  # the counter started again
    status, data, _ = await enrol(ihub, user_id, facts_for(prop))
    assert status == 202, data


async def test_journey_enrol_letter_activate_and_submit(ihub: IdentityHub) -> None:
    user_id = await register(ihub, display_name="Ada Citizen")
    prop = account()
    status, data, _ = await enrol(ihub, user_id, facts_for(prop))
    assert status == 202, data
    assert data["state"] == "awaiting_activation" and data["letter"] == "sent"
    enrolment_id = data["id"]

    [letter] = await letters(ihub, user_id)
    assert letter["kind"] == "activation_pin"
    assert letter["enrolment_id"] == enrolment_id
    assert letter["address"] == list(address_lines(prop.address))
    assert letter["address"][-1] == prop.address.postcode
    assert "Sunderland City Council" in letter["text"] and VIEW in letter["text"]
    expires = (ihub.clock() + timedelta(days=28)).strftime("%B %Y")
    assert expires in letter["text"]
    arrives = datetime.fromisoformat(letter["arrives_at"])
    assert timedelta(days=6) < arrives - ihub.clock() <= timedelta(days=7)
    pin = pin_of(letter)

    # Not active yet: a submission with those Keys is refused.
    body = example_request(VIEW, prop.account_ref, SUNDERLAND).decode()
    keys = {"CTaxAccountRef": prop.account_ref}
    envelope = wire.submission(
        VIEW, body, user=user_id, password=PASSWORD, keys=keys, organisation=SUNDERLAND
    )
    early = wire.read(await ihub.post_xml(envelope))
    assert early.qualifier == "error", early.raw

    wrong_pin = "ZZZZZZZZ" if pin != "ZZZZZZZZ" else "YYYYYYYY"
    status, data, _ = await activate(ihub, user_id, enrolment_id, wrong_pin)
    assert status == 422 and data["attempts_remaining"] == 2, data

    status, data, _ = await activate(ihub, user_id, enrolment_id, pin.lower())
    assert status == 200, data
    assert data["state"] == "active"
    assert data["keys"] == keys

    status, data, _ = await ihub.call("GET", "/api/enrolments", auth=(user_id, PASSWORD))
    assert [(e["id"], e["state"]) for e in data["enrolments"]] == [(enrolment_id, "active")]

    # The PIN is single use.
    status, data, _ = await activate(ihub, user_id, enrolment_id, pin)
    assert status == 409, data
    # Enrolling again for an active service is a conflict.
    status, data, _ = await enrol(ihub, user_id, facts_for(prop))
    assert status == 409, data

    # The Keys now authorise a View Council Tax submission with the user's password.
    ack = wire.read(await ihub.post_xml(envelope))
    assert ack.qualifier == "acknowledgement", ack.errors
    assert ack.correlation_id
    for _ in range(200):
        reply = wire.read(await ihub.post_xml(wire.poll(VIEW, ack.correlation_id), "/poll"))
        if reply.qualifier != "acknowledgement":
            break
        await asyncio.sleep(0.05)
    assert reply.qualifier == "response", reply.errors
    assert reply.body is not None
    assert prop.account_ref in "".join(reply.body.itertext())


async def test_expired_pin_is_refused_and_a_new_request_posts_a_new_one(ihub: IdentityHub) -> None:
    user_id = await register(ihub)
    prop = account(11)
    status, data, _ = await enrol(ihub, user_id, facts_for(prop))
    assert status == 202, data
    enrolment_id = data["id"]
    [first] = await letters(ihub, user_id)

    ihub.clock.advance(timedelta(days=29))
    status, data, _ = await activate(ihub, user_id, enrolment_id, pin_of(first))
    assert status == 410, data
    assert "expired on" in data["detail"] and "request a new one" in data["detail"]

    status, data, _ = await enrol(ihub, user_id, facts_for(prop))
    assert status == 202 and data["id"] == enrolment_id, data
    first_again, second = await letters(ihub, user_id)
    assert first_again["id"] == first["id"] and second["id"] != first["id"]
    # Only the newest PIN works.
    if pin_of(first) != pin_of(second):
        status, data, _ = await activate(ihub, user_id, enrolment_id, pin_of(first))
        assert status == 422, data
    status, data, _ = await activate(ihub, user_id, enrolment_id, pin_of(second))
    assert status == 200 and data["state"] == "active", data


async def test_wrong_pins_lock_the_enrolment(ihub: IdentityHub) -> None:
    user_id = await register(ihub)
    status, data, _ = await enrol(ihub, user_id, facts_for(account(12)))
    enrolment_id = data["id"]
    [letter] = await letters(ihub, user_id)
    pin = pin_of(letter)
    wrong = "ZZZZZZZZ" if pin != "ZZZZZZZZ" else "YYYYYYYY"
    for expected in (422, 422, 423):
        status, data, _ = await activate(ihub, user_id, enrolment_id, wrong)
        assert status == expected, data
    status, data, _ = await activate(ihub, user_id, enrolment_id, pin)
    assert status == 423, data
    ihub.clock.advance(timedelta(hours=1))
    status, data, _ = await activate(ihub, user_id, enrolment_id, pin)
    assert status == 200, data


async def test_another_user_cannot_activate_someone_elses_enrolment(ihub: IdentityHub) -> None:
    owner = await register(ihub)
    other = await register(ihub, display_name="Mallory")
    status, data, _ = await enrol(ihub, owner, facts_for(account(13)))
    assert status == 202
    [letter] = await letters(ihub, owner)
    status, data, _ = await activate(ihub, other, data["id"], pin_of(letter))
    assert status == 404, data
    status, data, _ = await activate(ihub, owner, 999999, "ABCDEFGH")
    assert status == 404, data


async def test_unknown_service_and_bad_bodies(ihub: IdentityHub) -> None:
    user_id = await register(ihub)
    status, data, _ = await enrol(ihub, user_id, facts_for(account()), class_="LA-NOPE")
    assert status == 422 and "offers no service" in data["detail"], data
    status, data, _ = await ihub.call(
        "POST", "/api/enrolments", json=[1, 2], auth=(user_id, PASSWORD)
    )
    assert status == 400, data
    status, data, _ = await ihub.call(
        "POST",
        "/api/enrolments",
        json={"class": VIEW, "organisation": SUNDERLAND, "facts": {"a": 1}},
        auth=(user_id, PASSWORD),
    )
    assert status == 400, data
