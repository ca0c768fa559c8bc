"""Each ledger call of a push logs what is emitted, and redacts only what is logged (bench/push_pipeline.py)."""

from __future__ import annotations

import logging

import requests

from portal.integrations import http, specs

URL = "https://quickbooks.api.intuit.com/v3/company/9341453908059321/invoice"


class _AnsweringSession(requests.Session):
    """A session whose every call is answered 200 with a JSON body, without a network."""

    def request(self, method, url, **kwargs):
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        response._content = b'{"Invoice": {"Id": "1"}}'
        response.url = url
        return response


def _count_redactions(monkeypatch) -> list[str]:
    done: list[str] = []
    for name in ("redact_url", "redact_headers", "_redacted_body"):
        original = getattr(http, name)
        monkeypatch.setattr(http, name, lambda *args, _n=name, _f=original, **kw: done.append(_n) or _f(*args, **kw))
    shown = http.LedgerHttp._shown_response
    monkeypatch.setattr(
        http.LedgerHttp, "_shown_response", staticmethod(lambda *a: done.append("response") or shown(*a))
    )
    return done


def _post(ledger: http.LedgerHttp) -> None:
    ledger.request("POST", URL, token="secret-token-value", json={"DocNumber": "LL-1", "BillEmail": "a@b.example"})


def test_a_call_does_no_redaction_work_when_its_log_records_are_not_emitted(monkeypatch, caplog):
    done = _count_redactions(monkeypatch)
    ledger = http.LedgerHttp(specs.get_spec(specs.QUICKBOOKS), session=_AnsweringSession())
    caplog.set_level(logging.WARNING, logger="portal.integrations.http")

    _post(ledger)

    assert done == []
    assert caplog.records == []


def test_a_call_logs_redacted_request_and_response_when_debug_is_on(monkeypatch, caplog):
    done = _count_redactions(monkeypatch)
    ledger = http.LedgerHttp(specs.get_spec(specs.QUICKBOOKS), session=_AnsweringSession())
    caplog.set_level(logging.DEBUG, logger="portal.integrations.http")

    _post(ledger)

    assert {"redact_url", "redact_headers", "_redacted_body", "response"} <= set(done)
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.DEBUG, logging.DEBUG]
    said = "\n".join(caplog.messages)  # the messages themselves, whatever formatter the handlers carry
    assert "secret-token-value" not in said and "a@b.example" not in said
    assert "-> 200" in said and '"Id": "1"' in said


def test_each_connections_calls_are_logged_under_it_alone_when_adapters_share_a_thread(app, sandbox, connect, flow):
    from sqlalchemy import select

    from portal.connections import vault
    from portal.extensions import db
    from portal.models import Connection, OperationLog
    from tests.portal.sync.conftest import connect_unit, new_organization

    first = connect("bexio")
    other_unit = new_organization(app, "Logtest", ["Logtest CH"])["unit_ids"][0]
    second = connect_unit(app, flow, other_unit, "quickbooks")
    with app.app_context():
        one = vault.fresh_adapter(db.session.get(Connection, first))
        two = vault.fresh_adapter(db.session.get(Connection, second))

        def logged() -> dict[int, int]:
            rows = db.session.execute(
                select(OperationLog.connection_id, db.func.count())
                .where(OperationLog.connection_id.in_([first, second]))
                .group_by(OperationLog.connection_id)
            )
            return dict(rows.all())

        before = logged()
        one.company_info()
        between = logged()
        two.company_info()
        after = logged()

    # Each call is in its own connection's log, and in no other's.
    assert between.get(first, 0) > before.get(first, 0) and between.get(second, 0) == before.get(second, 0)
    assert after.get(second, 0) > between.get(second, 0) and after.get(first, 0) == between.get(first, 0)


def _fresh_pooled_session() -> requests.Session:
    """Return the pooled session a new thread gets (built from the environment as it is now)."""
    import threading

    made: list[requests.Session] = []
    thread = threading.Thread(target=lambda: made.append(http.pooled_session()))
    thread.start()
    thread.join()
    return made[0]


def test_a_ca_bundle_in_the_environment_is_read_once_not_looked_up_on_every_call(monkeypatch, tmp_path):
    for name in [n for n in __import__("os").environ if n.lower().endswith("_proxy") or n.upper() == "NETRC"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/our-bundle.pem")

    session = _fresh_pooled_session()
    assert session.trust_env is False and session.verify == "/etc/ssl/certs/our-bundle.pem"

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    session = _fresh_pooled_session()
    assert session.trust_env is True  # proxies are requests' business, call by call


def test_a_push_logs_every_call_once_through_its_writer_thread_and_none_when_it_ends(
    app, sandbox, connect, make_invoice, monkeypatch
):
    import threading

    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import OperationLog
    from portal.oplog import capture
    from tests.portal.sync.test_pipeline import run_push

    connection_id = connect("bexio")
    for _ in range(3):
        make_invoice()
    monkeypatch.setattr(capture, "BUFFER_SECONDS", 0.0)  # hand entries over at every commit of the run
    answered, writers = [], set()
    notify, insert_rows = http.LedgerHttp._notify, capture._insert

    def count(self, company, method, url, *args):
        answered.append((method, url))
        return notify(self, company, method, url, *args)

    def note_thread(*args, **kwargs):
        writers.add(threading.current_thread().name)
        return insert_rows(*args, **kwargs)

    monkeypatch.setattr(http.LedgerHttp, "_notify", count)
    monkeypatch.setattr(capture, "_insert", note_thread)
    with app.app_context():
        before = db.session.scalar(select(db.func.count()).where(OperationLog.connection_id == connection_id))

    status, counts, message = run_push(app, connection_id)

    assert status == "succeeded" and counts["pushed"] == 3, (counts, message)
    with app.app_context():
        rows = db.session.scalars(
            select(OperationLog).where(OperationLog.connection_id == connection_id).order_by(OperationLog.id)
        ).all()[before:]
    assert len(rows) == len(answered) >= 3 * 2  # every call of the run (create and issue per invoice), once
    # In the order they were answered (a write's line is made before it leaves, and completed by its answer).
    rows = sorted(rows, key=lambda r: (r.created_at, r.id))
    assert [r.method for r in rows] == [method for method, _ in answered]
    assert "ledgerlink-oplog-writer" in writers
    assert not any(t.name == "ledgerlink-oplog-writer" for t in threading.enumerate())  # gone with the run
