"""Connecting a business unit to a ledger, and running that connection."""

from __future__ import annotations

from datetime import UTC

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from .. import audit
from ..extensions import db, login_manager
from ..fragments import redirect_to, wants_fragment
from ..integrations.base import LedgerError, NotSupported
from ..links.ratelimit import link_callback_limit
from ..models import AuditEvent, BusinessUnit, Connection, GrantPurpose, OAuthGrant, Role, SyncRunKind
from ..security import public, require_role
from ..sync import backlog, payments, schedule, testdoc
from ..sync.guard import DocumentHeld
from . import onboarding, services, vault
from .forms import ConfirmForm, ConnectForm, GoLiveForm, PickCompanyForm, SettingsForm
from .lookup import connection_or_404
from .services import ConnectError

bp = Blueprint("connections", __name__)


def get_unit(unit_id: int) -> BusinessUnit:
    """Load a business unit.

    :raise: 404 when it does not exist.
    """
    unit = db.session.get(BusinessUnit, unit_id)
    if unit is None:
        abort(404, description=f"There is no business unit with id {unit_id}.")
    return unit


def get_connection(connection_id: int) -> Connection:
    """Load a connection (404 when it does not exist)."""
    return connection_or_404(connection_id)


def _refused(exc: ConnectError, back: str):
    """Roll back, keep the refusal on record, and show what happened."""
    db.session.rollback()
    if exc.audit_event:
        audit.record(**exc.audit_event)
        db.session.commit()
    return render_template("connections/refused.html", message=exc.message, back=back), exc.status


# -- support: connect -----------------------------------------------------------------------
@bp.route("/business-units/<int:unit_id>/connect", methods=["GET", "POST"])
@require_role(Role.support)
def connect_unit(unit_id: int):
    unit = get_unit(unit_id)
    existing = services.live_connection(unit)
    form = ConnectForm()
    status = 200
    if form.validate_on_submit():
        if existing is not None and not form.confirm_replace.data:
            form.confirm_replace.errors = [
                f"{unit.name} is connected to {existing.company_label} already: tick the box to replace it."
            ]
            status = 409
        else:
            try:
                url = services.start_authorization(
                    unit, form.provider.data, form.region.data or None, staff_id=current_user.id
                )
            except ConnectError as exc:
                form.form_errors.append(exc.message)
                status = exc.status
            else:
                # The provider's consent page is another site: a full navigation, not a swap.
                return redirect_to(url)
    elif form.is_submitted():
        status = 400
    return render_template("connections/connect.html", unit=unit, form=form, existing=existing), status


def _is_link_consent() -> bool:
    pending = services.peek_pending(request.args.get("state"))
    return pending is not None and pending.get("purpose") == GrantPurpose.link.value


@bp.get("/connections/oauth/callback")
@public
@link_callback_limit(_is_link_consent)
def oauth_callback():
    # The one redirect URI registered at every provider serves two audiences. A consent started
    # from an authorization link completes without a login (the link's own guards apply);
    # every other consent still needs a logged-in support member, checked here explicitly.
    pending = services.peek_pending(request.args.get("state"))
    if pending is not None and pending.get("purpose") == GrantPurpose.link.value:
        return services.CALLBACK_COMPLETERS[GrantPurpose.link.value](pending)
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.has_role(Role.support):
        abort(403, description="This page needs the support role.")
    try:
        outcome = services.complete_authorization(request.args.to_dict())
    except ConnectError as exc:
        return _refused(exc, url_for("organizations.list_organizations"))
    db.session.commit()
    if isinstance(outcome, Connection):
        flash(f"Re-authorized: the connection stays pinned to {outcome.company_label}.", "success")
        return redirect(url_for("connections.show_connection", connection_id=outcome.id))
    return redirect(url_for("connections.pick_company", handle=outcome.handle))


@bp.route("/connections/grants/<handle>", methods=["GET", "POST"])
@require_role(Role.support)
def pick_company(handle: str):
    try:
        grant = services.open_grant(handle, staff_id=current_user.id)
    except ConnectError as exc:
        return _refused(exc, url_for("organizations.list_organizations"))
    existing = services.live_connection(grant.business_unit)
    form = PickCompanyForm()
    form.company.choices = [(str(c["id"]), services.company_label(c)) for c in grant.companies]
    status = 200
    if form.validate_on_submit():
        try:
            connection = services.pin_company(
                grant,
                form.company.data,
                replace_confirmed=form.confirm_replace.data,
                shared_confirmed=form.confirm_shared.data,
            )
        except ConnectError as exc:
            db.session.rollback()
            grant = services.open_grant(handle, staff_id=current_user.id)
            form.form_errors.append(exc.message)
            status = exc.status
        else:
            reauthorized = connection.id == (existing.id if existing else None)
            db.session.commit()
            if not reauthorized:
                # The first data run: the ledger's reference data, read while support looks at the checklist.
                onboarding.start_first_data_run(connection, current_user._get_current_object())
            flash(
                f"Re-authorized: the connection stays pinned to {connection.company_label}."
                if reauthorized
                else f"Connected to {connection.company_label}. Its reference data is being read; follow the "
                "checklist to go live.",
                "success",
            )
            return redirect(url_for("connections.show_connection", connection_id=connection.id))
    elif form.is_submitted():
        status = 400
    org_id = grant.business_unit.organization_id
    sharing = {
        str(c["id"]): services.organizations_sharing(
            grant.provider, grant.region, str(c["id"]), besides_organization=org_id
        )
        for c in grant.companies
    }
    shared = {company: names for company, names in sharing.items() if names}
    return (
        render_template(
            "connections/pick.html",
            grant=grant,
            form=form,
            existing=existing,
            shared=shared,
            name=services.provider_name(grant.provider),
        ),
        status,
    )


@bp.post("/business-units/<int:unit_id>/consents/<int:grant_id>/discard")
@require_role(Role.support)
def discard_consent(unit_id: int, grant_id: int):
    unit = get_unit(unit_id)
    grant = db.session.get(OAuthGrant, grant_id)
    if grant is None or grant.business_unit_id != unit.id or not grant.waiting:
        abort(404, description="There is no waiting consent with that id on this business unit.")
    if not FlaskForm().validate_on_submit():
        abort(400, description="The form was incomplete; nothing was changed.")
    services.discard_grant(grant)
    db.session.commit()
    flash("The waiting consent was discarded: its access was revoked where the ledger allows.", "success")
    return redirect(url_for("organizations.show_organization", org_id=unit.organization_id), 303)


# -- support: the connection ----------------------------------------------------------------
@bp.get("/connections/<int:connection_id>")
@require_role(Role.support)
def show_connection(connection_id: int):
    connection = get_connection(connection_id)
    settings_form = SettingsForm.for_connection(connection, formdata=None)
    events = db.session.scalars(
        db.select(AuditEvent)
        .where(AuditEvent.subject_type == "Connection", AuditEvent.subject_id == connection.id)
        .order_by(AuditEvent.id.desc())
        .limit(20)
    ).all()
    shared = services.organizations_sharing(
        connection.provider,
        connection.region,
        connection.external_company_id,
        besides_organization=connection.business_unit.organization_id,
    )
    return render_template(
        "connections/show.html",
        shared=shared if connection.is_live else [],
        connection=connection,
        settings_form=settings_form,
        confirm_form=ConfirmForm(),
        events=events,
        name=services.provider_name(connection.provider),
        backlog=_backlog(connection),
        **_gate_context(connection),
    )


def _gate_context(connection: Connection, go_live_form: GoLiveForm | None = None) -> dict:
    """Return what the status banner, the checklist and the sync box of the connection page show.

    The sync box's backlog (:func:`_backlog`) is not here: the checklist, which polls while a first
    data run goes, does not show it.
    """
    live = connection.is_live
    return {
        "checklist": onboarding.checklist(connection) if live else None,
        "waiting": onboarding.waiting_records(connection) if live and not connection.went_live else 0,
        "go_live_form": go_live_form
        or GoLiveForm(formdata=None, data={"sync_from": connection.sync_from.replace(tzinfo=None)}),
        "push_run": onboarding.latest_run(connection, SyncRunKind.incremental) if live else None,
        "pull_run": onboarding.latest_run(connection, SyncRunKind.payment_poll) if live else None,
        "payments_mode": payments.mode(connection),
        "pushes_automatically": schedule.pushes_automatically(connection),
    }


def _backlog(connection: Connection) -> backlog.Backlog | None:
    """Return what the sync box says of the waiting documents (only a live connection past go-live has them)."""
    return backlog.of(connection) if connection.is_live and connection.went_live else None


@bp.get("/connections/<int:connection_id>/checklist")
@require_role(Role.support)
def show_checklist(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    return render_template("connections/_checklist.html", connection=connection, **_gate_context(connection))


@bp.post("/connections/<int:connection_id>/go-live")
@require_role(Role.support)
def go_live(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    form = GoLiveForm()
    status = 200
    if form.validate_on_submit() and form.sync_from.data is not None:
        try:
            onboarding.go_live(
                connection,
                form.sync_from.data.replace(tzinfo=UTC),
                open_steps_confirmed=form.confirm_open_steps.data,
            )
        except onboarding.GoLiveRefused as exc:
            db.session.rollback()
            connection = get_connection(connection_id)
            form.form_errors.append(exc.message)
            status = exc.status
        else:
            db.session.commit()
            flash(
                f"{connection.company_label} is live: records dated from {connection.sync_from:%Y-%m-%d %H:%M} UTC "
                "are pushed automatically within their sync delay.",
                "success",
            )
            return redirect(url_for("connections.show_connection", connection_id=connection.id), 303)
    else:
        status = 400
    context = dict(connection=connection, **_gate_context(connection, form))
    if wants_fragment():
        return render_template("connections/_checklist.html", **context), status
    return (
        render_template(
            "connections/show.html",
            shared=[],
            settings_form=SettingsForm.for_connection(connection, formdata=None),
            confirm_form=ConfirmForm(),
            events=[],
            name=services.provider_name(connection.provider),
            **context,
        ),
        status,
    )


def _sync_box(connection: Connection, status: int = 200, message: str | None = None, level: str = "info"):
    """Answer a sync action: the sync box (htmx) or the page, with the message."""
    if wants_fragment():
        return (
            render_template(
                "connections/_sync.html",
                connection=connection,
                message=message,
                level=level,
                backlog=_backlog(connection),
                **_gate_context(connection),
            ),
            status,
        )
    if message:
        flash(message, level)
    return redirect(url_for("connections.show_connection", connection_id=connection.id, _anchor="sync"), 303)


@bp.post("/connections/<int:connection_id>/push-now")
@require_role(Role.support)
def push_now(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    if not FlaskForm().validate_on_submit():
        abort(400, description="The form was incomplete; nothing was changed.")
    if not connection.went_live:
        return _sync_box(connection, 409, f"{connection.company_label} is {schedule.NOT_LIVE_WORDS}.", "error")
    if connection.status not in schedule.SCHEDULED_STATUSES:
        return _sync_box(
            connection,
            409,
            f"{connection.company_label} is {connection.status.label.lower()}: "
            + ("resume it first." if connection.status.value == "paused" else "re-authorize it first."),
            "error",
        )
    run = schedule.enqueue_push(connection, reason=f"Push now, asked by {current_user.email}.")
    if run is None:
        return _sync_box(connection, 200, "A push of this connection is queued or running already.")
    return _sync_box(connection, 200, "Push queued: its progress shows below.", "success")


@bp.post("/connections/<int:connection_id>/pull-payments-now")
@require_role(Role.support)
def pull_payments_now(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    if not FlaskForm().validate_on_submit():
        abort(400, description="The form was incomplete; nothing was changed.")
    if payments.mode(connection) != payments.PULL:
        return _sync_box(
            connection,
            409,
            f"Payments of this connection are in mode {payments.mode(connection)!r}, not pull: change it in the "
            "settings to pull them.",
            "error",
        )
    if connection.status not in schedule.SCHEDULED_STATUSES:
        said = f"{connection.company_label} is {connection.status.label.lower()}: nothing can be read now."
        return _sync_box(connection, 409, said, "error")
    run = schedule.enqueue_payments_pull(connection, reason=f"Pull payments now, asked by {current_user.email}.")
    if run is None:
        return _sync_box(connection, 200, "A payments pull of this connection is queued or running already.")
    return _sync_box(connection, 200, "Payments pull queued: its progress shows below.", "success")


def _live_or_409(connection: Connection) -> None:
    if not connection.is_live:
        abort(409, description="This connection is disconnected; connect the business unit anew.")


@bp.post("/connections/<int:connection_id>/test")
@require_role(Role.support)
def test_connection(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    checks, error = [], None
    try:
        checks = vault.fresh_adapter(connection).preflight()
        services.note_success(connection)
    except (LedgerError, vault.VaultError) as exc:
        error = services.note_failure(connection, exc)
    db.session.commit()
    return render_template("connections/_test.html", connection=connection, checks=checks, error=error)


@bp.post("/connections/<int:connection_id>/test-documents")
@require_role(Role.support)
def test_documents(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    result, leftovers, error, test, differs, fix_url, note = None, [], None, None, None, None, None
    try:
        # The mappings' own invoice, checked by the totals guard before the ledger is called.
        try:
            test = testdoc.build(connection)
        except testdoc.NothingMapped as exc:
            note = str(exc)
        adapter = vault.fresh_adapter(connection)
        result = adapter.create_test_documents(test.draft if test else None)
        leftovers = adapter.cleanup_test_documents(result)
        differs = testdoc.compare(connection, test, result) if test is not None else None
        services.note_success(connection)
    except DocumentHeld as held:
        error = f"Nothing was written to the ledger. {held.text}"
        fix_url = url_for("mappings.show_mappings", connection_id=connection.id, _anchor="tax-table")
    except NotSupported as exc:
        error = str(exc)
    except (LedgerError, vault.VaultError) as exc:
        error = services.note_failure(connection, exc)
    passed = error is None and differs is None and test is not None
    connection.note_onboarding(
        "test_invoice",
        passed=passed,
        message=None if passed else (error or differs or note or "no invoice was made from the mappings"),
    )
    audit.record(
        "connection.tested",
        subject_type="Connection",
        subject_id=connection.id,
        organization_id=connection.business_unit.organization_id,
        summary="Test documents "
        + ("failed: " + error if error else "created and cleaned up" + (f"; {differs}" if differs else "")),
        after={"created": [list(c) for c in result.created] if result else [], "manual_cleanup": leftovers},
    )
    db.session.commit()
    return render_template(
        "connections/_test_documents.html",
        connection=connection,
        result=result,
        leftovers=leftovers,
        error=error,
        fix_url=fix_url,
        test=test,
        differs=differs,
        note=note,
        name=services.provider_name(connection.provider),
    )


@bp.post("/connections/<int:connection_id>/settings")
@require_role(Role.support)
def update_settings(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    form = SettingsForm()
    form.provider = connection.provider
    if not form.validate_on_submit() or form.sync_from.data is None:
        return render_template("connections/_settings.html", connection=connection, settings_form=form), 400
    changed = services.update_settings(
        connection,
        sending_method=form.sending_method.data,
        auto_send=form.auto_send.data,
        sync_from=form.sync_from.data.replace(tzinfo=UTC),
        more=form.settings(),
    )
    db.session.commit()
    message = "Settings saved." if changed else "Nothing changed."
    if wants_fragment():
        # The box is swapped in place: the confirmation goes in it, not into a later page's flashes.
        return render_template("connections/_settings.html", connection=connection, settings_form=form, saved=message)
    flash(message, "success")
    return redirect(url_for("connections.show_connection", connection_id=connection.id))


@bp.post("/connections/<int:connection_id>/reconnect")
@require_role(Role.support)
def reconnect(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    try:
        url = services.start_authorization(
            connection.business_unit,
            connection.provider,
            connection.region,
            purpose=services.GrantPurpose.reconnect,
            connection=connection,
            staff_id=current_user.id,
        )
    except ConnectError as exc:
        return _refused(exc, url_for("connections.show_connection", connection_id=connection.id))
    return redirect_to(url)


@bp.post("/connections/<int:connection_id>/disconnect")
@require_role(Role.support)
def disconnect(connection_id: int):
    connection = get_connection(connection_id)
    _live_or_409(connection)
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash("Tick the box to confirm the disconnection; nothing was changed.", "error")
        return redirect(url_for("connections.show_connection", connection_id=connection.id)), 303
    note = services.disconnect(connection)
    db.session.commit()
    flash(f"Disconnected. {note}", "success")
    return redirect(url_for("connections.show_connection", connection_id=connection.id))
