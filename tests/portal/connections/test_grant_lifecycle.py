"""Consent grants: tokens purged on every ending, revoked at the ledger where it can, reachable only by their owner."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import requests
from sqlalchemy import String, Text, inspect

from portal.connections import providers, vault
from portal.integrations.base import AuthExpired, LedgerError, NeedsReauthorization
from portal.models import AuditEvent, Connection, OAuthGrant
from tests.conftest import csrf_token_of
from tests.portal.connections.conftest import QBO_UK, QBO_US, local_path
from tests.portal.links.conftest import approver, make_link  # noqa: F401 - fixtures

QBO = {"user": "u-ada"}


def _units(app, count: int) -> list[int]:
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        return list(db.session.scalars(db.select(BusinessUnit.id).order_by(BusinessUnit.id).limit(count)))


def _every_ciphertext(app) -> list[tuple[str, str]]:
    """Return (table.column, value) of every stored value, in every text column of every table, that decrypts."""
    from portal.extensions import db

    found = []
    with app.app_context():
        cipher = vault.cipher()
        existing = set(inspect(db.engine).get_table_names())
        for table in db.metadata.sorted_tables:
            if table.name not in existing:
                continue
            for column in table.columns:
                if not isinstance(column.type, String | Text):
                    continue
                for value in db.session.scalars(db.select(column).where(column.is_not(None))):
                    try:
                        cipher.decrypt(value)
                    except Exception:  # noqa: S112 - not a token set: what the scan is looking for
                        continue
                    found.append((f"{table.name}.{column.name}", value))
    return found


def _working(app, provider: str, company: str, tokens) -> list[str]:
    """Return which parts of ``tokens`` still work at the sandbox ledger (access call, refresh)."""
    works = []
    with app.test_request_context():
        access_only = dataclasses.replace(tokens, refresh_token=None)
        try:
            providers.build_adapter(provider, company_id=company, tokens=access_only).company_info()
            works.append("access token")
        except (AuthExpired, NeedsReauthorization):
            pass
        if tokens.refresh_token:
            try:
                providers.build_adapter(provider, company_id=company, tokens=tokens).refresh()
                works.append("refresh token")
            except NeedsReauthorization:
                pass
    return works


def _stored_tokens(app, model, row_id):
    from portal.extensions import db

    with app.app_context():
        row = db.session.get(model, row_id)
        return vault.cipher().decrypt(row.token_ciphertext) if row.token_ciphertext else None


def _grants(app) -> list[OAuthGrant]:
    from portal.extensions import db

    with app.app_context():
        grants = list(
            db.session.scalars(
                db.select(OAuthGrant).options(db.undefer(OAuthGrant.token_ciphertext)).order_by(OAuthGrant.id)
            )
        )
        db.session.expunge_all()
        return grants


def _sandbox_grants(sandbox: str, realm: str) -> list[dict]:
    response = requests.post(f"{sandbox}/_control/quickbooks/grants", json={"realm_id": realm}, timeout=10)
    response.raise_for_status()
    return response.json()["grants"]


def test_after_disconnect_no_table_holds_a_usable_token(app, flow, demo_data, sandbox):
    """Connect, a refused re-authorization, an abandoned consent, then disconnect: every token is dead."""
    unit, other_unit = _units(app, 2)
    tokens_seen = []

    connection_id = flow.connect(unit, "quickbooks", company=QBO_US, realm_id=QBO_US, **QBO)
    tokens_seen.append((QBO_US, _stored_tokens(app, Connection, connection_id)))

    # A re-authorization that lands on another company is refused; its new consent is revoked at once.
    started = flow.post(f"/connections/{connection_id}/reconnect")
    from tests.portal.connections.conftest import consent

    refused = flow.client.get(local_path(consent(flow.sandbox, started.headers["Location"], realm_id=QBO_UK, **QBO)))
    assert refused.status_code == 409
    assert _sandbox_grants(sandbox, QBO_UK) and all(g["revoked"] for g in _sandbox_grants(sandbox, QBO_UK))

    # A consent abandoned at the pick step: listed for support, then expired by the schedule tick.
    waiting = flow.authorize(other_unit, "quickbooks", realm_id=QBO_US, **QBO)
    assert waiting.status_code == 302
    grant = next(g for g in _grants(app) if g.ended_at is None)
    tokens_seen.append((QBO_US, _stored_tokens(app, OAuthGrant, grant.id)))
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        org_id = db.session.get(BusinessUnit, other_unit).organization_id
    page = flow.client.get(f"/organizations/{org_id}").get_data(as_text=True)
    assert "Consents waiting for a company to be picked" in page  # support can find it (until it expires)
    with app.app_context():
        db.session.get(OAuthGrant, grant.id).expires_at -= timedelta(minutes=31)
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["schedule", "tick"])
    assert result.exit_code == 0 and "1 waiting consent(s) expired" in result.output, result.output

    # Disconnect.
    page = flow.client.get(f"/connections/{connection_id}")
    done = flow.client.post(
        f"/connections/{connection_id}/disconnect",
        data={"csrf_token": csrf_token_of(page.get_data(as_text=True)), "confirm": "y"},
    )
    assert done.status_code == 302

    # No ciphertext is left anywhere, and every token that was ever stored is dead at the ledger.
    assert _every_ciphertext(app) == []
    assert all(g.token_ciphertext is None and g.ended_at is not None for g in _grants(app))
    for company, tokens in tokens_seen:
        assert _working(app, "quickbooks", company, tokens) == [], tokens
    assert not [g for g in _sandbox_grants(sandbox, QBO_US) if not g["revoked"]]
    with app.app_context():
        kinds = set(db.session.scalars(db.select(AuditEvent.kind)))
    assert {"connection.consent_expired", "connection.disconnected", "connection.reauthorization_refused"} <= kinds


def test_a_consumed_grant_keeps_no_tokens(app, flow, demo_data):
    (unit,) = _units(app, 1)
    flow.connect(unit, "bexio", company="q69vysq7fkzl", username="max.mustermann", company_id="q69vysq7fkzl")
    grants = _grants(app)
    assert len(grants) == 1 and grants[0].token_ciphertext is None and grants[0].outcome.value == "pinned"
    assert [where for where, _ in _every_ciphertext(app)] == ["connection.token_ciphertext"]


def test_a_grant_opens_only_for_the_staff_member_who_started_it(app, client, flow, demo_data, make_staff, login):
    (unit,) = _units(app, 1)
    callback = flow.authorize(unit, "quickbooks", realm_id=QBO_US, **QBO)
    pick_url = callback.headers["Location"]
    grant = _grants(app)[0]
    handle = pick_url.rsplit("/", 1)[1]
    # An unguessable handle, not the row's id (a random handle may well contain its digits).
    assert not handle.isdigit() and handle != str(grant.id) and len(handle) >= 40
    # Another support member: neither the handle nor the id opens it.
    colleague = app.test_client()
    token = login(make_staff("support"), client=colleague)
    assert colleague.get(pick_url).status_code == 404
    assert colleague.post(pick_url, data={"csrf_token": token, "company": QBO_US}).status_code == 404
    assert colleague.get(f"/connections/grants/{grant.id}").status_code == 404
    # The one who started it picks as before.
    assert flow.client.get(pick_url).status_code == 200


def test_an_approvers_grant_cannot_be_taken_by_staff(app, flow, demo_data, make_link, approver):  # noqa: F811 - fixtures imported above
    from tests.portal.links.conftest import NL_USER, link_state

    (unit,) = _units(app, 1)
    link_id, token = make_link(unit)
    waiting = approver.approve(token, user=NL_USER, divisions=["3010001", "3010002"])
    assert waiting.status_code == 302 and "/authorize/grants/" in waiting.headers["Location"]
    handle = waiting.headers["Location"].rsplit("/", 1)[1]
    grant = _grants(app)[0]
    # Support, logged in, tries the staff pick page with the id and with the handle: nothing.
    for path in (f"/connections/grants/{grant.id}", f"/connections/grants/{handle}"):
        assert flow.client.get(path).status_code == 404
        assert flow.post(path, company="3010001").status_code == 404
    # Nor the approver's page from a browser that did not consent.
    assert flow.client.get(f"/authorize/grants/{handle}").status_code == 404
    assert link_state(app, link_id)[0] == "opened"
    # The approver completes it through the link.
    page = approver.client.get(f"/authorize/grants/{handle}")
    done = approver.client.post(
        f"/authorize/grants/{handle}",
        data={"csrf_token": csrf_token_of(page.get_data(as_text=True)), "company": "3010002"},
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert link_state(app, link_id)[0] == "completed"


def test_a_revoked_link_ends_the_consent_waiting_on_it(app, demo_data, make_link, approver):  # noqa: F811 - fixtures imported above
    from portal.extensions import db
    from portal.links import services as links
    from portal.models import AuthorizationLink
    from tests.portal.links.conftest import NL_USER

    (unit,) = _units(app, 1)
    link_id, token = make_link(unit)
    assert approver.approve(token, user=NL_USER, divisions=["3010001", "3010002"]).status_code == 302
    assert _every_ciphertext(app) and _grants(app)[0].ended_at is None
    with app.test_request_context():
        links.revoke(db.session.get(AuthorizationLink, link_id), reason="test")
        db.session.commit()
    (grant,) = _grants(app)
    assert grant.outcome.value == "superseded" and grant.token_ciphertext is None
    assert _every_ciphertext(app) == []


@pytest.mark.parametrize("provider", ["quickbooks", "bexio"])
def test_revoking_a_token_set_kills_it_at_the_ledger(app, flow, demo_data, provider):
    """The sandboxes revoke as the real APIs do (QuickBooks: the grant; bexio: the refresh token's session)."""
    from portal.connections import services

    (unit,) = _units(app, 1)
    if provider == "quickbooks":
        cid, company = flow.connect(unit, provider, company=QBO_US, realm_id=QBO_US, **QBO), QBO_US
    else:
        company = "q69vysq7fkzl"
        cid = flow.connect(unit, provider, company=company, username="max.mustermann", company_id=company)
    tokens = _stored_tokens(app, Connection, cid)
    assert _working(app, provider, company, dataclasses.replace(tokens, refresh_token=None)) == ["access token"]
    with app.test_request_context():
        assert services.revoke_tokens(provider, None, tokens) is True
    try:
        assert _working(app, provider, company, tokens) == []
    except LedgerError as exc:  # pragma: no cover - a failure here says which call misbehaved
        raise AssertionError(exc) from exc


def test_a_link_consent_on_another_company_is_revoked_at_the_ledger(app, demo_data, make_link, approver, sandbox):  # noqa: F811 - fixtures imported above
    """Exact repro: a refused consent (another company than the link's) stayed live at the provider."""
    (unit,) = _units(app, 1)
    _link_id, token = make_link(unit, provider="quickbooks", region=None, expected_company_id=QBO_US)
    refused = approver.approve(token, user="u-ada", realm_id=QBO_UK)
    assert refused.status_code == 409
    assert _sandbox_grants(sandbox, QBO_UK) and all(g["revoked"] for g in _sandbox_grants(sandbox, QBO_UK))
    assert _grants(app) == [] and _every_ciphertext(app) == []
