"""Mail at rest: AES-256-GCM under named keys, with rotation.

Each encrypted field is `nonce (12 bytes) || ciphertext || tag`; the associated data binds it to
its message, its recipient and the field, so ciphertext cannot be moved between rows or fields.
New messages use the current key; older ones name theirs (key_id) and decrypt with it until
`reencrypt` moves them under the current key.

Keys come from `[mail] keys` (base64 of 32 bytes each) and `current_key`. With none configured
(development), one key ("local") is derived with HKDF from a random secret in
`<data_dir>/mail.key`, created 0600 on first use — never commit it, never configure it for a
real deployment.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
LOCAL_KEY_ID = "local"
SECRET_FILE = "mail.key"


class MailKeyError(Exception):
    """A message names a key the hub does not hold, or its ciphertext does not verify."""


class MailCrypto:
    def __init__(self, keys: Mapping[str, bytes], current_key: str) -> None:
        if current_key not in keys:
            raise ValueError(f"current mail key '{current_key}' is not among the keys")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"mail key '{key_id}' must be 32 bytes")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current_key = current_key

    @classmethod
    def from_config(cls, keys: Mapping[str, str], current_key: str, data_dir: Path) -> MailCrypto:
        if keys:
            return cls({k: base64.b64decode(v) for k, v in keys.items()}, current_key)
        return cls({LOCAL_KEY_ID: _local_key(data_dir)}, LOCAL_KEY_ID)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def encrypt(self, plaintext: str, aad: bytes, key_id: str | None = None) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        cipher = self._ciphers[key_id or self.current_key]
        return nonce + cipher.encrypt(nonce, plaintext.encode("utf-8"), aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> str:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise MailKeyError(f"mail key '{key_id}' is not configured")
        try:
            plain = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise MailKeyError("a mail ciphertext did not verify") from None
        return plain.decode("utf-8")


def field_aad(message_id: str, user_id: str, field: str) -> bytes:
    """Associated data of one field: message id, recipient (or author) and field name."""
    return f"{message_id}\x00{user_id}\x00{field}".encode()


def _local_key(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
    secret = base64.b64decode(path.read_bytes().strip())
    if len(secret) < 32:
        raise ValueError(f"{path} does not hold a 32-byte secret")
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"gateway mail at rest v1"
    ).derive(secret)
