"""Which requests are a trusted local peer: from loopback, and addressed to one of the hub's names.

Loopback grants privilege (admins under `[admin] allow_loopback`, every council at the
payments API). A loopback address alone is not enough: a page on another site whose name is
re-pointed at 127.0.0.1 (DNS rebinding) makes the browser of someone on this machine send its
requests from loopback, with that site's name in the Host header.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from gateway.config import Config
from gateway.limits import is_loopback
from gateway.web.keys import CONFIG

log = structlog.get_logger("gateway.web")


def is_trusted_local_peer(request: web.Request) -> bool:
    """Whether the peer is loopback and the Host header names this hub."""
    if not is_loopback(request.remote):
        return False
    host = request.headers.get("Host")
    # A browser always sends Host; tooling speaking HTTP/1.0 may not, and is no rebound page.
    if host is None or _names_this_hub(host, request.app[CONFIG]):
        return True
    log.warning(
        "local_peer.foreign_host",
        host=host[:200],
        path=request.path[:200],
        address=request.remote,
    )
    return False


def _names_this_hub(host: str, config: Config) -> bool:
    """Whether a Host header's host part is a loopback literal, localhost or a configured name."""
    name = _host_name(host)
    if name is None:
        return False
    return is_loopback(name) or name in _own_names(
        config.server.public_url, config.sso_issuer, config.pki_base_url, config.pki.hosts
    )


def _host_name(host: str) -> str | None:
    """The host part of a Host header: lower case, without brackets, port or final dot."""
    return _url_host(f"//{host.strip()}")


def _url_host(url: str) -> str | None:
    try:
        name = urlsplit(url).hostname
    except ValueError:  # an unclosed IPv6 bracket
        return None
    return (name or "").rstrip(".") or None


@functools.lru_cache(maxsize=8)  # the same few settings for every request
def _own_names(
    public_url: str, issuer: str, pki_base_url: str, pki_hosts: tuple[str, ...]
) -> frozenset[str]:
    names = {_url_host(url) for url in (public_url, issuer, pki_base_url)}
    names.update(_host_name(host) for host in pki_hosts)
    return frozenset(name for name in names if name) | {"localhost"}
