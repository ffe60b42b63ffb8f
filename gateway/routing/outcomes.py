"""Turning connector outcomes and failures into the final answers a poll returns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gateway.govtalk.errors import GovTalkError


def errors_to_json(errors: Iterable[GovTalkError]) -> list[dict[str, Any]]:
    return [
        {
            "number": e.number,
            "text": e.text,
            "raised_by": e.raised_by,
            "type": e.type,
            "locations": list(e.locations),
        }
        for e in errors
    ]


def errors_from_json(data: Sequence[dict[str, Any]]) -> list[GovTalkError]:
    return [
        GovTalkError(
            number=int(d["number"]),
            text=str(d["text"]),
            raised_by=str(d["raised_by"]),
            type=d["type"],
            locations=tuple(d.get("locations", ())),
        )
        for d in data
    ]


def is_business(errors: Iterable[GovTalkError]) -> bool:
    """Business and schema errors travel with an ErrorResponse body (reference §6)."""
    return any(e.number == 3001 or 4000 <= e.number < 5000 for e in errors)
