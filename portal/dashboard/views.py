"""The landing page after login."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import func

from ..extensions import db
from ..models import Customer, Invoice, Organization, Role, SyncRun
from ..security import require_role

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@require_role(Role.support)
def index():
    totals = {
        "organizations": db.session.scalar(db.select(func.count(Organization.id))),
        "customers": db.session.scalar(db.select(func.count(Customer.id))),
        "invoices": db.session.scalar(db.select(func.count(Invoice.id))),
    }
    recent_runs = db.session.scalars(db.select(SyncRun).order_by(SyncRun.id.desc()).limit(5)).all()
    return render_template("dashboard/index.html", totals=totals, recent_runs=recent_runs)
