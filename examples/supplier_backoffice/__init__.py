"""An example supplier back office speaking the http-forward wire format (LA-CTAX-VIEW)."""

from __future__ import annotations

from examples.supplier_backoffice.app import (
    ACCOUNTS,
    STATE,
    Account,
    BackOfficeState,
    Fault,
    make_app,
)

__all__ = ["ACCOUNTS", "STATE", "Account", "BackOfficeState", "Fault", "make_app"]
