"""The hub's own development PKI: CAs, client certificates, CRL and OCSP."""

from __future__ import annotations

from gateway.pki.ca import IssuedCertificate, Pki
from gateway.pki.errors import PkiError
from gateway.pki.index import IndexEntry
from gateway.pki.ocsp import CertStatus

__all__ = ["CertStatus", "IndexEntry", "IssuedCertificate", "Pki", "PkiError"]
