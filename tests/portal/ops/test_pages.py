"""The ops pages: who may see and do what, the numbers and their links, filters, bulk forms, htmx fragments."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select

from portal.database import utcnow
from portal.extensions import db as _db
from portal.models import AuditEvent, Connection, ConnectionStatus, ExternalRecord, RecordState
from portal.sync import limiter
from tests.conftest import csrf_token_of

MAPPING_TEXT = (
    "A code used for this record (item, journal, VAT code, G/L account) does not exist in Exact. "
    "Fix the mapping. (Exact Online: Ongeldige referentie: Artikel)"
)
LINK_TEXT = (
    "The QuickBooks customer of this record is missing or inactive. Link the customer again. "
    "(QuickBooks Online: Invalid Reference Id : customer ref 42)"
)


def _state(app, record_id: int) -> RecordState:
    with app.app_context():
        return _db.session.get(ExternalRecord, record_id).state


def _status(app, connection_id: int) -> ConnectionStatus:
    with app.app_context():
        return _db.session.get(Connection, connection_id).status


# -- access -----------------------------------------------------------------------------------


def test_pages_need_a_login(client):
    for url in ("/ops/", "/ops/connections", "/ops/failures", "/ops/failures/records", "/metrics"):
        response = client.get(url)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), url


def test_support_reads_but_cannot_act(app, client, login, make_staff, world):
    cid = world.connection()
    rid = world.record(cid)
    token = login(make_staff("support"))
    for url in ("/ops/", "/ops/connections", "/ops/failures", f"/ops/connections/{cid}/records"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "Retry all failed" not in page.get_data(as_text=True)
    for url, data in (
        ("/ops/failures/retry", {"ids": rid}),
        (f"/ops/records/{rid}/resync", {}),
        (f"/ops/connections/{cid}/pause", {"reason": "x"}),
        ("/ops/connections/bulk", {"ids": cid, "action": "pause", "reason": "x"}),
    ):
        assert client.post(url, data={**data, "csrf_token": token}).status_code == 403, url
    assert _state(app, rid) is RecordState.failed
    assert client.get("/metrics").status_code == 403


def test_posts_without_a_csrf_token_are_refused(app, ops_client, world):
    client, _ = ops_client
    cid = world.connection()
    rid = world.record(cid)
    response = client.post("/ops/failures/retry", data={"ids": rid})
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)
    assert _state(app, rid) is RecordState.failed


# -- dashboard --------------------------------------------------------------------------------


def test_dashboard_counts_and_links(app, ops_client, world):
    client, _ = ops_client
    healthy = world.connection(company="3100001", company_name="Acme BV")
    world.connection(status="failing")
    world.connection("quickbooks", status="needs_reauthorization", refresh_in_days=2)
    world.connection("bexio", status="paused")
    world.connection(status="disconnected")
    world.record(healthy, attempted_days_ago=3)
    world.record(healthy, "needs_action", error_class="customer_not_linked", text="Customer not linked yet.")
    world.record(healthy, "pushed")
    with app.app_context():
        from portal.extensions import queue

        reset_ms = int((utcnow() + timedelta(hours=3)).timestamp() * 1000)
        queue.connection.hset(
            limiter.window_key("exact-online", "3100001", "day"),
            mapping={"used": 1234, "limit": 5000, "reset": reset_ms},
        )

    html = client.get("/ops/").get_data(as_text=True)

    def count(name: str) -> tuple[str, str]:
        match = re.search(rf'<a href="([^"]+)" data-count="{name}">(\d+)</a>', html)
        assert match, name
        return match.group(1).replace("&amp;", "&"), match.group(2)

    assert count("healthy") == ("/ops/connections?health=healthy", "1")
    assert count("failing")[1] == "1" and count("needs_reauthorization")[1] == "1"
    assert count("paused")[1] == "1" and count("disconnected")[1] == "1"
    assert count("held") == ("/ops/failures", "2")
    assert count("expiring") == ("/ops/connections?expiring_days=7", "1")
    assert 'data-division="3100001"' in html and "<td>1234</td><td>5000</td>" in html
    assert "Oldest: invoice of" in html
    pushed_chart, failed_chart = html.split("<figure", 2)[1:]
    assert pushed_chart.count("<rect ") == 1 and ": 1</title>" in pushed_chart  # one pushed today
    assert failed_chart.count("<rect ") == 2  # failed three days ago, needs action today
    assert "Records failed per day" in failed_chart and "2 in all" in failed_chart

    # Each number leads to the list it counts.
    listed = client.get(count("healthy")[0]).get_data(as_text=True)
    assert f'id="connection-{healthy}"' in listed and listed.count('name="ids"') == 1


def test_dashboard_counts_invoices_waiting_longer_than_the_delay(app, ops_client, world, count_queries):
    from portal.models import BusinessUnit, Customer, Invoice

    client, _ = ops_client
    cid = world.connection()
    with app.app_context():
        connection = _db.session.get(Connection, cid)
        unit = _db.session.get(BusinessUnit, connection.business_unit_id)
        customer = Customer(
            organization_id=unit.organization_id, external_id="c-late", name="Late Customer", country="NL"
        )
        _db.session.add(customer)
        _db.session.flush()
        today = utcnow().date()
        for i, age in enumerate((timedelta(hours=2), timedelta(minutes=1))):
            _db.session.add(
                Invoice(
                    organization_id=unit.organization_id,
                    business_unit_id=unit.id,
                    customer_id=customer.id,
                    external_id=f"late-{i}",
                    number=f"LATE-{i}",
                    issue_date=today,
                    due_date=today,
                    currency="EUR",
                    subtotal=1,
                    tax_total=0,
                    total=1,
                    created_at=utcnow() - age,
                )
            )
        _db.session.commit()
    html = client.get("/ops/").get_data(as_text=True)
    assert re.search(r'data-count="late">1</a>', html)
    listed = client.get("/ops/connections?late=1").get_data(as_text=True)
    assert f'id="connection-{cid}"' in listed


def test_dashboard_states_when_its_kept_figures_were_counted(app, ops_client, world):
    client, _ = ops_client
    cid = world.connection()

    def read() -> tuple[str, str, tuple[str, str]]:
        html = client.get("/ops/").get_data(as_text=True)
        age = re.search(r'id="figures-age">.*? counted at <time datetime="([^"]+)">(\d\d:\d\d:\d\d) UTC</time>', html)
        assert age, "the dashboard says when its figures were counted"
        counts = tuple(re.search(rf'data-count="{name}">(\d+)</a>', html).group(1) for name in ("healthy", "paused"))
        return age.group(1), age.group(2), counts

    counted, shown, counts = read()
    assert counts == ("1", "0") and counted.startswith(utcnow().date().isoformat()) and counted[11:19] == shown
    with app.app_context():
        _db.session.get(Connection, cid).status = ConnectionStatus.paused
        _db.session.commit()
    again, _, counts = read()
    # Within the minute the figures (and their stated time) are the ones kept; in a new minute both are new.
    assert (again, counts) == (counted, ("1", "0")) if again[:16] == counted[:16] else counts == ("0", "1")
    world.connection()  # a new connection: everything is counted again at once
    latest, _, counts = read()
    assert datetime.fromisoformat(latest) > datetime.fromisoformat(counted) and counts == ("1", "1")


# -- connections ------------------------------------------------------------------------------


def test_connections_filters_search_and_sort(app, ops_client, world):
    client, _ = ops_client
    a = world.connection(org_name="Zeta Trading", company="3200001", last_success_days_ago=10)
    b = world.connection("quickbooks", org_name="Alpha Foods", company="9130000001", refresh_in_days=1)
    c = world.connection("bexio", "failing", org_name="Mid Consult", company="77")
    world.record(c)

    def ids(url: str) -> list[int]:
        html = client.get(url).get_data(as_text=True)
        return [int(x) for x in re.findall(r'id="connection-(\d+)"', html)]

    assert ids("/ops/connections") == [b, c, a]  # by organization name
    assert ids("/ops/connections?provider=quickbooks") == [b]
    assert ids("/ops/connections?region=nl") == [a]
    assert ids("/ops/connections?status=failing") == [c]
    assert ids("/ops/connections?q=3200001") == [a]
    assert ids("/ops/connections?q=alpha") == [b]
    assert ids("/ops/connections?stale_days=5") == [a]
    assert ids("/ops/connections?expiring_days=3") == [b]
    assert ids("/ops/connections?with_failures=1") == [c]
    assert ids("/ops/connections?sort=provider") == [c, a, b]
    for bad, words in (
        ("status=asleep", "status must be one of"),
        ("stale_days=x", "stale_days must be a whole"),
        ("provider=sap", "provider must be one of"),
        ("sort=evil", "sort must be one of"),
    ):
        response = client.get(f"/ops/connections?{bad}")
        assert response.status_code == 400 and words in response.get_data(as_text=True), bad


def test_connection_search_finds_organizations_units_and_companies(app, ops_client, world):
    client, _ = ops_client
    a = world.connection(org_name="Jansen Bakkerij", company_name="Alpha BV")
    b = world.connection("quickbooks", org_name="Other Trading", company_name="Jansen Holding")
    c = world.connection("bexio", org_name="Third", company_name="Gamma 50% AG", company="4455")
    with app.app_context():
        unit = _db.session.get(Connection, c).business_unit
        unit.name = "Zuid Filiaal"
        _db.session.commit()

    def listed(url: str) -> tuple[list[int], str]:
        html = client.get(url).get_data(as_text=True)
        total = re.search(r"(\d+) connection\(s\)", html).group(1)
        return [int(x) for x in re.findall(r'id="connection-(\d+)"', html)], total

    assert listed("/ops/connections?q=JANSEN") == ([a, b], "2")  # organization, then company; by organization
    assert listed("/ops/connections?q=filiaal") == ([c], "1")  # the unit's name
    assert listed("/ops/connections?q=4455") == ([c], "1")  # the company number
    assert listed("/ops/connections?q=50%25") == ([c], "1")  # a percent sign is a character, not a wildcard
    assert listed("/ops/connections?q=5_%25") == ([], "0")
    app.config["PAGE_SIZE"] = 1
    try:
        assert listed("/ops/connections?q=jansen") == ([a], "2")
        assert listed("/ops/connections?q=jansen&page=2") == ([b], "2")
        assert listed("/ops/connections") == ([a], "3")
        assert listed("/ops/connections?page=3") == ([c], "3")
    finally:
        app.config["PAGE_SIZE"] = 25


def test_connections_htmx_fragment_and_pagination(app, ops_client, world):
    client, _ = ops_client
    app.config["PAGE_SIZE"] = 2
    try:
        for _ in range(3):
            world.connection()
        fragment = client.get("/ops/connections", headers={"HX-Request": "true"})
        body = fragment.get_data(as_text=True)
        assert "<html" not in body and body.count('name="ids"') == 2 and "Page 1 of 2" in body
        assert "HX-Request" in fragment.headers.get("Vary", "")
        page2 = client.get("/ops/connections?page=2").get_data(as_text=True)
        assert "<html" in page2 and page2.count('name="ids"') == 1
    finally:
        app.config["PAGE_SIZE"] = 25


def test_bulk_pause_resume_and_resync_from_the_list(app, ops_client, world):
    client, token = ops_client
    a, b = world.connection(), world.connection("quickbooks")
    rid = world.record(b)
    form = client.get("/ops/connections").get_data(as_text=True)
    assert 'id="bulk-connections"' in form and csrf_token_of(form)

    refused = client.post(
        "/ops/connections/bulk", data={"ids": [a, b], "action": "pause", "csrf_token": token}, follow_redirects=True
    )
    assert "reason is required" in refused.get_data(as_text=True)
    assert _status(app, a) is ConnectionStatus.connected

    done = client.post(
        "/ops/connections/bulk",
        data={"ids": [a, b], "action": "pause", "reason": "Ledger maintenance", "csrf_token": token},
        follow_redirects=True,
    )
    assert "Paused 2 of 2" in done.get_data(as_text=True)
    assert _status(app, a) is ConnectionStatus.paused and _status(app, b) is ConnectionStatus.paused

    client.post("/ops/connections/bulk", data={"ids": [b], "action": "resume", "csrf_token": token})
    assert _status(app, b) is ConnectionStatus.connected and _status(app, a) is ConnectionStatus.paused

    client.post("/ops/connections/bulk", data={"ids": [b], "action": "resync_failed", "csrf_token": token})
    assert _state(app, rid) is RecordState.pending
    bad = client.post("/ops/connections/bulk", data={"ids": ["x"], "action": "pause", "csrf_token": token})
    assert bad.status_code == 400


def test_connection_page_links_records_and_pauses(app, ops_client, world):
    client, token = ops_client
    cid = world.connection()
    page = client.get(f"/connections/{cid}").get_data(as_text=True)
    assert f'href="/ops/connections/{cid}/records"' in page and 'id="pause-connection"' in page
    response = client.post(
        f"/ops/connections/{cid}/pause", data={"reason": "Customer asked", "csrf_token": token}, follow_redirects=True
    )
    assert "Paused: nothing is pushed" in response.get_data(as_text=True)
    assert 'id="resume-connection"' in client.get(f"/connections/{cid}").get_data(as_text=True)
    client.post(f"/ops/connections/{cid}/resume", data={"csrf_token": token})
    assert _status(app, cid) is ConnectionStatus.connected


# -- failures ---------------------------------------------------------------------------------


def test_failures_are_grouped_by_cause_with_the_fix_and_customers_touched(app, ops_client, world):
    client, _ = ops_client
    exact_a, exact_b = world.connection(), world.connection()
    qbo = world.connection("quickbooks")
    for cid in (exact_a, exact_a, exact_b):
        world.record(cid, text=MAPPING_TEXT)
    world.record(qbo, "needs_action", error_class="customer_not_linked", text=LINK_TEXT)
    world.record(qbo, "pushed")
    world.record(qbo, "dismissed")

    html = client.get("/ops/failures").get_data(as_text=True)
    assert 'id="class-mapping_missing"' in html and 'id="class-customer_not_linked"' in html
    assert "3 record(s) · 2 customer(s)" in html and "1 record(s) · 1 customer(s)" in html
    assert "Exact Online said: <q>Ongeldige referentie: Artikel</q>" in html
    assert "Open the mappings" in html and "(on each of 2 connections)" in html
    assert f'<a href="/connections/{qbo}/customers" class="fix-link">' in html  # one connection: linked

    group = re.search(r'<a href="([^"]+)" class="group-link">3</a>', html).group(1).replace("&amp;", "&")
    drill = client.get(group).get_data(as_text=True)
    assert drill.count('name="ids"') == 3
    assert f'href="/connections/{exact_a}/mappings"' in drill


def test_retry_a_whole_group_and_dismiss_with_a_reason(app, ops_client, world):
    client, token = ops_client
    cid = world.connection()
    ids = [world.record(cid, text=MAPPING_TEXT) for _ in range(2)]
    other = world.record(cid, "needs_action", error_class="customer_not_linked", text=LINK_TEXT)
    group = {"error_class": "mapping_missing", "provider": "exact-online", "text": MAPPING_TEXT}

    response = client.post(
        "/ops/failures/retry", data={**group, "scope": "group", "csrf_token": token}, follow_redirects=True
    )
    assert "Retry: 2 records changed" in response.get_data(as_text=True)
    assert [_state(app, i) for i in ids] == [RecordState.pending, RecordState.pending]
    assert _state(app, other) is RecordState.needs_action
    empty = client.get("/ops/failures/records", query_string=group).get_data(as_text=True)
    assert 'id="group-empty"' in empty

    no_reason = client.post(
        "/ops/failures/dismiss",
        data={"ids": other, "resolution": "ignored", "note": "", "csrf_token": token},
        follow_redirects=True,
    )
    assert "reason is required" in no_reason.get_data(as_text=True)
    assert _state(app, other) is RecordState.needs_action
    client.post(
        "/ops/failures/dismiss",
        data={"ids": other, "resolution": "ignored", "note": "Test customer", "csrf_token": token},
    )
    assert _state(app, other) is RecordState.dismissed
    with app.app_context():
        kinds = set(_db.session.scalars(select(AuditEvent.kind)))
    assert {"record.retry", "record.dismiss"} <= kinds


# -- records of one connection ----------------------------------------------------------------


def test_connection_records_filters_and_resync_one(app, ops_client, world):
    client, token = ops_client
    cid = world.connection()
    failed = world.record(cid, text=MAPPING_TEXT)
    pushed = world.record(cid, "pushed")
    world.record(cid, "needs_action", kind="customer", error_class="customer_not_linked", text="Not linked.")

    page = client.get(f"/ops/connections/{cid}/records").get_data(as_text=True)
    assert len(re.findall(r'id="record-\d+"', page)) == 3 and "Ongeldige referentie: Artikel" in page
    assert f'href="/connections/{cid}/mappings"' in page
    only_failed = client.get(f"/ops/connections/{cid}/records?state=failed").get_data(as_text=True)
    assert re.findall(r'id="record-(\d+)"', only_failed) == [str(failed)]
    customers = client.get(f"/ops/connections/{cid}/records?kind=customer").get_data(as_text=True)
    assert len(re.findall(r'id="record-\d+"', customers)) == 1
    assert client.get(f"/ops/connections/{cid}/records?state=lost").status_code == 400

    refused = client.post(f"/ops/records/{pushed}/resync", data={"csrf_token": token}, follow_redirects=True)
    assert "in the ledger already" in refused.get_data(as_text=True)
    client.post(f"/ops/records/{failed}/resync", data={"csrf_token": token})
    assert _state(app, failed) is RecordState.pending
    client.post(f"/ops/connections/{cid}/resync", data={"csrf_token": token, "failed_only": "1"})
    assert client.get("/ops/connections/999999/records").status_code == 404
