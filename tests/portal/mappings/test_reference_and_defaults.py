"""Reference data per provider, defaults and overrides checked against it, effective mappings."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent, Connection, Mapping, ReferenceData, SyncRun, SyncRunStatus

from .conftest import GOOD_DEFAULTS, QBO_US, control


def _kinds(db, connection_id) -> dict[str, ReferenceData]:
    db.session.expire_all()
    rows = db.session.scalars(db.select(ReferenceData).where(ReferenceData.connection_id == connection_id))
    return {r.kind: r for r in rows}


def _mappings(db, connection_id) -> dict:
    db.session.expire_all()
    rows = db.session.scalars(db.select(Mapping).where(Mapping.connection_id == connection_id))
    return {(m.product_id, m.field): m.value for m in rows}


def _mapping_events(db, connection_id) -> list[AuditEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            db.select(AuditEvent)
            .where(AuditEvent.subject_id == connection_id, AuditEvent.kind.like("mapping.%"))
            .order_by(AuditEvent.id)
        )
    )


EXPECTED_KINDS = {
    "exact-online": {"divisions", "items", "tax_codes", "gl_accounts", "journals", "payment_conditions"},
    "quickbooks": {"preferences", "items", "tax_codes", "tax_rates", "gl_accounts", "classes", "payment_conditions"},
    "bexio": {"items", "tax_codes", "gl_accounts", "bank_accounts", "currencies", "languages", "payment_conditions"},
}


@pytest.mark.parametrize("provider", list(EXPECTED_KINDS))
def test_reference_data_is_read_through_the_adapter_and_cached_with_its_time(db, connect, provider):
    mapper = connect(provider)
    kinds = _kinds(db, mapper.id)
    assert set(kinds) == EXPECTED_KINDS[provider]
    assert all(r.fetched_at is not None and r.items for r in kinds.values())
    first = kinds["tax_codes"].fetched_at
    page = mapper.page()
    assert "Reference data from" in page and "Refresh reference data now" in page
    mapper.refresh()
    assert _kinds(db, mapper.id)["tax_codes"].fetched_at > first  # refreshable on demand
    if provider == "exact-online":
        divisions = {r["code"]: r for r in kinds["divisions"].items}
        assert divisions["3010001"]["active"] and not divisions["3010003"]["active"]
        assert kinds["tax_codes"].find("2")["name"]  # padded "2  " is found as "2"
        assert kinds["journals"].find("90")["type"] == 90
    if provider == "quickbooks":
        assert kinds["items"].find("3")["type"] == "Category" and not kinds["items"].find("6")["active"]
        prefs = {r["code"]: r["extra"]["value"] for r in kinds["preferences"].items}
        assert prefs["custom_txn_numbers"] is True and prefs["class_tracking_per_line"] is True
    if provider == "bexio":
        assert not kinds["tax_codes"].find("UN77")["active"] and kinds["tax_codes"].find("UN81")["active"]
        assert {r["name"] for r in kinds["currencies"].items} >= {"CHF", "EUR"}
        assert kinds["gl_accounts"].find("3200")["extra"]["id"] == "95"


def test_reference_refresh_runs_as_a_job_too(app, db, connect):
    from jobs.reference import refresh_reference_data

    mapper = connect("bexio", refresh=False)
    response = mapper.flow.post(f"{mapper.base}/reference/job")
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    run_id = int(response.headers["Location"].rsplit("/", 1)[1])
    run = db.session.get(SyncRun, run_id)
    assert run.parameters == {"connection_id": mapper.id} and run.kind.value == "reference_refresh"
    refresh_reference_data(run_id)  # what a worker does with the enqueued job
    db.session.expire_all()
    run = db.session.get(SyncRun, run_id)
    assert run.status is SyncRunStatus.succeeded and run.counts["tax_codes"] > 0
    assert "languages" in _kinds(db, mapper.id)


def test_qbo_classes_are_read_only_while_class_tracking_is_on(db, connect, sandbox):
    mapper = connect("quickbooks")
    assert "classes" in _kinds(db, mapper.id)
    control(sandbox, "quickbooks/set_preferences", {"realm_id": QBO_US, "class_tracking": False})
    mapper.refresh()
    assert "classes" not in _kinds(db, mapper.id)
    refused = mapper.save_defaults(**{"class": "1"})
    assert refused.status_code == 400
    assert "Class tracking is off in QuickBooks Online" in refused.get_data(as_text=True)
    assert _mappings(db, mapper.id) == {}


@pytest.mark.parametrize("provider", list(GOOD_DEFAULTS))
def test_defaults_and_an_override_give_an_effective_mapping_with_sources(db, connect, recent_product, provider):
    mapper = connect(provider)
    saved = mapper.save_defaults(**GOOD_DEFAULTS[provider], due_days="14")
    assert saved.status_code == 302, saved.get_data(as_text=True)
    assert _mappings(db, mapper.id) == {(None, k): v for k, v in GOOD_DEFAULTS[provider].items()}
    product_id, code = recent_product(mapper.id)
    override = {"exact-online": ("gl_account", "8010"), "quickbooks": ("item", "5"), "bexio": ("gl_account", "3400")}
    field, value = override[provider]
    saved = mapper.save_override(product_id, **{field: value})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    assert _mappings(db, mapper.id)[(product_id, field)] == value

    page = mapper.page(f"/products/{product_id}")
    assert f'<tr data-field="{field}"><td>' in page
    from portal.mappings import services

    connection = db.session.get(Connection, mapper.id)
    product = db.session.get(services.Product, product_id)
    effective = {e.field.key: (e.value, e.source) for e in services.effective_mapping(connection, product)}
    assert effective[field] == (value, "product override")
    other = next(k for k in GOOD_DEFAULTS[provider] if k != field and k in effective)
    assert effective[other] == (GOOD_DEFAULTS[provider][other], "connection default")
    assert 'data-source="product override"' in page and 'data-source="connection default"' in page
    assert connection.settings["due_days"] == 14

    # Removing the override falls back to the default; every change is audited.
    mapper.save_override(product_id, **{field: ""})
    assert (product_id, field) not in _mappings(db, mapper.id)
    kinds = [e.kind for e in _mapping_events(db, mapper.id)]
    assert kinds.count("mapping.changed") == 3 and "mapping.settings_changed" in kinds
    history = mapper.flow.client.get(f"/connections/{mapper.id}").get_data(as_text=True)
    assert f"Mapping of product {code}" in history  # the connection page shows the mapping history


def test_exact_falls_back_to_vat_code_2_only_where_it_exists(app, db, connect):
    from portal.mappings import services

    mapper = connect("exact-online")
    connection = db.session.get(Connection, mapper.id)
    tax = next(e for e in services.effective_mapping(connection, None) if e.field.key == "tax_code")
    assert (tax.value, tax.source) == ("2", "Exact default (VAT code 2)")
    # A division without VAT code 2: the fallback disappears and the check asks for a default.
    entry = _kinds(db, mapper.id)["tax_codes"]
    entry.items = [r for r in entry.items if r["code"] != "2"]
    db.session.commit()
    connection = db.session.get(Connection, mapper.id)
    tax = next(e for e in services.effective_mapping(connection, None) if e.field.key == "tax_code")
    assert (tax.value, tax.source) == (None, "not set")
    with app.test_request_context():
        report = services.preflight(connection, refresh=False)
    assert any("No default VAT code is set" in p.message for p in report.errors)
    db.session.rollback()


BAD_INPUT = [
    ("exact-online", "tax_code", "99", "VAT code “99” does not exist in Exact Online"),
    ("exact-online", "gl_account", "1300", "not a revenue account (type 110)"),
    ("exact-online", "journal", "90", "not a sales journal (type 20)"),
    ("quickbooks", "item", "3", "3 Hardware is a category, not a product or service"),
    ("quickbooks", "item", "6", "Product/service 6 Old Widget is inactive in QuickBooks Online"),
    ("quickbooks", "gl_account", "5", "5 Checking is a Bank account, not an income account"),
    (
        "bexio",
        "tax_code",
        "UN77",
        "is inactive in bexio: choose an active one. bexio retires taxes after a rate change; its successor is UN81.",
    ),
    ("bexio", "tax_code", "VM81", "is a pre tax material, not a sales tax"),
    ("bexio", "gl_account", "1020", "is an asset account (account type 3), not a revenue account"),
    ("bexio", "payment_condition", "free text", "Payment type “free text” does not exist in bexio"),
]


@pytest.mark.parametrize(("provider", "field", "value", "message"), BAD_INPUT)
def test_bad_codes_are_refused_precisely_and_change_nothing(
    db, connect, recent_product, provider, field, value, message
):
    mapper = connect(provider)
    good = dict(GOOD_DEFAULTS[provider])
    good[field] = value  # one bad value among good ones: nothing at all is stored
    refused = mapper.save_defaults(**good)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert message in body.replace("&#34;", '"').replace("&#39;", "'"), body
    assert _mappings(db, mapper.id) == {} and _mapping_events(db, mapper.id) == []
    if field in ("item", "tax_code", "gl_account"):
        product_id, _code = recent_product(mapper.id)
        refused = mapper.save_override(product_id, **{field: value})
        assert refused.status_code == 400 and message in refused.get_data(as_text=True).replace("&#39;", "'")
        assert _mappings(db, mapper.id) == {}


def test_settings_are_validated(db, connect):
    mapper = connect("bexio")
    refused = mapper.save_defaults(due_days="-3", invoice_email_text="Hello, your invoice.")
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "Due days must be a whole number from 0 to 365, not &#39;-3&#39;." in body
    assert "bexio refuses to send an e-mail whose text lacks [Network Link]" in body
    assert "due_days" not in (db.session.get(Connection, mapper.id).settings or {})


def test_pick_lists_search_by_code_or_name_and_list_only_usable_codes(connect):
    mapper = connect("quickbooks")
    found = mapper.flow.client.get(
        f"{mapper.base}/options/item", query_string={"q": "fount", "blank": "none"}, headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert '<option value="5">5 — Rock Fountain</option>' in found and "Hours" not in found
    every = mapper.flow.client.get(f"{mapper.base}/options/item").get_data(as_text=True)
    assert "Hours" in every and "Hardware</option>" not in every and "Old Widget" not in every  # category, inactive
    # The current value stays visible (and flagged) even when it is no longer usable.
    flagged = mapper.flow.client.get(f"{mapper.base}/options/item", query_string={"item": "6"}).get_data(as_text=True)
    assert '<option value="6" selected>6 — Old Widget ⚠ not usable</option>' in flagged
    page = mapper.page()
    assert 'hx-get="/connections/' in page and '<select id="default-item" name="item">' in page
    assert mapper.flow.client.get(f"{mapper.base}/options/journal").status_code == 404
