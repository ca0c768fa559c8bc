"""``flask sandbox serve``: run the emulators on a real multi-threaded WSGI server; ``flask sandbox reset``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

sandbox_cli = AppGroup("sandbox", help="Run the provider emulators.")

#: The file in the app's instance folder where the demo's mounted sandbox keeps its state.
STATE_FILE_NAME = "sandbox-state.pickle"


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


@sandbox_cli.command("reset")
@click.option("--url", default=None, help="The sandbox's base URL (default: the running demo's, else SANDBOX_URL).")
def reset(url: str | None) -> None:
    """Start the sandbox afresh: demo companies only, every consent, token and ledger entry gone.

    Resets the running sandbox (the demo's, under /sandbox) and the state it keeps in instance/.
    """
    from pathlib import Path

    import requests
    from flask import current_app

    url = (url or current_app.config.get("SANDBOX_URL") or "").rstrip("/")
    state = Path(current_app.instance_path) / STATE_FILE_NAME
    if url:
        try:
            requests.post(f"{url}/_control/reset", timeout=10).raise_for_status()
        except requests.RequestException as exc:
            click.echo(f"The sandbox at {url} did not answer ({type(exc).__name__}); resetting its kept state only.")
        else:
            click.echo(f"The sandbox at {url} starts afresh (its kept state too).")
            return
    if state.exists():
        state.unlink()
        click.echo(f"Removed the kept sandbox state {state}: the next start of the demo begins with the demo data.")
    else:
        click.echo("There was no kept sandbox state: the sandbox starts with its demo data.")
