"""Every provider call of a connection lands in its operation log, redacted, without touching the caller."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from tests.portal.sync.conftest import PROVIDERS


def _logged(app, connection_id: int) -> list:
    from portal.extensions import db
    from portal.models import OperationLog

    with app.app_context():
        return list(db.session.scalars(select(OperationLog).where(OperationLog.connection_id == connection_id)))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_push_is_logged_without_tokens_secrets_or_e_mail_addresses(app, sandbox, connect, make_invoice, provider):
    from portal.connections import providers, vault
    from portal.extensions import db
    from portal.models import Connection, Invoice
    from portal.sync import push

    connection_id = connect(provider)
    invoice_id, number = make_invoice()
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        record = push.push_invoice(connection, db.session.get(Invoice, invoice_id))
        assert record.state.value == "pushed"
        tokens_before = vault.read_tokens(connection)
        if provider != "exact-online":  # Exact refuses a refresh in a token's first 570 s
            vault.refresh(connection_id, force=True)
        db.session.expire_all()
        tokens_after = vault.read_tokens(db.session.get(Connection, connection_id))
        _, client_secret = providers.client_credentials(provider)

    rows = _logged(app, connection_id)
    posts = [r for r in rows if r.method == "POST" and 200 <= r.status < 300]
    assert posts, "the invoice POST is in the log"
    assert any(number in r.request_body for r in posts), "the pushed invoice's number is readable in its body"
    assert all(r.duration_ms >= 0 and r.provider == provider for r in rows)
    secrets = {
        tokens_before.access_token,
        tokens_before.refresh_token,
        tokens_after.access_token,
        tokens_after.refresh_token,
        client_secret,
        "billing@pushtest.example",
    } - {None, ""}
    for row in rows:
        stored = " ".join([row.path, row.request_body, row.response_body])
        for secret in secrets:
            assert secret not in stored, f"a secret appears in the log entry {row.method} {row.path}"
    if provider != "exact-online":
        token_calls = [r for r in rows if "token" in r.path.lower() and r.method == "POST"]
        assert token_calls, "the refresh call is logged"
        assert all("***" in r.request_body for r in token_calls)


def test_a_log_write_never_commits_the_callers_session(app, sandbox, connect):
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection

    connection_id = connect("bexio")
    with app.app_context():
        before = len(_logged(app, connection_id))
        connection = db.session.get(Connection, connection_id)
        connection.settings = {**(connection.settings or {}), "marker": "uncommitted"}
        vault.fresh_adapter(connection).company_info()
        db.session.rollback()
        assert "marker" not in (db.session.get(Connection, connection_id).settings or {})
    assert len(_logged(app, connection_id)) > before, "the calls are logged once the caller's transaction ended"


def test_a_failing_log_write_does_not_fail_the_ledger_call(app, sandbox, connect, monkeypatch):
    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection
    from portal.oplog import capture

    connection_id = connect("quickbooks")

    def broken(app, row):
        raise RuntimeError("database gone")

    monkeypatch.setattr(capture, "write", broken)
    with app.app_context():
        company = vault.fresh_adapter(db.session.get(Connection, connection_id)).company_info()
    assert company.id


def _response(body: bytes, content_type: str, request_body=None, request_type="application/json", headers=None):
    request = requests.Request(
        "POST",
        "https://api.example.test/oauth/token?code=abc123secretcode&state=ok",
        data=request_body,
        headers={"Content-Type": request_type, **(headers or {})},
    ).prepare()
    response = requests.Response()
    response.status_code = 200
    response._content = body
    response.headers["Content-Type"] = content_type
    response.request = request
    import datetime

    response.elapsed = datetime.timedelta(milliseconds=42)
    return response


def test_token_exchanges_are_masked_in_both_directions():
    from portal.oplog.capture import entry

    refresh = "rt-" + "Q" * 40
    response = _response(
        json.dumps(
            {"access_token": "eyJ" + "a" * 60, "refresh_token": "rt-new-" + "b" * 40, "expires_in": 3600}
        ).encode(),
        "application/json",
        request_body=f"grant_type=refresh_token&refresh_token={refresh}&client_secret=s3cr3t-value&client_id=me",
        request_type="application/x-www-form-urlencoded",
        headers={"Authorization": "Basic bWU6czNjcjN0LXZhbHVl"},
    )
    row = entry(response, connection_id=1, provider="bexio")
    assert refresh not in row["request_body"] and "s3cr3t-value" not in row["request_body"]
    assert "grant_type=refresh_token" in row["request_body"] and "client_id=me" in row["request_body"]
    assert "a" * 60 not in row["response_body"] and "b" * 40 not in row["response_body"]
    assert '"expires_in": 3600' in row["response_body"]
    assert "abc123secretcode" not in row["path"] and row["path"].startswith("api.example.test/oauth/token?")
    assert row["duration_ms"] == 42


def test_bodies_are_capped_and_marked_truncated():
    from portal.oplog.capture import BODY_LIMIT, entry

    big = json.dumps({"items": [{"name": f"Item {i}"} for i in range(2000)]}).encode()
    row = entry(_response(big, "application/json", request_body=b"{}"), connection_id=1, provider="quickbooks")
    assert row["response_truncated"] is True and len(row["response_body"]) == BODY_LIMIT
    assert row["request_truncated"] is False and row["request_body"] == "{}"


def test_binary_bodies_are_described_not_stored():
    from portal.oplog.capture import entry

    pdf = b"%PDF-1.4" + bytes(range(256)) * 10
    row = entry(
        _response(pdf, "application/pdf", request_body=pdf, request_type="application/pdf"),
        connection_id=1,
        provider="bexio",
    )
    assert row["request_body"] == f"<{len(pdf)} bytes application/pdf>"
    assert row["response_body"] == f"<{len(pdf)} bytes application/pdf>"


def test_a_call_without_an_answer_is_logged_with_status_0_and_raised_unchanged(app, sandbox, connect):
    from types import SimpleNamespace

    from portal.oplog import capture
    from tests.sandbox_server import free_port

    connection_id = connect("bexio")
    http = SimpleNamespace(session=requests.Session())
    with app.app_context():
        capture.attach(http, connection_id, "bexio")
        with pytest.raises(requests.ConnectionError):
            http.session.get(f"http://127.0.0.1:{free_port()}/2.0/contact?access_token=tok-123456789", timeout=2)
    (row,) = [r for r in _logged(app, connection_id) if r.status == 0]
    assert row.response_body == "No answer: ConnectionError"
    assert "tok-123456789" not in row.path and row.path.endswith("/2.0/contact?access_token=%2A%2A%2A")


@given(
    secret=st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=6, max_size=80),
    key=st.sampled_from(["refresh_token", "client_secret", "code", "access_token", "password", "code_verifier"]),
)
def test_no_credential_sent_in_a_form_is_stored(secret, key):
    from portal.oplog.capture import entry

    response = _response(
        b'{"ok": true}',
        "application/json",
        request_body=f"grant_type=x&{key}={secret}",
        request_type="application/x-www-form-urlencoded",
    )
    row = entry(response, connection_id=1, provider="quickbooks")
    assert secret not in row["request_body"] and f"{key}=***" in row["request_body"]


def test_inside_buffered_entries_are_held_then_written_in_one_insert_and_none_lost(app, sandbox, connect, monkeypatch):
    from sqlalchemy import event as sa_event

    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection
    from portal.oplog import capture

    connection_id = connect("bexio")
    monkeypatch.setattr(capture, "BUFFER_SECONDS", 3600.0)
    before = len(_logged(app, connection_id))
    inserts: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO OPERATION_LOG"):
            inserts.append(len(parameters) if executemany else 1)

    held: list[int] = []

    def job() -> None:
        with capture.buffered(app):
            adapter = vault.fresh_adapter(db.session.get(Connection, connection_id))
            for _ in range(3):
                adapter.company_info()
            held.append(len(capture._state(app)["held"]))
            raise RuntimeError("the job failed")

    with app.app_context():
        log_engine = capture.engine(app)
        sa_event.listen(log_engine, "before_cursor_execute", count)
        try:
            with pytest.raises(RuntimeError):
                job()
        finally:
            sa_event.remove(log_engine, "before_cursor_execute", count)

    written = len(_logged(app, connection_id)) - before
    assert held[0] >= 3 and inserts[:-1] == [], "entries wait in memory while buffered"
    assert written == held[0], "every call is logged once the block ends, even by an error"
    assert inserts == [written], "in one multi-row insert"


#: Pieces of bodies: token alphabet, separators, "@", and a GUID (kept where a token run is masked).
PIECES = [*'abcXYZ0189-_.!~+/=@ \n"{}:,', "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "x" * 40]


@given(
    text=st.lists(st.sampled_from(PIECES), max_size=120).map("".join),
    secret=st.text(alphabet="abc0189XYZ", min_size=0, max_size=8),
)
def test_the_logs_scrub_masks_exactly_as_the_http_layers(text, secret):
    from portal.integrations.http import scrub
    from portal.oplog.capture import _scrub

    assert _scrub(text, [secret]) == scrub(text, [secret])


def test_a_json_body_is_stored_on_one_line():
    from portal.oplog.capture import entry

    row = entry(
        _response(b'{\n  "Invoice": {\n    "Id": "7",\n    "DocNumber": "INV-7"\n  }\n}', "application/json"),
        connection_id=1,
        provider="quickbooks",
    )
    assert row["response_body"] == '{"Invoice": {"Id": "7", "DocNumber": "INV-7"}}'


def test_a_key_spelled_in_escapes_is_still_masked():
    from portal.oplog.capture import entry

    body = b'{"\\u0065\\u006d\\u0061\\u0069\\u006c": "ada\\u0040example.com", "Id": "7"}'
    row = entry(_response(body, "application/json"), connection_id=1, provider="quickbooks")
    assert "ada" not in row["response_body"] and '"Id": "7"' in row["response_body"]


def test_redaction_keeps_json_keys_and_urls_and_masks_addresses_and_vat_numbers():
    """Exact repro: keys became "***": null, host:port was masked, street, postcode and VAT number were kept."""
    import json

    from portal.oplog.capture import entry

    long_key = "CustomFieldDefinitionReferenceIdentifierX"  # 40 characters of token alphabet
    body = {
        long_key: None,
        "href": "https://sandbox-quickbooks.api.intuit.com:443/v3/company/9341453908059321/invoice/7?minorversion=75",
        "Attachment": "https://files.example.test:8443/download/" + "Zq8" * 15 + "?token=abcdef123456&x=1",
        "AddressLine1": "Keizersgracht 123",
        "Postcode": "1015 CJ",
        "VATNumber": "NL123456789B01",
        "BillAddr": {"Line1": "1 Infinite Loop", "PostalCode": "95014", "City": "Cupertino"},
        "address": "Hauptstrasse 1",
        "postcode": "4010",
        "Id": "7",
        "Name": "Bakkerij Jansen",
        "AccessTokenLike": "x",
        "Note": "ref " + "A1b2" * 10,
    }
    row = entry(_response(json.dumps(body).encode(), "application/json"), connection_id=1, provider="quickbooks")
    stored = json.loads(row["response_body"])
    assert long_key in stored and stored[long_key] is None  # the key is kept, as is its null
    assert "***" not in stored
    assert stored["href"].startswith(
        "https://sandbox-quickbooks.api.intuit.com:443/v3/company/9341453908059321/invoice/7"
    )
    assert stored["Attachment"].startswith("https://files.example.test:8443/download/***")
    assert "token=%2A%2A%2A" in stored["Attachment"] or "token=***" in stored["Attachment"]
    assert "abcdef123456" not in row["response_body"]
    for key in ("AddressLine1", "Postcode", "VATNumber", "address", "postcode"):
        assert stored[key] == "***", key
    assert stored["BillAddr"] == {"Line1": "***", "PostalCode": "***", "City": "Cupertino"}
    assert stored["Id"] == "7" and stored["Name"] == "Bakkerij Jansen"
    assert stored["Note"] == "ref ***"


def test_a_write_is_logged_before_it_leaves_and_its_answer_completes_the_same_line(app, sandbox, connect):
    """A process killed during a ledger write leaves the write's line: it is committed before the call is sent."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from types import SimpleNamespace

    from portal.oplog import capture

    connection_id = connect("bexio")
    seen_during_call: list[list] = []

    class Ledger(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            # While the ledger handles the write, the log already has its line (another connection reads it).
            seen_during_call.append([(r.method, r.status, r.response_body) for r in _logged(app, connection_id)])
            body = b'{"id": 42}'
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ledger)
    threading.Thread(target=server.handle_request, daemon=True).start()
    http = SimpleNamespace(session=requests.Session())
    before = len(_logged(app, connection_id))
    try:
        with app.app_context():
            capture.attach(http, connection_id, "bexio")
            http.session.post(f"http://127.0.0.1:{server.server_port}/2.0/kb_invoice", json={"title": "X"}, timeout=5)
    finally:
        server.server_close()

    (during,) = seen_during_call
    assert ("POST", 0, capture.NO_ANSWER_YET) in during
    after = _logged(app, connection_id)
    assert len(after) == before + 1, "the answer completes the line written ahead, no second line"
    [line] = [r for r in after if r.method == "POST"]  # rows come in no particular order
    assert (line.method, line.status, line.response_body) == ("POST", 201, '{"id": 42}')
    assert '"title": "X"' in line.request_body or '"title":"X"' in line.request_body
