"""Staff login and logout."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_htmx import make_response
from flask_login import current_user, login_user, logout_user

from ..database import utcnow
from ..extensions import db, htmx, login_manager
from ..models import Role, StaffUser
from ..security import is_safe_redirect, public, require_role
from .forms import LoginForm
from .services import LoginThrottle, authenticate

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    user = db.session.get(StaffUser, int(user_id)) if user_id.isdigit() else None
    return user if user is not None and user.active else None


@login_manager.unauthorized_handler
def unauthorized():
    if request.path.startswith("/api/"):
        return {"error": {"status": 401, "message": "Log in or send an API key."}}, 401
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if htmx:
        # A fragment request from an expired session: send the whole page to the login form.
        return make_response("", 401, redirect=target)
    flash("Please log in to see that page.", "info")
    return redirect(target)


@bp.before_app_request
def expire_idle_sessions():
    """Log out a session that has been idle too long, saying so."""
    if not current_user.is_authenticated:
        return None
    now = int(time.time())
    seen = session.get("seen", now)
    if now - seen > current_app.config["IDLE_TIMEOUT_SECONDS"]:
        logout_user()
        session.clear()
        flash("Your session expired after a long time without activity. Please log in again.", "info")
        return unauthorized()
    session["seen"] = now
    return None


# -- public -----------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        throttle = LoginThrottle(form.email.data, request.remote_addr)
        locked = throttle.locked_for()
        if locked:
            minutes = max(1, round(locked / 60))
            form.form_errors.append(
                f"Too many failed attempts. Logging in is blocked for about {minutes} more minute(s)."
            )
            status = 429
        else:
            user = authenticate(form.email.data, form.password.data)
            if user is None:
                throttle.fail()
                form.form_errors.append("That e-mail address and password do not match an active account.")
                status = 401
            else:
                throttle.clear()
                session.clear()
                login_user(user, remember=form.remember.data)
                session["seen"] = int(time.time())
                user.last_login_at = utcnow()
                db.session.commit()
                target = request.args.get("next")
                return redirect(target if is_safe_redirect(target) else url_for("dashboard.index"))
    elif form.is_submitted():
        status = 400
    return render_template("auth/login.html", form=form), status


# -- staff ------------------------------------------------------------------------------------
@bp.post("/logout")
@require_role(Role.support)
def logout():
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
