"""``flask sandbox serve``: run the emulators on a real multi-threaded WSGI server."""

from __future__ import annotations

import click
from flask.cli import AppGroup

sandbox_cli = AppGroup("sandbox", help="Run the provider emulators.")


@sandbox_cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5050, show_default=True, type=int)
@click.option("--threads", default=16, show_default=True, type=int)
@click.option("--no-quotas", is_flag=True, help="Turn every provider's rate limits off.")
def serve(host: str, port: int, threads: int, no_quotas: bool) -> None:
    """Serve the Exact Online, QuickBooks Online and bexio emulators."""
    from waitress import serve as waitress_serve

    from . import create_app

    app = create_app({"SANDBOX_QUOTAS": not no_quotas})
    click.echo(f"Sandbox listening on http://{host}:{port}/ (controls at /_control)")
    waitress_serve(app, host=host, port=port, threads=threads, ident="ledgerlink-sandbox")
