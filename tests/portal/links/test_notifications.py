"""On completion the requester is e-mailed and the SaaS receives a signed webhook (RQ jobs)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests

from tests.portal.links.conftest import NL_USER, link_state

SECRET = "webhook-secret-that-is-long-enough-0123456789"


class Receiver:
    """A tiny local HTTP server recording the webhooks it receives."""

    def __init__(self, status: int = 204) -> None:
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/ledgerlink"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_completion_e_mails_the_requester_and_posts_a_signed_webhook(
    app, db, make_link, approver, unit_id, receiver, monkeypatch
):
    monkeypatch.setitem(app.config, "WEBHOOK_URL", receiver.url)
    monkeypatch.setitem(app.config, "WEBHOOK_SECRET", SECRET)
    link_id, token = make_link(
        unit_id, expected_company_id="3010001", notify_email="ada@example.com", requested_for="ada"
    )
    assert approver.approve(token, user=NL_USER).status_code == 200

    from rq import Queue
    from rq.serializers import JSONSerializer

    from jobs import links as jobs
    from portal.extensions import queue

    with app.app_context():
        queued = Queue("default", connection=queue.connection, serializer=JSONSerializer).job_ids
    assert set(queued) >= {f"link-notify-{link_id}", f"link-webhook-{link_id}"}

    with app.app_context():
        assert jobs.notify_requester(link_id) == "outbox"
        assert jobs.deliver_webhook(link_id) == 204
        from portal import mail

        message = mail.read_outbox()[0]
    assert message["to"] == "ada@example.com" and "3010001" in message["body"]

    headers, body = receiver.received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Ledgerlink-Signature"], expected)
    payload = json.loads(body)
    assert payload["event"] == "authorization_link.completed" and payload["link"]["id"] == link_id
    assert payload["link"]["requested_for"] == "ada" and payload["connection"]["company_id"] == "3010001"
    assert token not in body.decode()
    assert link_state(app, link_id)[1][-2:] == ["notified", "webhook_delivered"]


def test_a_failing_webhook_is_recorded_and_raised_for_a_retry(app, make_link, approver, unit_id, monkeypatch):
    failing = Receiver(status=500)
    try:
        monkeypatch.setitem(app.config, "WEBHOOK_URL", failing.url)
        monkeypatch.setitem(app.config, "WEBHOOK_SECRET", SECRET)
        link_id, token = make_link(unit_id, expected_company_id="3010001")
        assert approver.approve(token, user=NL_USER).status_code == 200
        from jobs import links as jobs

        with app.app_context(), pytest.raises(requests.HTTPError):
            jobs.deliver_webhook(link_id)
        assert link_state(app, link_id)[1][-1] == "webhook_failed"
    finally:
        failing.close()
