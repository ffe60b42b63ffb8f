"""The receipt connector: check a body against its schema and IRmark, answer a receipt."""

from __future__ import annotations

from connectors.receipt.connector import RECEIPT_NS, ReceiptConnector, build_receipt

__all__ = ["RECEIPT_NS", "ReceiptConnector", "build_receipt"]
