"""Declarative journey definitions: legs, where each goes, how its body is built, its policy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Policy = Literal["required", "retry", "compensate"]

# A leg's inputs: the journey request (JSON-shaped) and the response bodies of the legs that
# succeeded before it, by leg name.
BodyBuilder = Callable[[Mapping[str, Any], Mapping[str, bytes]], bytes]
Summary = Callable[[bytes], str]
KeysBuilder = Callable[[Mapping[str, Any]], dict[str, str]]


class JourneyRequestError(ValueError):
    """The journey request is unacceptable; `location` points at the offending part."""

    def __init__(self, text: str, location: str = "/") -> None:
        super().__init__(text)
        self.text = text
        self.location = location


@dataclass(frozen=True, slots=True)
class Compensation:
    """The leg that undoes a succeeded leg (run when a later `compensate` leg fails)."""

    class_: str
    body: BodyBuilder
    summary: Summary
    max_attempts: int = 3


@dataclass(frozen=True, slots=True)
class LegSpec:
    """One step: a class routed at an organisation taken from the request.

    policy — what a failure (a final error answer) does:
      required    the journey fails; later legs are skipped; nothing is undone (explained)
      retry       submitted again, up to max_attempts in all; then as `required`
      compensate  completed legs with a `compensation` are undone, later legs skipped
    """

    name: str
    class_: str
    organisation: Callable[[Mapping[str, Any]], str]
    body: BodyBuilder
    summary: Summary
    policy: Policy = "required"
    max_attempts: int = 1
    keys: KeysBuilder | None = None
    compensation: Compensation | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class JourneyDefinition:
    kind: str
    class_: str  # the DSP class that starts it
    legs: tuple[LegSpec, ...]

    def leg(self, name: str) -> LegSpec:
        for spec in self.legs:
            if spec.name == name:
                return spec
        raise KeyError(name)
