"""``flask oplog purge``: drop operation-log entries past their retention."""

from __future__ import annotations

import click
from flask.cli import AppGroup

oplog_cli = AppGroup("oplog", help="The operation log of provider calls.")


@oplog_cli.command("purge")
def purge() -> None:
    """Delete entries older than OPERATION_LOG_DAYS (default 14)."""
    from .services import purge_expired, retention_days

    removed = purge_expired()
    click.echo(f"Removed {removed:,} operation log entries older than {retention_days()} days.")
