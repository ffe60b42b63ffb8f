"""LA-CTAX-VIEW: show a Council Tax account — property, charge, discounts, instalments, payments."""

from __future__ import annotations

from lxml import etree

from connectors.simcouncil.charges import pounds
from connectors.simcouncil.dates import YEAR_LABEL
from connectors.simcouncil.model import Property
from connectors.simcouncil.service import Decision, Service, Situation, account_errors, refuse
from connectors.simcouncil.validation import VIEW_NS, BodySpec
from connectors.simcouncil.xmlbody import bs7666, child, person, root, serialise

CLASS = "LA-CTAX-VIEW"
REQUEST = BodySpec(VIEW_NS, "CTaxViewRequest", "ctax-view-request-v1.xsd")
RESPONSE = BodySpec(VIEW_NS, "CTaxViewResponse", "ctax-view-response-v1.xsd")


def build_request(account_ref: str) -> bytes:
    """A CTaxViewRequest body for the account."""
    request = root(VIEW_NS, REQUEST.root)
    child(request, "AccountRef", account_ref)
    return serialise(request)


def decide(request: etree._Element, account: Property | None, situation: Situation) -> Decision:
    """A read: the account as it stands, or a refusal when it is not this enrolment's to see."""
    errors = account_errors(request, REQUEST.root, account, situation)
    if errors or account is None:
        return refuse(situation, errors)
    return Decision(reply=render(account, situation))


def render(account: Property, situation: Situation) -> etree._Element:
    """The CTaxViewResponse document for an account."""
    reply = root(VIEW_NS, RESPONSE.root)
    child(reply, "AccountRef", account.account_ref)
    council = child(reply, "Council")
    child(council, "Code", situation.council.code)
    child(council, "Name", situation.council.name)
    child(reply, "FinancialYear", YEAR_LABEL)
    prop = child(reply, "Property")
    bs7666(prop, account.address, account.uprn)
    child(prop, "Band", account.band)
    liable = child(reply, "LiablePersons")
    for who in account.liable:
        person(liable, "LiablePerson", who)
    child(reply, "AnnualCharge", pounds(account.annual_charge_pence))
    discounts = child(reply, "Discounts")
    for d in account.discounts:
        discount = child(discounts, "Discount")
        child(discount, "Type", d.kind)
        child(discount, "Percent", str(d.percent))
        child(discount, "EffectiveFrom", d.effective_from.isoformat())
        child(discount, "Amount", pounds(d.amount_pence))
    child(reply, "NetCharge", pounds(account.net_charge_pence))
    instalments = child(reply, "Instalments")
    for i in account.instalments:
        instalment = child(instalments, "Instalment")
        child(instalment, "Number", str(i.number))
        child(instalment, "DueDate", i.due_date.isoformat())
        child(instalment, "Amount", pounds(i.amount_pence))
    payments = child(reply, "Payments")
    for p in account.payments:
        payment = child(payments, "Payment")
        child(payment, "Date", p.paid_on.isoformat())
        child(payment, "Amount", pounds(p.amount_pence))
    child(reply, "Balance", pounds(account.balance_pence))
    if account.opened_from is not None:
        child(reply, "OpenedFrom", account.opened_from.isoformat())
    if account.closed_from is not None:
        child(reply, "ClosedFrom", account.closed_from.isoformat())
    return reply


SERVICE = Service(CLASS, REQUEST, RESPONSE, decide)
