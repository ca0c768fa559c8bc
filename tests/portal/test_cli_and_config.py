"""The flask commands and the configuration layers."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from portal import create_app
from portal.config import UnsafeConfigError


def test_users_create(app, db):
    from portal.models import StaffUser

    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Ann@Example.com",
            "--role",
            "ops",
            "--password",
            "a long enough pw",
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(db.select(StaffUser).filter_by(email="ann@example.com"))
    assert user.role.value == "ops" and user.check_password("a long enough pw")
    assert "a long enough pw" not in user.password_hash

    again = runner.invoke(
        args=["users", "create", "--email", "ann@example.com", "--role", "ops", "--password", "x" * 12]
    )
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(
        args=["users", "create", "--email", "bob@example.com", "--role", "ops", "--password", "short"]
    )
    assert short.exit_code != 0 and "at least 12 characters" in short.output
    bad_role = runner.invoke(
        args=["users", "create", "--email", "c@example.com", "--role", "boss", "--password", "x" * 12]
    )
    assert bad_role.exit_code != 0 and "boss" in bad_role.output


def test_users_create_prompts_for_the_password(app, db):
    from portal.models import StaffUser

    result = app.test_cli_runner().invoke(
        args=["users", "create", "--email", "dee@example.com", "--role", "support"],
        input="prompted password\nprompted password\n",
    )
    assert result.exit_code == 0, result.output
    assert db.session.scalar(db.select(StaffUser).filter_by(email="dee@example.com")).check_password(
        "prompted password"
    )


def test_seed_demo_command(app, db):
    result = app.test_cli_runner().invoke(args=["seed", "demo", "--orgs", "3", "--seed", "9"])
    assert result.exit_code == 0, result.output
    assert "3 organizations" in result.output
    skipped = app.test_cli_runner().invoke(args=["seed", "demo", "--if-empty"])
    assert "left as it is" in skipped.output


def test_production_refuses_to_start_without_secrets(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(UnsafeConfigError) as exc:
        create_app({"ENV": "production", "SECRET_KEY": None, "TOKEN_KEYS": None})
    for name in ("LEDGERLINK_SECRET_KEY", "LEDGERLINK_TOKEN_KEYS", "DATABASE_URL", "REDIS_URL"):
        assert name in str(exc.value)


STRONG_SECRET = "kV3q9-Xz_7LmP2rT8wYb4NcJ6hGf1DsA0eUiOoQ5"


def test_production_with_everything_set_hardens_cookies(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.internal/ledgerlink")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    app = create_app({"ENV": "production", "SECRET_KEY": STRONG_SECRET, "TOKEN_KEYS": Fernet.generate_key().decode()})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert app.config["EMBEDDED_WORKER"] is False


def test_development_generates_and_keeps_its_secrets(tmp_path, monkeypatch):
    from flask import Flask

    from portal import config

    first, second = Flask("a", instance_path=str(tmp_path)), Flask("b", instance_path=str(tmp_path))
    config.load(first, None)
    config.load(second, None)
    assert len(first.config["SECRET_KEY"]) >= 32
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["TOKEN_KEYS"] == second.config["TOKEN_KEYS"]
    assert (tmp_path / "secrets.py").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"SANDBOX_URL": "http://127.0.0.1:5000/sandbox"}, "LEDGERLINK_SANDBOX_URL"),
        ({"SECRET_KEY": "s" * 40}, "LEDGERLINK_SECRET_KEY is too easy to guess"),
        ({"SECRET_KEY": "changeme" * 5}, "LEDGERLINK_SECRET_KEY is too easy to guess"),
        ({"SECRET_KEY": "short but random 7Gq"}, "LEDGERLINK_SECRET_KEY must have at least 32"),
        ({"TOKEN_KEYS": "not-a-fernet-key"}, "TOKEN_KEYS entry 1 of 1 is not a Fernet key"),
        ({"TOKEN_KEYS": "A" * 43 + "="}, "TOKEN_KEYS entry 1 is not random"),
        ({"WEBHOOK_URL": "https://saas.example/hook", "WEBHOOK_SECRET": "secret" * 6}, "LEDGERLINK_WEBHOOK_SECRET"),
        ({"QUICKBOOKS_CLIENT_ID": "x", "QUICKBOOKS_CLIENT_SECRET": "ledgerlink-qbo-dev-secret"}, "public development"),
        ({"TRUSTED_PROXIES": -1}, "LEDGERLINK_TRUSTED_PROXIES"),
    ],
)
def test_production_refuses_unsafe_settings_at_start(monkeypatch, override, named):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.internal/ledgerlink")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    settings = {"ENV": "production", "SECRET_KEY": STRONG_SECRET, "TOKEN_KEYS": Fernet.generate_key().decode()}
    with pytest.raises(UnsafeConfigError) as exc:
        create_app({**settings, **override})
    assert named in str(exc.value)
    # The refusal never echoes the secret it refuses.
    for value in override.values():
        if isinstance(value, str) and len(value) > 12 and "http" not in value:
            assert value not in str(exc.value)
