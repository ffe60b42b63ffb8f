"""The hub's server-rendered pages: one accessible shell, and the headers every page carries."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import urlsplit

from aiohttp import web


def page(title: str, main: str) -> str:
    """A whole HTML document: language, viewport, a title that says where the person is."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} – Government Gateway</title></head>"
        f'<body><header><p>Government Gateway</p></header><main id="main">{main}</main>'
        "</body></html>"
    )


def html_response(
    text: str, status: int = 200, *, form_targets: Iterable[str] = ()
) -> web.Response:
    """A page that is never cached, loads nothing, and posts forms only where it says.

    `form_targets` are origins a form may lead to: Chromium applies form-action to the
    redirects after a POST too, so a sign-in that ends at a portal must name the portal.
    """
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    targets = " ".join(["'self'", *dict.fromkeys(form_targets)])
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; form-action {targets}; frame-ancestors 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def origin(uri: str) -> str:
    """scheme://host[:port] of a URL: what a CSP form-action source names."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"
