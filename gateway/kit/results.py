"""What a conformance run found: one result per check, with what was sent and what came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"  # the connector does not behave as the hub needs
    SKIP = "skip"  # not applicable (a capability the connector does not offer, no samples)
    ERROR = "error"  # the check could not judge: the samples are wrong, or a check before failed


@dataclass(frozen=True, slots=True)
class Evidence:
    """One exchange a check made: a label, the request as sent, the answer as received."""

    label: str
    sent: str
    received: str
    seconds: float | None = None


@dataclass(slots=True)
class CheckResult:
    id: str
    title: str
    status: Status
    message: str  # one sentence: why it passed or failed
    details: list[str] = field(default_factory=list)  # further findings, one per line
    evidence: list[Evidence] = field(default_factory=list)
    seconds: float = 0.0
    proves: str = ""  # what passing the check means, in a sentence

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAIL, Status.ERROR)


@dataclass(slots=True)
class Report:
    """A whole run: who was checked, against which samples, and every check's result."""

    subject: str  # the entry point (and what it loads) or the back office URL
    class_: str
    organisation: str
    deadline: float  # the route timeout the checks held the connector to
    samples: str  # where the samples came from
    started_at: datetime
    hub_version: str
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(r.failed for r in self.results)

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    def result(self, check_id: str) -> CheckResult:
        for r in self.results:
            if r.id == check_id:
                return r
        raise KeyError(check_id)

    @property
    def failed_ids(self) -> list[str]:
        return [r.id for r in self.results if r.failed]
