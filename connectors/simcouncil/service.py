"""What every service shares: the decision it makes, what it may look at, and the account checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree

from connectors.protocol import BusinessError
from connectors.simcouncil.councils import CouncilInfo
from connectors.simcouncil.model import Property, SpdApplication
from connectors.simcouncil.validation import BodySpec
from connectors.simcouncil.xmlbody import text
from gateway.govtalk.errors import GovTalkError

ACCOUNT_KEY = "CTaxAccountRef"
BUSINESS_RULES = 3001


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything a decision may depend on besides the account itself."""

    council: CouncilInfo
    today: date  # the council's calendar date, for date rules and re-spreading instalments
    now: datetime
    correlation_id: str
    gateway_test: bool
    keys_ref: str | None
    spd_number: int = 0  # the sequence number a newly accepted SPD application would take
    next_account_ref: str = ""  # the CTaxAccountRef a newly opened account would take
    uprn_account: str | None = None  # the account already held for the UPRN in an open request

    @property
    def application(self) -> str:
        return application_name(self.council)


@dataclass(frozen=True, slots=True)
class Decision:
    """A service's answer and, for an accepted write, what to store."""

    reply: etree._Element | BusinessError  # a reply document is schema-checked before it is sent
    updated: Property | None = None
    application: SpdApplication | None = None
    status: StatusChange | None = None  # closing or reopening an account
    opened: Property | None = None  # a new account (LA-CTAX-OPEN)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """An account closed from a date (a move out), or reopened (closed_from None)."""

    account_ref: str
    closed_from: date | None


Decide = Callable[[etree._Element, Property | None, Situation], Decision]


@dataclass(frozen=True, slots=True)
class Service:
    """One GovTalk class this back office serves."""

    class_: str
    request: BodySpec
    response: BodySpec
    decide: Decide


def application_name(council: CouncilInfo) -> str:
    """The Application named in this back office's ErrorResponse."""
    return f"Council Tax, {council.name} (simulated back office)"


def refuse(situation: Situation, errors: Iterable[GovTalkError]) -> Decision:
    return Decision(BusinessError(tuple(errors), situation.application))


def rule(text_: str, location: str) -> GovTalkError:
    """A 3001 business-rule failure pointing at the offending part of the body."""
    return GovTalkError.of(BUSINESS_RULES, text_, locations=(location,))


def account_errors(
    request: etree._Element, root: str, account: Property | None, situation: Situation
) -> list[GovTalkError]:
    """The body's AccountRef must be the enrolment's key, and the council must hold the account."""
    location = f"/{root}/AccountRef"
    body_ref = text(request, "AccountRef")
    if situation.keys_ref is None:
        return [rule(f"the submission carries no {ACCOUNT_KEY} key", location)]
    if body_ref != situation.keys_ref:
        return [
            rule(
                f"AccountRef {body_ref} is not the account this enrolment is for "
                f"({ACCOUNT_KEY} {situation.keys_ref})",
                location,
            )
        ]
    if account is None:
        return [rule(f"{situation.council.name} holds no account {body_ref}", location)]
    return []
