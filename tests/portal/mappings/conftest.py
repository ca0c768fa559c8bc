"""Connections through the sandbox, ready for mapping: the connect flow's fixtures plus helpers."""

from __future__ import annotations

import pytest
import requests

from tests.portal.connections.conftest import (  # noqa: F401 - fixtures re-exported for these tests
    BEXIO_MAIN,
    QBO_UK,
    QBO_US,
    flow,
    sandbox,
    unit_id,
)

#: provider → (region, flow choices) that connect the demo company of each sandbox.
CONNECT = {
    "exact-online": ("nl", {"company": "3010001", "user": "jan.devries", "divisions": ["3010001", "3010002"]}),
    "quickbooks": (None, {"company": QBO_US, "user": "u-ada", "realm_id": QBO_US}),
    "bexio": (None, {"company": BEXIO_MAIN, "username": "max.mustermann", "company_id": BEXIO_MAIN}),
}

#: Defaults that pass the check, per provider (codes from sandbox/*/README.md).
GOOD_DEFAULTS = {
    "exact-online": {"item": "CONSULT", "tax_code": "2", "journal": "70", "payment_condition": "30"},
    "quickbooks": {"item": "1", "tax_code": "2", "class": "1", "payment_condition": "3", "gl_account": "1"},
    "bexio": {"tax_code": "UN81", "gl_account": "3200", "bank_account": "1", "payment_condition": "4"},
}


def control(sandbox_url: str, path: str, body: dict) -> dict:
    """Call a sandbox test control."""
    response = requests.post(f"{sandbox_url}/_control/{path}", json=body, timeout=10)
    assert response.status_code < 300, response.text
    return response.json()


class Mapper:
    """A support member connected to one ledger, with shortcuts to the mapping screens."""

    def __init__(self, support_flow, connection_id: int) -> None:
        self.flow, self.id = support_flow, connection_id
        self.base = f"/connections/{connection_id}/mappings"

    def refresh(self):
        response = self.flow.post(f"{self.base}/reference")
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    def save_defaults(self, **values):
        return self.flow.post(f"{self.base}/defaults", **values)

    def save_override(self, product_id: int, **values):
        return self.flow.post(f"{self.base}/products/{product_id}", **values)

    def preflight(self) -> str:
        response = self.flow.client.post(
            f"{self.base}/preflight", data={"csrf_token": self.flow.token}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_data(as_text=True)

    def page(self, url: str = "") -> str:
        response = self.flow.client.get(self.base + url)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_data(as_text=True)


@pytest.fixture
def connect(flow, unit_id):  # noqa: F811 - the fixtures imported above
    """Return a function: provider → a Mapper on a fresh connection with its reference data read."""

    def make(provider: str, *, refresh: bool = True) -> Mapper:
        region, choices = CONNECT[provider]
        mapper = Mapper(flow, flow.connected(unit_id, provider, region, **choices))
        if refresh:
            mapper.refresh()
        return mapper

    return make


@pytest.fixture
def recent_product(app, unit_id):  # noqa: F811
    """Return (id, code) of a product the unit invoiced in the last 12 months."""
    from portal.extensions import db
    from portal.mappings import services
    from portal.models import Connection

    def find(connection_id: int):
        with app.app_context():
            connection = db.session.get(Connection, connection_id)
            products = services.recent_products(connection)
            assert products, "the demo seed should have recent invoices"
            return products[0].id, products[0].code

    return find
