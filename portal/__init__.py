"""Ledgerlink: the portal where staff run customers' connections to their accounting ledgers."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from . import config


def create_app(test_config: dict | None = None) -> Flask:
    """Build the portal app: config layers, extensions, blueprints, CLI."""
    instance = (test_config or {}).get("INSTANCE_PATH")  # a test's own instance folder
    app = Flask(__name__, instance_relative_config=True, instance_path=str(instance) if instance else None)
    app.instance_path  # noqa: B018 - resolved before config so instance/ paths work
    config.load(app, test_config)
    logging.basicConfig(level=app.config.get("LOG_LEVEL", "INFO"))
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from .ops import logs

    logs.configure(app.config.get("LOG_FORMAT", "text"))

    from . import errors, security
    from .extensions import csrf, db, htmx, limiter, login_manager, migrate, queue

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(Path(app.root_path).parent / "migrations"),
        render_as_batch=True,
        compare_type=True,
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    queue.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    limiter.init_app(app)
    security.init_app(app)
    errors.init_app(app)

    from .api import routes as api
    from .auth import views as auth
    from .connections import views as connections
    from .customers import views as customers
    from .dashboard import views as dashboard
    from .history import views as history
    from .links import i18n
    from .links import views as links
    from .mail import bp as outbox
    from .mappings import views as mappings
    from .oplog import views as oplog
    from .ops import views as ops
    from .opsviews import views as opsviews
    from .organizations import views as organizations
    from .reconcile import views as reconcile
    from .system import views as system

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(connections.bp)
    app.register_blueprint(customers.bp)
    app.register_blueprint(mappings.bp)
    app.register_blueprint(history.bp)
    app.register_blueprint(organizations.bp)
    app.register_blueprint(system.bp)
    app.register_blueprint(links.bp)
    app.register_blueprint(outbox)
    app.register_blueprint(ops.bp)
    app.register_blueprint(ops.metrics_bp)
    app.register_blueprint(oplog.bp)
    app.register_blueprint(opsviews.bp)
    app.register_blueprint(reconcile.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # API requests authenticate with a key, never with the session cookie
    i18n.init_app(app)

    from .cli import init_app as init_cli

    init_cli(app)
    from .api.cli import api_clients_cli

    app.cli.add_command(api_clients_cli)
    from .oplog.cli import oplog_cli

    app.cli.add_command(oplog_cli)

    from .templating import init_app as init_templating

    init_templating(app)

    if app.config["MOUNT_SANDBOX"]:
        _mount_sandbox(app)
    _trust_proxies(app)
    if app.config["EMBEDDED_WORKER"] and _serving():
        queue.start_embedded_worker(app)
    return app


def _serving() -> bool:
    """Say whether this process serves the app (a WSGI server, ``flask run``), not a one-off command.

    A ``flask`` command builds the app inside its click context and ends when the command does:
    an embedded runtime started there would leave its jobs half done.
    """
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    return ctx.info_name == "run" or (ctx.invoked_subcommand == "run")


def _trust_proxies(app: Flask) -> None:
    """Read the client's address, scheme and host from TRUSTED_PROXIES hops of X-Forwarded-* headers.

    Behind a TLS proxy the app sees plain HTTP from the proxy's address: without this, redirect
    URIs would say http:// and every client would share the proxy's address in the throttles.
    """
    from werkzeug.middleware.proxy_fix import ProxyFix

    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]


def _mount_sandbox(app: Flask) -> None:
    """Serve the provider sandbox under /sandbox on this server (the one-process demo).

    Its state is kept in instance/ across restarts (``flask sandbox reset`` starts it afresh), and
    its address is noted there for the commands run from a terminal (:func:`portal.config.load`).
    """
    import json

    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    import sandbox
    from sandbox.cli import STATE_FILE_NAME

    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    mounted = sandbox.create_app({"SANDBOX_STATE_FILE": str(instance / STATE_FILE_NAME)})
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/sandbox": mounted})  # type: ignore[method-assign]
    if app.config.get("SANDBOX_URL"):
        (instance / config.DEMO_SERVER_FILE).write_text(json.dumps({"sandbox_url": app.config["SANDBOX_URL"]}) + "\n")
