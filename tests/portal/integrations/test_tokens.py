"""Token crypto: round trip, key rotation, clear failures, no secret in any repr."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from portal.integrations import specs
from portal.integrations.base import TokenSet
from portal.integrations.tokens import TokenCipher, TokenDecryptError, TokenKeyError

ACCESS = "AAEAAEBe!fw!D3YrDBOJjg9rgULI9ow6q74hxaJp0wzPXAdeAaQbqBO!segcB"
REFRESH = "__1P!ISk2ZIUuvX--UuC-PNg_bzWWegOZfWG4_XWObkQZnZZmWL2_SX5RTinEFtPm7cUPb"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def token_set() -> TokenSet:
    return TokenSet(
        access_token=ACCESS,
        refresh_token=REFRESH,
        access_expires_at=NOW + timedelta(seconds=600),
        refresh_expires_at=NOW + timedelta(days=30),
        issued_at=NOW,
        scope="",
    )


def test_round_trip_keeps_every_field():
    cipher = TokenCipher(Fernet.generate_key().decode())
    blob = cipher.encrypt(token_set())
    assert ACCESS not in blob and REFRESH not in blob
    assert cipher.decrypt(blob) == token_set()


def test_config_keys_are_comma_separated_newest_first():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    blob_old = TokenCipher(old).encrypt(token_set())
    both = TokenCipher.from_config({"TOKEN_KEYS": f" {new} , {old} "})
    assert both.key_count == 2
    assert both.decrypt(blob_old) == token_set()
    # New encryptions use the newest key only: the new key alone can read them.
    assert TokenCipher(new).decrypt(both.encrypt(token_set())) == token_set()


def test_rotation_re_encrypts_with_the_newest_key_so_the_old_one_can_go():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    blob = TokenCipher(old).encrypt(token_set())
    rotated = TokenCipher([new, old]).rotate(blob)
    assert rotated != blob
    assert TokenCipher(new).decrypt(rotated) == token_set()
    with pytest.raises(TokenDecryptError):
        TokenCipher(old).decrypt(rotated)


def test_wrong_key_fails_clearly_without_leaking():
    key = Fernet.generate_key().decode()
    other = Fernet.generate_key().decode()
    blob = TokenCipher(key).encrypt(token_set())
    with pytest.raises(TokenDecryptError, match="cannot be decrypted with any of the 1 configured") as info:
        TokenCipher(other).decrypt(blob)
    assert other not in str(info.value) and key not in str(info.value)
    with pytest.raises(TokenDecryptError):
        TokenCipher(other).rotate(blob)
    with pytest.raises(TokenDecryptError):
        TokenCipher(key).decrypt("not-a-fernet-token")


def test_bad_key_configuration_is_refused_without_echoing_the_key():
    with pytest.raises(TokenKeyError, match="TOKEN_KEYS is empty"):
        TokenCipher.from_config({})
    with pytest.raises(TokenKeyError, match="entry 2 of 2 is not a Fernet key") as info:
        TokenCipher(f"{Fernet.generate_key().decode()},secret-not-a-key")
    assert "secret-not-a-key" not in str(info.value)


def test_repr_and_logs_never_show_secrets(caplog):
    tokens = token_set()
    key = Fernet.generate_key().decode()
    cipher = TokenCipher(key)
    shown = [repr(tokens), str(tokens), f"{tokens}", repr(cipher), repr([tokens])]
    for text in shown:
        assert ACCESS not in text and REFRESH not in text and key not in text
    assert "access_token='***'" in repr(tokens)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("portal.integrations").info("tokens: %s %r", tokens, cipher)
    assert ACCESS not in caplog.text and REFRESH not in caplog.text


def test_token_set_from_exact_response_reads_string_expiry():
    body = {"access_token": ACCESS, "token_type": "bearer", "expires_in": "600", "refresh_token": REFRESH}
    tokens = TokenSet.from_response(body, specs.EXACT_ONLINE_SPEC.tokens, now=NOW)
    assert tokens.access_expires_at == NOW + timedelta(seconds=600)
    assert tokens.refresh_expires_at == NOW + timedelta(days=30)
    assert not tokens.access_expired(NOW + timedelta(seconds=500))
    assert tokens.access_expired(NOW + timedelta(seconds=580))


def test_token_set_from_quickbooks_response_reads_refresh_window():
    body = {
        "access_token": ACCESS,
        "refresh_token": "AB11x",
        "expires_in": 3600,
        "x_refresh_token_expires_in": 8726400,
    }
    tokens = TokenSet.from_response(body, specs.QUICKBOOKS_SPEC.tokens, now=NOW)
    assert tokens.access_expires_at == NOW + timedelta(hours=1)
    assert tokens.refresh_expires_at == NOW + timedelta(seconds=8726400)
