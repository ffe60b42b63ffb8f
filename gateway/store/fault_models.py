"""Connector faults injected at runtime: one row per faulted connector instance.

In the database, not in memory, because every hub process sharing it must see the same faults;
the dispatcher re-reads the table at most once a second (routing/fault_injector.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, UTCDateTime


class ConnectorFault(Base):
    """The fault set on a connector (by its configured name), with checked parameters."""

    __tablename__ = "connector_faults"

    connector: Mapped[str] = mapped_column(String(200), primary_key=True)
    fault: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
