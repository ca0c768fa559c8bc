"""Token vault, crypto part: encrypt and decrypt a TokenSet with the app's ``TOKEN_KEYS``.

``TOKEN_KEYS`` is a comma-separated list of Fernet keys, newest first. Encryption always uses
the newest; decryption tries each, so adding a key in front rotates without downtime, and
:meth:`TokenCipher.rotate` re-encrypts a stored value with the newest key before an old key is
dropped. Nothing here logs or shows a token or a key. (The refresh lock and persisting rotated
tokens first come with the Connection model; DESIGN.md "Jobs".)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .base import TokenSet


class TokenKeyError(ValueError):
    """``TOKEN_KEYS`` is missing or holds something that is not a Fernet key."""


class TokenDecryptError(Exception):
    """A stored token set could not be decrypted with any configured key."""


def _parse_keys(keys: str | Sequence[str]) -> list[str]:
    items = keys.split(",") if isinstance(keys, str) else list(keys)
    return [k.strip() for k in items if k and k.strip()]


class TokenCipher:
    """Encrypts token sets with the newest key and decrypts with any configured key."""

    def __init__(self, keys: str | Sequence[str]) -> None:
        """Build the cipher from Fernet keys, newest first.

        :raise TokenKeyError: when there is no key or one is malformed (the key is not echoed).
        """
        parsed = _parse_keys(keys)
        if not parsed:
            raise TokenKeyError("TOKEN_KEYS is empty: set LEDGERLINK_TOKEN_KEYS to one or more Fernet keys")
        fernets = []
        for position, key in enumerate(parsed, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise TokenKeyError(
                    f"TOKEN_KEYS entry {position} of {len(parsed)} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    @classmethod
    def from_config(cls, config: Mapping) -> TokenCipher:
        """Build the cipher from an app config's ``TOKEN_KEYS``."""
        return cls(config.get("TOKEN_KEYS") or "")

    def __repr__(self) -> str:
        return f"<TokenCipher keys={self.key_count}>"

    def encrypt(self, tokens: TokenSet) -> str:
        """Return the token set encrypted with the newest key, as text for a database column."""
        payload = json.dumps(tokens.to_dict(), separators=(",", ":")).encode()
        return self._fernet.encrypt(payload).decode("ascii")

    def decrypt(self, blob: str | bytes) -> TokenSet:
        """Return the token set stored in ``blob``.

        :raise TokenDecryptError: when no configured key fits or the content is not a token set.
        """
        raw = blob.encode("ascii") if isinstance(blob, str) else blob
        try:
            payload = self._fernet.decrypt(raw)
        except (InvalidToken, ValueError, TypeError):
            raise TokenDecryptError(
                f"stored tokens cannot be decrypted with any of the {self.key_count} configured "
                "TOKEN_KEYS: was the key that encrypted them removed? Restore it, or reconnect."
            ) from None
        try:
            return TokenSet.from_dict(json.loads(payload))
        except (ValueError, KeyError, TypeError):
            raise TokenDecryptError("decrypted value is not a token set") from None

    def rotate(self, blob: str | bytes) -> str:
        """Return ``blob`` re-encrypted with the newest key (same tokens).

        :raise TokenDecryptError: when no configured key fits.
        """
        raw = blob.encode("ascii") if isinstance(blob, str) else blob
        try:
            return self._fernet.rotate(raw).decode("ascii")
        except (InvalidToken, ValueError, TypeError):
            raise TokenDecryptError(
                f"stored tokens cannot be rotated: none of the {self.key_count} TOKEN_KEYS decrypts them"
            ) from None
