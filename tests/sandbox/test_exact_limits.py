"""Exact Online checklist leftovers: error budget, quota scope of system calls, SyncTimestamp, settings."""

from __future__ import annotations

from datetime import datetime, timedelta

import requests

from tests.sandbox.test_exact_support import (
    NL_MAIN,
    NL_SECOND,
    REDIRECT,
    Api,
    api_for,
    connect,
    control,
    create_invoice,
    error_value,
    first_account,
    token_request,
)

INVOICES = f"{NL_MAIN}/salesinvoice/SalesInvoices"
MISSING = f"{INVOICES}(guid'00000000-0000-0000-0000-000000000001')"
LISTING = {"$filter": "YourRef eq 'none'", "$select": "InvoiceID"}


def clock(base: str, **body) -> dict:
    """POST to the shared clock control and return its state."""
    response = requests.post(f"{base}/_control/clock", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def relogin(base: str, api: Api) -> None:
    """Give the client a new consent's access token (same app and user: same error scope)."""
    api.session.headers["Authorization"] = f"Bearer {connect(base)['access_token']}"


def test_error_budget_is_off_by_default(sandbox_url):
    api = api_for(sandbox_url)
    for _ in range(12):
        assert api.get(MISSING).status_code == 404
    assert api.get(INVOICES, **LISTING).status_code == 200


def test_spent_error_budget_blocks_app_user_division_endpoint_for_an_hour_then_longer(sandbox_url):
    clock(sandbox_url, freeze=True)
    control(sandbox_url, "set_settings", error_budget_enabled=True)
    api = api_for(sandbox_url)
    for _ in range(10):
        assert api.get(MISSING).status_code == 404
    blocked = api.get(INVOICES, **LISTING)
    assert blocked.status_code == 429
    assert "API rate limit exceeded" in error_value(blocked)
    # Not the 60/min limit: no rate-limit headers to wait on (exact-online.md §10 gap; picqer#255).
    assert not [h for h in blocked.headers if h.lower().startswith("x-ratelimit")]
    # Only that scope: another endpoint, another division and the valid calls before stay usable.
    assert api.get(f"{NL_MAIN}/financial/Journals").status_code == 200
    assert api.get(f"{NL_SECOND}/salesinvoice/SalesInvoices", **LISTING).status_code == 200
    clock(sandbox_url, advance_seconds=3599)
    relogin(sandbox_url, api)
    assert api.get(INVOICES, **LISTING).status_code == 429
    clock(sandbox_url, advance_seconds=2)
    assert api.get(INVOICES, **LISTING).status_code == 200
    # Repeating the errors blocks again, now for two hours ("gradually increase", INV-21).
    for _ in range(10):
        assert api.get(MISSING).status_code == 404
    clock(sandbox_url, advance_seconds=3601)
    relogin(sandbox_url, api)
    assert api.get(INVOICES, **LISTING).status_code == 429
    clock(sandbox_url, advance_seconds=3600)
    relogin(sandbox_url, api)
    assert api.get(INVOICES, **LISTING).status_code == 200


def test_errors_older_than_an_hour_do_not_count(sandbox_url):
    clock(sandbox_url, freeze=True)
    control(sandbox_url, "set_settings", error_budget_enabled=True)
    api = api_for(sandbox_url)
    for _ in range(9):
        assert api.get(MISSING).status_code == 404
    clock(sandbox_url, advance_seconds=3601)
    relogin(sandbox_url, api)
    for _ in range(9):
        assert api.get(MISSING).status_code == 404
    assert api.get(INVOICES, **LISTING).status_code == 200


def test_expired_token_401s_count_and_the_block_survives_a_refresh(sandbox_url):
    clock(sandbox_url, freeze=True)
    control(sandbox_url, "set_settings", error_budget_enabled=True, error_budget=2)
    tokens = connect(sandbox_url)
    api = api_for(sandbox_url)
    api.session.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    clock(sandbox_url, advance_seconds=601)
    assert api.get("current/Me").status_code == 401
    assert api.get("current/Me").status_code == 401
    assert api.get("current/Me").status_code == 429
    refreshed = token_request(sandbox_url, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    api.session.headers["Authorization"] = f"Bearer {refreshed.json()['access_token']}"
    assert api.get("current/Me").status_code == 429
    # 500s (business rules) are not in the budget; switching the budget off lifts the block.
    assert api.post(INVOICES, {"YourRef": "x"}).status_code == 500
    assert api.post(INVOICES, {"YourRef": "x"}).status_code == 500
    assert api.post(INVOICES, {"YourRef": "x"}).status_code == 500
    control(sandbox_url, "set_settings", error_budget_enabled=False)
    assert api.get("current/Me").status_code == 200


def test_quotas_off_never_block_on_errors(sandbox_url):
    requests.post(f"{sandbox_url}/_control/quotas", json={"enabled": False}, timeout=10).raise_for_status()
    control(sandbox_url, "set_settings", error_budget_enabled=True, error_budget=1)
    api = api_for(sandbox_url)
    assert api.get(MISSING).status_code == 404
    assert api.get(MISSING).status_code == 404
    assert api.get(INVOICES, **LISTING).status_code == 200


def test_system_calls_count_against_the_division_quota_but_me_does_not(sandbox_url):
    clock(sandbox_url, set="2026-03-02T10:00:05+00:00", freeze=True)
    api = api_for(sandbox_url)
    divisions = api.get(f"{NL_MAIN}/system/Divisions")
    assert divisions.headers["X-RateLimit-Minutely-Remaining"] == "59"
    assert api.get(f"{NL_MAIN}/system/AllDivisions").headers["X-RateLimit-Minutely-Remaining"] == "58"
    me = api.get("current/Me")
    assert me.status_code == 200
    # Me has no division segment and quotas are per (app, division) (exact-online.md §5): nothing to charge.
    assert "X-RateLimit-Minutely-Remaining" not in me.headers
    assert api.get(f"{NL_MAIN}/financial/Journals").headers["X-RateLimit-Minutely-Remaining"] == "57"


def test_sync_timestamp_gives_the_starting_point_for_a_sync_endpoint(sandbox_url):
    clock(sandbox_url, advance_seconds=86400, freeze=True)
    api = api_for(sandbox_url)
    assert api.post(f"{NL_MAIN}/crm/Accounts", {"Name": "Before"}).status_code == 201
    clock(sandbox_url, advance_seconds=86400)
    relogin(sandbox_url, api)
    now = requests.get(f"{sandbox_url}/_control/clock", timeout=10).json()["now"]
    since = datetime.fromisoformat(now) - timedelta(hours=12)
    assert api.post(f"{NL_MAIN}/crm/Accounts", {"Name": "After"}).status_code == 201
    response = api.get(
        f"{NL_MAIN}/read/sync/Sync/SyncTimestamp",
        modified=f"datetime'{since:%Y-%m-%dT%H:%M:%S}'",
        endPoint="'Accounts'",
    )
    assert response.status_code == 200, response.text
    body = response.json()["d"]
    assert set(body) == {"__metadata", "API", "Modified", "TimeStampAsBigInt"}
    assert body["API"] == "Accounts"
    assert body["Modified"].startswith("/Date(")
    start = body["TimeStampAsBigInt"]
    assert isinstance(start, int)
    rows = api.get(f"{NL_MAIN}/sync/CRM/Accounts", **{"$select": "Name", "$filter": f"Timestamp gt {start}L"}).json()[
        "d"
    ]["results"]
    assert [r["Name"] for r in rows] == ["After"]
    for params in (
        {"modified": "datetime'2026-01-01'"},
        {"modified": "2026-01-01", "endPoint": "'Accounts'"},
        {"modified": "datetime'2026-01-01'", "endPoint": "'NoSuchThing'"},
    ):
        refused = api.get(f"{NL_MAIN}/read/sync/Sync/SyncTimestamp", **params)
        assert refused.status_code == 400
        assert error_value(refused) == "Bad Request - Error in query syntax."


def test_invoice_number_assigned_at_entry_when_the_division_says_so(sandbox_url):
    api = api_for(sandbox_url)
    assert create_invoice(api)["InvoiceNumber"] is None
    control(sandbox_url, "set_division_settings", division=NL_MAIN, invoice_number_at_entry=True)
    first, second = create_invoice(api), create_invoice(api)
    assert isinstance(first["InvoiceNumber"], int)
    assert second["InvoiceNumber"] == first["InvoiceNumber"] + 1


def test_sales_entries_booked_status_and_credit_type(sandbox_url):
    api = api_for(sandbox_url)
    gl = api.get(f"{NL_MAIN}/financial/GLAccounts", **{"$filter": "Code eq '8000'"}).json()["d"]["results"][0]

    def entry(amount: str) -> dict:
        body = {
            "Journal": "70",
            "Customer": first_account(api)["ID"],
            "SalesEntryLines": [{"GLAccount": gl["ID"], "AmountFC": amount, "VATCode": "2"}],
        }
        response = api.post(f"{NL_MAIN}/salesentry/SalesEntries", body)
        assert response.status_code == 201, response.text
        return response.json()["d"]

    invoice = entry("50.00")
    assert (invoice["Type"], invoice["Status"]) == (20, 20)
    control(sandbox_url, "set_division_settings", division=NL_MAIN, sales_entry_status=50)
    credit = entry("-50.00")
    assert (credit["Type"], credit["Status"], credit["AmountFC"]) == (21, 50, -60.5)


def test_item_units_and_account_countries_are_padded(sandbox_url):
    api = api_for(sandbox_url)
    items = api.get(f"{NL_MAIN}/logistics/Items", **{"$filter": "Code ne ''", "$select": "Unit"})
    units = [r["Unit"] for r in items.json()["d"]["results"] if r["Unit"]]
    assert units and all(len(u) == 8 for u in units)
    created = api.post(f"{NL_MAIN}/logistics/Items", {"Code": "NEW", "Description": "New", "Unit": "uur"})
    assert created.json()["d"]["Unit"] == "uur     "
    account = api.post(f"{NL_MAIN}/crm/Accounts", {"Name": "Padded", "Country": "NL"}).json()["d"]
    assert account["Country"] == "NL "


def test_force_login_is_accepted_on_the_consent_page(sandbox_url):
    page = requests.get(
        f"{sandbox_url}/exact-online/nl/api/oauth2/auth",
        params={
            "client_id": "3f1d2a9c-5b7e-4c1a-9e2d-7a6b5c4d3e2f",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "force_login": "1",
        },
        timeout=10,
    )
    assert page.status_code == 200
    assert 'name="force_login" value="1"' in page.text


def test_error_budget_settings_are_validated_and_the_block_status_is_configurable(sandbox_url):
    for body in ({"error_block_status": 200}, {"error_budget": 0}, {"error_block_seconds": "soon"}):
        refused = requests.post(f"{sandbox_url}/_control/exact-online/set_settings", json=body, timeout=10)
        assert refused.status_code == 400, body
    settings = control(sandbox_url, "set_settings", error_budget_enabled=True, error_budget=1, error_block_status=403)
    assert (settings["error_budget"], settings["error_block_status"]) == (1, 403)
    clock(sandbox_url, freeze=True)
    api = api_for(sandbox_url)
    assert api.get(MISSING).status_code == 404
    for _ in range(3):
        blocked = api.get(INVOICES, **LISTING)
        assert blocked.status_code == 403
        assert error_value(blocked).startswith("API rate limit exceeded: 1 errors within one hour")
    # The blocked 403s do not count as new errors: the block still ends after one hour.
    clock(sandbox_url, advance_seconds=3601)
    relogin(sandbox_url, api)
    assert api.get(INVOICES, **LISTING).status_code == 200
