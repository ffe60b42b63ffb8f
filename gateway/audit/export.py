"""A self-contained audit export: records, signed checkpoints and the certificates to check them.

Verifying one needs nothing but this file (and, to be sure whose file it is, the hub's root
certificate's fingerprint, which `gateway audit verify` prints).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.audit.chain import Verdict, verify
from gateway.audit.log import signature_problem

FORMAT = "govtalk-hub-audit/1"


def build(
    records: list[dict[str, Any]],
    checkpoints: list[dict[str, Any]],
    root_pem: str,
    exported_at: datetime,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "exported_at": exported_at.isoformat(),
        "root_certificate_pem": root_pem,
        "records": records,
        "checkpoints": checkpoints,
    }


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} export")
    return data


def fingerprint(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def checkpoint_check(root_pem: str | None) -> Callable[[Mapping[str, Any]], str | None]:
    """A checkpoint's signature, and (given the hub's root) that the root issued its signer."""
    root = x509.load_pem_x509_certificate(root_pem.encode("ascii")) if root_pem else None

    def check(checkpoint: Mapping[str, Any]) -> str | None:
        problem = signature_problem(checkpoint)
        if problem is not None or root is None:
            return problem
        signer = x509.load_pem_x509_certificate(str(checkpoint["certificate_pem"]).encode("ascii"))
        try:
            signer.verify_directly_issued_by(root)
        except Exception as exc:  # InvalidSignature, ValueError, TypeError: all mean "not ours"
            return f"signed by a certificate the hub's root did not issue ({type(exc).__name__})"
        return None

    return check


def verify_chain(
    records: list[dict[str, Any]], checkpoints: list[dict[str, Any]], root_pem: str | None
) -> Verdict:
    """The chain, each checkpoint's signature, and (given the root) who signed it."""
    return verify(records, checkpoints, checkpoint_check(root_pem))
