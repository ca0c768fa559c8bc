"""The go-live gate: a new connection pushes nothing by itself until support takes it live from its checklist."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from tests.portal.mappings.conftest import GOOD_DEFAULTS
from tests.portal.sync.conftest import CONNECT, ledger_documents
from tests.portal.sync.rq_workers import run_queued_jobs

HX = {"HX-Request": "true"}


def _steps(html: str) -> dict[str, str]:
    """Return the checklist's steps and their states as the connection page shows them."""
    return dict(re.findall(r'data-step="(\w+)" data-step-state="(\w+)"', html))


def _backdate_invoices(app, minutes: int = 30) -> None:
    from portal.extensions import db
    from portal.models import Invoice

    with app.app_context():
        for invoice in db.session.scalars(db.select(Invoice)):
            invoice.created_at = datetime.now(UTC) - timedelta(minutes=minutes)
        db.session.commit()


def _runs(app, kind: str) -> list:
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunKind

    with app.app_context():
        return [
            (r.id, r.status.value, dict(r.parameters or {}))
            for r in db.session.scalars(db.select(SyncRun).where(SyncRun.kind == SyncRunKind(kind)))
        ]


def test_a_new_connection_waits_for_go_live_and_its_checklist_leads_there(app, sandbox, flow, org_unit, make_invoice):
    from portal.extensions import db
    from portal.models import AuditEvent, Connection
    from portal.sync import schedule

    region, company, choices = CONNECT["exact-online"]
    connection_id = flow.connect(org_unit["unit_id"], "exact-online", region, company=company, live=False, **choices)
    page_url = f"/connections/{connection_id}"

    # The first data run was queued when the division was pinned; nothing else.
    (reference_run,) = _runs(app, "reference_refresh")
    assert reference_run[1] == "queued" and reference_run[2]["connection_id"] == connection_id
    html = flow.client.get(page_url).get_data(as_text=True)
    assert "Not live yet" in html and 'id="go-live"' in html
    assert _steps(html) == {
        "connected": "done",
        "reference": "running",
        "defaults": "todo",
        "check": "todo",
        "customers": "todo",
        "test": "todo",
        "live": "todo",
    }
    # While the run works, the checklist polls itself.
    assert f'hx-get="/connections/{connection_id}/checklist"' in html

    # An invoice of today waits: the scheduler skips the connection however long it waited.
    _, number = make_invoice()
    _backdate_invoices(app)
    with app.app_context():
        done = schedule.tick()
        assert connection_id not in done.enqueued and connection_id not in done.already_queued
    assert _runs(app, "incremental") == []
    assert ledger_documents(sandbox, "exact-online", number) == []
    org_page = flow.client.get(f"/organizations/{org_unit['org_id']}").get_data(as_text=True)
    assert "data-not-live" in org_page and "Not live yet" in org_page
    assert "1 record(s) dated from" in flow.client.get(page_url).get_data(as_text=True)

    # The first data run reads the reference data; the defaults are what is missing next.
    run_queued_jobs(app)
    steps = _steps(flow.client.get(page_url).get_data(as_text=True))
    assert steps["reference"] == "done" and steps["defaults"] == "todo"
    defaults_html = flow.client.get(f"{page_url}/checklist").get_data(as_text=True)
    assert "No default item is set" in defaults_html and "Set the default item" in defaults_html

    saved = flow.post(f"/connections/{connection_id}/mappings/defaults", **GOOD_DEFAULTS["exact-online"])
    assert saved.status_code in (200, 302), saved.get_data(as_text=True)
    assert _steps(flow.client.get(page_url).get_data(as_text=True))["defaults"] == "done"

    checked = flow.client.post(
        f"/connections/{connection_id}/mappings/preflight", data={"csrf_token": flow.token}, headers=HX
    )
    assert checked.status_code == 200
    assert _steps(flow.client.get(page_url).get_data(as_text=True))["check"] == "done"

    assert flow.post(f"/connections/{connection_id}/customers/suggest").status_code == 302
    run_queued_jobs(app)
    assert _steps(flow.client.get(page_url).get_data(as_text=True))["customers"] == "todo"  # mode not chosen yet
    assert flow.post(f"/connections/{connection_id}/customers/mode", customer_mode="create").status_code == 302
    assert _steps(flow.client.get(page_url).get_data(as_text=True))["customers"] == "done"

    tested = flow.client.post(f"/connections/{connection_id}/test-documents", data={"csrf_token": flow.token})
    assert tested.status_code == 200, tested.get_data(as_text=True)
    steps = _steps(flow.client.get(page_url).get_data(as_text=True))
    assert steps == {**steps, "test": "done", "live": "todo"}
    assert all(state == "done" for key, state in steps.items() if key != "live")
    assert ledger_documents(sandbox, "exact-online", number) == []  # the test invoice is not this one

    # Going live from today: the checklist is done, so no confirmation is asked.
    today = date.today().isoformat()
    went = flow.post(f"/connections/{connection_id}/go-live", **{"golive-sync_from": f"{today}T00:00"})
    assert went.status_code == 303, went.get_data(as_text=True)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection.live_since is not None
        assert connection.sync_from.date() == date.today()
        event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.kind == "connection.went_live")).one()
        assert event.subject_id == connection_id and "open_steps" not in (event.after or {})
    html = flow.client.get(page_url).get_data(as_text=True)
    assert "Not live yet" not in html and _steps(html)["live"] == "done"

    # From now on the scheduler pushes it; the invoice reaches the ledger once.
    with app.app_context():
        assert connection_id in schedule.tick().enqueued
    run_queued_jobs(app)
    assert len(ledger_documents(sandbox, "exact-online", number)) == 1


def test_going_live_with_open_steps_needs_a_confirmation_and_happens_once(app, sandbox, flow, org_unit):
    from portal.extensions import db
    from portal.models import AuditEvent, Connection

    region, company, choices = CONNECT["bexio"]
    connection_id = flow.connected(org_unit["unit_id"], "bexio", region, company=company, live=False, **choices)
    url = f"/connections/{connection_id}/go-live"

    refused = flow.client.post(url, data={"csrf_token": flow.token, "golive-sync_from": "2026-01-01T00:00"}, headers=HX)
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "6 step(s) are not done" in text or "5 step(s) are not done" in text
    assert "test invoice passed" in text and "Go live although steps of the checklist are not done" in text
    bad_date = flow.client.post(url, data={"csrf_token": flow.token, "golive-sync_from": "yesterday"}, headers=HX)
    assert bad_date.status_code == 400 and "Give the date from which records sync" in bad_date.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Connection, connection_id).live_since is None

    went = flow.post(url, **{"golive-sync_from": "2026-01-01T00:00", "golive-confirm_open_steps": "y"})
    assert went.status_code == 303
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection.live_since is not None and connection.sync_from.date() == date(2026, 1, 1)
        event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.kind == "connection.went_live")).one()
        assert "confirmed with open steps" in event.summary and "test" in event.after["open_steps"]

    again = flow.client.post(
        url, data={"csrf_token": flow.token, "golive-sync_from": "2026-02-01T00:00", "golive-confirm_open_steps": "y"}
    )
    assert again.status_code == 409 and "is live already" in again.get_data(as_text=True)


def test_ops_resync_keeps_the_records_of_a_connection_not_live_yet_waiting(app, sandbox, flow, org_unit, make_invoice):
    from portal.extensions import db
    from portal.models import Connection
    from portal.sync import actions

    region, company, choices = CONNECT["quickbooks"]
    connection_id = flow.connected(org_unit["unit_id"], "quickbooks", region, company=company, live=False, **choices)
    make_invoice()
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        outcome = actions.resync_connection(connection, None, failed_only=False)
        db.session.commit()
        assert outcome.enqueued == []
        assert "not live yet" in outcome.waiting[connection_id]
    assert _runs(app, "incremental") == []


def test_push_now_and_pull_payments_now_enqueue_their_jobs_and_show_progress(app, sandbox, flow, connect, make_invoice):
    connection_id = connect("exact-online")
    _, number = make_invoice()
    page = flow.client.get(f"/connections/{connection_id}").get_data(as_text=True)
    assert 'id="push-now"' in page and 'id="pull-payments-now"' in page

    pushed = flow.client.post(f"/connections/{connection_id}/push-now", data={"csrf_token": flow.token}, headers=HX)
    assert pushed.status_code == 200
    box = pushed.get_data(as_text=True)
    assert "Push queued" in box and 'data-run="push"' in box
    (push_run,) = _runs(app, "incremental")
    assert push_run[1] == "queued" and "Push now" in flow.client.get(f"/jobs/{push_run[0]}").get_data(as_text=True)
    assert f'hx-get="/jobs/{push_run[0]}"' in box and 'hx-trigger="every 1s"' in box  # it polls its run

    twice = flow.client.post(f"/connections/{connection_id}/push-now", data={"csrf_token": flow.token}, headers=HX)
    assert "queued or running already" in twice.get_data(as_text=True)
    assert len(_runs(app, "incremental")) == 1

    pulled = flow.client.post(
        f"/connections/{connection_id}/pull-payments-now", data={"csrf_token": flow.token}, headers=HX
    )
    assert pulled.status_code == 200 and "Payments pull queued" in pulled.get_data(as_text=True)
    (pull_run,) = _runs(app, "payment_poll")

    run_queued_jobs(app)
    assert len(ledger_documents(sandbox, "exact-online", number)) == 1
    finished = dict((r[0], r[1]) for r in _runs(app, "incremental") + _runs(app, "payment_poll"))
    assert finished[push_run[0]] == "succeeded" and finished[pull_run[0]] == "succeeded"
    shown = flow.client.get(f"/jobs/{push_run[0]}", headers=HX).get_data(as_text=True)
    assert 'data-status="succeeded"' in shown and "hx-trigger" not in shown  # a finished run stops polling

    # Without HTMX the form still works: back to the page with the message.
    plain = flow.post(f"/connections/{connection_id}/push-now")
    assert plain.status_code == 303 and plain.headers["Location"].endswith(f"/connections/{connection_id}#sync")


def test_push_now_is_refused_before_go_live_and_for_paused_connections(app, sandbox, flow, org_unit):
    from portal.extensions import db
    from portal.models import Connection, ConnectionStatus

    region, company, choices = CONNECT["bexio"]
    connection_id = flow.connected(org_unit["unit_id"], "bexio", region, company=company, live=False, **choices)
    refused = flow.client.post(f"/connections/{connection_id}/push-now", data={"csrf_token": flow.token}, headers=HX)
    assert refused.status_code == 409 and "not live yet" in refused.get_data(as_text=True)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        connection.live_since = connection.connected_at
        connection.transition(ConnectionStatus.paused, "Customer asked to wait")
        db.session.commit()
    paused = flow.client.post(f"/connections/{connection_id}/push-now", data={"csrf_token": flow.token}, headers=HX)
    assert paused.status_code == 409 and "resume it first" in paused.get_data(as_text=True)
    pulled = flow.client.post(
        f"/connections/{connection_id}/pull-payments-now", data={"csrf_token": flow.token}, headers=HX
    )
    assert pulled.status_code == 409
    assert _runs(app, "incremental") == [] and _runs(app, "payment_poll") == []
