"""The historical push pages: preview, start, progress that stops polling, records, pause/resume/cancel."""

from __future__ import annotations

import json
import re

from tests.portal.sync.rq_workers import control, sandbox_get


def _form(token, **extra):
    return {"csrf_token": token, "date_from": "2025-01-01", "date_to": "2025-12-31", "kinds": ["invoice"], **extra}


def test_support_previews_ops_starts_and_both_watch_a_back_fill(
    app, client, login, make_staff, sandbox, connect, old_invoices, backfill_of
):
    connection_id = connect("exact-online")
    old_invoices(3)
    support = app.test_client()
    support_token = login(make_staff("support"), client=support)
    client = app.test_client()
    token = login(make_staff("ops"), client=client)

    page = client.get(f"/connections/{connection_id}/history")
    assert page.status_code == 200 and "Historical push" in page.get_data(as_text=True)
    assert f"/connections/{connection_id}/history" in client.get(f"/connections/{connection_id}").get_data(as_text=True)

    preview = client.post(
        f"/connections/{connection_id}/history/preview", data=_form(token), headers={"HX-Request": "true"}
    )
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200, html
    assert re.search(r'data-kind="invoice".*?data-count="create">3<', html, re.S)
    assert "Estimated duration" in html

    # A back-fill writes years of documents into the customer's books: support previews, ops start it.
    page = support.get(f"/connections/{connection_id}/history").get_data(as_text=True)
    assert "Start the push" not in page and "ops start" in page
    assert support.post(f"/connections/{connection_id}/history", data=_form(support_token)).status_code == 403
    started = client.post(f"/connections/{connection_id}/history", data=_form(token))
    assert started.status_code == 302
    backfill_id = int(started.headers["Location"].rsplit("/", 1)[1])
    assert support.post(f"/history/{backfill_id}/cancel", data={"csrf_token": support_token}).status_code == 403
    assert "Pause</button>" not in support.get(f"/history/{backfill_id}").get_data(as_text=True)
    running = client.get(f"/history/{backfill_id}/progress", headers={"HX-Request": "true"})
    assert running.status_code == 200 and 'hx-trigger="every 2s"' in running.get_data(as_text=True)

    backfill_of.run(backfill_id)
    done = client.get(f"/history/{backfill_id}/progress", headers={"HX-Request": "true"})
    body = done.get_data(as_text=True)
    assert done.status_code == 286  # htmx stops polling
    assert "hx-trigger" not in body and 'data-status="succeeded"' in body
    assert 'id="reconciliation"' in body and 'data-matches="true"' in body

    records = client.get(f"/history/{backfill_id}/records?outcome=created&kind=invoice", headers={"HX-Request": "true"})
    assert records.get_data(as_text=True).count('data-outcome="created"') == 3
    none = client.get(f"/history/{backfill_id}/records?outcome=failed", headers={"HX-Request": "true"})
    assert "No records match the filter" in none.get_data(as_text=True)
    bad = client.get(f"/history/{backfill_id}/records?outcome=lost")
    assert bad.status_code == 400 and "outcome must be one of" in bad.get_data(as_text=True)


def test_a_bad_range_says_what_to_fix_and_starts_nothing(app, client, login, make_staff, connect):
    from portal.extensions import db
    from portal.models import Backfill

    connection_id = connect("exact-online")
    client = app.test_client()
    token = login(make_staff("ops"), client=client)
    answer = client.post(
        f"/connections/{connection_id}/history",
        data=_form(token, date_from="2025-06-01", date_to="2025-01-01"),
    )
    assert answer.status_code == 422
    assert "starts after it ends" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Backfill.id))) == 0


def test_pause_resume_and_cancel_from_the_page_are_audited_and_need_csrf(
    app, client, login, make_staff, connect, old_invoices, backfill_of
):
    from portal.extensions import db
    from portal.models import AuditEvent

    connection_id = connect("exact-online")
    old_invoices(2)
    client = app.test_client()
    token = login(make_staff("ops"), client=client)
    backfill_id = backfill_of.start(connection_id, ["invoice"])

    assert client.post(f"/history/{backfill_id}/pause").status_code == 400  # no CSRF token
    paused = client.post(f"/history/{backfill_id}/pause", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert 'data-status="paused"' in paused.get_data(as_text=True)
    resumed = client.post(f"/history/{backfill_id}/resume", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert 'data-status="queued"' in resumed.get_data(as_text=True)
    cancelled = client.post(
        f"/history/{backfill_id}/cancel", data={"csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert cancelled.status_code == 286 and 'data-status="cancelled"' in cancelled.get_data(as_text=True)
    assert backfill_of.run(backfill_id)["status"] == "cancelled"
    with app.app_context():
        kinds = list(
            db.session.scalars(
                db.select(AuditEvent.kind).where(AuditEvent.kind.like("history.%")).order_by(AuditEvent.id)
            )
        )
    assert kinds == ["history.started", "history.paused", "history.resumed", "history.cancelled"]


def test_pages_need_a_login_support_to_look_and_ops_to_write(app, client, connect):
    connection_id = connect("exact-online")
    assert app.test_client().get(f"/connections/{connection_id}/history").status_code in (302, 401)
    from portal.history import views

    for endpoint in ("show_history", "preview_history", "show_backfill", "show_progress", "list_records"):
        assert getattr(views, endpoint).required_role.value == "support"
    for endpoint in ("start_history", "pause_backfill", "resume_backfill", "cancel_backfill"):
        assert getattr(views, endpoint).required_role.value == "ops"


def test_cli_preview_and_push_wait_print_json(app, sandbox, connect, old_invoices):
    connection_id = connect("exact-online")
    numbers = old_invoices(3)
    runner = app.test_cli_runner()
    args = ["--connection", str(connection_id), "--from", "2025-01-01", "--to", "2025-12-31", "--kinds", "invoice"]

    preview = runner.invoke(args=["history", "preview", *args])
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.output)["kinds"]["invoice"]["create"] == 3

    pushed = runner.invoke(args=["history", "push", *args, "--wait"])
    assert pushed.exit_code == 0, pushed.output
    data = json.loads(pushed.output)
    assert data["status"] == "succeeded" and data["counts"] == {"invoice": {"created": 3}}

    again = runner.invoke(args=["history", "preview", *args])
    assert json.loads(again.output)["kinds"]["invoice"]["existing"] == 3

    bad = runner.invoke(
        args=["history", "preview", "--connection", str(connection_id), "--from", "2025-02-30", "--to", "2025-03-01"]
    )
    assert bad.exit_code != 0 and "YYYY-MM-DD, not '2025-02-30'" in bad.output
    assert len(numbers) == 3


def _division_calls(sandbox: str) -> int:
    """Return the calls the Exact sandbox counted against division 3010001's daily quota since its reset."""

    counters = sandbox_get(sandbox, "quotas")["counters"]
    return sum(
        c["within_limit"] + c["over_limit"]
        for c in counters
        if c["key"][0] == "exact-online" and c["key"][-2:] == ["3010001", "day"]
    )


def test_a_back_fill_s_figures_are_its_records_in_scope_the_calls_the_ledger_counted_and_their_rate(
    app, client, login, make_staff, sandbox, connect, old_invoices, backfill_of
):
    from portal.extensions import db
    from portal.models import Backfill, BackfillItem, SyncRun

    connection_id = connect("exact-online")
    old_invoices(12)
    client = app.test_client()
    token = login(make_staff("ops"), client=client)
    form = {**_form(token), "kinds": ["customer", "invoice", "credit_note", "payment"]}
    started = client.post(f"/connections/{connection_id}/history", data=form)
    assert started.status_code == 302, started.get_data(as_text=True)
    backfill_id = int(started.headers["Location"].rsplit("/", 1)[1])
    # 12 invoices take more calls than Exact's minute allows: the quota is off (the sandbox counts on).
    control(sandbox, "quotas", {"enabled": False})
    before = _division_calls(sandbox)

    state = backfill_of.run(backfill_id)

    assert state["status"] == "succeeded", state["message"]
    calls = _division_calls(sandbox) - before
    assert calls > 12
    with app.app_context():
        backfill = db.session.get(Backfill, backfill_id)
        items = db.session.scalar(db.select(db.func.count(BackfillItem.id)).filter_by(backfill_id=backfill_id))
        run = db.session.get(SyncRun, backfill.sync_run_id)
        done, busy = backfill.total(), backfill.busy_seconds
        by_outcome = {o: backfill.total(o) for o in ("created", "existing", "skipped", "blocked", "failed")}
        # In scope: the 12 invoices and their one customer.
        assert backfill.counts == {"customer": {"created": 1}, "invoice": {"created": 12}}
        assert done == 13 == items == sum(by_outcome.values())
        # The jobs console's "13 of 13" and the calls it shows.
        assert (run.progress_done, run.progress_total) == (13, 13)
        assert backfill.calls == calls == run.counts["calls"]
    assert busy > 0

    page = client.get(f"/history/{backfill_id}/progress", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert '<progress value="13" max="13">' in page
    of = dict(re.findall(r'<tr data-kind="(\w+)">.*?<td>([^<]*)</td></tr>', page, re.S))
    assert of == {"customer": "1", "invoice": "12", "credit_note": "0", "payment": "0"}
    said = re.search(r"(\d+) Exact Online call\(s\)(?: · (\d+) records a minute)?", page)
    assert said is not None and int(said.group(1)) == calls
    assert said.group(2) is not None and int(said.group(2)) == round(done / (busy / 60)), (said.group(0), done, busy)
    assert state["calls"] == calls  # the CLI's figure


def test_a_back_fill_s_figures_stay_right_across_its_waits_for_the_quota(
    app, sandbox, connect, old_invoices, backfill_of
):
    import time
    from datetime import UTC, datetime

    from portal.extensions import db
    from portal.history import services
    from portal.models import Backfill

    connection_id = connect("exact-online")
    old_invoices(4)
    backfill_id = backfill_of.start(connection_id, ["invoice"])
    # Exact's minute allows 6 calls and lasts 3 s: the back-fill waits for the quota several times.
    control(sandbox, "quotas", {"scale": 0.1, "window_scale": 0.05})
    before = _division_calls(sandbox)
    waits = 0
    state = backfill_of.run(backfill_id)
    while state["status"] == "waiting" and waits < 30:
        waits += 1
        resume_at = datetime.fromisoformat(state["resume_at"])
        time.sleep(max(0.0, (resume_at - datetime.now(UTC)).total_seconds()) + 0.2)
        state = backfill_of.run(backfill_id)  # the job scheduled for the reset

    assert state["status"] == "succeeded", state["message"]
    assert waits >= 1
    calls = _division_calls(sandbox) - before  # the 429s included: each was a call
    with app.app_context():
        backfill = db.session.get(Backfill, backfill_id)
        assert backfill.counts == {"invoice": {"created": 4}}
        assert backfill.calls == calls
        assert (backfill.sync_run.progress_done, backfill.sync_run.progress_total) == (4, 4)
        rate = services.rate_per_minute(backfill)
        assert rate is not None and abs(rate - 4 / (backfill.busy_seconds / 60)) < 1e-6
