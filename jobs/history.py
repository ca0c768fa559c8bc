"""Run a back-fill (portal.history): push a date range's records from the cursor on, exactly once."""

from __future__ import annotations

import logging

from flask import has_app_context

from portal.history import services

from .runtime import get_app

log = logging.getLogger("ledgerlink.jobs.history")


def run_backfill(backfill_id: int) -> dict | None:
    """Push back-fill ``backfill_id`` until it is done, paused, cancelled, out of quota or stopped.

    A crash leaves the back-fill interrupted with its cursor committed; resuming (or the job
    enqueued again) continues there, and records already pushed are left alone.
    """
    if has_app_context():
        return _run(backfill_id)
    with get_app().app_context():
        return _run(backfill_id)


def _run(backfill_id: int) -> dict | None:
    job_log = logging.LoggerAdapter(log, {"backfill_id": backfill_id})
    try:
        backfill = services.run(backfill_id, job_log)
    except Exception as exc:
        services.crashed(backfill_id, exc)
        job_log.exception("back-fill job failed")
        raise
    return services.as_dict(backfill) if backfill is not None else None
