"""The PKI's one error type."""

from __future__ import annotations

from gateway.errors import HubError


class PkiError(HubError):
    """The PKI cannot do what was asked; the message says why."""
