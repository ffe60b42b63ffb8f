"""Tables of the mail service (they share the hub's declarative Base and migrations)."""

from __future__ import annotations
