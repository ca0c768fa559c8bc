"""What every job needs: the Flask app's context and its SyncRun mirror kept current."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, has_app_context
from sqlalchemy import select

from portal.extensions import db
from portal.models import SyncRun, SyncRunStatus

_app: Flask | None = None


def get_app() -> Flask:
    """Return this process's app, built from the environment on first use."""
    global _app
    if _app is None:
        from portal import create_app

        _app = create_app()
    return _app


def job_logger(run: SyncRun) -> logging.LoggerAdapter:
    """Return a logger whose records carry the run, RQ job and connection ids."""
    extra = {"sync_run_id": run.id, "rq_job_id": run.rq_job_id}
    connection_id = (run.parameters or {}).get("connection_id")
    if connection_id is not None:
        extra["connection_id"] = connection_id
    return logging.LoggerAdapter(logging.getLogger("ledgerlink.jobs"), extra)


def cancelled(run: SyncRun) -> bool:
    """Say whether someone cancelled the run since it started (read fresh from the database).

    Long jobs ask between items and stop early; the run keeps its cancelled status.
    """
    status = db.session.execute(select(SyncRun.status).where(SyncRun.id == run.id)).scalar_one_or_none()
    return status is SyncRunStatus.cancelled


class Interrupted(Exception):
    """Raised by a job that stops before its end without failing (its lease was taken over, say).

    The run is recorded interrupted (or ``status``: cancelled for a run that found its work being
    done by another) with ``message`` and ``counts``; the job itself ends normally.
    """

    def __init__(self, message: str, counts: dict | None = None, status: SyncRunStatus | None = None) -> None:
        super().__init__(message)
        self.message, self.counts = message, counts or {}
        self.status = status or SyncRunStatus.interrupted


def describe(exc: BaseException) -> str:
    """Return why a job failed in words a person reads: a ledger's error explained, a database error named.

    The traceback stays in the worker's log; the run's message (shown on the jobs page) never
    carries SQL or driver text.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from portal.integrations import errors_catalog, specs
    from portal.integrations.base import LedgerError

    if isinstance(exc, LedgerError):
        words = errors_catalog.explain(exc).explanation
        if exc.provider_text:
            try:
                name = specs.get_spec(exc.provider).name if exc.provider else "The ledger"
            except Exception:  # an unknown provider key: the words stand alone
                name = "The ledger"
            words = f"{words} ({name}: {exc.provider_text})"
        return words
    if isinstance(exc, SQLAlchemyError):
        cause = type(getattr(exc, "orig", None) or exc).__name__
        return f"The database refused the job's work ({cause}); the worker's log has the details."
    return f"{type(exc).__name__}: {exc}"


def tracked(fn: Callable[..., dict | None]) -> Callable[[int], Any]:
    """Run ``fn(run, log)`` for SyncRun ``sync_run_id``, mirroring its status and outcome.

    The run moves to running before ``fn`` and to succeeded or failed after it, each committed
    at once so that pages show it; to interrupted when ``fn`` raises :class:`Interrupted`. ``fn``
    may return counts to store on the run.
    """

    @functools.wraps(fn)
    def wrapper(sync_run_id: int, *args: Any) -> Any:
        if has_app_context():
            return _run(fn, sync_run_id, *args)
        with get_app().app_context():
            return _run(fn, sync_run_id, *args)

    return wrapper


def _run(fn: Callable[..., dict | None], sync_run_id: int, *args: Any) -> Any:
    run = db.session.get(SyncRun, sync_run_id)
    if run is None:
        raise LookupError(f"SyncRun {sync_run_id} does not exist")
    if run.status is SyncRunStatus.cancelled:
        return None
    run.transition(SyncRunStatus.running)
    db.session.commit()
    log = job_logger(run)
    try:
        counts = fn(run, log, *args)
    except Interrupted as stop:
        db.session.rollback()
        run = db.session.get_one(SyncRun, sync_run_id)
        db.session.refresh(run)
        if not run.status.finished:
            run.counts = stop.counts or run.counts
            run.transition(stop.status, message=stop.message)
            db.session.commit()
        log.warning("job interrupted: %s", stop.message)
        return stop.counts
    except Exception as exc:
        db.session.rollback()
        run = db.session.get_one(SyncRun, sync_run_id)
        db.session.refresh(run)
        if run.status is not SyncRunStatus.cancelled:
            run.transition(SyncRunStatus.failed, message=describe(exc))
            db.session.commit()
        log.exception("job failed")
        raise
    if counts:
        run.counts = counts
    if cancelled(run):
        # Cancelled while it ran: keep the cancellation, record how far it got.
        db.session.commit()
        return counts
    run.transition(SyncRunStatus.succeeded)
    db.session.commit()
    return counts
