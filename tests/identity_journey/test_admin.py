"""The admin API answers loopback peers only; Basic credentials are decoded strictly."""

from __future__ import annotations

import pytest
from aiohttp import encode_basic_auth

from gateway.identity.http_basic import decode_basic
from gateway.limits import is_loopback


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
