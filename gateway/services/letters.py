"""The hub's post: an outbox of letters to the addresses organisations hold (activation PINs).

Nothing is printed or mailed; the outbox is the post. Operators (and tests, and scenarios) read it
through the admin API (`GET /admin/letters`) and `gateway letters list`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import utcnow
from gateway.store.engine import Database
from gateway.store.models import Letter

ACTIVATION_PIN = "activation_pin"
DEFAULT_DELIVERY = timedelta(days=7)  # the Gateway told users to expect the PIN in about 7 days


@dataclass(frozen=True, slots=True)
class LetterView:
    id: int
    user_id: str
    organisation: str
    kind: str
    address: tuple[str, ...]
    text: str
    enrolment_id: int | None
    created_at: datetime
    arrives_at: datetime

    @classmethod
    def of(cls, row: Letter) -> LetterView:
        return cls(
            id=row.id,
            user_id=row.user_id,
            organisation=row.organisation,
            kind=row.kind,
            address=tuple(row.address),
            text=row.text,
            enrolment_id=row.enrolment_id,
            created_at=row.created_at,
            arrives_at=row.arrives_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "organisation": self.organisation,
            "kind": self.kind,
            "address": list(self.address),
            "text": self.text,
            "enrolment_id": self.enrolment_id,
            "created_at": self.created_at.isoformat(),
            "arrives_at": self.arrives_at.isoformat(),
        }


class LetterService:
    """Posts letters (rows in the outbox) and lists them."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = utcnow,
        *,
        delivery: timedelta = DEFAULT_DELIVERY,
    ) -> None:
        self.db = db
        self.clock = clock
        self.delivery = delivery
        # Set by the mail service when [mail] pin_letters_to_mailbox: activation PIN letters
        # also go to the citizen's secure mailbox, in the letter's own transaction.
        self.copy_to_mailbox: Callable[[LetterView, AsyncSession], Awaitable[object]] | None = None

    async def send(
        self,
        *,
        user_id: str,
        organisation: str,
        kind: str,
        address: Sequence[str],
        text: str,
        enrolment_id: int | None = None,
        session: AsyncSession | None = None,
    ) -> LetterView:
        """Post a letter; inside `session` when given, so it goes with the caller's transaction."""
        if not address:
            raise ValueError("a letter needs an address")
        now = self.clock()
        row = Letter(
            user_id=user_id,
            organisation=organisation,
            kind=kind,
            address=list(address),
            text=text,
            enrolment_id=enrolment_id,
            created_at=now,
            arrives_at=now + self.delivery,
        )
        if session is not None:
            session.add(row)
            await session.flush()
            await self._copy(row, session)
        else:
            async with self.db.transaction() as own:
                own.add(row)
                await own.flush()
                await self._copy(row, own)
        return LetterView.of(row)

    async def _copy(self, row: Letter, session: AsyncSession) -> None:
        if self.copy_to_mailbox is not None and row.kind == ACTIVATION_PIN:
            await self.copy_to_mailbox(LetterView.of(row), session)

    async def list(self, user_id: str | None = None) -> list[LetterView]:
        """Letters, oldest first; only this user's when user_id is given."""
        query = select(Letter).order_by(Letter.id)
        if user_id is not None:
            query = query.where(Letter.user_id == user_id)
        async with self.db.read() as session:
            return [LetterView.of(row) for row in await session.scalars(query)]
