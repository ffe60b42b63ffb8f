"""The development PKI on disk: create it, load it, issue, revoke, and report status."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from gateway.clock import utcnow
from gateway.pki import builders
from gateway.pki import ocsp as ocsp_responder
from gateway.pki.builders import BACKDATE, CLIENT_KINDS, Revocation, Signer
from gateway.pki.errors import PkiError
from gateway.pki.files import KEY_MODE, atomic_write, locked
from gateway.pki.index import (
    INDEX_FILE,
    IndexEntry,
    index_version,
    read_index,
    updating,
    write_index,
)
from gateway.pki.ocsp import CertStatus

ROOT_CERT, ROOT_KEY = "root-ca.pem", "root-ca.key"
CITIZEN_CERT, CITIZEN_KEY = "citizen-ca.pem", "citizen-ca.key"
SERVER_CERT, SERVER_CHAIN, SERVER_KEY = "server.pem", "server-chain.pem", "server.key"
OCSP_CERT, OCSP_KEY = "ocsp-responder.pem", "ocsp-responder.key"
CA_BUNDLE = "ca-bundle.pem"
SETTINGS = "pki.json"
ISSUED = "issued"
# Keys must never be committed wherever the directory lives; the README may be.
GITIGNORE_TEXT = "# Generated PKI material: private keys must never be committed.\n*\n!README.md\n"

NAME_LENGTH = 64
_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_LENGTH - 1}}}$")
DEFAULT_STATUS_VALIDITY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A freshly issued client certificate and where its files are."""

    serial: int
    name: str
    cert: x509.Certificate
    cert_path: Path
    key_path: Path
    p12_path: Path
    fingerprint: str


def parse_reason(reason: str) -> x509.ReasonFlags:
    """A revocation reason by enum name (key_compromise) or RFC 5280 name (keyCompromise)."""
    wanted = reason.strip().replace("-", "_").lower()
    for flag in x509.ReasonFlags:
        if wanted in (flag.name.lower(), flag.value.lower()):
            # removeFromCRL only means something in a delta CRL, which we do not issue.
            if flag is x509.ReasonFlags.remove_from_crl:
                break
            return flag
    names = ", ".join(f.name for f in x509.ReasonFlags if f is not x509.ReasonFlags.remove_from_crl)
    raise PkiError(f"unknown revocation reason {reason!r}; use one of: {names}")


def name_rule(length: int = NAME_LENGTH) -> str:
    """What an issued certificate's name may be (at most `length` characters), for messages."""
    return (
        "letters, digits, '.', '_' and '-', starting with a letter or digit; "
        f"at most {length} characters"
    )


def check_name(name: str) -> None:
    """PkiError unless `name` may name an issued certificate (and its files under issued/)."""
    if not _NAME.match(name):
        raise PkiError(f"invalid name {name!r}: {name_rule()}")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: cannot read certificate: {exc}") from exc


def _read_signer(directory: Path, cert_name: str, key_name: str) -> Signer | None:
    cert_path, key_path = directory / cert_name, directory / key_name
    if not (cert_path.exists() and key_path.exists()):
        return None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"{key_path}: cannot read private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path}: expected an EC private key")
    return Signer(_read_cert(cert_path), key)


def _write_signer(directory: Path, cert_name: str, key_name: str, signer: Signer) -> None:
    # Key first: a certificate without its key would look initialised but be unusable.
    atomic_write(directory / key_name, _key_pem(signer.key), mode=KEY_MODE)
    atomic_write(directory / cert_name, _pem(signer.cert))


def _entry(
    cert: x509.Certificate,
    *,
    kind: str,
    name: str,
    issuer: str,
    cert_path: str,
    key_path: str,
    p12_path: str | None = None,
) -> IndexEntry:
    return IndexEntry(
        serial=cert.serial_number,
        subject=cert.subject.rfc4514_string(),
        kind=kind,
        name=name,
        issuer=issuer,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        cert_path=cert_path,
        key_path=key_path,
        p12_path=p12_path,
    )


def _covers(cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    """Whether the server certificate already names every wanted host."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    present = list(san)
    return all(name in present for name in builders.host_names(hosts))


def _wipe(directory: Path) -> None:
    """Remove everything init creates, keeping the README and anything else a user put there."""
    for name in (
        ROOT_CERT, ROOT_KEY, CITIZEN_CERT, CITIZEN_KEY, SERVER_CERT, SERVER_CHAIN, SERVER_KEY,
        OCSP_CERT, OCSP_KEY, CA_BUNDLE, SETTINGS, INDEX_FILE,
    ):  # fmt: skip
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / ISSUED, ignore_errors=True)


class Pki:
    """A loaded development PKI: root CA, citizen issuing CA, server and OCSP responder."""

    def __init__(
        self,
        directory: Path,
        *,
        base_url: str,
        hosts: tuple[str, ...],
        root: x509.Certificate,
        citizen: Signer,
        responder: Signer,
    ) -> None:
        self.dir = directory
        self.base_url = base_url
        self.hosts = hosts
        self._root = root
        self._citizen = citizen
        self._responder = responder

    # --- construction -------------------------------------------------------------------

    @classmethod
    def init(
        cls, dir: Path, *, base_url: str, hosts: Sequence[str] = (), force: bool = False
    ) -> Pki:
        """Create whatever is missing (everything, with force) and return the loaded PKI."""
        directory = Path(dir)
        hosts = tuple(hosts)
        with locked(directory):
            if force:
                _wipe(directory)
            cls._create(directory, base_url=base_url.rstrip("/"), hosts=hosts)
        return cls.load(directory)

    @classmethod
    def _create(cls, directory: Path, *, base_url: str, hosts: tuple[str, ...]) -> None:
        now = utcnow()
        gitignore = directory / ".gitignore"
        if not gitignore.exists():
            atomic_write(gitignore, GITIGNORE_TEXT.encode())
        new_entries: list[IndexEntry] = []

        root: Signer | None = _read_signer(directory, ROOT_CERT, ROOT_KEY)
        renewed = False
        if root is None and not (directory / ROOT_CERT).exists():
            renewed = True
            key = builders.new_key()
            root = Signer(builders.build_root(key, now), key)
            _write_signer(directory, ROOT_CERT, ROOT_KEY, root)
        # Without its key (kept offline, or lost) the root still anchors everything issued, so
        # it is kept; only work that needs the root to sign stops, and says what to do.
        root_cert = root.cert if root is not None else _read_cert(directory / ROOT_CERT)

        def root_signer(needed_for: str) -> Signer:
            if root is None:
                raise PkiError(
                    f"{directory / ROOT_KEY} is missing, and {needed_for} needs it: restore the "
                    f"key beside {ROOT_CERT} (every certificate this PKI issued chains to it), "
                    "or start over with `gateway certs init --force`, which replaces them all"
                )
            return root

        # Anything signed by a regenerated CA must be regenerated too, or it would not chain.
        citizen = None if renewed else _read_signer(directory, CITIZEN_CERT, CITIZEN_KEY)
        if citizen is None:
            renewed = True
            key = builders.new_key()
            cert = builders.build_issuing_ca(
                "Gateway Development Citizen CA", key, root_signer("a new citizen CA"), now
            )
            citizen = Signer(cert, key)
            _write_signer(directory, CITIZEN_CERT, CITIZEN_KEY, citizen)
        if renewed or not (directory / CA_BUNDLE).exists():
            atomic_write(directory / CA_BUNDLE, _pem(root_cert) + _pem(citizen.cert))

        server = _read_signer(directory, SERVER_CERT, SERVER_KEY)
        if (
            server is None
            or renewed
            or not (directory / SERVER_CHAIN).exists()
            or not _covers(server.cert, hosts)
        ):
            key = builders.new_key()
            # The root issues the server certificate directly: one fewer CA to manage, and
            # ca-bundle.pem (root + citizen CA) remains the single trust file for both sides.
            signer = root_signer("a new server certificate")
            server = Signer(builders.build_server(key, signer, hosts, now), key)
            _write_signer(directory, SERVER_CERT, SERVER_KEY, server)
            # What the server presents: the leaf plus any intermediates (none: the root signs).
            atomic_write(directory / SERVER_CHAIN, _pem(server.cert))
            new_entries.append(
                _entry(
                    server.cert,
                    kind="server",
                    name="server",
                    issuer="root",
                    cert_path=SERVER_CERT,
                    key_path=SERVER_KEY,
                )
            )

        responder = None if renewed else _read_signer(directory, OCSP_CERT, OCSP_KEY)
        if responder is None:
            key = builders.new_key()
            responder = Signer(builders.build_ocsp_responder(key, citizen, now), key)
            _write_signer(directory, OCSP_CERT, OCSP_KEY, responder)
            new_entries.append(
                _entry(
                    responder.cert,
                    kind="ocsp",
                    name="ocsp-responder",
                    issuer="citizen-ca",
                    cert_path=OCSP_CERT,
                    key_path=OCSP_KEY,
                )
            )

        settings = {"base_url": base_url, "hosts": list(hosts)}
        atomic_write(directory / SETTINGS, (json.dumps(settings, indent=2) + "\n").encode())
        if new_entries or not (directory / INDEX_FILE).exists():
            # init already holds the directory lock, so write rather than use updating().
            write_index(directory, [*read_index(directory), *new_entries])

    @classmethod
    def load(cls, dir: Path) -> Pki:
        """Load an initialised PKI; a clear error says how to create one if it is not."""
        directory = Path(dir)
        settings_path = directory / SETTINGS
        if not settings_path.exists():
            raise PkiError(f"no PKI in {directory}: run `gateway certs init` first")
        try:
            settings = json.loads(settings_path.read_text(encoding="utf-8"))
            base_url = str(settings["base_url"])
            hosts = tuple(str(h) for h in settings.get("hosts", ()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PkiError(f"{settings_path}: unreadable: {exc}") from exc
        missing = [
            name
            for name in (
                ROOT_CERT,
                CITIZEN_CERT,
                CITIZEN_KEY,
                SERVER_CERT,
                SERVER_CHAIN,
                SERVER_KEY,
                OCSP_CERT,
                OCSP_KEY,
                CA_BUNDLE,
            )
            if not (directory / name).exists()
        ]
        if missing:
            raise PkiError(
                f"PKI in {directory} is incomplete (missing {', '.join(missing)}): "
                "run `gateway certs init` to recreate what is missing"
            )
        citizen = _read_signer(directory, CITIZEN_CERT, CITIZEN_KEY)
        responder = _read_signer(directory, OCSP_CERT, OCSP_KEY)
        assert citizen is not None and responder is not None
        return cls(
            directory,
            base_url=base_url,
            hosts=hosts,
            root=_read_cert(directory / ROOT_CERT),
            citizen=citizen,
            responder=responder,
        )

    @classmethod
    def ensure(cls, dir: Path, *, base_url: str, hosts: Sequence[str] = ()) -> Pki:
        """Load the PKI if it is there and matches the settings; otherwise (re)create the gaps."""
        directory = Path(dir)
        try:
            pki = cls.load(directory)
        except PkiError:
            return cls.init(directory, base_url=base_url, hosts=hosts)
        server = _read_cert(pki.server_cert_path)
        if pki.base_url == base_url.rstrip("/") and _covers(server, hosts):
            return pki
        return cls.init(directory, base_url=base_url, hosts=hosts)

    # --- material -----------------------------------------------------------------------

    @property
    def root(self) -> x509.Certificate:
        return self._root

    @property
    def citizen_ca(self) -> x509.Certificate:
        return self._citizen.cert

    @property
    def ocsp_responder(self) -> x509.Certificate:
        return self._responder.cert

    @property
    def trust_anchors(self) -> list[x509.Certificate]:
        """Root and citizen CA: what a verifier of client certificates trusts."""
        return [self._root, self._citizen.cert]

    @property
    def root_path(self) -> Path:
        return self.dir / ROOT_CERT

    @property
    def citizen_ca_path(self) -> Path:
        return self.dir / CITIZEN_CERT

    @property
    def server_cert_path(self) -> Path:
        return self.dir / SERVER_CERT

    @property
    def server_chain_path(self) -> Path:
        return self.dir / SERVER_CHAIN

    @property
    def server_key_path(self) -> Path:
        return self.dir / SERVER_KEY

    @property
    def ocsp_responder_path(self) -> Path:
        return self.dir / OCSP_CERT

    @property
    def ca_bundle_path(self) -> Path:
        return self.dir / CA_BUNDLE

    # --- issuing and revoking -----------------------------------------------------------

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        kind: str = "citizen",
        email: str | None = None,
        days: int = 365,
        passphrase: str = "",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> IssuedCertificate:
        """Issue a client certificate signed by the citizen CA; files go under issued/."""
        check_name(name)
        if kind not in CLIENT_KINDS:
            raise PkiError(f"invalid kind {kind!r}; use one of: {', '.join(CLIENT_KINDS)}")
        if not common_name.strip():
            raise PkiError("the common name must not be empty")
        now = utcnow()
        start = not_before or now - BACKDATE
        end = not_after or now + timedelta(days=days)
        if end <= start:
            raise PkiError("the certificate would expire before it becomes valid")
        rel_cert, rel_key, rel_p12 = (f"{ISSUED}/{name}{ext}" for ext in (".pem", ".key", ".p12"))
        with updating(self.dir) as entries:
            for entry in entries:
                # A name may be reused once its previous certificate is revoked or expired.
                if entry.name == name and entry.revoked_at is None and entry.not_after > now:
                    raise PkiError(
                        f"{name!r} already has a current certificate (serial "
                        f"{entry.serial_hex}); revoke it first or choose another name"
                    )
            key = builders.new_key()
            cert = builders.build_client(
                key,
                self._citizen,
                name=name,
                common_name=common_name,
                kind=kind,
                email=email,
                base_url=self.base_url,
                not_before=start,
                not_after=end,
            )
            encryption: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(passphrase.encode())
                if passphrase
                else serialization.NoEncryption()
            )
            p12 = pkcs12.serialize_key_and_certificates(
                name.encode(), key, cert, [self._citizen.cert, self._root], encryption
            )
            atomic_write(self.dir / rel_key, _key_pem(key), mode=KEY_MODE)
            atomic_write(self.dir / rel_cert, _pem(cert))
            atomic_write(self.dir / rel_p12, p12, mode=KEY_MODE)
            entry = _entry(cert, kind=kind, name=name, issuer="citizen-ca",
                           cert_path=rel_cert, key_path=rel_key, p12_path=rel_p12)  # fmt: skip
            entries.append(entry)
        return IssuedCertificate(
            serial=cert.serial_number,
            name=name,
            cert=cert,
            cert_path=self.dir / rel_cert,
            key_path=self.dir / rel_key,
            p12_path=self.dir / rel_p12,
            fingerprint=entry.fingerprint,
        )

    def revoke(
        self, serial: int, reason: str = "unspecified", at: datetime | None = None
    ) -> IndexEntry:
        """Mark a certificate issued by the citizen CA revoked; the CRL and OCSP follow."""
        flag = parse_reason(reason)
        when = at or utcnow()
        with updating(self.dir) as entries:
            for i, entry in enumerate(entries):
                if entry.serial != serial:
                    continue
                if entry.issuer != "citizen-ca":
                    raise PkiError(
                        f"serial {serial:x} ({entry.kind}) is not covered by the citizen CA's "
                        "CRL; re-create it with `gateway certs init --force` instead"
                    )
                if entry.revoked_at is not None:
                    raise PkiError(f"serial {serial:x} is already revoked ({entry.reason})")
                entries[i] = entry.revoked(when, flag.name)
                return entries[i]
        raise PkiError(f"no certificate with serial {serial:x} ({serial}) in {self.dir}")

    # --- status -------------------------------------------------------------------------

    def entries(self) -> list[IndexEntry]:
        """Every issued leaf, in issue order."""
        return read_index(self.dir)

    def index_version(self) -> tuple[int, int, int]:
        """Changes whenever the index does (for caching the CRL)."""
        return index_version(self.dir)

    def status(self, serial: int) -> CertStatus:
        """good, revoked (with time and reason) or unknown, for the citizen CA's certificates."""
        for entry in read_index(self.dir):
            if entry.serial == serial and entry.issuer == "citizen-ca":
                if entry.revoked_at is None:
                    return CertStatus("good")
                return CertStatus("revoked", entry.revoked_at, _reason_flag(entry.reason))
        return CertStatus("unknown")

    def crl(self, now: datetime, validity: timedelta = DEFAULT_STATUS_VALIDITY) -> bytes:
        """The citizen CA's full CRL, DER encoded."""
        revoked = [
            Revocation(e.serial, e.revoked_at, _reason_flag(e.reason))
            for e in read_index(self.dir)
            if e.issuer == "citizen-ca" and e.revoked_at is not None
        ]
        crl = builders.build_crl(self._citizen, revoked, now, validity)
        return crl.public_bytes(serialization.Encoding.DER)

    def ocsp_response(
        self, request_der: bytes, now: datetime, validity: timedelta = DEFAULT_STATUS_VALIDITY
    ) -> bytes:
        """An RFC 6960 response to a DER request, signed by the delegated responder."""
        return ocsp_responder.respond(
            request_der,
            issuer=self._citizen.cert,
            responder=self._responder,
            lookup=self.status,
            now=now,
            validity=validity,
        )


def _reason_flag(reason: str | None) -> x509.ReasonFlags | None:
    # RFC 5280 §5.3.1: the reason code "unspecified" SHOULD be absent rather than stated.
    if reason is None or reason == x509.ReasonFlags.unspecified.name:
        return None
    return x509.ReasonFlags[reason]
