"""The council's view of a Council Tax account: property, people, charge, schedule, payments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from connectors.simcouncil.dates import YEAR_END, YEAR_START, pro_rata

BANDS = "ABCDEFGH"
SINGLE_PERSON = "SinglePerson"


@dataclass(frozen=True, slots=True)
class Address:
    """A BS7666-style address: secondary and primary addressable objects, street, place."""

    paon: str  # primary addressable object: a house number or building name
    street: str
    town: str
    postcode: str
    saon: str | None = None  # secondary addressable object, e.g. "Flat 2"
    locality: str | None = None


@dataclass(frozen=True, slots=True)
class Person:
    """A liable person, named as the council holds them."""

    forename: str
    surname: str

    @property
    def full_name(self) -> str:
        return f"{self.forename} {self.surname}"

    def same_as(self, forename: str, surname: str) -> bool:
        """True when the given name matches, ignoring case and runs of spaces."""
        return _norm(forename) == _norm(self.forename) and _norm(surname) == _norm(self.surname)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True, slots=True)
class Discount:
    """A discount on the year's charge; amount is what it takes off for this year."""

    kind: str
    percent: int
    effective_from: date
    amount_pence: int


@dataclass(frozen=True, slots=True)
class Instalment:
    number: int
    due_date: date
    amount_pence: int


@dataclass(frozen=True, slots=True)
class Payment:
    paid_on: date
    amount_pence: int


@dataclass(frozen=True, slots=True)
class Property:
    """One chargeable dwelling and its Council Tax account for the year."""

    account_ref: str
    uprn: str
    address: Address
    band: str
    liable: tuple[Person, ...]
    annual_charge_pence: int  # gross: band D charge times the band's statutory ratio
    discounts: tuple[Discount, ...]
    instalments: tuple[Instalment, ...]
    payments: tuple[Payment, ...]
    closed_from: date | None = None  # set once the liable people moved out (LA-CTAX-CLOSE)
    opened_from: date | None = None  # set when opened during the year by a move in (LA-CTAX-OPEN)

    @property
    def liable_from(self) -> date:
        """The first day of the year the account is charged for."""
        return self.opened_from or YEAR_START

    @property
    def liable_to(self) -> date:
        """The last day charged: the day before a move out closes it, else the year's end."""
        return self.closed_from - timedelta(days=1) if self.closed_from else YEAR_END

    @property
    def charge_pence(self) -> int:
        """The gross charge for the days liable: the annual charge, pro rata by day."""
        return pro_rata(self.annual_charge_pence, self.liable_from, self.liable_to)

    @property
    def discount_pence(self) -> int:
        return sum(d.amount_pence for d in self.discounts)

    @property
    def net_charge_pence(self) -> int:
        return self.charge_pence - self.discount_pence

    @property
    def paid_pence(self) -> int:
        return sum(p.amount_pence for p in self.payments)

    @property
    def balance_pence(self) -> int:
        """What is still owed; negative when the account is in credit."""
        return self.net_charge_pence - self.paid_pence

    def has_discount(self, kind: str) -> bool:
        return any(d.kind == kind for d in self.discounts)


@dataclass(frozen=True, slots=True)
class SpdApplication:
    """An accepted single-person discount application, as the council files it."""

    reference: str
    account_ref: str
    applicant: Person
    effective_from: date
    discount_pence: int
    new_net_charge_pence: int
    correlation_id: str
    gateway_test: bool
    applied_at: datetime
