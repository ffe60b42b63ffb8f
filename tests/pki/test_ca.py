"""Creating the PKI and issuing client certificates, checked by openssl and cryptography."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.clock import utcnow
from gateway.pki import Pki, PkiError
from tests.pki.conftest import BASE_URL, Run

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

LAYOUT = [
    "root-ca.pem", "root-ca.key", "citizen-ca.pem", "citizen-ca.key", "server.pem",
    "server-chain.pem", "server.key", "ocsp-responder.pem", "ocsp-responder.key",
    "ca-bundle.pem", "index.json", "pki.json", ".gitignore",
]  # fmt: skip


def _verifier(pki: Pki, at: object = None) -> object:
    builder = PolicyBuilder().store(Store([pki.root]))
    if at is not None:
        builder = builder.time(at)  # type: ignore[arg-type]
    return builder.build_client_verifier()


def test_init_creates_the_layout_with_private_keys(pki: Pki) -> None:
    for name in LAYOUT:
        assert (pki.dir / name).is_file(), name
    for key in pki.dir.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert "*" in (pki.dir / ".gitignore").read_text().splitlines()
    kinds = {e.kind for e in pki.entries()}
    assert kinds == {"server", "ocsp"}
    assert pki.trust_anchors == [pki.root, pki.citizen_ca]


def test_init_is_idempotent_and_force_starts_over(tmp_path: Path) -> None:
    first = Pki.init(tmp_path, base_url=BASE_URL)
    before = {n: (tmp_path / n).read_bytes() for n in LAYOUT if n != "pki.json"}
    again = Pki.init(tmp_path, base_url=BASE_URL)
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    assert again.root == first.root
    forced = Pki.init(tmp_path, base_url=BASE_URL, force=True)
    assert forced.root != first.root
    assert forced.citizen_ca.issuer == forced.root.subject


def test_missing_issuing_ca_is_recreated_with_what_it_signed(tmp_path: Path) -> None:
    first = Pki.init(tmp_path, base_url=BASE_URL)
    (tmp_path / "citizen-ca.key").unlink()
    second = Pki.init(tmp_path, base_url=BASE_URL)
    assert second.root == first.root
    assert second.citizen_ca != first.citizen_ca
    assert second.ocsp_responder.issuer == second.citizen_ca.subject
    assert second.ocsp_responder != first.ocsp_responder


def test_init_without_the_root_key_keeps_the_pki_and_refuses_what_needs_it(
    tmp_path: Path,
) -> None:
    first = Pki.init(tmp_path, base_url=BASE_URL)
    alice = first.issue("alice", common_name="Alice")
    kept = [n for n in LAYOUT if n not in ("root-ca.key", "pki.json")]
    before = {n: (tmp_path / n).read_bytes() for n in kept}
    # An operator may keep the root key offline: loading and serving never need it.
    (tmp_path / "root-ca.key").unlink()
    again = Pki.init(tmp_path, base_url=BASE_URL)
    assert {n: (tmp_path / n).read_bytes() for n in kept} == before
    assert not (tmp_path / "root-ca.key").exists()
    verified = _verifier(again).verify(alice.cert, [again.citizen_ca])  # type: ignore[attr-defined]
    assert verified.chain[-1] == first.root
    assert Pki.ensure(tmp_path, base_url=BASE_URL).citizen_ca == first.citizen_ca

    # What needs the root to sign is refused, saying how to go on; nothing is replaced.
    with pytest.raises(PkiError, match=r"root-ca\.key is missing, and a new server certificate"):
        Pki.ensure(tmp_path, base_url=BASE_URL, hosts=["gw.example.test"])
    (tmp_path / "citizen-ca.key").unlink()
    with pytest.raises(PkiError, match="a new citizen CA needs it: restore") as refused:
        Pki.init(tmp_path, base_url=BASE_URL)
    assert "gateway certs init --force" in str(refused.value)
    assert {n: (tmp_path / n).read_bytes() for n in kept if n != "citizen-ca.key"} == {
        n: data for n, data in before.items() if n != "citizen-ca.key"
    }
    forced = Pki.init(tmp_path, base_url=BASE_URL, force=True)
    assert forced.root != first.root and (tmp_path / "root-ca.key").exists()


def test_load_without_init_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="certs init"):
        Pki.load(tmp_path)


def test_ensure_loads_or_creates_and_follows_new_hosts(tmp_path: Path) -> None:
    created = Pki.ensure(tmp_path, base_url=BASE_URL)
    assert Pki.ensure(tmp_path, base_url=BASE_URL).root == created.root
    server_before = created.server_cert_path.read_bytes()
    Pki.ensure(tmp_path, base_url=BASE_URL, hosts=["gw.example.test", "10.1.2.3"])
    server = x509.load_pem_x509_certificate(created.server_cert_path.read_bytes())
    assert created.server_cert_path.read_bytes() != server_before
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "gw.example.test" in san.get_values_for_type(x509.DNSName)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "10.1.2.3"}


def test_server_and_responder_chain_under_openssl(pki: Pki, run: Run) -> None:
    result = run(
        "openssl", "verify", "-CAfile", pki.root_path, "-untrusted", pki.citizen_ca_path,
        pki.server_cert_path, pki.ocsp_responder_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    responder = pki.ocsp_responder
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert responder.extensions.get_extension_for_class(x509.OCSPNoCheck)


def test_issued_certificate_has_the_profile(pki: Pki) -> None:
    issued = pki.issue("alice", common_name="Alice Smith", email="alice@example.org")
    ext = issued.cert.extensions
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["alice@example.org"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:gateway:citizen:alice"]
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement and not usage.key_cert_sign
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    dp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name == [x509.UniformResourceIdentifier(f"{BASE_URL}/pki/crl")]
    aia = {
        (d.access_method._name, d.access_location.value)
        for d in ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    }
    assert aia == {
        ("OCSP", f"{BASE_URL}/pki/ocsp"),
        ("caIssuers", f"{BASE_URL}/pki/citizen-ca.pem"),
    }
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    entry = next(e for e in pki.entries() if e.serial == issued.serial)
    assert entry.kind == "citizen" and entry.fingerprint == issued.fingerprint
    index = json.loads((pki.dir / "index.json").read_text())
    assert index["entries"][-1]["serial"] == format(issued.serial, "x")
    assert stat.S_IMODE(issued.key_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["citizen", "council", "supplier"])
def test_cryptography_client_verifier_accepts_issued(pki: Pki, kind: str) -> None:
    issued = pki.issue(f"holder-{kind}", common_name="Holder", kind=kind)
    verified = _verifier(pki).verify(issued.cert, [pki.citizen_ca])  # type: ignore[attr-defined]
    assert verified.chain[0] == issued.cert
    assert verified.chain[-1] == pki.root


def test_openssl_verifies_issued_with_the_chain(pki: Pki, run: Run) -> None:
    issued = pki.issue("bob", common_name="Bob Jones")
    result = run(
        "openssl", "verify", "-purpose", "sslclient", "-CAfile", pki.root_path,
        "-untrusted", pki.citizen_ca_path, issued.cert_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{issued.cert_path}: OK" in result.stdout


def test_pkcs12_opens_with_the_passphrase(pki: Pki, run: Run) -> None:
    issued = pki.issue("carol", common_name="Carol", passphrase="s3cret pass")
    key, cert, extra = pkcs12.load_key_and_certificates(
        issued.p12_path.read_bytes(), b"s3cret pass"
    )
    assert cert == issued.cert and key is not None
    assert extra == [pki.citizen_ca, pki.root]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(issued.p12_path.read_bytes(), b"wrong")
    ok = run(
        "openssl",
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        issued.p12_path,
        "-passin",
        "pass:s3cret pass",
    )
    assert ok.returncode == 0, ok.stderr
    bad = run(
        "openssl", "pkcs12", "-info", "-noout", "-in", issued.p12_path, "-passin", "pass:nope"
    )
    assert bad.returncode != 0


def test_expired_and_not_yet_valid_certificates_are_refused(pki: Pki) -> None:
    now = utcnow().replace(microsecond=0)
    expired = pki.issue(
        "old",
        common_name="Old",
        not_before=now - timedelta(days=10),
        not_after=now - timedelta(days=1),
    )
    future = pki.issue(
        "new",
        common_name="New",
        not_before=now + timedelta(days=1),
        not_after=now + timedelta(days=9),
    )
    for issued in (expired, future):
        with pytest.raises(VerificationError):
            _verifier(pki, now).verify(issued.cert, [pki.citizen_ca])  # type: ignore[attr-defined]


def test_issue_rejects_bad_input_and_current_duplicates(pki: Pki) -> None:
    with pytest.raises(PkiError, match="invalid name"):
        pki.issue("../evil", common_name="X")
    with pytest.raises(PkiError, match="invalid kind"):
        pki.issue("x", common_name="X", kind="root")
    first = pki.issue("dave", common_name="Dave")
    with pytest.raises(PkiError, match="already has a current certificate"):
        pki.issue("dave", common_name="Dave")
    pki.revoke(first.serial, "superseded")
    second = pki.issue("dave", common_name="Dave")
    assert second.serial != first.serial


def test_concurrent_issuers_lose_no_index_entries(pki: Pki) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Separate Pki objects, as a CLI process and the hub would have; each takes the file lock.
    def issue(i: int) -> int:
        return Pki.load(pki.dir).issue(f"user{i}", common_name=f"User {i}").serial

    with ThreadPoolExecutor(8) as pool:
        serials = set(pool.map(issue, range(16)))
    assert serials <= {e.serial for e in pki.entries()}
    assert len(pki.entries()) == 16 + 2
