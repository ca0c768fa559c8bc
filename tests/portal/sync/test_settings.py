"""The connection settings the pipeline reads: e-mail text, sync delay, payments mode and interval."""

from __future__ import annotations

import re

from tests.portal.connections.conftest import BEXIO_MAIN, QBO_US


def _settings(app, connection_id: int) -> dict:
    from portal.extensions import db
    from portal.models import Connection

    with app.app_context():
        return dict(db.session.get(Connection, connection_id).settings)


def _bexio(flow, org_unit) -> int:
    return flow.connected(
        org_unit["unit_id"], "bexio", company=BEXIO_MAIN, username="max.mustermann", company_id=BEXIO_MAIN
    )


BASE = {"sending_method": "ledger", "auto_send": "y", "sync_from": "2026-01-01T00:00"}


def test_settings_save_the_email_text_delay_and_payments(app, flow, org_unit):
    connection_id = _bexio(flow, org_unit)

    saved = flow.post(
        f"/connections/{connection_id}/settings",
        **BASE,
        email_message="Hallo, Ihre Rechnung: [Network Link]",
        sync_delay_minutes="15",
        payments_mode="push",
        payments_pull_minutes="60",
    )

    assert saved.status_code == 302
    settings = _settings(app, connection_id)
    assert settings["email_message"] == "Hallo, Ihre Rechnung: [Network Link]"
    assert (settings["sync_delay_minutes"], settings["payments_mode"], settings["payments_pull_minutes"]) == (
        15,
        "push",
        60,
    )
    page = flow.client.get(f"/connections/{connection_id}").get_data(as_text=True)
    assert "Ihre Rechnung: [Network Link]" in page
    assert re.search(r'<input checked id="payments_mode-\d" name="payments_mode" type="radio" value="push">', page)


def test_a_bexio_email_text_without_the_link_placeholder_is_refused_and_nothing_is_saved(app, flow, org_unit):
    connection_id = _bexio(flow, org_unit)
    before = _settings(app, connection_id)

    refused = flow.post(
        f"/connections/{connection_id}/settings",
        **BASE,
        email_message="Hallo, anbei Ihre Rechnung.",
        payments_mode="off",
    )

    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert "bexio needs the placeholder [Network Link] in the e-mail text" in text
    assert _settings(app, connection_id) == before


def test_other_ledgers_take_any_email_text(app, flow, org_unit):
    connection_id = flow.connected(org_unit["unit_id"], "quickbooks", company=QBO_US, user="u-ada", realm_id=QBO_US)

    saved = flow.post(f"/connections/{connection_id}/settings", **BASE, email_message="Your invoice is attached.")

    assert saved.status_code == 302 and _settings(app, connection_id)["email_message"] == "Your invoice is attached."


def test_out_of_range_delay_interval_and_unknown_mode_are_refused_precisely(app, flow, org_unit):
    connection_id = _bexio(flow, org_unit)
    before = _settings(app, connection_id)

    refused = flow.post(
        f"/connections/{connection_id}/settings",
        **BASE,
        sync_delay_minutes="90",
        payments_mode="carrier-pigeon",
        payments_pull_minutes="5",
    )

    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert "Give a sync delay from 0 to 60 minutes." in text
    assert "Choose how payments sync: pull, push or off." in text
    assert "Give a pull interval from 15 to 1440 minutes." in text
    assert _settings(app, connection_id) == before


def test_the_invoice_e_mail_text_set_on_the_mappings_page_is_the_one_the_push_sends_and_the_settings_form_shows(
    app, sandbox, connect, org_unit, api, monkeypatch
):
    from portal.connections.forms import SettingsForm
    from portal.extensions import db
    from portal.integrations.base import get_adapter_class
    from portal.mappings import services as mappings
    from portal.models import Connection
    from tests.portal.sync.test_pipeline import ingest_invoice, run_push, set_settings

    connection_id = connect("bexio")
    set_settings(app, connection_id, sending_method="ledger", auto_send=True)
    text = "Guten Tag, Ihre Rechnung: [Network Link]"
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        mappings.save_defaults(connection, {}, {"invoice_email_text": text}, None)
        db.session.commit()
    cls = get_adapter_class("bexio")
    finalize, sent = cls.finalize_invoice, []

    def spy(self, external_id, **kwargs):
        sent.append(kwargs.get("message"))
        return finalize(self, external_id, **kwargs)

    monkeypatch.setattr(cls, "finalize_invoice", spy)
    ingest_invoice(app, api, org_unit)

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts.get("sent") == 1, (counts, message)
    assert sent == [text]
    with app.test_request_context():
        connection = db.session.get(Connection, connection_id)
        assert mappings.mapping_settings(connection)["invoice_email_text"] == text
        assert SettingsForm.for_connection(connection).email_message.data == text
