"""``flask history preview|push|pause|resume|cancel|status``: back-fills from the shell, answering JSON."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from ..extensions import db
from ..integrations.base import LedgerError
from ..models import Backfill, BackfillStatus, Connection

history_cli = AppGroup("history", help="Historical push (back-fill) of a connection's older records.")


def _connection(connection_id: int) -> Connection:
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        raise click.ClickException(f"There is no connection with id {connection_id}.")
    return connection


def _backfill(backfill_id: int) -> Backfill:
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None:
        raise click.ClickException(f"There is no back-fill with id {backfill_id}.")
    return backfill


def _echo(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _scope_options(fn):
    fn = click.option(
        "--kinds", default="", help="Comma-separated: customer,invoice,credit_note,payment (default all)."
    )(fn)
    fn = click.option("--to", "date_to", required=True, help="Last invoice date, YYYY-MM-DD.")(fn)
    fn = click.option("--from", "date_from", required=True, help="First invoice date, YYYY-MM-DD.")(fn)
    return click.option("--connection", "connection_id", required=True, type=int, help="Connection id.")(fn)


def _scope(connection_id: int, date_from: str, date_to: str, kinds: str):
    from .services import HistoryError, parse_scope

    connection = _connection(connection_id)
    try:
        return connection, parse_scope(connection, date_from, date_to, kinds or None)
    except HistoryError as exc:
        raise click.ClickException(exc.message) from exc


@history_cli.command("preview")
@_scope_options
def preview_command(connection_id: int, date_from: str, date_to: str, kinds: str) -> None:
    """Print what a back-fill would create, find existing, skip and block (writes nothing)."""
    from . import services

    connection, scope = _scope(connection_id, date_from, date_to, kinds)
    try:
        result = services.preview(connection, scope)
    except LedgerError as exc:
        raise click.ClickException(f"The ledger could not be read: {exc}") from exc
    _echo(result.as_dict())


@history_cli.command("push")
@_scope_options
@click.option("--wait", is_flag=True, help="Run the push in this process until it ends, pauses or waits for quota.")
def push_command(connection_id: int, date_from: str, date_to: str, kinds: str, wait: bool) -> None:
    """Start a back-fill on the history queue (or, with --wait, run it here) and print its state."""
    from ..extensions import queue
    from . import services

    if not wait and not queue.serves_jobs:
        raise click.ClickException(
            "This process has no Redis (REDIS_URL is empty), so nothing here would run the back-fill: start it on "
            "the connection's Historical push page of the running demo, or add --wait to run it in this terminal."
        )
    connection, scope = _scope(connection_id, date_from, date_to, kinds)
    try:
        backfill = services.start(
            connection,
            scope,
            started_by=None,
            preview_data=services.range_counts(connection, scope),
            enqueue_job=queue.serves_jobs,  # without Redis (the demo) it runs here only
        )
    except services.HistoryError as exc:
        raise click.ClickException(exc.message) from exc
    backfill_id = backfill.id
    if wait:
        _run_here(backfill_id)
    _echo(services.as_dict(_backfill(backfill_id)))
    backfill = _backfill(backfill_id)
    if wait and backfill.status in (BackfillStatus.interrupted,):
        raise SystemExit(1)


def _run_here(backfill_id: int) -> None:
    import logging

    from . import services

    log = logging.getLogger("ledgerlink.history")
    try:
        services.run(backfill_id, log)
    except Exception as exc:
        services.crashed(backfill_id, exc)
        raise


def _control(backfill_id: int, action_name: str) -> None:
    from . import services

    backfill = _backfill(backfill_id)
    try:
        said = getattr(services, action_name)(backfill, actor="cli")
    except services.HistoryError as exc:
        raise click.ClickException(exc.message) from exc
    data = services.as_dict(_backfill(backfill_id))
    data["said"] = said
    _echo(data)


@history_cli.command("pause")
@click.argument("backfill_id", type=int)
def pause_command(backfill_id: int) -> None:
    """Pause a back-fill at its next chunk boundary."""
    _control(backfill_id, "request_pause")


@history_cli.command("resume")
@click.argument("backfill_id", type=int)
def resume_command(backfill_id: int) -> None:
    """Resume a paused, interrupted or waiting back-fill at its cursor."""
    from ..extensions import queue

    if not queue.serves_jobs:
        raise click.ClickException(
            "This process has no Redis (REDIS_URL is empty), so nothing here would run the back-fill: resume it on "
            "the connection's Historical push page of the running demo."
        )
    _control(backfill_id, "resume")


@history_cli.command("cancel")
@click.argument("backfill_id", type=int)
def cancel_command(backfill_id: int) -> None:
    """Cancel a back-fill; records already pushed stay pushed."""
    _control(backfill_id, "request_cancel")


@history_cli.command("status")
@click.argument("backfill_id", type=int)
def status_command(backfill_id: int) -> None:
    """Print a back-fill's state, counts and reconciliation."""
    from . import services

    _echo(services.as_dict(_backfill(backfill_id)))
