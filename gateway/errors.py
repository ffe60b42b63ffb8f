"""Hub-level errors that are not GovTalk protocol errors (those live in gateway.govtalk.errors)."""

from __future__ import annotations


class HubError(Exception):
    """Base for hub failures outside the protocol."""


class ConfigError(HubError):
    """The configuration is invalid; the message says where and why."""
