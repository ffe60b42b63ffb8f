"""Runnable examples for people integrating with the hub (not part of the installed package)."""

from __future__ import annotations
