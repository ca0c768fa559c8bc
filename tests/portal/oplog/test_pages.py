"""The operation log page: filters, pagination, escaped detail, CSV, roles, retention."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from sqlalchemy import func, select


def test_the_list_filters_by_status_class_method_path_and_date(app, sandbox, connect, ops_client, add_operations):
    connection_id = connect("bexio")
    add_operations(connection_id, 2, method="GET", status=200, path="api.bexio.com/2.0/contact/7")
    add_operations(connection_id, 1, method="POST", status=422, path="api.bexio.com/2.0/kb_invoice")
    add_operations(
        connection_id, 1, method="POST", status=503, path="api.bexio.com/2.0/kb_invoice", age=timedelta(days=3)
    )
    add_operations(connection_id, 1, method="GET", status=0, path="api.bexio.com/2.0/timeout")
    client, _ = ops_client
    base = f"/connections/{connection_id}/operations"

    page = client.get(f"{base}?status=none").get_data(as_text=True)
    assert 'data-status="0"' in page and "no answer" in page and 'data-status="200"' not in page

    page = client.get(f"{base}?status=4xx").get_data(as_text=True)
    assert 'data-status="422"' in page and 'data-status="503"' not in page and 'data-status="200"' not in page

    page = client.get(f"{base}?method=POST&path=kb_invoice").get_data(as_text=True)
    assert 'data-status="422"' in page and 'data-status="503"' in page and "contact/7" not in page

    since = (date.today() - timedelta(days=1)).isoformat()
    page = client.get(f"{base}?method=POST&from={since}").get_data(as_text=True)
    assert 'data-status="422"' in page and 'data-status="503"' not in page

    response = client.get(f"{base}?status=6xx")
    assert response.status_code == 400 and "status must be one of 2xx, 3xx, 4xx, 5xx, none" in response.get_data(
        as_text=True
    )
    assert client.get(f"{base}?from=yesterday").status_code == 400


def test_the_list_pages_with_a_constant_number_of_queries(
    app, sandbox, connect, ops_client, add_operations, count_queries
):
    connection_id = connect("bexio")
    client, _ = ops_client
    url = f"/connections/{connection_id}/operations"
    add_operations(connection_id, 2)
    with count_queries() as few:
        assert client.get(url).status_code == 200
    add_operations(connection_id, 40)
    with count_queries() as many:
        page = client.get(url).get_data(as_text=True)
    assert len(many) == len(few)
    assert "Page 1 of " in page and 'rel="next"' in page
    assert 'rel="prev"' in client.get(f"{url}?page=2").get_data(as_text=True)


def test_the_detail_shows_redacted_bodies_escaped(app, sandbox, connect, ops_client, add_operations):
    connection_id = connect("bexio")
    (op_id,) = add_operations(
        connection_id, request_body='{"title": "<script>alert(1)</script>"}', response_body="<b>nope</b>",
        response_truncated=True, status=422,
    )  # fmt: skip
    client, _ = ops_client
    page = client.get(f"/connections/{connection_id}/operations/{op_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "&lt;b&gt;nope&lt;/b&gt;" in page and "Truncated" in page
    assert client.get(f"/connections/{connection_id}/operations/{op_id + 10_000}").status_code == 404
    assert client.get(f"/connections/{connection_id + 10_000}/operations/{op_id}").status_code == 404


def test_support_staff_cannot_read_the_operation_log(app, sandbox, connect, make_staff, login):
    connection_id = connect("bexio")
    client = app.test_client()
    login(make_staff("support"), client=client)
    assert client.get(f"/connections/{connection_id}/operations").status_code == 403
    assert client.get(f"/connections/{connection_id}/operations.csv").status_code == 403


def test_the_csv_export_streams_the_filtered_calls_safely(app, sandbox, connect, ops_client, add_operations):
    connection_id = connect("bexio")
    add_operations(connection_id, 1, method="POST", status=400, path='=HYPERLINK("http://evil")')
    add_operations(connection_id, 3, method="GET", status=200)
    client, _ = ops_client
    response = client.get(f"/connections/{connection_id}/operations.csv?method=POST")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["time_utc", "method", "path", "status"]
    assert len(rows) == 2 and rows[1][1] == "POST" and rows[1][3] == "400"
    assert rows[1][2].startswith("'=HYPERLINK")


def test_purge_drops_entries_past_the_configured_days(app, sandbox, connect, add_operations, monkeypatch):
    from portal.extensions import db
    from portal.models import OperationLog
    from portal.oplog.services import purge_expired

    connection_id = connect("bexio")
    with app.app_context():
        fresh = db.session.scalar(select(func.count(OperationLog.id)))
    add_operations(connection_id, 2, age=timedelta(days=5))
    add_operations(connection_id, 3, age=timedelta(days=1))
    monkeypatch.setitem(app.config, "OPERATION_LOG_DAYS", 3)
    with app.app_context():
        assert purge_expired() == 2
        assert db.session.scalar(select(func.count(OperationLog.id))) == fresh + 3
    monkeypatch.delitem(app.config, "OPERATION_LOG_DAYS")
    add_operations(connection_id, 1, age=timedelta(days=15))
    result = app.test_cli_runner().invoke(args=["oplog", "purge"])
    assert result.exit_code == 0, result.output
    assert "Removed 1 operation log entries older than 14 days." in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(OperationLog.id))) == fresh + 3


def test_a_json_body_is_kept_on_one_line_and_laid_out_on_the_page(app, sandbox, connect, ops_client, add_operations):
    from portal.oplog.capture import readable

    connection_id = connect("bexio")
    (op_id,) = add_operations(
        connection_id, request_body='{"title": "INV-7", "positions": [{"amount": "2"}]}', response_body='{"id": 4',
    )  # fmt: skip
    client, _ = ops_client
    page = client.get(f"/connections/{connection_id}/operations/{op_id}").get_data(as_text=True)
    assert '{\n "title": "INV-7",\n "positions": [\n  {\n   "amount": "2"\n  }\n ]\n}' in page.replace("&#34;", '"')
    assert '{"id": 4' in page.replace("&#34;", '"')  # a body cut at the cap is shown as kept
    assert readable("grant_type=x&scope=y") == "grant_type=x&scope=y" and readable(None) == ""
