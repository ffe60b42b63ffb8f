"""The demo hub's citizens: seeded user IDs, passwords and enrolments at the two demo councils."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from gateway.config import DEMO_COUNCILS, Config
from gateway.identity import citizens
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
    )


async def seed(db: Database) -> None:
    """Register the demo citizens that are not there yet (idempotent)."""
    wanted = citizens_list()
    present = await citizens.existing_user_ids(db, [c.user_id for c in wanted])
    for citizen in wanted:
        if citizen.user_id in present:
            continue
        await citizens.register(
            db,
            citizen.user_id,
            citizen.password,
            display_name=citizen.display_name,
            enrol=[(e.class_, e.organisation, e.keys) for e in citizen.enrolments],
        )


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
    return {
        "submission_url": f"{base}/submission",
        "poll_url": f"{base}/poll",
        "councils": [
            {"code": code, "name": organisations.get(code) or DEMO_COUNCILS.get(code, code)}
            for code in dict.fromkeys(r.organisation for r in config.routes)
        ],
        "citizens": [
            {
                "user_id": c.user_id,
                "password": c.password,
                "display_name": c.display_name,
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
