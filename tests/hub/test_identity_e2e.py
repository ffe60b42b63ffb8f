"""Certificates end to end through the running hub: mutual TLS, signed envelopes, revocation
mid-session, authentication level 2 — over real TLS with the hub's own PKI."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.clock import MovableClock, utcnow
from gateway.demo import certificate_paths, citizens_list
from gateway.identity.signing import sign_envelope
from gateway.pki.ca import Pki
from gateway.pki.tls import client_ssl_context
from tests.conftest import Hub
from tests.hub import wire
from tests.hub.test_dsp import VIEW, acknowledged, poll_until_final

CITIZEN = citizens_list()[0]
ENROLMENT = CITIZEN.enrolments[0]


def unsigned(**overrides) -> str:
    """A View Council Tax submission carrying Keys but no credentials in the envelope."""
    args = {"keys": ENROLMENT.keys, "organisation": ENROLMENT.organisation, "user": None}
    args.update(overrides)
    return wire.submission(VIEW, ENROLMENT.example_body(), **args)


def pki_of(hub: Hub) -> Pki:
    return Pki.load(hub.config.pki_dir)


async def https_post(
    hub: Hub, xml: bytes | str, cert: Path | None = None, key: Path | None = None
) -> wire.Reply:
    assert hub.https_url
    context = client_ssl_context(pki_of(hub).ca_bundle_path, cert, key)
    data = xml.encode() if isinstance(xml, str) else xml
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{hub.https_url}/submission", data=data, ssl=context) as resp,
    ):
        assert resp.status == 200
        return wire.read(await resp.read())


@pytest.fixture
async def tls_hub(hub_factory) -> Hub:
    return await hub_factory(https=True)


async def test_mutual_tls_authenticates_the_citizen(tls_hub: Hub) -> None:
    cert, key = certificate_paths(tls_hub.config, CITIZEN.user_id)
    ack = await https_post(tls_hub, unsigned(), cert, key)
    assert ack.qualifier == "acknowledgement", ack.errors
    assert ack.endpoint == f"{tls_hub.https_url}/poll"
    assert ack.correlation_id
    assert (await poll_until_final(tls_hub, VIEW, ack.correlation_id)).qualifier == "response"


async def test_no_certificate_and_no_password_is_refused(tls_hub: Hub) -> None:
    reply = await https_post(tls_hub, unsigned())
    assert reply.error_number == 1046
    assert "requires authentication" in reply.errors[0]["text"]


async def test_unregistered_expired_and_revoked_certificates_are_refused(tls_hub: Hub) -> None:
    pki = pki_of(tls_hub)
    stranger = pki.issue("stranger", common_name="Not A Gateway User")
    reply = await https_post(tls_hub, unsigned(), stranger.cert_path, stranger.key_path)
    assert reply.error_number == 1046 and "not registered" in reply.errors[0]["text"]

    now = utcnow()
    old = pki.issue(
        "old",
        common_name="Expired",
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=35),
    )
    reply = await https_post(tls_hub, unsigned(), old.cert_path, old.key_path)
    assert reply.error_number == 1046 and "expired" in reply.errors[0]["text"]


async def test_certificate_revoked_mid_session_is_refused_on_next_use(tls_hub: Hub) -> None:
    cert, key = certificate_paths(tls_hub.config, CITIZEN.user_id)
    first = await https_post(tls_hub, unsigned(), cert, key)
    assert first.qualifier == "acknowledgement", first.errors
    serial = next(e.serial for e in pki_of(tls_hub).entries() if e.name == CITIZEN.user_id)
    # Revoked by the operator's CLI, another process as far as the hub is concerned.
    config = tls_hub.config
    toml = config.data_dir.parent / "revoke.toml"
    toml.write_text(f'[pki]\ndir = "{config.pki_dir}"\nbase_url = "{config.pki_base_url}"\n')
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        [
            "--config",
            str(toml),
            "certs",
            "revoke",
            format(serial, "x"),
            "--reason",
            "keyCompromise",
        ],
    )
    assert result.exit_code == 0, result.output
    second = await https_post(tls_hub, unsigned(), cert, key)
    assert second.error_number == 1046
    assert "revoked" in second.errors[0]["text"] and "keyCompromise" in second.errors[0]["text"]
    # A password cannot ride along with a revoked certificate either.
    with_password = unsigned(user=CITIZEN.user_id, password=CITIZEN.password)
    assert (await https_post(tls_hub, with_password, cert, key)).error_number == 1046


async def test_mutual_tls_still_works_with_the_hubs_clock_moved_on(hub_factory) -> None:
    # The hub checks its own OCSP and CRL answers by its movable clock: they must be dated by it.
    clock = MovableClock()
    hub = await hub_factory(https=True, clock=clock)
    cert, key = certificate_paths(hub.config, CITIZEN.user_id)
    assert (await https_post(hub, unsigned(), cert, key)).qualifier == "acknowledgement"
    clock.advance(timedelta(hours=2))  # past the answers' hour of validity
    reply = await https_post(hub, unsigned(transaction_id="0002"), cert, key)
    assert reply.qualifier == "acknowledgement", reply.errors


async def test_signed_envelope_accepted_then_replay_and_tampering_refused(hub: Hub) -> None:
    cert, key = certificate_paths(hub.config, CITIZEN.user_id)
    signed = sign_envelope(unsigned().encode(), cert.read_bytes(), key.read_bytes())
    cid = await acknowledged(hub, signed)
    assert (await poll_until_final(hub, VIEW, cid)).qualifier == "response"

    replayed = wire.read(await hub.post(signed))
    assert replayed.error_number == 1002 and "replayed" in replayed.errors[0]["text"]

    fresh = sign_envelope(
        unsigned(transaction_id="0002").encode(), cert.read_bytes(), key.read_bytes()
    )
    tampered = fresh.replace(ENROLMENT.account_ref.encode(), b"SUN00000000", 1)
    assert tampered != fresh
    reply = wire.read(await hub.post(tampered))
    assert reply.error_number == 1002, reply.errors


async def test_signed_envelope_with_a_value_is_1040(hub: Hub) -> None:
    cert, key = certificate_paths(hub.config, CITIZEN.user_id)
    signed = sign_envelope(unsigned().encode(), cert.read_bytes(), key.read_bytes())
    with_value = signed.replace(b"</Method>", b"</Method><Value>secret</Value>", 1)
    reply = wire.read(await hub.post(with_value))
    assert reply.error_number == 1040


async def level_2_hub(hub_factory) -> Hub:
    """The demo hub with View Council Tax at level 2 (a certificate required)."""
    route = {
        "class": VIEW,
        "organisation": ENROLMENT.organisation,
        "connector": f"council-{ENROLMENT.organisation}",
        "auth_level": 2,
    }
    return await hub_factory({"routes": [route]}, https=True)


async def test_level_2_route_needs_a_certificate(hub_factory) -> None:
    hub = await level_2_hub(hub_factory)
    with_password = unsigned(user=CITIZEN.user_id, password=CITIZEN.password)
    refused = wire.read(await hub.post(with_password))
    assert refused.error_number == 1046 and "requires a certificate" in refused.errors[0]["text"]
    cert, key = certificate_paths(hub.config, CITIZEN.user_id)
    accepted = await https_post(hub, with_password, cert, key)
    assert accepted.qualifier == "acknowledgement", accepted.errors
    signed = sign_envelope(unsigned().encode(), cert.read_bytes(), key.read_bytes())
    assert wire.read(await hub.post(signed)).qualifier == "acknowledgement"


async def test_a_data_request_for_a_level_2_class_needs_a_certificate_too(hub_factory) -> None:
    # Its report holds CorrelationIDs, each a capability to read an answer that took a
    # certificate to ask for.
    hub = await level_2_hub(hub_factory)
    cert, key = certificate_paths(hub.config, CITIZEN.user_id)
    ack = await https_post(hub, unsigned(), cert, key)
    assert ack.qualifier == "acknowledgement", ack.errors
    assert ack.correlation_id
    listing = wire.data_request(VIEW, CITIZEN.user_id, CITIZEN.password)
    refused = wire.read(await hub.post(listing))
    assert refused.error_number == 1046 and "needs a certificate" in refused.errors[0]["text"]
    assert ack.correlation_id not in refused.raw.decode()
    listed = await https_post(hub, listing, cert, key)
    assert listed.qualifier == "response", listed.errors
    assert ack.correlation_id in listed.raw.decode()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_with_a_client_certificate(tls_hub: Hub, tmp_path: Path) -> None:
    cert, key = certificate_paths(tls_hub.config, CITIZEN.user_id)
    request = tmp_path / "submission.xml"
    request.write_text(unsigned())
    result = await asyncio.to_thread(
        subprocess.run,
        [
            "curl",
            "-sS",
            "--fail",
            "--cacert",
            str(pki_of(tls_hub).ca_bundle_path),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "-H",
            "Content-Type: text/xml",
            "--data-binary",
            f"@{request}",
            f"{tls_hub.https_url}/submission",
        ],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    reply = wire.read(result.stdout)
    assert reply.qualifier == "acknowledgement", reply.errors


async def test_certificate_only_citizen_registers_and_enrols_over_mutual_tls(tls_hub: Hub) -> None:
    from connectors.simcouncil.dataset import generate

    issued = pki_of(tls_hub).issue("certonly", common_name="Cert Only Citizen")
    async with tls_hub.session.post(
        f"{tls_hub.url}/api/registrations",
        json={
            "kind": "individual",
            "display_name": "Cert Only",
            "certificate_pem": issued.cert_path.read_text(),
        },
    ) as resp:
        assert resp.status == 201, await resp.text()
        user_id = (await resp.json())["user_id"]
    prop = generate("E08000024")[17]
    facts = {
        "CTaxAccountRef": prop.account_ref,
        "PostCode": prop.address.postcode,
        "Surname": prop.liable[0].surname,
    }
    context = client_ssl_context(pki_of(tls_hub).ca_bundle_path, issued.cert_path, issued.key_path)
    body = {"class": VIEW, "organisation": "E08000024", "facts": facts}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{tls_hub.https_url}/api/enrolments", json=body, ssl=context
        ) as resp:
            assert resp.status == 202, await resp.text()
        # Without the certificate (and with no password to fall back on) the API refuses.
        plain = client_ssl_context(pki_of(tls_hub).ca_bundle_path)
        async with session.get(f"{tls_hub.https_url}/api/enrolments", ssl=plain) as resp:
            assert resp.status == 401
    async with tls_hub.session.get(
        f"{tls_hub.url}/admin/letters", params={"user_id": user_id}
    ) as resp:
        letters = (await resp.json())["letters"]
    assert len(letters) == 1 and prop.address.postcode in "\n".join(letters[0]["address"])
