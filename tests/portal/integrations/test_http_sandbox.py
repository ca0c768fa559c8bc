"""The HTTP layer against the real sandbox over HTTP: retries, typed errors, quotas, redaction."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, make_response, request

from portal.integrations import specs
from portal.integrations.base import (
    AuthExpired,
    Forbidden,
    NeedsReauthorization,
    NotFound,
    RateLimited,
    Rejected,
    Unavailable,
)
from portal.integrations.errors_catalog import ErrorClass, explain
from portal.integrations.http import pooled_session
from tests.sandbox_server import ServedApp

from .conftest import (
    BEXIO_COMPANY,
    CLIENTS,
    EXACT_DIVISION,
    QBO_REALM,
    add_fault,
    api_url,
    connect,
    control,
)

E, Q, B = specs.EXACT_ONLINE, specs.QUICKBOOKS, specs.BEXIO
#: A cheap, always-allowed GET per provider (Exact needs no mandatory filter on Journals).
PROBES = {E: "financial/Journals", Q: "companyinfo/" + QBO_REALM, B: "2.0/contact"}
COMPANIES = {E: EXACT_DIVISION, Q: QBO_REALM, B: BEXIO_COMPANY}


@pytest.mark.faults
@pytest.mark.parametrize("provider", [E, Q, B])
def test_get_is_retried_after_503s_and_then_succeeds(sandbox, make_http, provider):
    http, seen = make_http(provider)
    tokens = connect(sandbox, http)
    add_fault(sandbox, provider=provider, kind="error_rate", status=503, count=2, methods=["GET"])
    response = http.get(api_url(provider, PROBES[provider]), token=tokens.access_token)
    assert response.status_code == 200
    assert [info.status for info in seen[1:]] == [503, 503, 200]
    assert control(sandbox, "faults", method="GET") == []


@pytest.mark.faults
@pytest.mark.parametrize("provider", [E, Q, B])
def test_persistent_503_on_get_gives_unavailable_after_the_retries(sandbox, make_http, provider):
    http, seen = make_http(provider)
    tokens = connect(sandbox, http)
    add_fault(sandbox, provider=provider, kind="error_rate", status=503)
    with pytest.raises(Unavailable) as info:
        http.get(api_url(provider, PROBES[provider]), token=tokens.access_token)
    assert info.value.status == 503
    assert info.value.provider == provider
    assert "Service Unavailable" in info.value.provider_text
    assert not info.value.outcome_unknown  # a GET changes nothing
    assert len(seen) == 1 + 3  # token exchange + three attempts


@pytest.mark.faults
def test_post_is_never_retried(sandbox, make_http):
    http, seen = make_http(B)
    tokens = connect(sandbox, http)
    add_fault(sandbox, provider=B, kind="error_rate", status=503, count=3, methods=["POST"])
    with pytest.raises(Unavailable) as info:
        http.post(api_url(B, "2.0/contact"), token=tokens.access_token, json=_contact("Nur Einmal AG"))
    assert info.value.outcome_unknown
    assert [i.status for i in seen[1:]] == [503]
    (fault,) = control(sandbox, "faults", method="GET")
    assert fault["count"] == 2  # fired once: one request reached the provider


@pytest.mark.faults
def test_timeout_after_commit_is_unavailable_with_unknown_outcome_and_the_write_happened(sandbox, make_http):
    http, seen = make_http(B)
    tokens = connect(sandbox, http)
    add_fault(sandbox, provider=B, kind="timeout_after_commit", count=1, mode="504")
    name = f"Commit {uuid.uuid4().hex[:8]} AG"
    with pytest.raises(Unavailable) as info:
        http.post(api_url(B, "2.0/contact"), token=tokens.access_token, json=_contact(name))
    assert info.value.status == 504
    assert info.value.outcome_unknown
    assert len(seen) == 2
    ledger = control(sandbox, f"ledger/bexio/{BEXIO_COMPANY}", method="GET")
    assert [c["name_1"] for c in ledger["contacts"]].count(name) == 1


@pytest.mark.faults
def test_hanging_write_times_out_as_unknown_outcome_without_retry(sandbox, make_http):
    http, seen = make_http(Q, timeouts=specs.Timeouts(connect=2, read=0.5))
    tokens = connect(sandbox, http)
    add_fault(sandbox, provider=Q, kind="timeout_after_commit", count=1, mode="hang", hang_seconds=1.5)
    with pytest.raises(Unavailable) as info:
        http.post(
            api_url(Q, "customer"),
            token=tokens.access_token,
            json={"DisplayName": f"Hang {uuid.uuid4().hex[:8]}"},
        )
    assert info.value.provider_text == "ReadTimeout"
    assert info.value.outcome_unknown
    assert len(seen) == 1  # only the token exchange answered


@pytest.mark.faults
def test_exact_429_storm_gives_retry_at_from_the_minutely_reset(sandbox, make_http):
    http, seen = make_http(E)
    tokens = connect(sandbox, http)
    add_fault(sandbox, provider=E, kind="rate_limit_storm", seconds=30, company=EXACT_DIVISION)
    with pytest.raises(RateLimited) as info:
        http.get(api_url(E, PROBES[E]), token=tokens.access_token, company=EXACT_DIVISION)
    reset_ms = int(seen[-1].headers["X-RateLimit-Minutely-Reset"])
    assert info.value.retry_at == datetime.fromtimestamp(reset_ms / 1000, UTC)
    assert info.value.provider_text == "Too many requests"
    assert len(seen) == 2  # a 429 is rescheduled by the caller, never retried here
    assert seen[-1].quota.minute.remaining == 0
    assert seen[-1].company == EXACT_DIVISION


@pytest.mark.faults
def test_quickbooks_xml_throttle_gives_code_3001_and_a_minute_wait(sandbox, make_http):
    fixed = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    http, _ = make_http(Q, now=lambda: fixed)
    tokens = connect(sandbox, http)
    add_fault(sandbox, provider=Q, kind="rate_limit_storm", count=1)
    with pytest.raises(RateLimited) as info:
        http.get(api_url(Q, PROBES[Q]), token=tokens.access_token)
    assert info.value.provider_code == "3001"
    assert info.value.provider_text.startswith("The request limit was reached.")
    assert info.value.retry_at == fixed + timedelta(seconds=60)
    assert info.value.request_id  # intuit_tid, to quote to Intuit support


@pytest.mark.faults
def test_bexio_429_retry_at_follows_ratelimit_reset_seconds(sandbox, make_http):
    fixed = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    http, seen = make_http(B, now=lambda: fixed)
    tokens = connect(sandbox, http)
    add_fault(sandbox, provider=B, kind="rate_limit_storm", count=1)
    with pytest.raises(RateLimited) as info:
        http.get(api_url(B, PROBES[B]), token=tokens.access_token)
    reset = int(seen[-1].headers["ratelimit-reset"])
    assert info.value.retry_at == fixed + timedelta(seconds=reset)
    assert info.value.provider_code == "429"
    assert info.value.provider_text == "Too many requests"


def test_quota_headers_reach_the_on_response_hook(sandbox, make_http):
    http, seen = make_http(E)
    tokens = connect(sandbox, http)
    http.get(api_url(E, PROBES[E]), token=tokens.access_token, company=EXACT_DIVISION)
    quota = seen[-1].quota
    assert (quota.minute.limit, quota.day.limit) == (60, 5000)
    assert quota.minute.remaining == 59
    assert quota.minute.reset_at > datetime.now(UTC) - timedelta(minutes=1)


def test_unknown_exact_division_is_forbidden_with_the_reason(sandbox, make_http):
    http, _ = make_http(E)
    tokens = connect(sandbox, http)
    url = specs.EXACT_ONLINE_SPEC.region().api_base + "/9999999/financial/Journals"
    with pytest.raises(Forbidden) as info:
        http.get(url, token=tokens.access_token)
    assert isinstance(info.value, Rejected)
    assert (info.value.status, info.value.provider_code, info.value.provider_text) == (
        403,
        "NoDivisionAccess",
        "Forbidden",
    )
    assert explain(info.value).error_class is ErrorClass.AUTH_LOST


def test_exact_business_rule_500_is_rejected_with_the_odata_text(sandbox, make_http):
    http, _ = make_http(E)
    tokens = connect(sandbox, http)
    body = {"OrderedBy": str(uuid.uuid4()), "SalesInvoiceLines": [{"Quantity": 1, "UnitPrice": 1}]}
    with pytest.raises(Rejected) as info:
        http.post(api_url(E, "salesinvoice/SalesInvoices"), token=tokens.access_token, json=body)
    assert not isinstance(info.value, Unavailable)
    assert "Besteld door" in info.value.provider_text or "Ordered by" in info.value.provider_text
    assert explain(info.value).error_class is ErrorClass.CUSTOMER_NOT_LINKED


def test_quickbooks_missing_id_is_not_found_610_and_bad_id_rejected(sandbox, make_http):
    http, _ = make_http(Q)
    tokens = connect(sandbox, http)
    with pytest.raises(NotFound) as info:
        http.get(api_url(Q, "invoice/99999"), token=tokens.access_token)
    assert (info.value.status, info.value.provider_code) == (400, "610")
    assert info.value.provider_text.startswith("Object Not Found")
    with pytest.raises(Rejected) as bad:
        http.get(api_url(Q, "invoice/abc"), token=tokens.access_token)
    assert bad.value.provider_code == "2030"
    assert "Supplied value:abc" in bad.value.provider_text


def test_bexio_validation_422_carries_message_and_errors(sandbox, make_http):
    http, _ = make_http(B)
    tokens = connect(sandbox, http)
    with pytest.raises(Rejected) as info:
        http.post(api_url(B, "2.0/kb_invoice"), token=tokens.access_token, json={"title": "x"})
    assert info.value.status == 422
    assert "contact_id [Required.]" in info.value.provider_text
    assert explain(info.value).error_class is ErrorClass.CUSTOMER_NOT_LINKED


@pytest.mark.parametrize("provider", [E, Q, B])
def test_invalid_token_is_auth_expired(sandbox, make_http, provider):
    http, _ = make_http(provider)
    with pytest.raises(AuthExpired) as info:
        http.get(api_url(provider, PROBES[provider]), token="x" * 60)
    assert info.value.status == 401
    assert info.value.retryable


def test_quickbooks_gateway_401_keeps_code_3200_and_masks_the_token(sandbox, make_http):
    http, _ = make_http(Q)
    tokens = connect(sandbox, http)
    control(sandbox, "clock", {"advance_seconds": 3700})
    with pytest.raises(AuthExpired) as info:
        http.get(api_url(Q, PROBES[Q]), token=tokens.access_token)
    assert info.value.provider_code == "3200"
    assert info.value.provider_text.startswith("Token expired:")
    assert tokens.access_token[:40] not in info.value.provider_text


def test_reused_bexio_refresh_token_needs_reauthorization(sandbox, make_http):
    http, _ = make_http(B)
    tokens = connect(sandbox, http)
    client_id, secret = CLIENTS[B]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "client_id": client_id,
        "client_secret": secret,
    }
    token_url = specs.BEXIO_SPEC.region().token_url
    assert http.post(token_url, data=form).status_code == 200
    with pytest.raises(NeedsReauthorization) as info:
        http.post(token_url, data=form)
    assert info.value.provider_code == "invalid_grant"
    assert info.value.reason


def test_logs_never_contain_tokens_secrets_codes_or_emails(sandbox, make_http, caplog):
    caplog.set_level(logging.DEBUG, logger="portal.integrations")
    http, _ = make_http(B)
    tokens = connect(sandbox, http)
    email = "geheim.person@example.test"
    http.post(api_url(B, "2.0/contact"), token=tokens.access_token, json={**_contact("Log AG"), "mail": email})
    with pytest.raises(AuthExpired):
        http.get(api_url(B, PROBES[B]), token=tokens.access_token + "x")
    text = caplog.text
    assert "POST" in text and "Bearer ***" in text
    for secret in (tokens.access_token, tokens.refresh_token, CLIENTS[B][1], email):
        assert secret not in text
    assert tokens.access_token[:32] not in text


def test_exact_token_exchange_logs_no_code_or_secret(sandbox, make_http, caplog):
    caplog.set_level(logging.DEBUG, logger="portal.integrations")
    http, _ = make_http(E)
    tokens = connect(sandbox, http)
    assert tokens.access_expires_at - tokens.issued_at == timedelta(seconds=600)  # "600" as a string
    for secret in (tokens.access_token, tokens.refresh_token, CLIENTS[E][1]):
        assert secret not in caplog.text
    assert "'code': '***'" in caplog.text or '"code": "***"' in caplog.text


def test_connection_refused_is_unavailable_and_retried_for_gets():
    sleeps = []
    from portal.integrations.http import LedgerHttp, RetryPolicy

    http = LedgerHttp(
        specs.BEXIO_SPEC,
        host_map={"https://api.bexio.com": "http://127.0.0.1:9"},
        retry=RetryPolicy(attempts=2, backoff=0.01),
        sleep=sleeps.append,
    )
    with pytest.raises(Unavailable) as info:
        http.get("https://api.bexio.com/2.0/contact", token="t" * 40)
    assert info.value.provider_text == "ConnectionError"
    assert len(sleeps) == 1
    with pytest.raises(Unavailable) as post:
        http.post("https://api.bexio.com/2.0/contact", token="t" * 40, json={})
    assert not post.value.outcome_unknown  # never connected, so nothing was written
    assert len(sleeps) == 1


def _contact(name: str) -> dict:
    return {"contact_type_id": 1, "name_1": name, "user_id": 1, "owner_id": 1}


def test_minorversion_goes_to_the_api_only(sandbox, make_http):
    http, seen = make_http(Q)
    tokens = connect(sandbox, http)
    assert "minorversion" not in seen[0].url
    response = http.get(api_url(Q, PROBES[Q]), token=tokens.access_token)
    assert "minorversion=75" in response.url
    assert requests.utils.urlparse(response.url).path.startswith("/quickbooks/api/v3/company/")


def test_exact_api_calls_always_ask_for_json_whatever_a_caller_passes(sandbox, make_http):
    http, _ = make_http(E)
    tokens = connect(sandbox, http)
    response = http.get(api_url(E, PROBES[E]), token=tokens.access_token, headers={"Accept": "*/*"})
    assert response.request.headers["Accept"] == "application/json"
    assert response.json()["d"]["results"]
    # Without the header Exact (and the sandbox) answers Atom XML, which the adapter cannot read.
    bare = requests.get(response.url, headers={"Authorization": f"Bearer {tokens.access_token}"}, timeout=10)
    assert bare.headers["Content-Type"].startswith("application/atom+xml;type=feed")


def _established_connections_to(url: str) -> int:
    """Count this process's open TCP connections to ``url``'s port (Linux /proc)."""
    port = urlsplit(url).port
    sockets = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port, state, inode = int(fields[2].split(":")[1], 16), fields[3], fields[9]
        count += remote_port == port and state == "01" and inode in sockets
    return count


def test_adapters_built_one_after_another_reuse_one_kept_alive_connection(sandbox, make_http):
    """Each job builds its own adapter; their calls share the thread's pooled connection, none is left open."""
    tokens = None
    before = _established_connections_to(sandbox)
    for _ in range(30):  # make_http keeps every instance alive, as a long job holding its adapters would
        http, _seen = make_http(B)
        tokens = tokens or connect(sandbox, http)
        assert http.get(api_url(B, PROBES[B]), token=tokens.access_token).status_code == 200
    assert _established_connections_to(sandbox) - before <= 1


def test_the_pooled_session_keeps_no_cookie_from_one_call_for_the_next():
    """A cookie a ledger sets for one customer's call is never sent with the next customer's."""
    app = Flask("cookies")

    @app.get("/set")
    def set_cookie():
        response = make_response("set")
        response.set_cookie("balancer", "customer-a")
        return response

    @app.get("/echo")
    def echo():
        return request.headers.get("Cookie", "")

    served = ServedApp(app, threads=2)
    try:
        session = pooled_session()
        assert session.get(f"{served.url}/set", timeout=5).text == "set"
        assert session.get(f"{served.url}/echo", timeout=5).text == ""
    finally:
        served.close()
