"""Bad values on the customer linking page get a message saying what to fix; nothing is saved."""

from __future__ import annotations

import html

from portal.customers import services
from portal.models import Connection
from portal.models.customer_link import CustomerLink


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_a_score_that_is_not_a_number_is_refused_on_the_page(db, flow, connect, add_customers):
    cid = connect("bexio")
    add_customers({"external_id": "S-1", "name": "Score AG"})
    for value, shown in (("lots", "'lots'"), ("250", "250"), ("-3", "-3")):
        refused = flow.post(f"/connections/{cid}/customers/confirm", min_score=value, action="score")
        text = _text(refused)
        assert refused.status_code == 400, text
        assert "whole number from 0 to 100" in text and shown in text, text
        assert 'id="confirm-form"' in text or 'id="confirm-errors"' in text
    db.session.expire_all()
    assert db.session.scalars(db.select(CustomerLink).where(CustomerLink.connection_id == cid)).all() == []


def test_a_bad_score_filter_says_what_to_type(flow, connect):
    cid = connect("bexio")
    refused = flow.client.get(f"/connections/{cid}/customers?min_score=lots")
    text = _text(refused)
    assert refused.status_code == 400
    assert "whole number from 0 to 100" in text and "'lots'" in text
    assert flow.client.get(f"/connections/{cid}/customers?min_score=80").status_code == 200


def test_an_unknown_customer_mode_names_the_choices_and_saves_nothing(db, flow, connect):
    cid = connect("bexio")
    refused = flow.post(f"/connections/{cid}/customers/mode", customer_mode="sometimes")
    text = _text(refused)
    assert refused.status_code == 400
    assert "Not a valid choice" not in text
    assert "'sometimes' is not a customer mode" in text and "create" in text and "link_only" in text
    assert 'name="customer_mode"' in text  # the form is shown again
    missing = flow.post(f"/connections/{cid}/customers/mode")
    assert missing.status_code == 400 and "Choose what happens" in _text(missing)
    db.session.expire_all()
    assert services.customer_mode(db.session.get(Connection, cid)) == services.DEFAULT_CUSTOMER_MODE
    assert "customer_mode" not in (db.session.get(Connection, cid).settings or {})
