"""Hub-level errors that are not GovTalk protocol errors (those live in gateway.govtalk.errors)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class HubError(Exception):
    """Base for hub failures outside the protocol."""


class ConfigError(HubError):
    """The configuration is invalid; the message says where and why."""


class ProblemError(HubError):
    """A refusal on a JSON or HTML API; `request_context` answers it as problem+json (RFC 9457).

    Domain services raise their own subclasses (enrolment, mail, payments) so that every refusal
    reaches the wire through the one middleware, with extension members where they help a client.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    def members(self) -> dict[str, Any]:
        """RFC 9457 extension members of the answer."""
        return dict(self.extensions)
