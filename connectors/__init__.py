"""Council back-office connectors: the protocol, SDK and built-in connectors."""

from __future__ import annotations
