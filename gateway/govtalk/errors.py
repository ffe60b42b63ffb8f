"""The GovTalk error catalogue: errors are values with a number, a type and a clear text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gateway.govtalk.model import MessageDetails

ErrorType = Literal["fatal", "recoverable", "business", "warning", "schema"]

GATEWAY = "Gateway"
DEPARTMENT = "Department"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One catalogue entry: who raises the number, of what type, and its standard meaning."""

    number: int
    raised_by: str
    type: ErrorType
    meaning: str


CATALOGUE: dict[int, ErrorSpec] = {
    spec.number: spec
    for spec in (
        ErrorSpec(1000, GATEWAY, "fatal", "Internal failure; please retry later"),
        ErrorSpec(1001, GATEWAY, "fatal", "The submitted XML document failed validation"),
        ErrorSpec(
            1002, GATEWAY, "fatal", "Authentication failure: the signature was not recognised"
        ),
        ErrorSpec(
            1020, GATEWAY, "fatal", "CorrelationID must be empty on a submission or data request"
        ),
        ErrorSpec(1035, GATEWAY, "fatal", "CorrelationID is missing on a delete request"),
        ErrorSpec(1038, GATEWAY, "fatal", "The data request's date range is out of order"),
        ErrorSpec(1039, GATEWAY, "fatal", "The data request has an invalid date or time"),
        ErrorSpec(
            1040, GATEWAY, "fatal", "The authentication Value is inconsistent with the Method"
        ),
        ErrorSpec(1042, GATEWAY, "fatal", "The Body is not populated"),
        ErrorSpec(
            1046,
            GATEWAY,
            "fatal",
            "Authentication failure: the supplied credentials failed validation for the service",
        ),
        ErrorSpec(1047, GATEWAY, "fatal", "MD5 authentication is not supported"),
        ErrorSpec(2000, GATEWAY, "fatal", "No record was found for that CorrelationID"),
        ErrorSpec(2001, GATEWAY, "fatal", "The document is larger than allowed"),
        ErrorSpec(2002, GATEWAY, "fatal", "The document lacks the minimum required data"),
        ErrorSpec(
            2005, GATEWAY, "fatal", "The back office did not acknowledge the document in time"
        ),
        ErrorSpec(2021, DEPARTMENT, "fatal", "The body digest (IRmark) is incorrect"),
        ErrorSpec(2022, DEPARTMENT, "fatal", "The body digest (IRmark) was not found"),
        ErrorSpec(
            3000, DEPARTMENT, "fatal", "Processing failed at the back office; resubmit later"
        ),
        ErrorSpec(
            3001, DEPARTMENT, "business", "The submission failed the back office's business rules"
        ),
    )
}


@dataclass(frozen=True, slots=True)
class GovTalkError:
    """One error as carried in GovTalkErrors/Error (or ErrorResponse/Error)."""

    number: int
    text: str
    raised_by: str = GATEWAY
    type: ErrorType = "fatal"
    locations: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, number: int, text: str | None = None, *, locations: tuple[str, ...] = ()
    ) -> GovTalkError:
        """Build an error from the catalogue, with an optional specific text."""
        spec = CATALOGUE.get(number)
        if spec is None:
            if 4000 <= number < 5000:
                return cls(number, text or "Body schema error", DEPARTMENT, "schema", locations)
            raise KeyError(f"GovTalk error {number} is not in the catalogue")
        return cls(number, text or spec.meaning, spec.raised_by, spec.type, locations)


@dataclass(slots=True)
class GovTalkFault(Exception):
    """A domain failure that becomes a GovTalk error reply; raised anywhere, mapped in one place."""

    errors: list[GovTalkError] = field(default_factory=list)
    class_: str | None = None  # None when the class is not yet known: reply uses UndefinedClass
    # The header fields of an envelope that could not be parsed whole, where they are readable
    # enough to echo (TransactionID, CorrelationID, Function, GatewayTest).
    echo: MessageDetails | None = None

    def __post_init__(self) -> None:
        Exception.__init__(self, "; ".join(f"{e.number}: {e.text}" for e in self.errors))

    @classmethod
    def of(
        cls,
        number: int,
        text: str | None = None,
        *,
        class_: str | None = None,
        locations: tuple[str, ...] = (),
    ) -> GovTalkFault:
        return cls([GovTalkError.of(number, text, locations=locations)], class_)

    @property
    def first(self) -> GovTalkError:
        return self.errors[0]
