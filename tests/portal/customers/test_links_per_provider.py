"""Suggestions, bulk and selected confirmation, manual links, unlinks and conflicts, per provider.

Each ledger is the sandbox over real HTTP; the SaaS side is written the way users type it.
"""

from __future__ import annotations

import re

import pytest

from portal.customers import services
from portal.models import AuditEvent, Connection, SyncRunStatus
from portal.models.customer_link import CustomerLink, LedgerCustomerCache, LinkSuggestion


def _connection(db, cid) -> Connection:
    db.session.expire_all()
    return db.session.get(Connection, cid)


def _suggested(db, cid) -> dict[int, list[LinkSuggestion]]:
    db.session.expire_all()
    found: dict[int, list[LinkSuggestion]] = {}
    for s in db.session.scalars(db.select(LinkSuggestion).where(LinkSuggestion.connection_id == cid)):
        found.setdefault(s.customer_id, []).append(s)
    return found


def _cached(db, cid) -> dict[str, LedgerCustomerCache]:
    db.session.expire_all()
    rows = db.session.scalars(db.select(LedgerCustomerCache).where(LedgerCustomerCache.connection_id == cid))
    return {r.name: r for r in rows}


def _links(db, cid) -> dict[int, CustomerLink]:
    db.session.expire_all()
    return {
        link.customer_id: link
        for link in db.session.scalars(db.select(CustomerLink).where(CustomerLink.connection_id == cid))
    }


def _link_events(db, customer_id) -> list[tuple[str, dict | None, str]]:
    rows = db.session.scalars(
        db.select(AuditEvent)
        .where(AuditEvent.subject_type == "Customer", AuditEvent.subject_id == customer_id)
        .order_by(AuditEvent.id)
    )
    return [(e.kind, e.after or e.before, e.actor_label) for e in rows]


def _confirm(flow, cid, **data):
    return flow.post(f"/connections/{cid}/customers/confirm", **data)


def test_exact_online_vat_email_name_and_deleted_accounts(
    app, db, flow, connect, add_customers, run_suggestions, sandbox
):
    from portal.connections import vault
    from portal.integrations.base import CustomerDraft

    cid = connect("exact-online")
    adapter = vault.fresh_adapter(_connection(db, cid))
    adapter.create_customer(CustomerDraft(reference="a", name="Zwart Logistiek B.V.", vat_number="NL123456782B01"))
    muller = adapter.create_customer(
        CustomerDraft(
            reference="b",
            name="Müller Maschinenbau GmbH",
            vat_number="DE391417773",
            email="info@mueller-maschinen.example",
        )
    )
    ids = add_customers(
        {"external_id": "C-1", "name": "Zwart Logistiek", "vat_number": "nl 1234.56.782 b01"},
        {"external_id": "C-2", "name": "Bakkerij Jansen", "email": " INFO@bakkerijjansen.example"},
        {"external_id": "C-3", "name": "Mueller Maschinenbau", "vat_number": "391 417 773", "country": "DE"},
        {"external_id": "C-4", "name": "ACME Trading Ltd."},
        {"external_id": "C-5", "name": "Jan Pietersen", "email": "jan@gmail.com"},
    )
    # Exact decides the page size: make it 2 so that five accounts take three pages.
    import requests

    requests.post(f"{sandbox}/_control/exact-online/set_settings", json={"page_size": 2}, timeout=10).raise_for_status()
    try:
        run = run_suggestions(cid)
    finally:
        requests.post(f"{sandbox}/_control/exact-online/set_settings", json={"page_size": 60}, timeout=10)
    assert run.status is SyncRunStatus.succeeded, run.message
    assert run.progress_done == run.progress_total == 5
    assert run.counts["ledger_fetched"] == 5 and run.counts["suggested"] == 4 and run.counts["ambiguous"] == 0
    assert "4 of 5 unlinked customers have a suggestion" in run.message

    cached = _cached(db, cid)
    assert cached["Zwart Logistiek B.V."].vat_number == "NL123456782B01"
    assert cached["Bakkerij Jansen B.V."].coc_number == "12345678"
    suggested = _suggested(db, cid)
    assert ids["C-5"] not in suggested
    best = {c: s[0] for c, s in suggested.items()}
    assert (best[ids["C-1"]].method, best[ids["C-1"]].score) == ("vat", 100)
    assert best[ids["C-3"]].method == "vat" and best[ids["C-3"]].external_id == muller.id
    assert best[ids["C-2"]].method == "email" and best[ids["C-2"]].score >= 93  # e-mail and name agree
    assert best[ids["C-4"]].method == "name" and best[ids["C-4"]].score == 90

    page = flow.client.get(f"/connections/{cid}/customers")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "nl 1234.56.782 b01" in html and "NL123456782B01" in html
    assert 'id="run-' in html

    # Bulk: everything at 93 or above (VAT, VAT, e-mail+name), not the name-only 90.
    done = _confirm(flow, cid, min_score="93", action="score")
    assert done.status_code == 302
    links = _links(db, cid)
    assert set(links) == {ids["C-1"], ids["C-2"], ids["C-3"]}
    assert links[ids["C-1"]].method.value == "vat" and links[ids["C-1"]].created_by_id is not None
    kind, after, actor = _link_events(db, ids["C-1"])[-1]
    assert kind == "customer_link.created" and after["method"] == "vat" and after["score"] == 100 and "@" in actor

    # Selection: the remaining name suggestion.
    remaining = _suggested(db, cid)
    assert list(remaining) == [ids["C-4"]]
    assert _confirm(flow, cid, suggestion=str(remaining[ids["C-4"]][0].id), action="selected").status_code == 302
    assert _links(db, cid)[ids["C-4"]].method.value == "name"

    # The account behind C-1 is deleted in Exact: the next fetch flags the link.
    zwart = cached["Zwart Logistiek B.V."].external_id
    adapter = vault.fresh_adapter(_connection(db, cid))
    adapter._call("DELETE", adapter._url(f"crm/Accounts(guid'{zwart}')"))
    run = run_suggestions(cid)
    assert run.counts["ledger_deleted"] == 1
    conflicts = services.conflicts(_connection(db, cid))
    assert [(c.kind, c.external_id) for c in conflicts] == [("deleted", zwart)]
    html = flow.client.get(f"/connections/{cid}/customers").get_data(as_text=True)
    assert 'data-conflict="deleted"' in html and "was deleted in the ledger" in html
    # …and a new link to it is refused with the reason.
    refused = flow.post(f"/connections/{cid}/customers/links", customer="C-5", external_id=zwart)
    assert refused.status_code == 422 and "was deleted in the ledger" in refused.get_data(as_text=True)


def test_quickbooks_names_emails_archived_and_linked_twice(app, db, flow, connect, add_customers, run_suggestions):
    cid = connect("quickbooks")
    ids = add_customers(
        {"external_id": "Q-1", "name": "Amy’s Bird Sanctuary Inc."},  # noqa: RUF001 - the typographic apostrophe is the point
        {"external_id": "Q-2", "name": "Cool Cars B.V.", "email": "Cool@Cars.test"},
        {"external_id": "Q-3", "name": "Jeffs Jalopies"},
        {"external_id": "Q-4", "name": "Freeman Sporting Goods GmbH", "email": "someone@freeman.example"},
        {"external_id": "Q-5", "name": "Nothing Alike"},
    )
    run = run_suggestions(cid, page_size=2)  # seven customers, four pages
    assert run.status is SyncRunStatus.succeeded, run.message
    cached = _cached(db, cid)
    assert len(cached) == 7 and cached["Jeff's Jalopies"].active is False
    best = {c: s[0] for c, s in _suggested(db, cid).items()}
    assert (
        best[ids["Q-1"]].method == "name" and best[ids["Q-1"]].external_id == cached["Amy's Bird Sanctuary"].external_id
    )
    assert best[ids["Q-2"]].method == "email"
    jeff = best[ids["Q-3"]]
    assert jeff.external_id == cached["Jeff's Jalopies"].external_id and any(
        e["kind"] == "archived" for e in jeff.evidence
    )
    assert ids["Q-5"] not in best
    html = flow.client.get(f"/connections/{cid}/customers").get_data(as_text=True)
    assert "archived" in html

    # Selection of two, then the archived one is flagged once linked.
    chosen = [str(best[ids["Q-1"]].id), str(jeff.id)]
    assert (
        flow.client.post(
            f"/connections/{cid}/customers/confirm",
            data={"csrf_token": flow.token, "action": "selected", "suggestion": chosen},
        ).status_code
        == 302
    )
    assert set(_links(db, cid)) == {ids["Q-1"], ids["Q-3"]}
    kinds = {c.kind for c in services.conflicts(_connection(db, cid))}
    assert kinds == {"archived"}

    # Manual: link Q-5 to Amy's too → one ledger customer, two SaaS customers.
    amy = cached["Amy's Bird Sanctuary"].external_id
    assert flow.post(f"/connections/{cid}/customers/links", customer="Q-5", external_id=amy).status_code == 302
    assert _links(db, cid)[ids["Q-5"]].method.value == "manual"
    twice = [c for c in services.conflicts(_connection(db, cid)) if c.kind == "linked_twice"]
    assert len(twice) == 1 and twice[0].external_id == amy and len(twice[0].customers) == 2
    assert "Nothing Alike" in twice[0].message and "Amy’s Bird Sanctuary Inc." in twice[0].message  # noqa: RUF001 - the typographic apostrophe is the point

    # Unknown ledger id: refused, precisely.
    refused = flow.post(f"/connections/{cid}/customers/links", customer="Q-4", external_id="999")
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "There is no ledger customer &#39;999&#39;" in body
    assert ids["Q-4"] not in _links(db, cid)
    unknown = flow.post(f"/connections/{cid}/customers/links", customer="Q-404", external_id=amy)
    assert (
        unknown.status_code == 422
        and "There is no customer &#39;Q-404&#39; in Linktest Holding." in unknown.get_data(as_text=True)
    )

    # Unlink: audited with what it was.
    assert flow.post(f"/connections/{cid}/customers/{ids['Q-5']}/unlink").status_code == 302
    assert ids["Q-5"] not in _links(db, cid)
    kind, before, _ = _link_events(db, ids["Q-5"])[-1]
    assert kind == "customer_link.removed" and before["external_id"] == amy and before["method"] == "manual"
    assert flow.post(f"/connections/{cid}/customers/{ids['Q-5']}/unlink").status_code == 404


def test_bexio_domains_accents_ambiguity_and_deleted_contacts(app, db, flow, connect, add_customers, run_suggestions):
    from portal.connections import vault

    cid = connect("bexio")
    ids = add_customers(
        {"external_id": "B-1", "name": "Societe Generale de Geneve", "country": "CH"},
        {
            "external_id": "B-2",
            "name": "Meier Treuhand",
            "email": "buchhaltung@meier-treuhand.example",
            "country": "CH",
        },
        {"external_id": "B-3", "name": "Cafe Elan", "country": "CH"},
        {
            "external_id": "B-4",
            "name": "Huber Informatik AG",
            "email": "info@huber-informatik.example",
            "country": "CH",
        },
        {"external_id": "B-5", "name": "Müller und Söhne", "email": "m@gmail.com", "country": "CH"},
    )
    run = run_suggestions(cid, page_size=3)
    assert run.status is SyncRunStatus.succeeded, run.message
    cached = _cached(db, cid)
    assert len(cached) == 7
    by_id = {r.external_id: r for r in cached.values()}
    best = {c: s[0] for c, s in _suggested(db, cid).items()}
    assert best[ids["B-1"]].external_id == "3" and best[ids["B-1"]].method == "name"
    meier = best[ids["B-2"]]
    assert meier.external_id == "4" and not meier.ambiguous  # Anna Meier shares the domain, not the name
    assert {e["kind"] for e in meier.evidence} == {"email_domain", "name"}
    assert best[ids["B-3"]].external_id == "6"
    assert by_id[best[ids["B-4"]].external_id].name.startswith("Huber Informatik")
    mueller = best[ids["B-5"]]  # gmail says nothing; the name does ("und" for "&")
    assert mueller.external_id == "2" and {e["kind"] for e in mueller.evidence} == {"name"}

    # Bulk at 80: five links in one go, each audited with its method.
    assert _confirm(flow, cid, min_score="80", action="score").status_code == 302
    links = _links(db, cid)
    assert set(links) == set(ids.values())
    methods = {_link_events(db, ids[k])[-1][1]["method"] for k in ("B-1", "B-2", "B-3")}
    assert methods == {"name"}

    # Contact 6 deleted in bexio (soft delete, hidden from lists): the next run flags the link.
    adapter = vault.fresh_adapter(_connection(db, cid))
    adapter._call("DELETE", "https://api.bexio.com/2.0/contact/6")
    run_suggestions(cid)
    conflicts = services.conflicts(_connection(db, cid))
    assert [(c.kind, c.external_id) for c in conflicts] == [("deleted", "6")]
    assert re.search(r"Cafe Elan is linked to Café Élan Sàrl \(6\), which was deleted", conflicts[0].message)


def test_customer_mode_and_the_sync_engine_entry_points(app, db, flow, connect, add_customers):
    from portal.models import Customer

    cid = connect("bexio")
    ids = add_customers({"external_id": "M-1", "name": "Pushed AG"})
    page = flow.client.get(f"/connections/{cid}/customers").get_data(as_text=True)
    assert re.search(r'<input checked[^>]*value="create"', page) and not re.search(
        r'<input checked[^>]*value="link_only"', page
    )
    assert flow.post(f"/connections/{cid}/customers/mode", customer_mode="link_only").status_code == 302
    connection = _connection(db, cid)
    assert services.customer_mode(connection) == "link_only" and connection.settings["customer_mode"] == "link_only"
    event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.kind == "connection.customer_mode_changed")).one()
    assert event.before == {"customer_mode": "create"} and event.after == {"customer_mode": "link_only"}
    assert flow.post(f"/connections/{cid}/customers/mode", customer_mode="sometimes").status_code == 400
    assert services.customer_mode(_connection(db, cid)) == "link_only"

    customer = db.session.get(Customer, ids["M-1"])
    assert services.customer_link(connection, customer) is None
    link = services.link_created_by_push(connection, customer, "42")
    db.session.commit()
    assert services.customer_link(connection, customer).external_id == "42" and link.method.value == "push"
    assert link.created_by_id is None
    kind, after, actor = _link_events(db, customer.id)[-1]
    assert (kind, after["method"], actor) == ("customer_link.created", "push", "system")


@pytest.mark.parametrize("role", [None, "support"])
def test_pages_need_support_and_404_for_unknown_connections(client, make_staff, login, role):
    if role:
        login(make_staff(role))
        assert client.get("/connections/999999/customers").status_code == 404
    else:
        response = client.get("/connections/1/customers")
        assert response.status_code in (302, 401)
