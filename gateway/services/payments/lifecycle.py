"""The payment state machine: every allowed transition is listed; anything else is refused.

    created ──▶ started ──▶ success | declined | error
       │           │
       └───────────┴──▶ expired (abandoned) | cancelled (by the service or the citizen)

success, declined, error, expired and cancelled are final. Refunds hang off a success and do not
change its state (the payment records how much has been refunded).
"""

from __future__ import annotations

CREATED = "created"
STARTED = "started"
SUCCESS = "success"
DECLINED = "declined"
ERROR = "error"
EXPIRED = "expired"
CANCELLED = "cancelled"

STATES = (CREATED, STARTED, SUCCESS, DECLINED, ERROR, EXPIRED, CANCELLED)
OPEN_STATES = (CREATED, STARTED)
FINAL_STATES = (SUCCESS, DECLINED, ERROR, EXPIRED, CANCELLED)

TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({STARTED, EXPIRED, CANCELLED}),
    STARTED: frozenset({SUCCESS, DECLINED, ERROR, EXPIRED, CANCELLED}),
    SUCCESS: frozenset(),
    DECLINED: frozenset(),
    ERROR: frozenset(),
    EXPIRED: frozenset(),
    CANCELLED: frozenset(),
}

# The webhook event a transition into a state raises (none for started).
EVENTS: dict[str, str] = {
    SUCCESS: "payment.succeeded",
    DECLINED: "payment.failed",
    ERROR: "payment.failed",
    EXPIRED: "payment.expired",
    CANCELLED: "payment.cancelled",
}
REFUND_SUCCEEDED = "refund.succeeded"


class InvalidTransition(Exception):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a {current} payment cannot become {target}")
        self.current = current
        self.target = target


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check(current: str, target: str) -> None:
    if not can_move(current, target):
        raise InvalidTransition(current, target)
