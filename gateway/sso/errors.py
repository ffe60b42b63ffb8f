"""OAuth 2.0 / OpenID Connect refusals, as values the web layer maps to the wire in one place."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.errors import ProblemError


class OAuthError(ProblemError):
    """An RFC 6749 §5.2 error: answered as {"error", "error_description"}, never cached."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, error, description, headers=headers)
        self.error = error


class RedirectableError(OAuthError):
    """An authorization request error the portal hears about at its checked redirect URI."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str | None) -> None:
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state


class InvalidToken(OAuthError):
    """A bearer token the hub did not issue, or no longer honours (RFC 6750 §3.1)."""

    def __init__(self, description: str) -> None:
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
        super().__init__("invalid_token", description, 401, headers={"WWW-Authenticate": challenge})
