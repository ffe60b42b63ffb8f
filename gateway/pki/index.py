"""index.json: every leaf the PKI has issued, read lock-free and rewritten atomically."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.pki.errors import PkiError
from gateway.pki.files import atomic_write, locked

INDEX_FILE = "index.json"
KINDS = ("citizen", "council", "supplier", "server", "ocsp")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One issued leaf certificate; paths are relative to the PKI directory."""

    serial: int
    subject: str
    kind: str
    name: str
    issuer: str  # "root" or "citizen-ca": which CA's CRL/OCSP covers it
    not_before: datetime
    not_after: datetime
    fingerprint: str  # SHA-256 of the DER, lowercase hex
    cert_path: str
    key_path: str
    p12_path: str | None = None
    revoked_at: datetime | None = None
    reason: str | None = None

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    def revoked(self, at: datetime, reason: str) -> IndexEntry:
        return replace(self, revoked_at=at, reason=reason)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["serial"] = self.serial_hex
        for key in ("not_before", "not_after", "revoked_at"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexEntry:
        revoked_at = data.get("revoked_at")
        return cls(
            serial=int(data["serial"], 16),
            subject=data["subject"],
            kind=data["kind"],
            name=data["name"],
            issuer=data["issuer"],
            not_before=datetime.fromisoformat(data["not_before"]),
            not_after=datetime.fromisoformat(data["not_after"]),
            fingerprint=data["fingerprint"],
            cert_path=data["cert_path"],
            key_path=data["key_path"],
            p12_path=data.get("p12_path"),
            revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
            reason=data.get("reason"),
        )


def read_index(directory: Path) -> list[IndexEntry]:
    """The entries in issue order; a missing index is an empty one."""
    path = directory / INDEX_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: unreadable index: {exc}") from exc
    try:
        return [IndexEntry.from_json(item) for item in raw["entries"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise PkiError(f"{path}: malformed index entry: {exc}") from exc


def write_index(directory: Path, entries: list[IndexEntry]) -> None:
    """Replace the index atomically; call with the directory lock held."""
    document = {"version": 1, "entries": [e.to_json() for e in entries]}
    atomic_write(directory / INDEX_FILE, (json.dumps(document, indent=2) + "\n").encode())


@contextmanager
def updating(directory: Path) -> Iterator[list[IndexEntry]]:
    """Read-modify-write the index under the directory lock; written only if the body succeeds."""
    with locked(directory):
        entries = read_index(directory)
        yield entries
        write_index(directory, entries)


def index_version(directory: Path) -> tuple[int, int, int]:
    """A value that changes whenever the index is rewritten (for caches)."""
    try:
        st = (directory / INDEX_FILE).stat()
    except FileNotFoundError:
        return (0, 0, 0)
    # Every rewrite is a new inode; mtime alone can repeat within the filesystem's granularity.
    return (st.st_ino, st.st_mtime_ns, st.st_size)
