"""Settings: defaults, then instance/config.py, then LEDGERLINK_* / DATABASE_URL / REDIS_URL.

Development generates its secrets once and keeps them in instance/; production refuses to
start without them (and without a real database and Redis).
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask

#: Written in instance/ by the demo server (``make run``): where its sandbox answers, for terminal commands.
DEMO_SERVER_FILE = "demo-server.json"


class UnsafeConfigError(RuntimeError):
    """Production configuration that must not be run; the message says what to set."""


DEFAULTS = {
    #: "development" (embedded defaults) or "production" (PostgreSQL + Redis, secrets required).
    "ENV": "development",
    "SQLALCHEMY_TRACK_MODIFICATIONS": False,
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    #: Redis URL for RQ, locks and rate limits; empty means an in-process fake Redis.
    "REDIS_URL": "",
    #: Pace provider calls under each (provider, company) quota with the shared limiter in Redis.
    "RATE_LIMITER": True,
    #: Longest the limiter sleeps for a quota window; a longer wait reschedules the job instead.
    "RATE_LIMIT_MAX_WAIT_SECONDS": 90,
    #: Multiplies the documented budgets the limiter keeps where a provider reports none in its
    #: headers (QuickBooks, bexio's routes): 1 is as documented; a sandbox with quotas off takes more.
    "RATE_LIMIT_SCALE": 1,
    #: A push looks the next invoices up and does the steps after the push (PDF, finalize, send)
    #: in two threads beside its own, each in order; off: every call in the job's thread.
    "PUSH_LANES": True,
    #: Most invoices one call creates where the ledger takes batches (QuickBooks: 30 per batch call);
    #: None: as many as the ledger takes.
    "PUSH_BATCH_SIZE": None,
    #: Default minutes a new or changed record waits before the scheduler pushes it (at most 60).
    "SYNC_DELAY_MINUTES": 5,
    #: Seconds a push holds its connection's lease (portal.sync.fencing) without renewing it: a frozen
    #: or killed worker's connection is taken over after this long.
    "PUSH_LEASE_SECONDS": 120,
    #: Days the per-connection operation log keeps provider calls.
    "OPERATION_LOG_DAYS": 14,
    #: Run jobs in a worker thread of the web process (embedded mode only).
    "EMBEDDED_WORKER": True,
    #: Base URL of the provider sandbox; empty means the real providers.
    "SANDBOX_URL": "",
    #: Mount the provider sandbox under /sandbox on the portal's own server (demo mode).
    "MOUNT_SANDBOX": False,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "SESSION_COOKIE_NAME": "ledgerlink_session",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_DURATION": timedelta(days=1),
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    #: Proxies in front of the app that set X-Forwarded-For/-Proto/-Host/-Port (0: none, use the
    #: connection itself). Behind one TLS proxy: 1. Only as many as really sit in front; a larger
    #: number lets clients forge their address.
    "TRUSTED_PROXIES": 0,
    #: Failed logins per account (normalised e-mail) before a lock-out; per client address four times as many.
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_LOCKOUT_SECONDS": 15 * 60,
    #: A session without a request for this long is logged out.
    "IDLE_TIMEOUT_SECONDS": 8 * 3600,
    "PAGE_SIZE": 25,
    #: Largest request body (413 above): an API body with a 5 MB PDF (~6.7 MB as base64) fits.
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
    #: Name of the invoicing SaaS whose customers Ledgerlink serves (shown to approvers).
    "SAAS_NAME": "Invoicr",
    #: Authorization links: default and longest validity, in days.
    "LINK_DEFAULT_DAYS": 7,
    "LINK_MAX_DAYS": 30,
    #: Requests per client address per window to the public link pages (fixed window in Redis).
    "LINK_RATE_LIMIT": 30,
    "LINK_RATE_WINDOW_SECONDS": 60,
    #: Outgoing e-mail: SMTP when SMTP_HOST is set, else the development outbox in instance/.
    "SMTP_HOST": "",
    "SMTP_PORT": 587,
    "SMTP_USERNAME": "",
    "SMTP_PASSWORD": "",
    "SMTP_STARTTLS": True,
    "MAIL_FROM": "Ledgerlink <no-reply@ledgerlink.local>",
    #: Where the SaaS hears about completed authorization links (POST JSON, HMAC-SHA256 signed).
    "WEBHOOK_URL": "",
    "WEBHOOK_SECRET": "",
    #: Log lines as plain text ("text") or one JSON object per line with job and connection ids ("json").
    "LOG_FORMAT": "text",
    #: Bearer token a Prometheus scraper sends to /metrics; empty means only logged-in ops staff.
    "METRICS_TOKEN": "",
}


def load(app: Flask, test_config: dict | None) -> None:
    """Apply the configuration layers to ``app`` in order and check the result.

    :raise UnsafeConfigError: when production settings are missing or unsafe.
    """
    app.config.update(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("LEDGERLINK")
    for name in ("DATABASE_URL", "REDIS_URL"):
        if os.environ.get(name):
            app.config["SQLALCHEMY_DATABASE_URI" if name == "DATABASE_URL" else name] = os.environ[name]
    if test_config:
        app.config.update(test_config)

    uri = app.config.get("SQLALCHEMY_DATABASE_URI") or ""
    if uri.startswith("postgres://"):  # Heroku-style URLs name the dialect SQLAlchemy dropped
        uri = "postgresql://" + uri[len("postgres://") :]
    if uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri[len("postgresql://") :]
    if not uri:
        uri = "sqlite:///" + str(Path(app.instance_path) / "ledgerlink.sqlite")
    app.config["SQLALCHEMY_DATABASE_URI"] = uri

    if app.config["ENV"] == "production":
        _check_production(app)
    else:
        _ensure_development_secrets(app)
        _reach_the_demos_sandbox(app, test_config)


def _check_production(app: Flask) -> None:
    missing = [
        name
        for name, value in (
            ("LEDGERLINK_SECRET_KEY", app.config.get("SECRET_KEY")),
            ("LEDGERLINK_TOKEN_KEYS", app.config.get("TOKEN_KEYS")),
            ("DATABASE_URL", app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")),
            ("REDIS_URL", app.config.get("REDIS_URL")),
        )
        if not value
    ]
    if missing:
        raise UnsafeConfigError("production mode needs " + ", ".join(missing) + " (see README.md, Configuration)")
    problems = []
    if app.config.get("SANDBOX_URL") or app.config.get("MOUNT_SANDBOX"):
        problems.append(
            "LEDGERLINK_SANDBOX_URL / LEDGERLINK_MOUNT_SANDBOX are set: production talks to the real ledgers "
            "(the sandboxes' public development clients would carry every customer's OAuth traffic); unset them"
        )
    problems += _weak_secret("LEDGERLINK_SECRET_KEY", app.config["SECRET_KEY"])
    if app.config.get("WEBHOOK_URL"):
        problems += _weak_secret("LEDGERLINK_WEBHOOK_SECRET", app.config.get("WEBHOOK_SECRET"), needed_for="signing")
    problems += _bad_token_keys(app.config["TOKEN_KEYS"])
    problems += _sandbox_clients(app)
    proxies = app.config.get("TRUSTED_PROXIES")
    if isinstance(proxies, bool) or not isinstance(proxies, int) or not 0 <= proxies <= 5:
        problems.append(f"LEDGERLINK_TRUSTED_PROXIES must be the number of proxies in front (0 to 5), not {proxies!r}")
    if problems:
        raise UnsafeConfigError("unsafe production settings: " + "; ".join(problems) + " (see README.md, Production)")
    app.config.update(
        SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True, EMBEDDED_WORKER=False, MOUNT_SANDBOX=False
    )


#: A secret must have at least this many characters and be this hard to guess (zxcvbn, log10 of the
#: guesses: 24 is about 80 bits; 32 random URL-safe characters score 32, a repeated word far less).
SECRET_MIN_LENGTH = 32
SECRET_MIN_GUESSES_LOG10 = 24


def _weak_secret(name: str, value: object, needed_for: str = "") -> list[str]:
    """Return why a secret is unfit for production (empty when it is fine); never echoes it."""
    from zxcvbn import zxcvbn

    text = str(value or "")
    if len(text) < SECRET_MIN_LENGTH:
        return [
            f"{name} must have at least {SECRET_MIN_LENGTH} characters" + (f" for {needed_for}" if needed_for else "")
        ]
    guesses = zxcvbn(text[:72])["guesses_log10"]
    if guesses < SECRET_MIN_GUESSES_LOG10:
        return [
            f"{name} is too easy to guess (words, repeats or patterns); generate one, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        ]
    return []


def _bad_token_keys(keys: object) -> list[str]:
    """Return why TOKEN_KEYS cannot protect tokens (empty when every key is a random Fernet key)."""
    from .integrations.tokens import TokenCipher, TokenKeyError

    try:
        TokenCipher(str(keys or ""))
    except TokenKeyError as exc:
        return [f"LEDGERLINK_{exc}"]
    problems = []
    for position, key in enumerate((k.strip() for k in str(keys).split(",") if k.strip()), start=1):
        raw = base64.urlsafe_b64decode(key)
        if len(set(raw)) < 16:  # 32 random bytes have about 30 distinct values; a made-up key far fewer
            problems.append(
                f"LEDGERLINK_TOKEN_KEYS entry {position} is not random; generate it with Fernet.generate_key()"
            )
    return problems


def _sandbox_clients(app: Flask) -> list[str]:
    """Refuse OAuth clients that are the sandboxes' public development clients."""
    from .connections.providers import PROVIDERS, SANDBOX_CLIENTS

    return [
        f"LEDGERLINK_{prefix}_CLIENT_SECRET is the sandbox's public development secret"
        for provider, prefix in PROVIDERS.items()
        if app.config.get(f"{prefix}_CLIENT_SECRET") == SANDBOX_CLIENTS[provider][1]
    ]


def _ensure_development_secrets(app: Flask) -> None:
    """Create instance/secrets.py with a secret key and a token key once, then load it."""
    if app.config.get("SECRET_KEY") and app.config.get("TOKEN_KEYS"):
        return
    path = Path(app.instance_path) / "secrets.py"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        path.write_text(
            "# Generated for development on first start; production sets LEDGERLINK_* instead.\n"
            f"SECRET_KEY = {secrets.token_urlsafe(48)!r}\n"
            f"TOKEN_KEYS = {fernet_key!r}\n"
        )
        path.chmod(0o600)
    generated: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), generated)  # noqa: S102 - our own generated file
    for key in ("SECRET_KEY", "TOKEN_KEYS"):
        if not app.config.get(key):
            app.config[key] = generated[key]


def _reach_the_demos_sandbox(app: Flask, test_config: dict | None) -> None:
    """Point a terminal command at the running demo's sandbox (development, no SANDBOX_URL set).

    ``make run`` serves the sandboxes under /sandbox and notes the address in instance/: a
    ``flask --app app health probe`` (or any command that calls a ledger) typed beside it then
    talks to the same sandbox as the demo, without extra environment variables.
    """
    import json

    import click

    if app.config.get("SANDBOX_URL") or (test_config and "SANDBOX_URL" in test_config):
        return
    if click.get_current_context(silent=True) is None:  # a server or a test, not a terminal command
        return
    noted = Path(app.instance_path) / DEMO_SERVER_FILE
    try:
        app.config["SANDBOX_URL"] = json.loads(noted.read_text())["sandbox_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return
