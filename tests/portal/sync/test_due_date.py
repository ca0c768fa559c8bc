"""The due date a pushed invoice gets in each sandbox ledger.

Its own, else issue date + the connection's Due days, else the ledger's payment condition / terms.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.portal.mappings.conftest import control
from tests.portal.sync.conftest import PROVIDERS, ledger_documents

#: The field holding the due date of an invoice in each sandbox ledger.
DUE_FIELD = {"exact-online": "DueDate", "quickbooks": "DueDate", "bexio": "is_valid_to"}
#: Days the mapped default payment condition / term gives (Exact "30" = 30 dagen, QuickBooks term 3 = Net 30).
TERM_DAYS = {"exact-online": 30, "quickbooks": 30}


def _day(value) -> date:
    """Return a ledger date (ISO text, OData ``/Date(ms)/`` or epoch milliseconds) as a date."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC).date()
    match = re.fullmatch(r"/Date\((-?\d+)\)/", str(value))
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()
    return date.fromisoformat(str(value)[:10])


def _prepare(app, sandbox, connect, make_invoice, provider, *, own_due: date | None, due_days: int | None):
    """Connect, set Due days, add an invoice issued 3 days ago with ``own_due``.

    Returns (connection id, invoice id, number, issue date).
    """
    from portal.extensions import db
    from portal.models import Connection, Invoice

    if provider == "exact-online":
        control(sandbox, "exact-online/set_division_settings", {"division": 3010001, "invoice_number_at_entry": True})
    connection_id = connect(provider)
    issue = date.today() - timedelta(days=3)
    invoice_id, number = make_invoice(issue_date=issue)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        connection.settings = {**(connection.settings or {}), "due_days": due_days}
        db.session.get(Invoice, invoice_id).due_date = own_due
        db.session.commit()
    return connection_id, invoice_id, number, issue


def _push(app, connection_id: int, invoice_id: int):
    from portal.extensions import db
    from portal.models import Connection, Invoice
    from portal.sync import push

    with app.app_context():
        record = push.push_invoice(db.session.get(Connection, connection_id), db.session.get(Invoice, invoice_id))
        return record.state.value, record.last_error_text


def _ledger_due(sandbox, provider: str, number: str) -> date:
    [document] = ledger_documents(sandbox, provider, number)
    return _day(document[DUE_FIELD[provider]])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_due_days_give_the_due_date_when_the_invoice_has_none(app, sandbox, connect, make_invoice, provider):
    connection_id, invoice_id, number, issue = _prepare(
        app, sandbox, connect, make_invoice, provider, own_due=None, due_days=12
    )

    state, error = _push(app, connection_id, invoice_id)

    assert state == "pushed", error
    assert _ledger_due(sandbox, provider, number) == issue + timedelta(days=12)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_invoices_own_due_date_wins_over_due_days(app, sandbox, connect, make_invoice, provider):
    own = date.today() + timedelta(days=40)
    connection_id, invoice_id, number, _ = _prepare(
        app, sandbox, connect, make_invoice, provider, own_due=own, due_days=12
    )

    state, error = _push(app, connection_id, invoice_id)

    assert state == "pushed", error
    assert _ledger_due(sandbox, provider, number) == own


@pytest.mark.parametrize("provider", ["exact-online", "quickbooks"])
def test_without_either_the_ledgers_payment_terms_decide(app, sandbox, connect, make_invoice, provider):
    connection_id, invoice_id, number, issue = _prepare(
        app, sandbox, connect, make_invoice, provider, own_due=None, due_days=None
    )

    state, error = _push(app, connection_id, invoice_id)

    assert state == "pushed", error
    assert _ledger_due(sandbox, provider, number) == issue + timedelta(days=TERM_DAYS[provider])


def test_bexio_refuses_an_invoice_without_a_due_date_and_names_the_fix(app, sandbox, connect, make_invoice):
    connection_id, invoice_id, number, _ = _prepare(
        app, sandbox, connect, make_invoice, "bexio", own_due=None, due_days=None
    )

    state, error = _push(app, connection_id, invoice_id)

    assert state == "failed"
    assert "Due days" in error and "mappings page" in error and number in error
    assert ledger_documents(sandbox, "bexio", number) == []


def test_due_days_zero_makes_the_invoice_due_on_its_issue_date(app, sandbox, connect, make_invoice):
    connection_id, invoice_id, number, issue = _prepare(
        app, sandbox, connect, make_invoice, "quickbooks", own_due=None, due_days=0
    )

    state, error = _push(app, connection_id, invoice_id)

    assert state == "pushed", error
    assert _ledger_due(sandbox, "quickbooks", number) == issue
