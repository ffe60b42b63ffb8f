"""The demo hub's citizens: seeded user IDs, passwords and enrolments at the two demo councils."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from gateway.config import DEMO_COUNCILS, DEMO_ELECTORAL, DEMO_JOURNEYS, Config
from gateway.identity import citizens
from gateway.identity.registration import DuplicateCertificate, add_certificate
from gateway.pki.ca import Pki
from gateway.store.engine import Database

SUNDERLAND, SEDGEMOOR = "E08000024", "E07000188"
VIEW, SPD = "LA-CTAX-VIEW", "LA-CTAX-SPD"
KEY_TYPE = "CTaxAccountRef"


@dataclass(frozen=True, slots=True)
class DemoEnrolment:
    class_: str
    organisation: str
    account_ref: str

    @property
    def keys(self) -> dict[str, str]:
        return {KEY_TYPE: self.account_ref}

    def example_body(self) -> str:
        from connectors.simcouncil.examples import example_request

        return example_request(self.class_, self.account_ref, self.organisation).decode("utf-8")


@dataclass(frozen=True, slots=True)
class DemoCitizen:
    user_id: str
    password: str
    display_name: str
    enrolments: tuple[DemoEnrolment, ...]


def _both(organisation: str, account_ref: str) -> tuple[DemoEnrolment, ...]:
    return (
        DemoEnrolment(VIEW, organisation, account_ref),
        DemoEnrolment(SPD, organisation, account_ref),
    )


@cache
def citizens_list() -> tuple[DemoCitizen, ...]:
    """Deterministic demo citizens; user IDs in the Gateway's 12-character form."""
    from connectors.simcouncil.examples import spd_eligible_account_refs

    sun = spd_eligible_account_refs(SUNDERLAND)
    sed = spd_eligible_account_refs(SEDGEMOOR)
    return (
        DemoCitizen(
            "DEMO0SUN0001",
            "sunderland-demo-1",
            "Demo citizen of Sunderland",
            _both(SUNDERLAND, sun[0]),
        ),
        DemoCitizen(
            "DEMO0SED0001",
            "sedgemoor-demo-1",
            "Demo citizen of Sedgemoor",
            _both(SEDGEMOOR, sed[0]),
        ),
        # Moving from Sedgemoor to Sunderland: enrolled at both councils.
        DemoCitizen(
            "DEMO0MOV0001",
            "moving-demo-1",
            "Demo citizen moving house",
            _both(SEDGEMOOR, sed[1]) + _both(SUNDERLAND, sun[1]),
        ),
        # Registered, enrolled for nothing yet: the enrolment journey (known facts, letter, PIN).
        DemoCitizen("DEMO0NEW0001", "newcomer-demo-1", "Demo citizen not yet enrolled", ()),
    )


def certificate_paths(config: Config, user_id: str) -> tuple[Path, Path]:
    """Where a demo citizen's certificate and private key (PEM) live."""
    issued = config.pki_dir / "issued"
    return issued / f"{user_id}.pem", issued / f"{user_id}.key"


def ensure_certificates(config: Config) -> Pki:
    """The hub's PKI with a client certificate for every demo citizen (PKCS#12 passphrase: the
    citizen's password)."""
    pki = Pki.ensure(config.pki_dir, base_url=config.pki_base_url, hosts=config.pki.hosts)
    for citizen in citizens_list():
        if not certificate_paths(config, citizen.user_id)[0].exists():
            pki.issue(
                citizen.user_id,
                common_name=citizen.display_name,
                kind="citizen",
                passphrase=citizen.password,
            )
    return pki


async def seed(db: Database, config: Config) -> None:
    """Register the demo citizens and their certificates where not there yet (idempotent)."""
    wanted = citizens_list()
    present = await citizens.existing_user_ids(db, [c.user_id for c in wanted])
    await asyncio.to_thread(ensure_certificates, config)
    for citizen in wanted:
        if citizen.user_id not in present:
            await citizens.register(
                db,
                citizen.user_id,
                citizen.password,
                display_name=citizen.display_name,
                enrol=[(e.class_, e.organisation, e.keys) for e in citizen.enrolments],
            )
        pem = certificate_paths(config, citizen.user_id)[0].read_bytes()
        # A certificate already registered (or replaced by hand) is left as it is.
        with contextlib.suppress(DuplicateCertificate):
            await add_certificate(db, citizen.user_id, pem)


def base_url(config: Config) -> str:
    if config.server.public_url:
        return config.server.public_url.rstrip("/")
    host = config.server.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{config.server.port}"


def info(config: Config) -> dict[str, Any]:
    """Everything a client needs to talk to the demo hub (`gateway demo info --json`)."""
    base = base_url(config)
    organisations = {r.organisation: r.organisation_name for r in config.routes}
    pki = ensure_certificates(config) if config.demo else None
    https = f"https://localhost:{config.server.https_port}" if config.server.https_port else None
    return {
        "submission_url": f"{base}/submission",
        "poll_url": f"{base}/poll",
        "https_submission_url": f"{https}/submission" if https else None,
        "https_poll_url": f"{https}/poll" if https else None,
        "ca_bundle": str(pki.ca_bundle_path.resolve()) if pki else None,
        # OpenID Connect discovery for council portals (register one: `gateway sso clients add`).
        "sso_issuer": config.sso_issuer,
        "sso_discovery_url": f"{config.sso_issuer}/.well-known/openid-configuration",
        "councils": [
            {"code": code, "name": organisations.get(code) or DEMO_COUNCILS.get(code, code)}
            for code in dict.fromkeys(r.organisation for r in config.routes)
            # The electoral service and the hub's own joined-up service are not councils.
            if code not in (DEMO_ELECTORAL, DEMO_JOURNEYS)
        ],
        "citizens": [
            {
                "user_id": c.user_id,
                "password": c.password,
                "display_name": c.display_name,
                "certificate": str(certificate_paths(config, c.user_id)[0].resolve()),
                "key": str(certificate_paths(config, c.user_id)[1].resolve()),
                "enrolments": [
                    {
                        "class": e.class_,
                        "organisation": e.organisation,
                        "keys": e.keys,
                        "example_body": e.example_body(),
                    }
                    for e in c.enrolments
                ],
            }
            for c in (citizens_list() if config.demo else ())
        ],
    }
