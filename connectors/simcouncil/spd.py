"""LA-CTAX-SPD: apply for the 25 % single-person discount — a write, checked against the rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from lxml import etree

from connectors.simcouncil.charges import SPD_PERCENT, discount_amount, pounds, respread
from connectors.simcouncil.dates import YEAR_END, YEAR_LABEL, YEAR_START
from connectors.simcouncil.model import SINGLE_PERSON, Discount, Person, Property, SpdApplication
from connectors.simcouncil.service import (
    Decision,
    Service,
    Situation,
    account_errors,
    refuse,
    rule,
)
from connectors.simcouncil.validation import SPD_NS, BodySpec
from connectors.simcouncil.xmlbody import child, person, root, serialise, text
from gateway.govtalk.errors import GovTalkError

CLASS = "LA-CTAX-SPD"
REQUEST = BodySpec(SPD_NS, "CTaxSPDRequest", "ctax-spd-request-v1.xsd")
RESPONSE = BodySpec(SPD_NS, "CTaxSPDResponse", "ctax-spd-response-v1.xsd")
MAX_DAYS_AHEAD = 30

_AT = f"/{REQUEST.root}"


def build_request(
    account_ref: str,
    applicant: Person,
    *,
    sole_adult: bool = True,
    effective_from: date = YEAR_START,
) -> bytes:
    """A CTaxSPDRequest body."""
    request = root(SPD_NS, REQUEST.root)
    child(request, "AccountRef", account_ref)
    person(request, "Applicant", applicant)
    child(request, "SoleAdultDeclaration", "true" if sole_adult else "false")
    child(request, "EffectiveFrom", effective_from.isoformat())
    return serialise(request)


def decide(request: etree._Element, account: Property | None, situation: Situation) -> Decision:
    """Accept the application and re-plan the account, or refuse it naming every rule it fails."""
    errors = account_errors(request, REQUEST.root, account, situation)
    if errors or account is None:
        return refuse(situation, errors)
    applicant = Person(text(request, "Applicant/Forename"), text(request, "Applicant/Surname"))
    declared = text(request, "SoleAdultDeclaration") in ("true", "1")
    effective_from = date.fromisoformat(text(request, "EffectiveFrom"))
    errors = [
        *_account_rules(account),
        *_applicant_rules(account, applicant),
        *_declaration_rules(declared),
        *_date_rules(effective_from, situation.today),
        *_period_rules(account, effective_from),
    ]
    if errors:
        return refuse(situation, errors)
    return _accept(account, applicant, effective_from, situation)


def _account_rules(account: Property) -> list[GovTalkError]:
    errors: list[GovTalkError] = []
    held = [d for d in account.discounts if d.kind == SINGLE_PERSON]
    if held:
        since = held[0].effective_from.isoformat()
        errors.append(
            rule(
                f"account {account.account_ref} already has the single-person discount "
                f"(from {since})",
                f"{_AT}/AccountRef",
            )
        )
    if len(account.liable) > 1:
        errors.append(
            rule(
                f"account {account.account_ref} names {len(account.liable)} liable people; the "
                "discount needs one liable adult, so tell us first who has moved out",
                f"{_AT}/AccountRef",
            )
        )
    return errors


def _applicant_rules(account: Property, applicant: Person) -> list[GovTalkError]:
    if any(p.same_as(applicant.forename, applicant.surname) for p in account.liable):
        return []
    return [
        rule(
            f"{applicant.full_name} is not a liable person on account {account.account_ref}",
            f"{_AT}/Applicant",
        )
    ]


def _declaration_rules(declared: bool) -> list[GovTalkError]:
    if declared:
        return []
    return [
        rule(
            "the applicant must declare that they are the only adult living at the property",
            f"{_AT}/SoleAdultDeclaration",
        )
    ]


def _date_rules(effective_from: date, today: date) -> list[GovTalkError]:
    where = f"{_AT}/EffectiveFrom"
    if effective_from < YEAR_START:
        return [
            rule(
                f"EffectiveFrom {effective_from} is before the {YEAR_LABEL} financial year began "
                f"({YEAR_START}); earlier years need a backdating claim",
                where,
            )
        ]
    if effective_from > YEAR_END:
        return [rule(f"EffectiveFrom {effective_from} is after the {YEAR_LABEL} year ends", where)]
    latest = today + timedelta(days=MAX_DAYS_AHEAD)
    if effective_from > latest:
        return [
            rule(
                f"EffectiveFrom {effective_from} is more than {MAX_DAYS_AHEAD} days ahead "
                f"(latest {latest}); apply nearer the date",
                where,
            )
        ]
    return []


def _period_rules(account: Property, effective_from: date) -> list[GovTalkError]:
    # A discount is on the charge, so it can only cover days the account is liable for.
    where = f"{_AT}/EffectiveFrom"
    if account.closed_from is not None and account.closed_from <= effective_from:
        return [
            rule(
                f"account {account.account_ref} is closed from {account.closed_from}, on or "
                f"before EffectiveFrom {effective_from}: there is no charge left to discount",
                where,
            )
        ]
    if account.opened_from is not None and effective_from < account.opened_from:
        return [
            rule(
                f"EffectiveFrom {effective_from} is before account {account.account_ref} opened "
                f"({account.opened_from})",
                where,
            )
        ]
    return []


def _accept(
    account: Property, applicant: Person, effective_from: date, situation: Situation
) -> Decision:
    amount = discount_amount(account, SPD_PERCENT, effective_from)
    discount = Discount(SINGLE_PERSON, SPD_PERCENT, effective_from, amount)
    new_net = account.net_charge_pence - amount
    updated = replace(
        account,
        discounts=(*account.discounts, discount),
        instalments=respread(account.instalments, new_net, situation.today),
    )
    reference = f"{situation.council.prefix}-SPD-{situation.spd_number:06d}"
    application = SpdApplication(
        reference=reference,
        account_ref=account.account_ref,
        applicant=applicant,
        effective_from=effective_from,
        discount_pence=amount,
        new_net_charge_pence=updated.net_charge_pence,
        correlation_id=situation.correlation_id,
        gateway_test=situation.gateway_test,
        applied_at=situation.now,
    )
    reply = root(SPD_NS, RESPONSE.root)
    child(reply, "Reference", reference)
    child(reply, "Status", "accepted")
    child(reply, "AccountRef", account.account_ref)
    child(reply, "EffectiveFrom", effective_from.isoformat())
    child(reply, "DiscountAmount", pounds(amount))
    child(reply, "NewNetCharge", pounds(updated.net_charge_pence))
    child(reply, "NewBalance", pounds(updated.balance_pence))
    return Decision(reply=reply, updated=updated, application=application)


SERVICE = Service(CLASS, REQUEST, RESPONSE, decide)
