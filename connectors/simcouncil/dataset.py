"""A deterministic synthetic Council Tax dataset per council, seeded from its GSS code."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from functools import cache

from connectors.simcouncil.charges import SPD_PERCENT, band_charge, schedule, spd_amount
from connectors.simcouncil.councils import CouncilInfo, council
from connectors.simcouncil.dates import YEAR_START, instalment_due_dates
from connectors.simcouncil.model import (
    BANDS,
    SINGLE_PERSON,
    Address,
    Discount,
    Instalment,
    Payment,
    Person,
    Property,
)

PROPERTY_COUNT = 240

FORENAMES = (
    "Olivia", "Amelia", "Isla", "Ava", "Grace", "Freya", "Emily", "Sophie", "Ruby", "Evie",
    "Jessica", "Chloe", "Hannah", "Lucy", "Megan", "Rachel", "Karen", "Susan", "Margaret", "Joan",
    "Patricia", "Linda", "Helen", "Claire", "Joanne", "Nicola", "Dawn", "Gemma", "Priya", "Aisha",
    "Oliver", "George", "Harry", "Jack", "Noah", "Leo", "Arthur", "Thomas", "James", "William",
    "Daniel", "Joseph", "Samuel", "Michael", "David", "John", "Peter", "Stephen", "Paul", "Mark",
    "Gary", "Craig", "Lee", "Kevin", "Ian", "Graham", "Raymond", "Alan", "Mohammed", "Tomasz",
)  # fmt: skip

SURNAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Wilson", "Robson", "Armstrong", "Charlton", "Milburn",
    "Dixon", "Hall", "Thompson", "Walker", "Wright", "Robinson", "Wood", "Bell", "Scott", "Young",
    "Graham", "Pearson", "Elliott", "Hutchinson", "Lambton", "Davison", "Forster", "Ridley",
    "Carr", "Johnson", "Allen", "Clarke", "Harris", "Lewis", "Baker", "Coles", "Hembrow",
    "Vowles", "Tucker", "Hooper", "Chedzoy", "Fear", "Pople", "Sweet", "Bishop", "Pike", "Khan",
    "Patel", "Nowak", "Kowalski", "Ahmed",
)  # fmt: skip

STREET_STEMS = (
    "Station", "Church", "Victoria", "Albert", "Queen", "King", "Park", "Mill", "Chapel",
    "Westfield", "Eastgate", "Cedar", "Rowan", "Hawthorn", "Willow", "Beech", "Marine",
    "Harbour", "Priory", "Abbey", "Grange", "Orchard", "Meadow", "Brook", "Ash", "Elm",
    "Laburnum", "Newcastle", "Durham", "Bath", "Quantock", "Polden", "Mendip", "Tennyson",
)  # fmt: skip

STREET_KINDS = (
    "Road", "Street", "Avenue", "Terrace", "Close", "Crescent", "Grove", "Lane", "Gardens",
    "Drive", "Way", "Place",
)  # fmt: skip

BUILDINGS = (
    "Alexandra House", "Priory Court", "Riverside Court", "Queens Court", "Harbour View",
    "Mill House", "Marine Court", "Victoria Mansions", "Station House", "Orchard Lodge",
)  # fmt: skip

# Letters Royal Mail never uses in the unit part of a postcode are left out.
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def generate(council_code: str) -> list[Property]:
    """The council's synthetic properties; the same code always gives the same list."""
    return list(_generate(council_code))


def account_refs(council_code: str) -> list[str]:
    """Every CTaxAccountRef in the council's dataset, in dataset order."""
    return [p.account_ref for p in _generate(council_code)]


def by_ref(council_code: str) -> dict[str, Property]:
    """The council's properties keyed by account reference."""
    return {p.account_ref: p for p in _generate(council_code)}


@cache
def _generate(council_code: str) -> tuple[Property, ...]:
    info = council(council_code)
    # Seeding by the code, and never touching the global generator, is what makes it repeatable.
    rng = random.Random(council_code)
    addresses = _addresses(rng, info, PROPERTY_COUNT)
    refs = sorted(rng.sample(range(1, 10**8), PROPERTY_COUNT))
    uprns = rng.sample(range(10**11, 10**12), PROPERTY_COUNT)
    # One of every band first, so that every ratio is represented whatever the weights say.
    bands = list(BANDS) + rng.choices(BANDS, weights=info.band_weights, k=PROPERTY_COUNT - 8)
    rng.shuffle(bands)
    due = instalment_due_dates(info.instalment_day)
    return tuple(
        _property(rng, info, f"{info.prefix}{ref:08d}", str(uprn), address, band, due)
        for ref, uprn, address, band in zip(refs, uprns, addresses, bands, strict=True)
    )


def _property(
    rng: random.Random,
    info: CouncilInfo,
    account_ref: str,
    uprn: str,
    address: Address,
    band: str,
    due: tuple[date, ...],
) -> Property:
    liable = _liable(rng)
    gross = band_charge(info.band_d_pence, band)
    discounts: tuple[Discount, ...] = ()
    if len(liable) == 1 and rng.random() < 0.55:
        since = YEAR_START - timedelta(days=rng.randrange(0, 18 * 365))
        discounts = (Discount(SINGLE_PERSON, SPD_PERCENT, since, spd_amount(gross, since)),)
    net = gross - sum(d.amount_pence for d in discounts)
    instalments = schedule(net, due)
    return Property(
        account_ref=account_ref,
        uprn=uprn,
        address=address,
        band=band,
        liable=liable,
        annual_charge_pence=gross,
        discounts=discounts,
        instalments=instalments,
        payments=_payments(rng, instalments),
    )


def _liable(rng: random.Random) -> tuple[Person, ...]:
    r = rng.random()
    count = 1 if r < 0.42 else 2 if r < 0.92 else 3
    first = Person(rng.choice(FORENAMES), rng.choice(SURNAMES))
    people = [first]
    while len(people) < count:
        shared = rng.random() < 0.6 or len(people) == 2  # a third adult is usually a grown-up child
        surname = first.surname if shared else rng.choice(SURNAMES)
        forename = rng.choice(FORENAMES)
        if all(p.forename != forename for p in people):
            people.append(Person(forename, surname))
    return tuple(people)


def _payments(rng: random.Random, instalments: tuple[Instalment, ...]) -> tuple[Payment, ...]:
    # Most accounts are up to date to October; some are behind, a few have paid nothing yet.
    paid = rng.choices(range(8), weights=(6, 3, 3, 3, 4, 5, 8, 68))[0]
    return tuple(
        Payment(
            max(i.due_date - timedelta(days=rng.choice((0, 0, 0, 1, 2, 3, 5))), YEAR_START),
            i.amount_pence,
        )
        for i in instalments[:paid]
    )


def _addresses(rng: random.Random, info: CouncilInfo, count: int) -> list[Address]:
    addresses: list[Address] = []
    streets: set[tuple[str, str]] = set()
    while len(addresses) < count:
        area = rng.choice(info.areas)
        street = f"{rng.choice(STREET_STEMS)} {rng.choice(STREET_KINDS)}"
        if (street, area.town) in streets:
            continue
        streets.add((street, area.town))
        district = rng.choice(area.districts)
        locality = rng.choice(area.localities) if area.localities and rng.random() < 0.7 else None
        postcode = f"{district} {rng.randrange(1, 10)}{_unit(rng)}"
        place = Address(
            paon="", street=street, town=area.town, postcode=postcode, locality=locality
        )
        if rng.random() < 0.2:
            building = rng.choice(BUILDINGS)
            for flat in range(1, rng.randint(3, 8) + 1):
                addresses.append(replace(place, paon=building, saon=f"Flat {flat}"))
        else:
            first, step = rng.choice(((1, 1), (1, 2), (2, 2)))
            for k in range(rng.randint(4, 14)):
                addresses.append(replace(place, paon=str(first + k * step)))
    return addresses[:count]


def _unit(rng: random.Random) -> str:
    return rng.choice(UNIT_LETTERS) + rng.choice(UNIT_LETTERS)
