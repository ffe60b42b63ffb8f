"""LA-CTAX-OPEN: open an account for a citizen moving into the council's area.

The request names the liable person, the new address (BS7666, with its UPRN) and the move-in
date; the reply carries the new CTaxAccountRef. The account is charged by the day from the move-in
date, in the instalments falling due from then on. Refused (3001) when the postcode is outside the
council's districts, the property already has an account, or the date is outside the year billed.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date

from lxml import etree

from connectors.simcouncil.charges import band_charge, pounds, schedule
from connectors.simcouncil.dates import YEAR_END, YEAR_START, instalment_due_dates
from connectors.simcouncil.model import BANDS, Address, Person, Property
from connectors.simcouncil.service import Decision, Service, Situation, refuse, rule
from connectors.simcouncil.validation import MOVE_NS, BodySpec
from connectors.simcouncil.xmlbody import bs7666, child, person, root, serialise, text

CLASS = "LA-CTAX-OPEN"
REQUEST = BodySpec(MOVE_NS, "CTaxOpenRequest", "ctax-open-request-v1.xsd")
RESPONSE = BodySpec(MOVE_NS, "CTaxOpenResponse", "ctax-open-response-v1.xsd")
ADDRESS = "BS7666Address"


def build_open(who: Person, address: Address, uprn: str, move_in: date) -> bytes:
    request = root(MOVE_NS, REQUEST.root)
    person(request, "LiablePerson", who)
    bs7666(request, address, uprn)
    child(request, "MoveInDate", move_in.isoformat())
    return serialise(request)


def requested_uprn(request: etree._Element) -> str:
    return text(request, f"{ADDRESS}/UniquePropertyReferenceNumber")


def _optional(request: etree._Element, path: str) -> str | None:
    try:
        return text(request, path) or None
    except LookupError:
        return None


def band_for(uprn: str) -> str:
    """The simulated valuation: a stable band per property."""
    return BANDS[hashlib.sha256(uprn.encode()).digest()[0] % 4]  # A..D: the commonest bands


def decide_open(
    request: etree._Element, account: Property | None, situation: Situation
) -> Decision:
    council = situation.council
    where = f"/{REQUEST.root}/{ADDRESS}"
    postcode = text(request, f"{ADDRESS}/PostCode")
    uprn = requested_uprn(request)
    move_in = date.fromisoformat(text(request, "MoveInDate"))
    districts = {d for area in council.areas for d in area.districts}
    errors = []
    if postcode.split(" ")[0] not in districts:
        shown = ", ".join(sorted(districts))
        errors.append(
            rule(
                f"postcode {postcode} is not in {council.name}'s area ({shown})",
                f"{where}/PostCode",
            )
        )
    if situation.uprn_account is not None:
        errors.append(
            rule(
                f"property {uprn} already has Council Tax account {situation.uprn_account}",
                f"{where}/UniquePropertyReferenceNumber",
            )
        )
    if not YEAR_START <= move_in <= YEAR_END:
        errors.append(
            rule(
                f"the move-in date {move_in} is outside the year billed "
                f"({YEAR_START} to {YEAR_END})",
                f"/{REQUEST.root}/MoveInDate",
            )
        )
    if errors:
        return refuse(situation, errors)
    who = Person(text(request, "LiablePerson/Forename"), text(request, "LiablePerson/Surname"))
    address = Address(
        paon=text(request, f"{ADDRESS}/PAON"),
        street=text(request, f"{ADDRESS}/StreetDescription"),
        town=text(request, f"{ADDRESS}/Town"),
        postcode=postcode,
        saon=_optional(request, f"{ADDRESS}/SAON"),
        locality=_optional(request, f"{ADDRESS}/Locality"),
    )
    band = band_for(uprn)
    gross = band_charge(council.band_d_pence, band)
    unplanned = Property(
        account_ref=situation.next_account_ref,
        uprn=uprn,
        address=address,
        band=band,
        liable=(who,),
        annual_charge_pence=gross,
        discounts=(),
        instalments=(),
        payments=(),
        opened_from=move_in,
    )
    # Charged by the day from the move in, in the instalments still to fall due: the bill shows
    # no months before they lived there. After the last one, the year's end takes the lot.
    due = tuple(d for d in instalment_due_dates(council.instalment_day) if d >= move_in)
    opened = replace(unplanned, instalments=schedule(unplanned.charge_pence, due or (YEAR_END,)))
    reply = root(MOVE_NS, RESPONSE.root)
    child(reply, "AccountRef", opened.account_ref)
    c = child(reply, "Council")
    child(c, "Code", council.code)
    child(c, "Name", council.name)
    child(reply, "Band", band)
    child(reply, "AnnualCharge", pounds(gross))
    child(reply, "OpenedFrom", move_in.isoformat())
    return Decision(reply, opened=opened)


OPEN = Service(CLASS, REQUEST, RESPONSE, decide_open)
