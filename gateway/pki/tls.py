"""SSL contexts for the hub's HTTPS listener and for clients of it."""

from __future__ import annotations

import ssl
from pathlib import Path

from gateway.pki.ca import Pki


def server_ssl_context(pki: Pki) -> ssl.SSLContext:
    """TLS 1.2+ with the hub's certificate; client certificates optional but must chain."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_chain_path, pki.server_key_path)
    ctx.load_verify_locations(cafile=pki.ca_bundle_path)
    # OPTIONAL, not REQUIRED: a client without a certificate still gets an HTTP answer (and an
    # audit record) instead of a dropped connection; a presented one must still chain.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # The handshake does not judge validity dates: the application does, so an expired or
    # not-yet-valid certificate gets a GovTalk error that says so, not a reset connection.
    ctx.verify_flags |= _X509_V_FLAG_NO_CHECK_TIME
    return ctx


# OpenSSL's X509_V_FLAG_NO_CHECK_TIME, which the ssl module has no name for.
_X509_V_FLAG_NO_CHECK_TIME = 0x200000


def client_ssl_context(
    ca_bundle: Path, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """TLS 1.2+ trusting only the given bundle, presenting a client certificate if given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_bundle))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx
