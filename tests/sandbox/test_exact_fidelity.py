"""Exact Online at the edges of the emulated surface: what a broad client (extraction tools, OData
readers, a client that forgets a header) sends, and the answer shape the real service gives.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
import requests

from sandbox.exact import schema
from tests.sandbox.test_exact_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    NL_MAIN,
    REDIRECT,
    Api,
    api_for,
    authorize,
    control,
    create_invoice,
    error_value,
    item_by_code,
)

ATOM = "{http://www.w3.org/2005/Atom}"
DATA = "{http://schemas.microsoft.com/ado/2007/08/dataservices}"
META = "{http://schemas.microsoft.com/ado/2007/08/dataservices/metadata}"


def parsed(response: requests.Response) -> ET.Element:
    """Parse an XML answer of the sandbox (our own server, not untrusted input)."""
    return ET.fromstring(response.content)  # noqa: S314


@pytest.fixture
def api(sandbox_url) -> Api:
    return api_for(sandbox_url)


def printed_invoice(api: Api) -> dict:
    invoice = create_invoice(api)
    printed = api.post(f"{NL_MAIN}/salesinvoice/PrintedSalesInvoices", {"InvoiceID": invoice["InvoiceID"]})
    assert printed.status_code == 201, printed.text
    return invoice


# -- documented properties the sandbox does not model ------------------------------------------


def test_every_emulated_endpoint_has_its_documented_properties():
    for key, endpoint in schema.ENDPOINTS.items():
        assert endpoint.path.lower() == key and endpoint.path in schema.DOCUMENTED, key
        documented = set(schema.DOCUMENTED[endpoint.path])
        # What the sandbox models and what it answers null for make up the reference's list.
        assert documented <= set(endpoint.entity.names) | set(endpoint.unmodelled), key
        assert not set(endpoint.unmodelled) & set(endpoint.entity.names), key
    assert "BSN" in schema.ENDPOINTS["crm/accounts"].unmodelled
    assert "CustomerCode" in schema.ME_ENDPOINT.unmodelled


def test_every_documented_receivable_field_can_be_selected_and_unmodelled_ones_read_null(api):
    invoice = printed_invoice(api)
    documented = schema.DOCUMENTED["cashflow/Receivables"]
    response = api.get(
        f"{NL_MAIN}/cashflow/Receivables",
        **{"$select": ",".join(documented), "$filter": f"EntryID eq guid'{invoice['InvoiceID']}'"},
    )
    assert response.status_code == 200, response.text
    (row,) = response.json()["d"]["results"]
    assert list(row) == ["__metadata", *documented]  # in the order asked for
    assert row["AmountDC"] == invoice["AmountDC"] and row["IsFullyPaid"] is False
    unmodelled = schema.ENDPOINTS["cashflow/receivables"].unmodelled
    assert {"AccountBankAccountID", "DirectDebitMandate", "RateFC", "TransactionStatus"} <= set(unmodelled)
    assert all(row[name] is None for name in unmodelled)


@pytest.mark.parametrize(
    ("path", "query", "fields"),
    [
        ("crm/Accounts", {"$filter": "trim(Code) eq '1'"}, "ID,Name,BSN,GlnNumber,OINNumber,EORINumber"),
        ("salesinvoice/SalesInvoices", {"$filter": "Status eq 20"}, "InvoiceID,IncotermCode,ShippingMethod"),
        ("salesinvoice/SalesInvoiceLines", {}, "ID,SalesOrder,ProjectWBS,CustomerItemCode"),
        ("documents/Documents", {"$filter": "Type eq 10"}, "ID,Subject,ShopOrderNumber,ProjectCode"),
        ("financial/GLAccounts", {}, "ID,Code,AssimilatedVATBox,VATSystem"),
        ("logistics/Items", {"$filter": "Code eq 'CONSULT'"}, "ID,Code,StandardSalesPrice,StatisticalCode"),
        ("bulk/CRM/Accounts", {}, "ID,BSN"),
        ("sync/CRM/Accounts", {"$filter": "Timestamp gt 1L"}, "ID,Timestamp,BSN"),
        ("sync/Cashflow/PaymentTerms", {"$filter": "Timestamp gt 1L"}, "ID,Timestamp,AccountBankAccountID"),
    ],
)
def test_documented_fields_answer_null_on_every_entity(api, path, query, fields):
    create_invoice(api)
    printed_invoice(api)
    response = api.get(f"{NL_MAIN}/{path}", **query, **{"$select": fields})
    assert response.status_code == 200, response.text
    rows = response.json()["d"]["results"]
    assert rows, path
    wanted = fields.split(",")
    unmodelled = [n for n in wanted if n not in schema.ENDPOINTS[path.lower()].entity.names]
    assert unmodelled, "each case asks for at least one unmodelled field"
    for row in rows:
        assert list(row)[1:] == wanted
        assert all(row[name] is None for name in unmodelled)
        assert row[wanted[0]] is not None


def test_current_me_answers_documented_fields_null(api):
    rows = api.get("current/Me", **{"$select": "CurrentDivision,Mobile,Title"}).json()["d"]["results"]
    assert rows == [{"__metadata": rows[0]["__metadata"], "CurrentDivision": NL_MAIN, "Mobile": None, "Title": None}]


def test_names_exact_does_not_have_stay_refused(api):
    response = api.get(f"{NL_MAIN}/cashflow/Receivables", **{"$select": "ID,NoSuchField"})
    assert response.status_code == 400
    assert (
        error_value(response)
        == "No property 'NoSuchField' exists in type 'Exact.Web.Api.Models.Receivable' at position 0."
    )
    # A field documented for another endpoint is still unknown here.
    assert api.get(f"{NL_MAIN}/financial/Journals", **{"$select": "BSN"}).status_code == 400


def test_unmodelled_fields_filter_and_order_as_null(api):
    create_invoice(api)
    rows = api.get(
        f"{NL_MAIN}/crm/Accounts",
        **{"$filter": "BSN eq null and trim(Code) eq '1'", "$orderby": "GlnNumber desc", "$select": "Name,BSN"},
    ).json()["d"]["results"]
    assert [r["Name"] for r in rows] == ["Bakkerij Jansen B.V."]
    none = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": "BSN eq '123' and trim(Code) eq '1'"})
    assert none.json()["d"]["results"] == []


# -- sync paging: $skiptoken=<Timestamp>L ------------------------------------------------------


def test_sync_pages_continue_with_the_timestamp_skiptoken(api, sandbox_url):
    control(sandbox_url, "set_settings", bulk_page_size=2)
    every = api.get(f"{NL_MAIN}/sync/CRM/Accounts", **{"$select": "ID,Timestamp", "$filter": "Timestamp gt 1L"})
    first = every.json()["d"]
    assert len(first["results"]) == 2
    last = first["results"][-1]["Timestamp"]
    assert first["__next"].endswith(f"$skiptoken={last}L")
    assert first["results"][0]["__metadata"]["uri"].endswith(f"/sync/CRM/Accounts({first['results'][0]['Timestamp']}L)")
    second = requests.get(first["__next"], headers=api.session.headers, timeout=10).json()["d"]
    assert all(r["Timestamp"] > last for r in second["results"])
    # A client that kept the last Timestamp resumes with its own token, suffixed or not.
    for token in (f"{last}L", str(last)):
        resumed = api.get(
            f"{NL_MAIN}/sync/CRM/Accounts",
            **{"$select": "ID,Timestamp", "$filter": "Timestamp gt 1L", "$skiptoken": token},
        )
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["d"]["results"] == second["results"]
    refused = api.get(
        f"{NL_MAIN}/sync/CRM/Accounts",
        **{"$select": "ID", "$skiptoken": "guid'00000000-0000-0000-0000-000000000000'"},
    )
    assert refused.status_code == 400 and error_value(refused) == "The skip token value is not valid."


def test_sync_sales_invoice_rows_each_have_their_own_timestamp(api, sandbox_url):
    account = api.get(f"{NL_MAIN}/crm/Accounts", **{"$filter": "trim(Code) eq '1'", "$select": "ID"})
    item = item_by_code(api, "CONSULT")
    body = {
        "OrderedBy": account.json()["d"]["results"][0]["ID"],
        "SalesInvoiceLines": [{"Item": item["ID"], "Quantity": q, "UnitPrice": 10} for q in (1, 2, 3)],
    }
    invoice = api.post(f"{NL_MAIN}/salesinvoice/SalesInvoices", body).json()["d"]
    control(sandbox_url, "set_settings", bulk_page_size=2)
    url = f"{NL_MAIN}/sync/SalesInvoice/SalesInvoices"

    def every_row(**query: str) -> list[dict]:
        page = api.get(url, **{"$select": "ID,InvoiceID,Timestamp", **query}).json()["d"]
        rows = page["results"]
        while "__next" in page:  # a page never splits rows: each has its own key
            page = requests.get(page["__next"], headers=api.session.headers, timeout=10).json()["d"]
            rows += page["results"]
        return rows

    rows = every_row()
    mine = [r for r in rows if r["InvoiceID"] == invoice["InvoiceID"]]
    assert len(mine) == 3 and len({r["Timestamp"] for r in rows}) == len(rows)
    # Unchanged lines keep their stamp; changing the invoice gives its lines new, later ones.
    newest = max(r["Timestamp"] for r in rows)
    assert every_row(**{"$filter": f"Timestamp gt {newest}L"}) == []
    api.put(f"{NL_MAIN}/salesinvoice/SalesInvoices(guid'{invoice['InvoiceID']}')", {"Description": "changed"})
    changed = every_row(**{"$filter": f"Timestamp gt {newest}L"})
    assert sorted(r["ID"] for r in changed) == sorted(r["ID"] for r in mine)


# -- formats: JSON only when asked for, Atom otherwise -----------------------------------------


def test_without_accept_json_a_collection_is_an_atom_feed(api):
    bare = {"Authorization": api.session.headers["Authorization"]}
    url = f"{api.root}/{NL_MAIN}/crm/Accounts"
    params = {"$filter": "trim(Code) eq '1'", "$select": "ID,Code,Name,Blocked,Created,BSN"}
    for accept in (None, "*/*", "application/atom+xml", "application/json;q=0"):
        headers = {**bare, **({"Accept": accept} if accept else {})}
        response = requests.get(url, params=params, headers=headers, timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/atom+xml;type=feed"), accept
        feed = parsed(response)
        assert feed.tag == f"{ATOM}feed"
        assert feed.get("{http://www.w3.org/XML/1998/namespace}base") == f"{api.root}/{NL_MAIN}/"
        (entry,) = feed.findall(f"{ATOM}entry")
        props = entry.find(f"{ATOM}content/{META}properties")
        assert props.find(f"{DATA}Name").text == "Bakkerij Jansen B.V."
        assert props.find(f"{DATA}Code").text == "1".rjust(18)  # the padding survives
        assert props.find(f"{DATA}Blocked").get(f"{META}type") == "Edm.Boolean"
        assert props.find(f"{DATA}ID").get(f"{META}type") == "Edm.Guid"
        created = props.find(f"{DATA}Created")
        assert created.get(f"{META}type") == "Edm.DateTime"
        assert datetime.fromisoformat(created.text).year >= 2000
        assert props.find(f"{DATA}BSN").get(f"{META}null") == "true"
        assert entry.find(f"{ATOM}category").get("term") == "Exact.Web.Api.Models.Account"
    as_json = requests.get(url, params=params, headers={**bare, "Accept": "application/json"}, timeout=10)
    assert as_json.headers["Content-Type"].startswith("application/json")
    assert as_json.json()["d"]["results"][0]["Name"] == "Bakkerij Jansen B.V."


def test_without_accept_json_an_entity_is_an_atom_entry_and_an_error_is_xml(api):
    invoice = create_invoice(api)
    bare = {"Authorization": api.session.headers["Authorization"]}
    one = requests.get(
        f"{api.root}/{NL_MAIN}/salesinvoice/SalesInvoices(guid'{invoice['InvoiceID']}')",
        params={"$expand": "SalesInvoiceLines"},
        headers=bare,
        timeout=10,
    )
    assert one.headers["Content-Type"].startswith("application/atom+xml;type=entry")
    entry = parsed(one)
    assert entry.tag == f"{ATOM}entry"
    assert entry.find(f"{ATOM}id").text.endswith(f"SalesInvoices(guid'{invoice['InvoiceID']}')")
    amount = entry.find(f"{ATOM}content/{META}properties/{DATA}AmountFC")
    assert (amount.get(f"{META}type"), float(amount.text)) == ("Edm.Double", invoice["AmountFC"])
    lines = entry.find(f"{ATOM}link[@title='SalesInvoiceLines']/{META}inline/{ATOM}feed")
    assert len(lines.findall(f"{ATOM}entry")) == 1
    refused = requests.get(f"{api.root}/{NL_MAIN}/crm/Accounts", params={"$select": "Nope"}, headers=bare, timeout=10)
    assert refused.status_code == 400 and refused.headers["Content-Type"].startswith("application/xml")
    error = parsed(refused)
    assert error.tag == f"{META}error"
    assert error.find(f"{META}message").text.startswith("No property 'Nope' exists")
    unauthorized = requests.get(f"{api.root}/current/Me", timeout=10)
    assert unauthorized.status_code == 401 and parsed(unauthorized).tag == f"{META}error"


def test_a_post_without_accept_json_answers_the_created_entry(api):
    bare = {"Authorization": api.session.headers["Authorization"], "Content-Type": "application/json"}
    created = requests.post(
        f"{api.root}/{NL_MAIN}/crm/Accounts", json={"Name": "Atom Klant B.V."}, headers=bare, timeout=10
    )
    assert created.status_code == 201
    assert created.headers["Content-Type"].startswith("application/atom+xml;type=entry")
    props = parsed(created).find(f"{ATOM}content/{META}properties")
    assert props.find(f"{DATA}Name").text == "Atom Klant B.V."


# -- token endpoint: client credentials in the body only ----------------------------------------


def test_token_endpoint_reads_client_credentials_from_the_body_only(sandbox_url):
    url = f"{sandbox_url}/exact-online/nl/api/oauth2/token"
    basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    form = {"grant_type": "authorization_code", "code": authorize(sandbox_url), "redirect_uri": REDIRECT}
    header_only = requests.post(url, data=form, headers={"Authorization": basic}, timeout=10)
    assert header_only.status_code == 400
    assert header_only.json()["error"] == "invalid_client"
    # The code is still good: the same exchange with the credentials in the body succeeds,
    # a Basic header beside them changing nothing.
    both = requests.post(
        url,
        data={**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        headers={"Authorization": "Basic " + base64.b64encode(b"someone:else").decode()},
        timeout=10,
    )
    assert both.status_code == 200, both.text
    assert both.json()["token_type"] == "bearer" and both.json()["expires_in"] == "600"


# -- OData v2 dates on input and output --------------------------------------------------------


def _ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-01-01", "2026-01-01"),
        ("2026-01-01T00:00:00Z", "2026-01-01"),
        ("2026-03-15T12:30:00", "2026-03-15T12:30:00"),
        (f"/Date({_ms('2026-02-01')})/", "2026-02-01"),
    ],
)
def test_item_put_dates_are_odata_v2_dates_whatever_form_they_came_in(api, sent, stored):
    item = item_by_code(api, "BOOK")
    put = api.put(f"{NL_MAIN}/logistics/Items(guid'{item['ID']}')", {"EndDate": sent, "StartDate": sent})
    assert put.status_code == 204, put.text
    read = api.get(f"{NL_MAIN}/logistics/Items(guid'{item['ID']}')", **{"$select": "EndDate,StartDate"})
    assert read.json()["d"]["EndDate"] == f"/Date({_ms(stored)})/" == read.json()["d"]["StartDate"]


def test_item_put_with_a_date_that_is_no_date_is_a_conversion_error(api):
    item = item_by_code(api, "BOOK")
    put = api.put(f"{NL_MAIN}/logistics/Items(guid'{item['ID']}')", {"EndDate": "next year"})
    assert put.status_code == 400
    assert "for property 'EndDate' to type 'DateTime'" in error_value(put)
    assert api.get(f"{NL_MAIN}/logistics/Items(guid'{item['ID']}')").json()["d"]["EndDate"] is None
