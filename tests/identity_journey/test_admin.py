"""The admin API: loopback peers only, Basic credentials decoded strictly, certificates on demand."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import encode_basic_auth

from gateway.demo import citizens_list
from gateway.identity.http_basic import decode_basic
from gateway.limits import is_loopback
from gateway.pki import Pki
from tests.conftest import Hub

SUN = citizens_list()[0].user_id


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("192.168.1.1", False),
        ("2001:db8::1", False),
        (None, False),
        ("garbage", False),
    ],
)
def test_admin_is_loopback_only(remote: str | None, allowed: bool) -> None:
    assert is_loopback(remote) is allowed


def test_decode_basic() -> None:
    assert decode_basic(encode_basic_auth("8CK3SA26U1G4", "pässword:with colon")) == (
        "8CK3SA26U1G4",
        "pässword:with colon",
    )
    assert decode_basic("Bearer abc") is None
    assert decode_basic("Basic !!!") is None
    assert decode_basic("Basic " + "bm9jb2xvbg==") is None  # "nocolon"


async def test_certificates_on_demand_refuse_bad_user_ids_before_issuing(hub: Hub) -> None:
    pki = Pki.load(hub.config.pki_dir)
    before = pki.entries()

    async def issue(user_id: str) -> tuple[int, dict[str, Any]]:
        async with hub.session.post(
            f"{hub.url}/admin/certificates", json={"user_id": user_id}
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    # The User ID names the certificate (with a suffix), so it must fit the PKI's naming rule.
    for bad in ("has space", "-leading-dash", "slash/in", "é", "A" * 56):
        status, problem = await issue(bad)
        assert status == 400, (bad, problem)
        assert "at most 55 characters" in problem["detail"]
    # An unknown user is refused before anything is issued: no certificate or key left behind.
    status, problem = await issue("NOSUCHUSER01")
    assert status == 404 and "NOSUCHUSER01" in problem["detail"]
    assert pki.entries() == before
    assert not any("NOSUCHUSER01" in p.name for p in (pki.dir / "issued").glob("*"))

    status, issued = await issue(SUN)
    assert status == 201 and issued["user_id"] == SUN
    [new] = [e for e in pki.entries() if e not in before]
    assert new.name.startswith(f"{SUN}-") and format(new.serial, "x") == issued["serial"]
