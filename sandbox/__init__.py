"""Faithful emulators of Exact Online, QuickBooks Online and bexio, as one Flask app.

Each real host maps to a path prefix (``/exact-online/nl``, ``/quickbooks/api``, ``/bexio/auth``…)
below which paths are exactly the real ones, so an HTTP client needs only a different base URL.
Test controls live under ``/_control`` (see sandbox/README.md). Nothing here imports ``portal``:
the sandbox stands in for third parties.
"""

from __future__ import annotations

from flask import Flask, jsonify

from .core.control import bp as control_bp
from .core.provider import SandboxContext


def _provider_classes():
    # Imported here so that a provider module may import this package's core freely.
    from .bexio import BexioEmulator
    from .exact import ExactOnlineEmulator
    from .quickbooks import QuickBooksEmulator

    return (ExactOnlineEmulator, QuickBooksEmulator, BexioEmulator)


def create_app(config: dict | None = None) -> Flask:
    """Build the sandbox app with every provider loaded with its default demo data.

    Config keys: ``SANDBOX_QUOTAS`` (bool, default True), ``SANDBOX_QUOTA_SCALE`` (float,
    default 1.0), ``SANDBOX_FAULT_SEED`` (int, default 0), ``SANDBOX_STATE_FILE`` (a path: keep
    the state there across restarts, see :mod:`sandbox.core.persist`; default none).
    """
    app = Flask(__name__)
    app.config.update(SANDBOX_QUOTAS=True, SANDBOX_QUOTA_SCALE=1.0, SANDBOX_FAULT_SEED=0, SANDBOX_STATE_FILE="")
    app.config.from_prefixed_env("SANDBOX")
    if config:
        app.config.update(config)
    app.json.sort_keys = False

    ctx = SandboxContext()
    ctx.faults.__init__(seed=int(app.config["SANDBOX_FAULT_SEED"]))
    for cls in _provider_classes():
        provider = cls(ctx)
        ctx.providers[provider.name] = provider
        provider.register(app)
    ctx.reset()
    ctx.quotas_enabled = bool(app.config["SANDBOX_QUOTAS"])
    ctx.quota_scale = float(app.config["SANDBOX_QUOTA_SCALE"])
    app.extensions["sandbox"] = ctx
    app.register_blueprint(control_bp)
    if app.config["SANDBOX_STATE_FILE"]:
        from .core.persist import StateFile

        ctx.state_file = StateFile(ctx, app.config["SANDBOX_STATE_FILE"])
        ctx.state_file.load()
        ctx.state_file.start(app)

    @app.get("/")
    def index():
        return jsonify(
            name="Ledgerlink provider sandbox",
            providers=sorted(ctx.providers),
            control="/_control",
        )

    return app
