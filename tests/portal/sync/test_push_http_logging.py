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
