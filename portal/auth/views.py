"""Staff login and logout, the person's own sessions, and staff management for admins."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_htmx import make_response
from flask_login import current_user, login_user, logout_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response as BaseResponse

from ..database import utcnow
from ..extensions import db, htmx, limiter, login_manager
from ..models import Role, StaffUser
from ..security import is_safe_redirect, public, require_role
from . import services, sessions
from .forms import LoginForm, NewStaffForm, StaffActionForm
from .services import LoginThrottle, StaffError, authenticate

bp = Blueprint("auth", __name__)

#: A browser where a person logged in before keeps this signed cookie (OWASP "device cookies").
DEVICE_COOKIE = "ledgerlink_device"
DEVICE_DAYS = 180


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    parts = sessions.parse(user_id)
    if parts is None:
        return None
    user = db.session.get(StaffUser, parts.user_id)
    if user is None or not user.active or user.session_version != parts.version:
        g.session_ended = True
        return None
    if not sessions.touch(parts):
        return None
    user.login_sid = parts.sid
    return user


@login_manager.unauthorized_handler
def unauthorized():
    if request.path.startswith("/api/"):
        return {"error": {"status": 401, "message": "Log in or send an API key."}}, 401
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if htmx:
        # A fragment request from an expired session: send the whole page to the login form.
        return make_response("", 401, redirect=target)
    if g.get("session_ended"):
        flash(
            "Your session ended (after a long time without activity, a logout or a change to your account). "
            "Please log in again.",
            "info",
        )
    else:
        flash("Please log in to see that page.", "info")
    return redirect(target)


def forget_browser(response: BaseResponse) -> BaseResponse:
    """Log this browser out for good: flask-login's state, the session and the remember-me cookie."""
    logout_user()
    session.clear()  # this drops flask-login's "clear the cookie" note too, so the cookie is deleted here
    config = current_app.config
    response.delete_cookie(
        config.get("REMEMBER_COOKIE_NAME", "remember_token"),
        domain=config.get("REMEMBER_COOKIE_DOMAIN"),
        path=config.get("REMEMBER_COOKIE_PATH", "/"),
    )
    return response


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="ledgerlink-known-device")


def _account_hash(email: str) -> str:
    return hashlib.sha256(services.normalise_email(email).encode()).hexdigest()[:32]


def _known_device(email: str) -> str | None:
    """Return this browser's device id when it logged into ``email``'s account before."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        data = _device_serializer().loads(raw, max_age=DEVICE_DAYS * 86400)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("a") != _account_hash(email):
        return None
    return str(data.get("d") or "")[:32] or None


def _remember_device(response: BaseResponse, email: str) -> None:
    value = _device_serializer().dumps({"a": _account_hash(email), "d": secrets.token_hex(12)})
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=int(timedelta(days=DEVICE_DAYS).total_seconds()),
        secure=bool(current_app.config["SESSION_COOKIE_SECURE"]),
        httponly=True,
        samesite="Lax",
    )


def _address_limit() -> str:
    """Failed logins per client address and lock-out window (several people may share an office NAT)."""
    config = current_app.config
    return f"{int(config['LOGIN_MAX_FAILURES']) * 4} per {int(config['LOGIN_LOCKOUT_SECONDS'])} seconds"


def locked_page(seconds: int, *, from_address: bool = False):
    """Render the login form saying for how long logging in is blocked (a 429)."""
    form = LoginForm()
    minutes = max(1, round(seconds / 60))
    where = " from your network" if from_address else ""
    form.form_errors.append(
        f"Too many failed attempts{where}. Logging in is blocked for about {minutes} more minute(s)."
    )
    response = make_response(render_template("auth/login.html", form=form), 429)
    response.headers["Retry-After"] = str(max(1, seconds))
    return response


# -- public -----------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(
    _address_limit, methods=["POST"], deduct_when=lambda response: response.status_code == 401, scope="login"
)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        email = services.normalise_email(form.email.data)
        throttle = LoginThrottle(email, _known_device(email))
        locked = throttle.locked_for()
        if locked:
            return locked_page(locked)
        user = authenticate(email, form.password.data)
        if user is None:
            throttle.fail()
            form.form_errors.append("That e-mail address and password do not match an active account.")
            status = 401
        else:
            throttle.clear()
            session.clear()
            user.login_sid = sessions.start(user.id)
            login_user(user, remember=form.remember.data)
            user.last_login_at = utcnow()
            db.session.commit()
            target = request.args.get("next")
            response = redirect(target if is_safe_redirect(target) else url_for("dashboard.index"))
            _remember_device(response, email)
            return response
    elif form.is_submitted():
        status = 400
    return render_template("auth/login.html", form=form), status


# -- staff ------------------------------------------------------------------------------------
@bp.post("/logout")
@require_role(Role.support)
def logout():
    sessions.end(current_user.login_sid)  # a copy of either cookie is dead from now on
    response = redirect(url_for("auth.login"))
    forget_browser(response)
    flash("You are logged out.", "info")
    return response


@bp.get("/account")
@require_role(Role.support)
def show_account():
    return render_template("auth/account.html", form=StaffActionForm())


@bp.post("/account/logout-everywhere")
@require_role(Role.support)
def logout_everywhere():
    if not StaffActionForm().validate_on_submit():
        abort(400, description="The form was incomplete; nothing was changed.")
    user = db.session.get(StaffUser, current_user.id)
    services.end_sessions(user)
    db.session.commit()
    response = forget_browser(redirect(url_for("auth.login")))
    flash("You are logged out on every browser, this one included.", "info")
    return response


# -- admin: staff management ------------------------------------------------------------------
def get_staff(user_id: int) -> StaffUser:
    """Load a staff account.

    :raise: 404 when it does not exist.
    """
    user = db.session.get(StaffUser, user_id)
    if user is None:
        abort(404, description=f"There is no staff account with id {user_id}.")
    return user


def _staff_page(form: NewStaffForm | None = None, status: int = 200, **context):
    people = db.session.scalars(db.select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.email)).all()
    return (
        render_template(
            "auth/staff.html",
            people=people,
            form=form or NewStaffForm(formdata=None),
            action_form=StaffActionForm(),
            roles=[r.value for r in Role],
            **context,
        ),
        status,
    )


@bp.route("/staff", methods=["GET", "POST"])
@require_role(Role.admin)
def list_staff():
    form = NewStaffForm()
    if request.method == "GET":
        return _staff_page(form)
    if not form.validate_on_submit():
        return _staff_page(form, 400)
    password = form.password.data or services.generate_password()
    try:
        user = services.create_staff(form.email.data, form.role.data, password, name=form.name.data or "")
    except StaffError as exc:
        db.session.rollback()
        form.form_errors.append(str(exc).capitalize() + ".")
        return _staff_page(form, 422)
    db.session.commit()
    shown = None if form.password.data else password
    return _staff_page(NewStaffForm(formdata=None), 201, created=user, new_password=shown)


@bp.post("/staff/<int:user_id>")
@require_role(Role.admin)
def update_staff(user_id: int):
    user = get_staff(user_id)
    form = StaffActionForm()
    if not form.validate_on_submit():
        return _staff_page(status=400, error="Choose what to change; nothing was changed.")
    action, message, new_password = form.action.data, "", None
    own_version = user.session_version if user.id == current_user.id else None
    try:
        if action in ("deactivate", "reactivate"):
            changed = services.set_active(user, action == "reactivate")
            message = f"{user.email} {action}d." if changed else f"{user.email} is {action}d already."
        elif action == "role":
            changed = services.change_role(user, form.role.data or "")
            message = (
                f"{user.email} is now {user.role.value}; their sessions ended."
                if changed
                else f"{user.email} is {user.role.value} already."
            )
        elif action == "reset_password":
            new_password = services.reset_password(user)
            message = f"New password for {user.email}; every session of theirs ended."
        elif action == "end_sessions":
            services.end_sessions(user)
            message = f"Every session of {user.email} ended."
        else:
            return _staff_page(status=400, error=f"Unknown action {action!r}; nothing was changed.")
    except StaffError as exc:
        db.session.rollback()
        return _staff_page(status=409, error=str(exc).capitalize() + ". Nothing was changed.")
    db.session.commit()
    if own_version is not None and user.session_version != own_version:
        # The admin changed their own account in a way that ends their sessions.
        response = forget_browser(redirect(url_for("auth.login")))
        flash(message + " Log in again.", "info")
        return response
    return _staff_page(notice=message, new_password=new_password, reset_for=user if new_password else None)
