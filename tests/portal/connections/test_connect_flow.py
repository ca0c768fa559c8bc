"""Connect, pin, test, configure, re-authorize and disconnect, per provider and Exact region."""

from __future__ import annotations

import html

import pytest
import requests

from portal.connections import vault
from portal.models import AuditEvent, Connection, ConnectionStatus, OAuthGrant
from tests.portal.connections.conftest import (
    BEXIO_MAIN,
    BEXIO_OTHER,
    EXACT_UNGRANTABLE,
    EXACT_USERS,
    QBO_UK,
    QBO_US,
    consent,
    local_path,
)

#: (provider, region, company, another company the same approver can grant, who approves).
CASES = {
    **{
        f"exact-online-{region}": ("exact-online", region, divisions[0], divisions[1], {"user": user})
        for region, (user, divisions) in EXACT_USERS.items()
    },
    "quickbooks": ("quickbooks", None, QBO_US, QBO_UK, {"user": "u-ada"}),
    "bexio": ("bexio", None, BEXIO_MAIN, BEXIO_OTHER, {"username": "max.mustermann"}),
}


def _choice(provider: str, company: str) -> dict:
    """The consent-page choice that lands on ``company``."""
    if provider == "exact-online":
        return {"divisions": [company]}
    if provider == "quickbooks":
        return {"realm_id": company}
    return {"company_id": company}


def _connection(db, connection_id) -> Connection:
    db.session.expire_all()
    return db.session.get(Connection, connection_id)


def _events(db, connection_id) -> list[str]:
    return list(
        db.session.scalars(
            db.select(AuditEvent.kind)
            .where(AuditEvent.subject_type == "Connection", AuditEvent.subject_id == connection_id)
            .order_by(AuditEvent.id)
        )
    )


@pytest.mark.parametrize("case", list(CASES))
def test_full_lifecycle_per_provider_and_exact_region(app, db, flow, unit_id, case):
    provider, region, company, other, who = CASES[case]
    cid = flow.connect(unit_id, provider, region, company=company, **who, **_choice(provider, company))
    connection = _connection(db, cid)
    assert connection.status is ConnectionStatus.connected
    assert connection.external_company_id == company and connection.external_company_name
    assert connection.region == region
    page = flow.client.get(f"/connections/{cid}").get_data(as_text=True)
    assert connection.company_label in page and "Connected" in page

    # Tokens are encrypted at rest and never shown.
    tokens = vault.read_tokens(connection)
    assert tokens.access_token not in connection.token_ciphertext
    assert tokens.access_token not in page and (tokens.refresh_token or "x" * 40) not in page

    # Test: read-only checks, then a real test invoice cleaned up (or the manual step named).
    checks = flow.post(f"/connections/{cid}/test").get_data(as_text=True)
    assert 'data-outcome="ok"' in checks, checks
    documents = flow.post(f"/connections/{cid}/test-documents").get_data(as_text=True)
    assert 'data-outcome="created"' in documents, documents

    # Configure.
    saved = flow.post(
        f"/connections/{cid}/settings", sending_method="ledger", auto_send="y", sync_from="2026-01-01T00:00"
    )
    assert saved.status_code == 302
    connection = _connection(db, cid)
    assert connection.setting("sending_method") == "ledger" and connection.setting("auto_send") is True
    assert connection.sync_from.isoformat().startswith("2026-01-01T00:00")

    # Re-authorize onto the same company: accepted, same id, settings kept.
    started = flow.post(f"/connections/{cid}/reconnect")
    back = flow.client.get(
        local_path(consent(flow.sandbox, started.headers["Location"], **who, **_choice(provider, company)))
    )
    assert back.status_code == 302 and back.headers["Location"].endswith(f"/connections/{cid}")
    assert _connection(db, cid).setting("sending_method") == "ledger"

    # Re-authorize onto another company: refused, naming both, old tokens untouched.
    before = _connection(db, cid).token_ciphertext
    started = flow.post(f"/connections/{cid}/reconnect")
    refused = flow.client.get(
        local_path(consent(flow.sandbox, started.headers["Location"], **who, **_choice(provider, other)))
    )
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409 and connection.company_label.split(" (")[0] in text
    assert other in text or "Ltd" in text or "Treuhand" in text  # the company it landed on, named
    assert _connection(db, cid).token_ciphertext == before
    assert _connection(db, cid).status is ConnectionStatus.connected

    # Disconnect: tokens purged, history kept.
    assert flow.post(f"/connections/{cid}/disconnect").status_code == 303  # not confirmed: nothing done
    assert _connection(db, cid).status is ConnectionStatus.connected
    assert flow.post(f"/connections/{cid}/disconnect", confirm="y").status_code == 302
    connection = _connection(db, cid)
    assert connection.status is ConnectionStatus.disconnected and connection.token_ciphertext is None
    assert _events(db, cid) == [
        "connection.connected",
        "connection.tested",
        "connection.settings_changed",
        "connection.reauthorized",
        "connection.reauthorization_refused",
        "connection.disconnected",
    ]


def test_excluded_division_is_listed_but_cannot_be_pinned(app, db, flow, unit_id):
    callback = flow.authorize(unit_id, "exact-online", "nl", user="jan.devries", divisions=["3010001"])
    page = flow.client.get(callback.headers["Location"]).get_data(as_text=True)
    assert "3010002" in page and EXACT_UNGRANTABLE in page  # listed, with why they are not usable
    assert page.count("disabled") >= 2
    refused = flow.pick(callback, "3010002")
    assert refused.status_code == 400
    assert "cannot be used with this consent" in refused.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(Connection.id))) == 0


def test_denial_at_the_ledger_creates_nothing(app, db, flow, unit_id):
    started = flow.start(unit_id, "quickbooks")
    denied = flow.client.get(
        local_path(consent(flow.sandbox, started.headers["Location"], decision="deny", user="u-ada"))
    )
    assert denied.status_code == 400
    assert "did not grant access" in denied.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(OAuthGrant.id))) == 0
    assert db.session.scalar(db.select(db.func.count(Connection.id))) == 0


def test_forged_missing_and_replayed_state_are_refused(app, db, flow, unit_id):
    started = flow.start(unit_id, "bexio")
    redirect = consent(flow.sandbox, started.headers["Location"], username="max.mustermann", company_id=BEXIO_MAIN)
    forged = flow.client.get(local_path(redirect).replace("state=", "state=forged"))
    assert forged.status_code == 400 and "does not belong to a request" in forged.get_data(as_text=True)
    missing = flow.client.get("/connections/oauth/callback?code=abc")
    assert missing.status_code == 400 and "carries no state" in missing.get_data(as_text=True)
    first = flow.client.get(local_path(redirect))
    assert first.status_code == 302
    replay = flow.client.get(local_path(redirect))
    assert replay.status_code == 400
    assert db.session.scalar(db.select(db.func.count(OAuthGrant.id))) == 1


def test_state_from_another_browser_session_is_refused(app, db, flow, unit_id, make_staff, login):
    started = flow.start(unit_id, "bexio")
    redirect = consent(flow.sandbox, started.headers["Location"], username="max.mustermann", company_id=BEXIO_MAIN)
    other = app.test_client()
    login(make_staff("support"), client=other)
    response = other.get(local_path(redirect))
    assert response.status_code == 400 and "does not belong to a request" in response.get_data(as_text=True)


def test_unknown_provider_and_region_are_refused(flow, unit_id, db):
    bad_region = flow.start(unit_id, "exact-online", "xx")
    text = html.unescape(bad_region.get_data(as_text=True))
    assert bad_region.status_code == 400 and "'xx' is not an Exact Online instance" in text and "nl or be" in text
    no_region = flow.start(unit_id, "exact-online", "")
    assert no_region.status_code == 400 and "Choose the Exact Online instance" in no_region.get_data(as_text=True)
    bad_provider = flow.start(unit_id, "sage")
    assert bad_provider.status_code == 400
    assert "'sage' is not a ledger Ledgerlink connects to" in html.unescape(bad_provider.get_data(as_text=True))
    assert db.session.scalar(db.select(db.func.count(Connection.id))) == 0


@pytest.mark.faults
def test_provider_outage_during_connect_leaves_nothing(app, db, flow, unit_id):
    started = flow.start(unit_id, "quickbooks")
    redirect = consent(flow.sandbox, started.headers["Location"], user="u-ada", realm_id=QBO_US)
    requests.post(
        f"{flow.sandbox}/_control/faults",
        json={"provider": "quickbooks", "kind": "error_rate", "status": 503, "path_contains": "/companyinfo"},
        timeout=10,
    ).raise_for_status()
    response = flow.client.get(local_path(redirect))
    assert response.status_code == 400
    assert "refused to complete the authorization" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(OAuthGrant.id))) == 0


def test_connecting_a_connected_unit_needs_confirmation_and_replaces(app, db, flow, unit_id):
    first = flow.connect(unit_id, "bexio", company=BEXIO_MAIN, username="max.mustermann", company_id=BEXIO_MAIN)
    unconfirmed = flow.start(unit_id, "quickbooks")
    assert unconfirmed.status_code == 409 and "tick the box to replace it" in unconfirmed.get_data(as_text=True)
    second = flow.connect(unit_id, "quickbooks", company=QBO_UK, replace=True, user="u-ada", realm_id=QBO_UK)
    assert _connection(db, first).status is ConnectionStatus.disconnected
    assert _connection(db, second).status is ConnectionStatus.connected
    assert "Replaced by a connection" in _connection(db, first).status_reason


def test_settings_refuse_bad_input_and_change_nothing(app, db, flow, unit_id):
    cid = flow.connect(unit_id, "bexio", company=BEXIO_MAIN, username="max.mustermann", company_id=BEXIO_MAIN)
    before = _connection(db, cid).sync_from
    bad = flow.post(f"/connections/{cid}/settings", sending_method="carrier-pigeon", sync_from="31-12-2026")
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "'carrier-pigeon' is not a sending method" in html.unescape(text) and "saas or ledger" in text
    assert "Not a valid choice" not in text and "YYYY-MM-DD" in text
    assert _connection(db, cid).sync_from == before


def test_unknown_connection_and_unit_are_404(flow):
    assert flow.client.get("/connections/999999").status_code == 404
    assert flow.client.get("/business-units/999999/connect").status_code == 404
    assert flow.client.get("/connections/grants/999999").status_code == 404
