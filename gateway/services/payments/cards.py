"""Test cards: what the hosted payment page does with a card number (GOV.UK Pay's sandbox cards).

    4242424242424242  success
    4000000000000002  declined              (failure_code card_declined)
    4000000000000069  declined, card expired (failure_code card_expired)
    4000000000000127  declined, wrong CVC    (failure_code incorrect_cvc)
    4000000000000119  error, processing error (failure_code processing_error)

Any other number that passes the Luhn check succeeds, as a sandbox would take it. A number that
fails the Luhn check, an expiry date in the past, a CVC that is not 3 or 4 digits or an empty name
is a form error: the page is shown again with the message, and the payment stays started.
Only the brand and the last four digits are ever kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from gateway.services.payments.lifecycle import DECLINED, ERROR, SUCCESS


@dataclass(frozen=True, slots=True)
class CardOutcome:
    state: str
    failure_code: str | None = None
    message: str | None = None


MAGIC: dict[str, CardOutcome] = {
    "4242424242424242": CardOutcome(SUCCESS),
    "4000000000000002": CardOutcome(DECLINED, "card_declined", "Your card was declined"),
    "4000000000000069": CardOutcome(DECLINED, "card_expired", "Your card has expired"),
    "4000000000000127": CardOutcome(
        DECLINED, "incorrect_cvc", "The card security code was not correct"
    ),
    "4000000000000119": CardOutcome(
        ERROR, "processing_error", "There was a problem processing your payment"
    ),
}


@dataclass(frozen=True, slots=True)
class Card:
    """A card as entered, checked; number is kept in memory only, never stored."""

    number: str
    expiry_month: int
    expiry_year: int
    cvc: str
    cardholder_name: str

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def brand(self) -> str:
        return brand(self.number)

    def outcome(self) -> CardOutcome:
        return MAGIC.get(self.number, CardOutcome(SUCCESS))


class CardInvalid(ValueError):
    """The form was not filled in properly; field names the input to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def luhn_ok(number: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(number)):
        digit = int(char)
        if i % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if re.match(r"5[1-5]|2[2-7]", number):
        return "master-card"
    if re.match(r"3[47]", number):
        return "american-express"
    return "unknown"


def read_card(number: str, month: str, year: str, cvc: str, name: str, *, today: date) -> Card:
    """The card from the form's fields, or CardInvalid naming the first field to fix."""
    digits = re.sub(r"[\s-]", "", number or "")
    if not re.fullmatch(r"\d{12,19}", digits) or not luhn_ok(digits):
        raise CardInvalid("card-number", "Enter a valid card number")
    try:
        m, y = int(month), int(year)
    except ValueError:
        raise CardInvalid("expiry-month", "Enter the expiry date as month and year") from None
    if y < 100:
        y += 2000
    if not 1 <= m <= 12:
        raise CardInvalid("expiry-month", "Enter a month from 1 to 12")
    if (y, m) < (today.year, today.month):
        raise CardInvalid("expiry-month", "The expiry date must be in the future")
    if not re.fullmatch(r"\d{3,4}", (cvc or "").strip()):
        raise CardInvalid("cvc", "Enter the 3 or 4 digit card security code")
    holder = " ".join((name or "").split())
    if not holder:
        raise CardInvalid("cardholder-name", "Enter the name as it appears on the card")
    return Card(digits, m, y, cvc.strip(), holder[:255])
