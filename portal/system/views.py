"""Health and the job list: is the portal up, and are workers picking up jobs."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import text

from ..extensions import db
from ..fragments import wants_fragment
from ..models import Role, SyncRun, SyncRunKind
from ..params import page_arg, page_size
from ..runs import start_run
from ..security import public, require_role

bp = Blueprint("system", __name__)


# -- public -----------------------------------------------------------------------------------
@bp.get("/healthz")
@public
def health():
    """Liveness for load balancers: the database answers."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}


# -- ops --------------------------------------------------------------------------------------
@bp.get("/jobs")
@require_role(Role.support)
def list_jobs():
    pagination = db.paginate(
        db.select(SyncRun).order_by(SyncRun.id.desc()), page=page_arg(), per_page=page_size(), error_out=False
    )
    return render_template("jobs/index.html", pagination=pagination)


@bp.post("/jobs/queue-check")
@require_role(Role.ops)
def start_queue_check():
    run = start_run(SyncRunKind.queue_check, "jobs.system.queue_check", started_by=current_user, timeout=60)
    flash(f"Queue check #{run.id} queued.", "success")
    if wants_fragment():
        return render_template("jobs/_run.html", run=run)
    return redirect(url_for("system.show_job", run_id=run.id))


@bp.get("/jobs/<int:run_id>")
@require_role(Role.support)
def show_job(run_id: int):
    run = db.session.get(SyncRun, run_id)
    if run is None:
        abort(404, description=f"There is no job run with id {run_id}.")
    if wants_fragment():
        return render_template("jobs/_run.html", run=run)
    return render_template("jobs/show.html", run=run)
