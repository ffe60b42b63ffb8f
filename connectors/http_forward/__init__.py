"""The http-forward connector: each transaction POSTed as JSON to a supplier's back office."""

from __future__ import annotations

from connectors.http_forward.connector import (
    HttpForwardConnector,
    SupplierServerError,
    map_reply,
    request_document,
)

__all__ = ["HttpForwardConnector", "SupplierServerError", "map_reply", "request_document"]
