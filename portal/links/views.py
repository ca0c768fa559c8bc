"""Authorization links: support creates and manages them; an approver without an account uses one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_login import current_user

from ..connections import services as connection_services
from ..connections.services import ConnectError
from ..extensions import db
from ..fragments import wants_fragment
from ..models import AuthorizationLink, BusinessUnit, Connection, GrantPurpose, OAuthGrant, Organization, Role
from ..security import is_safe_redirect, public, require_role
from . import services
from .forms import CreateLinkForm, ResendForm
from .ratelimit import link_limit
from .services import LinkError, LinkRefused, LinkUnusable, LinkUsed

bp = Blueprint("links", __name__)

#: Grants this browser session may pick a company for (the approver's pick page).
SESSION_GRANTS = "link_grants"


def get_unit(unit_id: int) -> BusinessUnit:
    """Load a business unit.

    :raise: 404 when it does not exist.
    """
    unit = db.session.get(BusinessUnit, unit_id)
    if unit is None:
        abort(404, description=f"There is no business unit with id {unit_id}.")
    return unit


def get_link(link_id: int) -> AuthorizationLink:
    """Load a link.

    :raise: 404 when it does not exist.
    """
    link = db.session.get(AuthorizationLink, link_id)
    if link is None:
        abort(404, description=f"There is no authorization link with id {link_id}.")
    return link


def _back(link: AuthorizationLink) -> str:
    target = request.form.get("next")
    if is_safe_redirect(target):
        return target
    return url_for("links.show_link", link_id=link.id)


# -- support: create, list, show, revoke, resend ---------------------------------------------
@bp.route("/business-units/<int:unit_id>/authorization-links/new", methods=["GET", "POST"])
@require_role(Role.support)
def create_link(unit_id: int):
    unit = get_unit(unit_id)
    existing = services.connect.live_connection(unit)
    form = CreateLinkForm()
    form.set_max_days(current_app.config["LINK_MAX_DAYS"])
    if request.method == "GET":
        form.expires_in_days.data = current_app.config["LINK_DEFAULT_DAYS"]
    status = 200
    if form.validate_on_submit():
        try:
            link, token = services.create_link(
                unit,
                provider=form.provider.data,
                region=form.region.data or None,
                expected_company_id=form.expected_company_id.data,
                expires_in_days=form.expires_in_days.data,
                note=form.note.data or "",
                requested_for=form.requested_for.data or "",
                notify_email=current_user.email,
                replace_existing=form.replace_existing.data,
                created_by=current_user,
                created_via="portal",
            )
            sent = services.email_link(link, token, form.email_to.data) if form.email_to.data else None
        except LinkError as exc:
            db.session.rollback()
            target = getattr(form, exc.field or "", None)
            if target is not None and hasattr(target, "errors") and exc.field != "provider":
                target.errors = [*target.errors, exc.message]
            else:
                form.form_errors.append(exc.message)
            status = 409 if exc.status == 409 else 400
        else:
            db.session.commit()
            # The token exists only in this answer: render it here rather than redirect.
            return render_template("links/created.html", link=link, url=services.public_url(token), sent=sent)
    elif form.is_submitted():
        status = 400
    return render_template("links/new.html", unit=unit, form=form, existing=existing), status


@bp.get("/business-units/<int:unit_id>/authorization-links")
@require_role(Role.support)
def list_unit_links(unit_id: int):
    unit = get_unit(unit_id)
    links = services.links_of_units([unit.id])
    return _list(links, box_id=f"links-unit-{unit.id}", title=f"Authorization links · {unit.name}", unit=unit)


@bp.get("/organizations/<int:org_id>/authorization-links")
@require_role(Role.support)
def list_organization_links(org_id: int):
    org = db.session.get(Organization, org_id)
    if org is None:
        abort(404, description=f"There is no organization with id {org_id}.")
    links = services.links_of_units([u.id for u in org.business_units])
    return _list(links, box_id=f"links-org-{org.id}", title=f"Authorization links · {org.name}", unit=None)


def _list(links: list[AuthorizationLink], *, box_id: str, title: str, unit: BusinessUnit | None):
    context = {"links": links, "box_id": box_id, "unit": unit, "resend_form": ResendForm(), "back": request.path}
    if wants_fragment():
        # The fragment sits in another page: actions return there (path only, never another host).
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        context["back"] = current.path + (f"?{current.query}" if current.query else "")
        return render_template("links/_links.html", **context)
    return render_template("links/index.html", title=title, **context)


@bp.get("/authorization-links/<int:link_id>")
@require_role(Role.support)
def show_link(link_id: int):
    link = get_link(link_id)
    return render_template(
        "links/show.html", link=link, name=services.provider_name(link.provider), resend_form=ResendForm()
    )


@bp.post("/authorization-links/<int:link_id>/revoke")
@require_role(Role.support)
def revoke_link(link_id: int):
    link = get_link(link_id)
    try:
        services.revoke(link, reason=f"Revoked by {current_user.email}")
    except LinkError as exc:
        db.session.commit()  # an expiry found on the way is recorded
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(f"Link #{link.id} revoked: it no longer opens.", "success")
    return redirect(_back(link), 303)


@bp.post("/authorization-links/<int:link_id>/resend")
@require_role(Role.support)
def resend_link(link_id: int):
    link = get_link(link_id)
    form = ResendForm()
    if not form.validate():
        flash("Give a valid e-mail address, or leave it empty to copy the new link.", "error")
        return redirect(_back(link), 303)
    try:
        new, token = services.resend(
            link, created_by=current_user, created_via="portal", email_to=form.email_to.data or None
        )
    except LinkError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(_back(link), 303)
    db.session.commit()
    sent = f"E-mailed to {form.email_to.data}." if form.email_to.data else None
    return render_template("links/created.html", link=new, url=services.public_url(token), sent=sent, resent=link)


# -- the approver (public, no account) ----------------------------------------------------------
def render_public(template: str, status: int = 200, **context: Any):
    """Render a public page in the browser's language, never cached, never leaking the URL."""
    response = make_response(
        render_template(template, lang=str(get_locale() or "en"), saas=current_app.config["SAAS_NAME"], **context),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Language"] = str(get_locale() or "en")
    response.vary.add("Accept-Language")
    return response


def invalid_link():
    """The one answer for unknown, tampered, expired and revoked links: it names nothing."""
    return render_public("links/invalid.html", 404)


def used_link():
    """A link that already connected its ledger."""
    return render_public("links/used.html", 410)


def too_many_requests(wait: int):
    """The rate limit's answer."""
    response = render_public("links/too_many.html", 429, wait=wait)
    response.headers["Retry-After"] = str(wait)
    return response


def _refused(refusal: LinkRefused):
    db.session.rollback()
    services.record_refusal(refusal)
    db.session.commit()
    return render_public("links/refused.html", refusal.status, message=refusal.message)


def _approval_context(link: AuthorizationLink) -> dict[str, Any]:
    locale = get_locale()
    country = None
    if link.region:
        territory = {"uk": "GB"}.get(link.region, link.region.upper())
        country = locale.territories.get(territory) if locale else None
    return {
        "link": link,
        "org_name": link.business_unit.organization.name,
        "ledger": services.provider_name(link.provider),
        "country": country,
    }


@bp.get("/authorize/<token>")
@public
@link_limit
def open_link(token: str):
    try:
        link = services.usable_link(token)
    except LinkUsed:
        return used_link()
    except LinkUnusable:
        return invalid_link()
    services.mark_opened(link)
    db.session.commit()
    return render_public("links/approve.html", **_approval_context(link))


@bp.post("/authorize/<token>")
@public
@link_limit
def start_link(token: str):
    try:
        link = services.usable_link(token)
    except LinkUsed:
        return used_link()
    except LinkUnusable:
        return invalid_link()
    try:
        url = services.start(link)
    except ConnectError as exc:
        return _refused(LinkRefused(link.id, exc.message, exc.message, status=503))
    services.mark_opened(link)
    db.session.commit()
    return redirect(url)


@connection_services.completes_callbacks(GrantPurpose.link.value)
def complete_from_callback(pending: dict[str, Any]):
    """Finish the provider's redirect of a link consent (called by the public OAuth callback, which is throttled)."""
    try:
        outcome = services.complete(request.args.to_dict(), pending["link_id"])
    except LinkUsed:
        return used_link()
    except LinkUnusable:
        return invalid_link()
    except LinkRefused as refusal:
        return _refused(refusal)
    db.session.commit()
    if isinstance(outcome, OAuthGrant):
        session[SESSION_GRANTS] = [*session.get(SESSION_GRANTS, [])[-4:], outcome.handle]
        return redirect(url_for("links.pick_company", handle=outcome.handle))
    return _completed(outcome, pending.get("link_id"))


def _completed(connection: Connection, link_id: int | None):
    link = db.session.get(AuthorizationLink, link_id) if link_id else None
    if link is not None:
        services.enqueue_notifications(link)
    _first_data_run(connection)
    return render_public(
        "links/done.html",
        org_name=connection.business_unit.organization.name,
        ledger=services.provider_name(connection.provider),
        company=connection.company_label,
    )


def _first_data_run(connection: Connection) -> None:
    """Read a newly connected ledger's reference data in the background (not again after a re-authorization)."""
    from ..connections import onboarding
    from ..mappings.services import reference_data
    from ..models import SyncRunKind

    if reference_data(connection):
        return
    run = onboarding.latest_run(connection, SyncRunKind.reference_refresh)
    if run is None or run.status.finished:
        onboarding.start_first_data_run(connection)


@bp.route("/authorize/grants/<handle>", methods=["GET", "POST"])
@public
@link_limit
def pick_company(handle: str):
    try:
        link, grant = services.grant_for_pick(handle, session.get(SESSION_GRANTS, []))
    except LinkUsed:
        return used_link()
    except LinkUnusable:
        return invalid_link()
    error = None
    if request.method == "POST":
        choice = request.form.get("company", "")
        if not choice:
            error = True
        else:
            try:
                connection = services.pin(link, grant, choice)
            except LinkRefused as refusal:
                return _refused(refusal)
            db.session.commit()
            session[SESSION_GRANTS] = [g for g in session.get(SESSION_GRANTS, []) if g != handle]
            return _completed(connection, link.id)
    return render_public("links/pick.html", 400 if error else 200, grant=grant, error=error, **_approval_context(link))
