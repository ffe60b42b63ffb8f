"""Tables of the payment service (they share the hub's declarative Base and migrations)."""

from __future__ import annotations
