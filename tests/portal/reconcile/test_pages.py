"""The reconciliation page: roles, period checks, a ledger that cannot list a kind, CSV, query counts."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from tests.conftest import csrf_token_of


def test_the_page_needs_the_ops_role_and_a_csrf_token(app, sandbox, connect, make_staff, login, ops_client):
    connection_id = connect("exact-online")
    support = app.test_client()
    token = login(make_staff("support"), client=support)
    today = date.today().isoformat()
    assert support.get(f"/connections/{connection_id}/reconcile").status_code == 403
    response = support.post(
        f"/connections/{connection_id}/reconcile/repush", data={"csrf_token": token, "from": today, "to": today}
    )
    assert response.status_code == 403
    client, _ = ops_client
    response = client.post(f"/connections/{connection_id}/reconcile/repush", data={"from": today, "to": today})
    assert response.status_code == 400


def test_a_bad_period_says_what_to_fix_before_reading_the_ledger(app, sandbox, connect, ops_client):
    connection_id = connect("exact-online")
    client, _ = ops_client
    base = f"/connections/{connection_id}/reconcile"
    page = client.get(base)
    assert page.status_code == 200 and 'id="reconcile-summary"' not in page.get_data(as_text=True)
    today = date.today()
    response = client.get(f"{base}?from={today}&to={today - timedelta(days=1)}")
    assert response.status_code == 400 and "after it ends" in response.get_data(as_text=True)
    response = client.get(f"{base}?from={today - timedelta(days=200)}&to={today}")
    assert response.status_code == 400 and "at most 92 days" in response.get_data(as_text=True)
    assert client.get(f"{base}?from=22.11.2026&to={today}").status_code == 400


def test_a_kind_the_ledger_cannot_list_is_reported_with_the_reason(app, sandbox, connect, make_invoice, ops_client):
    connection_id = connect("bexio")
    make_invoice()
    client, _ = ops_client
    today = date.today().isoformat()
    page = client.get(f"/connections/{connection_id}/reconcile?from={today}&to={today}").get_data(as_text=True)
    assert 'data-error="credit_note"' in page and "Not compared:" in page
    assert 'id="summary-invoice"' in page and 'data-count="missing">1<' in page


def test_a_ledger_that_refuses_the_listing_shows_the_providers_words(app, sandbox, connect, ops_client, monkeypatch):
    from portal.integrations.base import Forbidden
    from portal.reconcile import services

    connection_id = connect("quickbooks")

    class Refusing:
        def iter_documents(self, kind, date_from, date_to):
            raise Forbidden("no", provider="quickbooks", provider_text="The user has no access to sales.")

    monkeypatch.setattr(services.vault, "fresh_adapter", lambda connection: Refusing())
    client, token = ops_client
    today = date.today().isoformat()
    page = client.get(f"/connections/{connection_id}/reconcile?from={today}&to={today}").get_data(as_text=True)
    assert "QuickBooks Online refused to list invoices: The user has no access to sales." in page
    response = client.post(
        f"/connections/{connection_id}/reconcile/repush",
        data={"csrf_token": token, "from": today, "to": today},
        follow_redirects=True,
    )
    assert "refused to list invoices" in response.get_data(as_text=True)


def test_the_differences_download_as_csv_and_queries_do_not_grow(
    app, sandbox, connect, make_invoice, ops_client, count_queries
):
    connection_id = connect("exact-online")
    client, _ = ops_client
    today = date.today().isoformat()
    url = f"/connections/{connection_id}/reconcile?from={today}&to={today}"
    make_invoice("=SUM(A1)")
    with count_queries() as few:
        page = client.get(url).get_data(as_text=True)
    for _ in range(5):
        make_invoice()
    with count_queries() as many:
        page = client.get(url).get_data(as_text=True)
    assert 'data-count="missing">6<' in page
    assert len(many) == len(few)
    assert csrf_token_of(page)
    response = client.get(f"/connections/{connection_id}/reconcile.csv?from={today}&to={today}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["kind", "status", "number"]
    missing = [row for row in rows[1:] if row[1] == "missing"]
    assert len(missing) == 6 and "'=SUM(A1)" in {row[2] for row in missing}
