"""Bad input answers 400/422 with a message everywhere, never a 500: the request guards and bounds."""

from __future__ import annotations

import base64
import json

import pytest

from tests.portal.sync.conftest import org_unit  # noqa: F401 - fixture
from tests.proof.conftest import api_key, org_external  # noqa: F401 - fixtures


def _list_urls(app, values: dict[str, int]) -> list[str]:
    """Every GET page whose path arguments can be filled with a real id."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static" or "token" in rule.arguments:
            continue
        if rule.arguments - set(values):
            continue
        urls.append(rule.build({a: values[a] for a in rule.arguments}, append_unknown=False)[1])
    return urls


@pytest.fixture
def admin_client(app, client, make_staff, login, demo_data):
    login(make_staff("admin"))
    return client


def _ids(app) -> dict[str, int]:
    from portal.extensions import db
    from portal.models import BusinessUnit, Organization

    with app.app_context():
        return {
            "org_id": db.session.scalars(db.select(Organization.id)).first(),
            "unit_id": db.session.scalars(db.select(BusinessUnit.id)).first(),
        }


@pytest.mark.parametrize("page", ["²", "٣", "1" * 40, "-1", "0x10"])
def test_a_page_number_that_is_no_number_is_a_400_on_every_list(app, admin_client, page):
    checked = 0
    for url in _list_urls(app, _ids(app)):
        response = admin_client.get(url, query_string={"page": page})
        assert response.status_code < 500, (url, response.status_code)
        if response.status_code == 400 and "page must be a whole number" in response.get_data(as_text=True):
            checked += 1
    assert checked >= 5  # the organization, ops, audit and jobs lists at least


def test_a_nul_byte_in_any_search_box_is_a_400_with_a_message(app, admin_client):
    for url in _list_urls(app, _ids(app)):
        for name in ("q", "org", "search", "ledger_q", "customer", "number"):
            response = admin_client.get(url, query_string={name: "acme\x00corp"})
            assert response.status_code == 400, (url, name, response.status_code)
            assert "NUL character" in response.get_data(as_text=True)


def test_a_nul_byte_in_a_posted_form_is_a_400(app, admin_client):
    from tests.conftest import csrf_token_of

    token = csrf_token_of(admin_client.get("/").get_data(as_text=True))
    response = admin_client.post("/ops/connections/bulk", data={"csrf_token": token, "ids": "1\x00", "action": "pause"})
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)


@pytest.mark.parametrize("value", [str(2**31), "9" * 12, "²", "\u0661"])
def test_oversized_or_odd_ids_in_posted_forms_are_a_400(app, admin_client, value):
    from tests.conftest import csrf_token_of

    token = csrf_token_of(admin_client.get("/").get_data(as_text=True))
    for url, extra in (("/ops/connections/bulk", {"action": "pause"}), ("/ops/failures/retry", {})):
        response = admin_client.post(url, data={"csrf_token": token, "ids": value, **extra})
        assert response.status_code == 400, (url, response.status_code)
        assert "ids must be ids" in response.get_data(as_text=True)


def test_the_audit_filter_takes_an_odd_or_oversized_organization_id_as_a_name(app, admin_client):
    for value in ("²", str(2**40)):
        assert admin_client.get("/audit", query_string={"org": value}).status_code == 200


# -- the API ---------------------------------------------------------------------------------------
def _invoice(org: dict, **changes) -> dict:
    line = {"position": 1, "description": "Work", "quantity": 1, "unit_price": "10", "tax_rate": 21}
    return {
        "business_unit": org["unit_id"],
        "number": "INV-1",
        "customer": org["customer_external_id"],
        "issue_date": "2026-01-10",
        "currency": "EUR",
        "lines": [line],
        **changes,
    }


@pytest.fixture
def put(client, api_key, org_external):  # noqa: F811 - fixtures imported above
    def do(body: bytes, content_type: str = "application/json"):
        url = f"/api/v1/organizations/{org_external['external_id']}/invoices/inv-1"
        return client.put(url, data=body, headers={"Authorization": f"Bearer {api_key}", "Content-Type": content_type})

    return do


def test_a_lone_surrogate_in_a_line_description_is_a_422_with_its_path(put, org_external):  # noqa: F811
    body = json.dumps(_invoice(org_external)).replace('"Work"', '"Work \\ud800"').encode()
    response = put(body)
    assert response.status_code == 422, response.get_data(as_text=True)
    problems = response.get_json()["error"]["problems"]
    assert problems[0]["path"] == "lines[0].description" and "surrogate" in problems[0]["message"]


def test_a_text_plain_body_is_a_415_that_asks_for_json(put, org_external):  # noqa: F811
    response = put(json.dumps(_invoice(org_external)).encode(), content_type="text/plain")
    assert response.status_code == 415
    assert "Content-Type: application/json" in response.get_json()["error"]["message"]


def test_a_body_over_the_cap_is_a_413_but_a_5_mb_pdf_fits(app, put, org_external):  # noqa: F811
    huge = b'{"pad": "' + b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1) + b'"}'
    response = put(huge)
    assert response.status_code == 413 and response.is_json
    assert "larger than 10 MB" in response.get_json()["error"]["message"]
    pdf = b"%PDF-1.4\n" + b"0" * (5 * 1024 * 1024 - 9)
    body = _invoice(org_external, pdf=base64.b64encode(pdf).decode())
    accepted = put(json.dumps(body).encode())
    assert accepted.status_code == 201, accepted.get_data(as_text=True)[:500]


def test_lines_and_dates_are_bounded(put, org_external):  # noqa: F811
    line = {"position": 1, "description": "Work", "quantity": 1, "unit_price": "10", "tax_rate": 21}
    many = [dict(line, position=i + 1) for i in range(20_000)]
    response = put(json.dumps(_invoice(org_external, lines=many)).encode())
    assert response.status_code == 422
    assert {"path": "lines", "message": "must have at most 1000 items"} in response.get_json()["error"]["problems"]
    for day in ("0001-01-01", "9999-12-31", "1969-12-31"):
        response = put(json.dumps(_invoice(org_external, issue_date=day)).encode())
        assert response.status_code == 422
        (problem,) = response.get_json()["error"]["problems"]
        assert problem["path"] == "issue_date" and "from 1970-01-01 to 2099-12-31" in problem["message"]
