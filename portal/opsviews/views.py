"""The audit log across customers and per connection, and the job console."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from .. import audit
from ..connections.lookup import connection_or_404 as get_connection
from ..csvfiles import csv_response, query_rows
from ..extensions import db
from ..fragments import wants_fragment
from ..models import Organization, Role
from ..params import date_arg, int_arg, page_arg, page_size, text_arg
from ..security import require_role
from . import auditlog, jobs

bp = Blueprint("opsviews", __name__)


def _audit_filters() -> auditlog.Filters:
    """Read the audit filters from the query string.

    :raise: 400 for malformed values or a range that ends before it starts.
    """
    day_from, day_to = date_arg("from"), date_arg("to")
    if day_from and day_to and day_from > day_to:
        abort(400, description="from must be on or before to.")
    return auditlog.Filters(text_arg("org", 200), int_arg("staff"), text_arg("kind", 64), day_from, day_to)


# -- support: the audit log ------------------------------------------------------------------
@bp.get("/audit")
@require_role(Role.support)
def list_audit():
    filters = _audit_filters()
    pagination = db.paginate(auditlog.events(filters), page=page_arg(), per_page=page_size(), error_out=False)
    context = {
        "filters": filters,
        "pagination": pagination,
        "org_names": auditlog.organization_names(pagination.items),
        "change_text": auditlog.change_text,
    }
    if wants_fragment():
        return render_template("opsviews/_audit_rows.html", **context)
    return render_template("opsviews/audit.html", kinds=auditlog.kinds(), staff=auditlog.staff_members(), **context)


@bp.get("/audit.csv")
@require_role(Role.support)
def export_audit():
    rows = query_rows(
        auditlog.events(_audit_filters()).add_columns(Organization.name),
        lambda found: (
            found[0].created_at,
            found[0].actor_label,
            found[1] or "",
            found[0].organization_id or "",
            found[0].kind,
            found[0].subject_type,
            found[0].subject_id or "",
            found[0].summary,
            auditlog.change_text(found[0].before, found[0].after),
        ),
        scalars=False,
    )
    header = (
        "time_utc",
        "who",
        "organization",
        "organization_id",
        "kind",
        "subject",
        "subject_id",
        "summary",
        "change",
    )
    return csv_response("audit-log.csv", header, rows)


@bp.get("/connections/<int:connection_id>/audit")
@require_role(Role.support)
def list_connection_audit(connection_id: int):
    connection = get_connection(connection_id)
    pagination = db.paginate(
        auditlog.events(auditlog.Filters(), connection_id=connection.id),
        page=page_arg(),
        per_page=page_size(),
        error_out=False,
    )
    return render_template(
        "opsviews/_connection_audit.html",
        connection=connection,
        pagination=pagination,
        org_names=auditlog.organization_names(pagination.items),
        change_text=auditlog.change_text,
    )


# -- ops: the job console ---------------------------------------------------------------------
def _state_arg() -> str | None:
    state = text_arg("state", 16)
    if state and state not in jobs.STATES:
        abort(400, description=f"state must be one of {', '.join(jobs.STATES)}, not {state!r}.")
    return state or None


@bp.get("/ops/jobs")
@require_role(Role.support)
def list_queue_jobs():
    state = _state_arg()
    console = jobs.console(state)
    if wants_fragment():
        return render_template("opsviews/_jobs.html", console=console, state=state)
    return render_template("opsviews/jobs.html", console=console, state=state, states=jobs.STATES)


@bp.get("/ops/jobs.csv")
@require_role(Role.support)
def export_queue_jobs():
    console = jobs.console(_state_arg())
    rows = [
        (
            row.state,
            row.queue,
            row.job_id,
            row.func,
            row.run.id if row.run else "",
            row.run.kind.value if row.run else "",
            row.run.status.value if row.run else "",
            row.connection_id or "",
            row.run.progress_done if row.run else "",
            row.run.progress_total if row.run else "",
            row.enqueued_at,
            row.scheduled_for,
            row.error,
        )
        for state in jobs.STATES
        for row in console.rows[state]
    ]
    header = (
        "state", "queue", "job_id", "function", "run", "kind", "run_status", "connection_id",
        "done", "total", "enqueued_utc", "scheduled_utc", "error",
    )  # fmt: skip
    return csv_response("jobs.csv", header, rows)


def _after_action(message: str, category: str):
    flash(message, category)
    if wants_fragment():
        console = jobs.console()
        return render_template("opsviews/_jobs.html", console=console, state=None)
    return redirect(url_for("opsviews.list_queue_jobs"))


@bp.post("/ops/jobs/<job_id>/retry")
@require_role(Role.ops)
def retry_job(job_id: str):
    try:
        run = jobs.retry(job_id)
    except jobs.JobActionError as exc:
        db.session.rollback()
        if exc.status != 409:
            abort(exc.status, description=str(exc))
        return _after_action(str(exc), "error")
    return _after_action(f"Job {job_id} is queued again" + (f" (run #{run.id})." if run else "."), "success")


@bp.post("/ops/jobs/<job_id>/cancel")
@require_role(Role.ops)
def cancel_job(job_id: str):
    try:
        run = jobs.cancel(job_id)
    except jobs.JobActionError as exc:
        db.session.rollback()
        if exc.status != 409:
            abort(exc.status, description=str(exc))
        return _after_action(str(exc), "error")
    said = f"Job {job_id} is cancelled" + (f" (run #{run.id})." if run else ".")
    return _after_action(said, "success")


def _interrupted_run(run_id: int):
    from ..models import SyncRun

    run = db.session.get(SyncRun, run_id)
    if run is None:
        abort(404, description=f"There is no run #{run_id}.")
    return run


@bp.post("/ops/jobs/runs/<int:run_id>/resume")
@require_role(Role.ops)
def resume_run(run_id: int):
    from ..sync import mirrors

    return _settle_interrupted(
        run_id, mirrors.resume, "job.resumed", "Resumed interrupted run #{id} ({kind}).", "is queued again"
    )


@bp.post("/ops/jobs/runs/<int:run_id>/close")
@require_role(Role.ops)
def close_run(run_id: int):
    from ..sync import mirrors

    return _settle_interrupted(
        run_id, mirrors.close, "job.closed", "Closed interrupted run #{id} ({kind}) without resuming it.", "is closed"
    )


def _settle_interrupted(run_id: int, action, event: str, summary: str, done: str):
    """Resume or close an interrupted run with ``action``, audited as ``event``; answer what happened."""
    from ..sync import mirrors

    run = _interrupted_run(run_id)
    try:
        action(run)
    except mirrors.ResumeError as exc:
        db.session.rollback()
        return _after_action(str(exc), "error")
    audit.record(
        event,
        subject_type="SyncRun",
        subject_id=run.id,
        organization_id=jobs._organization_id(run),
        summary=summary.format(id=run.id, kind=run.kind.value),
        before={"status": "interrupted"},
        after={"status": run.status.value},
    )
    db.session.commit()
    return _after_action(f"Run #{run.id} {done}.", "success")
