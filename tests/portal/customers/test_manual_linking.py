"""Linking by hand without typing ids: the customers not linked yet, a ledger search that reads VAT and
company numbers as people write them, and one click on the ledger customer that is the one."""

from __future__ import annotations

import re

from portal.customers import services
from portal.models import Connection
from portal.models.customer_link import CustomerLink, LedgerCustomerCache


def _connection(db, cid) -> Connection:
    db.session.expire_all()
    return db.session.get(Connection, cid)


def test_the_search_reads_vat_and_company_numbers_however_they_are_written(db, connect):
    cid = connect("exact-online")
    connection = _connection(db, cid)
    rows = [
        LedgerCustomerCache(
            connection_id=cid,
            external_id="a-1",
            name="Zwart Logistiek B.V.",
            vat_number="NL 1234.56.782.B01",
            coc_number="12.345.678",
            country="NL",
        ),
        LedgerCustomerCache(connection_id=cid, external_id="a-2", name="Zwartjes Bakkerij", country="NL"),
        LedgerCustomerCache(
            connection_id=cid, external_id="a-3", name="Müller GmbH", vat_number="DE391417773", country="DE"
        ),
    ]
    db.session.add_all(rows)
    db.session.commit()

    def found(query: str) -> list[tuple[str, str | None]]:
        return [(h.row.external_id, h.matched_by) for h in services.search_ledger(connection, query)]

    assert found("nl123456782b01") == [("a-1", "VAT number")]
    assert found("1234 56 782 B01") == [("a-1", "VAT number")]  # the company's own country prefix left out
    assert found("NL-123456782-B01") == [("a-1", "VAT number")]
    assert found("de 391.417.773") == [("a-3", "VAT number")]
    assert found("12345678") == [("a-1", "company number")]
    assert found("12 345 678") == [("a-1", "company number")]
    assert found("zwart") == [("a-1", None), ("a-2", None)]
    assert found("NL999999999B01") == []  # an invalid number finds nothing by accident
    assert found("   ") == []
    assert found("zwart_") == [] and found("zw%t") == []  # wildcards are characters, not patterns
    assert found("ZWARTJES") == [("a-2", None)]  # case does not matter


def test_a_person_links_an_unlinked_customer_with_clicks_and_sees_both_names(
    app, db, flow, connect, add_customers, run_suggestions
):
    from portal.connections import vault
    from portal.integrations.base import CustomerDraft

    cid = connect("exact-online")
    zwart = vault.fresh_adapter(_connection(db, cid)).create_customer(
        CustomerDraft(reference="a", name="Zwart Logistiek B.V.", vat_number="NL123456782B01")
    )
    ids = add_customers(
        {"external_id": "C-1", "name": "Zwart Transport", "vat_number": "nl 1234.56.782 b01"},
        {"external_id": "C-2", "name": "Bakkerij Jansen", "email": "info@bakkerijjansen.example"},
    )
    run_suggestions(cid)
    base = f"/connections/{cid}/customers"

    page = flow.client.get(base).get_data(as_text=True)
    unlinked = page.split('<section id="unlinked">', 1)[1].split("</section>", 1)[0]
    assert 'data-unlinked="C-1"' in unlinked and 'data-unlinked="C-2"' in unlinked
    assert f'href="{base}?link_customer=C-1#manual-link"' in unlinked

    # "Find in the ledger": the customer is chosen and its VAT number searched for at once.
    chosen = flow.client.get(f"{base}?link_customer=C-1").get_data(as_text=True)
    panel = chosen.split('<article id="manual-link">', 1)[1].split("</article>", 1)[0]
    assert 'data-customer="C-1"' in panel and "Zwart Transport" in panel
    assert 'value="NL123456782B01"' in panel
    row = panel.split(f'data-ledger-customer="{zwart.id}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-matched-by="VAT number"' in row and "Link Zwart Transport to this one" in row
    assert 'name="customer" value="C-1"' in row and f'name="external_id" value="{zwart.id}"' in row

    # The live search answers with the same buttons for the chosen customer, and none without one.
    fragment = flow.client.get(f"{base}/ledger?ledger_q=zwart&customer=C-1").get_data(as_text=True)
    assert "Link Zwart Transport to this one" in fragment
    assert "choose a customer to link" in flow.client.get(f"{base}/ledger?ledger_q=zwart").get_data(as_text=True)
    assert "No ledger customer matches" in flow.client.get(f"{base}/ledger?ledger_q=nobody-here").get_data(as_text=True)

    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', row) or re.search(
        r'name="csrf_token" value="([^"]+)"', row
    )
    assert token, row
    linked = flow.client.post(
        f"{base}/links",
        data={"csrf_token": token.group(1), "customer": "C-1", "external_id": zwart.id},
        follow_redirects=True,
    )
    html = linked.get_data(as_text=True)
    assert linked.status_code == 200
    assert f"Zwart Transport is linked to Zwart Logistiek B.V. ({zwart.id})" in html
    links = html.split('<section id="links">', 1)[1]
    assert f'data-link="{ids["C-1"]}"' in links and "Zwart Transport" in links and "Zwart Logistiek B.V." in links
    unlinked = html.split('<section id="unlinked">', 1)[1].split("</section>", 1)[0]
    assert 'data-unlinked="C-1"' not in unlinked and 'data-unlinked="C-2"' in unlinked
    db.session.expire_all()
    link = db.session.scalars(db.select(CustomerLink).where(CustomerLink.connection_id == cid)).one()
    assert link.external_id == zwart.id and link.method.value == "manual"

    # The list of customers not linked yet searches too.
    searched = flow.client.get(f"{base}?uq=jansen").get_data(as_text=True)
    section = searched.split('<section id="unlinked">', 1)[1].split("</section>", 1)[0]
    assert 'data-unlinked="C-2"' in section and 'data-count="unlinked-list">1<' in section
