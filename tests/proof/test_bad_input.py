"""Bad input at every entry point: a precise message, escaped output, nothing half-saved.

The corpus (tests/proof/corpus.py) lists each form and the words its answer must contain; the
ingestion API, OAuth callbacks, authorization links and hostile provider replies follow, then
property tests of the ingestion validators and the CSV parsers.
"""

from __future__ import annotations

import html as html_lib
import io
import json
import re

import pytest

from tests.portal.connections.conftest import QBO_US
from tests.proof.conftest import row_counts
from tests.proof.corpus import API_CASES, FORM_CASES, RAW, XSS, FormCase

#: The corpus script, URL-quoted for query strings and paths.
XSS_Q = "%3Cscript%3Ealert(%22ll-bad%22)%3C%2Fscript%3E"

#: Tables that may change on a refused request: the operation log records every provider call.
VOLATILE = {"operation_log", "operation_entry"}


def _visible(fragment: str) -> str:
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def error_texts(html: str) -> list[str]:
    """Return each error shown on a page, prefixed with the field (id or legend) it describes."""
    found = []
    for field_id, message in re.findall(r'<small id="([^"]+)-error" class="field-error">(.*?)</small>', html, re.S):
        found.append(f"{field_id}: {_visible(message)}")
    for legend, inner in re.findall(r"<fieldset[^>]*>\s*<legend>(.*?)</legend>(.*?)</fieldset>", html, re.S):
        for message in re.findall(r'<small class="field-error">(.*?)</small>', inner, re.S):
            found.append(f"{_visible(legend)}: {_visible(message)}")
    if not found:
        found += [_visible(m) for m in re.findall(r'<small class="field-error">(.*?)</small>', html, re.S)]
    for _tag, block in re.findall(
        r'<(article|div|section|p)\b[^>]*(?:class="flash flash-error"|class="refusal"|role="alert")[^>]*>(.*?)</\1>',
        html,
        re.S,
    ):
        found.append(_visible(block))
    return [f for f in found if f]


def stable_counts(app) -> dict[str, int]:
    return {k: v for k, v in row_counts(app).items() if k not in VOLATILE}


def _post_case(flow, path: str, case: FormCase):
    data = {"csrf_token": flow.token, **case.data}
    if case.upload:
        data["file"] = (io.BytesIO(case.upload[1]), case.upload[0])
    return flow.client.post(path, data=data, content_type="multipart/form-data")


def test_every_form_refuses_bad_input_precisely_and_saves_nothing(app, flow, connect, org_unit):
    """One live connection, every case of the corpus against it (each refused, so each sees the same state)."""
    cid = connect("quickbooks")
    problems = []
    for case in FORM_CASES:
        path = case.path.format(cid=cid, pid=org_unit["product_id"], unit=org_unit["unit_id"])
        before = stable_counts(app)
        response = _post_case(flow, path, case)
        body = response.get_data(as_text=True)
        errors = error_texts(body)
        said = " | ".join(errors).lower()
        if response.status_code not in case.status:
            problems.append(f"{case.name}: status {response.status_code} ({errors})")
        if not errors or not all(p.lower() in said for p in case.phrases):
            problems.append(f"{case.name}: the answer does not say {case.phrases}: {errors}")
        if RAW in body:
            problems.append(f"{case.name}: input came back unescaped")
        if stable_counts(app) != before:
            problems.append(f"{case.name}: rows changed")
    assert not problems, "\n".join(problems)
    assert len(FORM_CASES) >= 25


# -- ingestion API ---------------------------------------------------------------------------------
def test_every_bad_ingestion_body_names_its_problem_and_saves_nothing(app, client, api_key, org_external):
    problems = []
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    for case in API_CASES:
        url = f"/api/v1/organizations/{org_external['external_id']}/{case.resource}/{case.external_id}"
        body = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
        before = stable_counts(app)
        response = client.put(url, data=body, headers=headers)
        answer = response.get_json(silent=True) or {}
        listed = answer.get("error", {}).get("problems", [])
        named = [p for p in listed if p["path"] == case.path]
        if response.status_code != case.status or not response.is_json:
            problems.append(f"{case.name}: {response.status_code} {response.mimetype}")
        elif not named or case.words.lower() not in named[0]["message"].lower():
            problems.append(f"{case.name}: {case.path!r} not named with {case.words!r}: {listed}")
        if stable_counts(app) != before:
            problems.append(f"{case.name}: rows changed")
    assert not problems, "\n".join(problems)


def test_references_that_do_not_exist_are_named(app, client, api_key, org_external):
    headers = {"Authorization": f"Bearer {api_key}"}
    base = f"/api/v1/organizations/{org_external['external_id']}"
    before = stable_counts(app)
    today = "2026-01-10"
    invoice = {
        "business_unit": org_external["unit_id"],
        "number": "INV-9",
        "customer": "no-such-customer",
        "issue_date": today,
        "due_date": "2026-01-01",
        "currency": "XXX",
        "lines": [_line_body(1), _line_body(1)],
    }
    answer = client.put(f"{base}/invoices/inv-9", json=invoice, headers=headers)
    assert answer.status_code == 422
    paths = {p["path"]: p["message"] for p in answer.get_json()["error"]["problems"]}
    assert "no-such-customer" in paths["customer"]
    assert "due_date" in paths and "currency" in paths
    assert any(path.startswith("lines[1]") for path in paths), paths  # the repeated position
    missing_org = client.put("/api/v1/organizations/nope/customers/c1", json=_customer_body(), headers=headers)
    assert missing_org.status_code == 404 and "nope" in missing_org.get_json()["error"]["message"]
    payment = {"invoice": "never-sent", "paid_on": today, "amount": 5, "currency": "EUR", "method": "card"}
    refused = client.put(f"{base}/payments/p-1", json=payment, headers=headers)
    assert refused.status_code == 422 and "never-sent" in json.dumps(refused.get_json())
    assert stable_counts(app) == before


def _line_body(position: int) -> dict:
    return {"position": position, "description": "Work", "quantity": 1, "unit_price": "10", "tax_rate": 21}


def _customer_body() -> dict:
    return {"name": "Acme", "country": "NL"}


# -- OAuth callbacks -------------------------------------------------------------------------------
def _grants_and_connections(app) -> tuple[int, int]:
    from tests.portal.links.conftest import counts

    return counts(app)


EXPECTED_CALLBACK_WORDS = {
    "missing state": "carries no state",
    "forged state": "does not belong to a request started in this browser",
    "no code": "does not belong to a request started in this browser",
    "access denied": "quickbooks online did not grant access (access_denied)",
}


def test_oauth_callbacks_refuse_missing_forged_denied_and_replayed_consents(app, flow, unit_id):
    from tests.portal.connections.conftest import consent, local_path

    callback = "/connections/oauth/callback"
    before = _grants_and_connections(app)
    answers = {
        "missing state": flow.client.get(f"{callback}?code=abc"),
        "forged state": flow.client.get(f"{callback}?state=forged-{XSS_Q}&code=abc"),
        "no code": flow.client.get(f"{callback}?state=forged"),
    }
    started = flow.start(unit_id, "quickbooks")
    denied_url = consent(flow.sandbox, started.headers["Location"], decision="deny", user="u-ada")
    answers["access denied"] = flow.client.get(local_path(denied_url))
    for name, response in answers.items():
        body = response.get_data(as_text=True)
        assert 400 <= response.status_code < 500, (name, response.status_code)
        assert RAW not in body and "ll-bad" not in response.headers.get("Location", ""), name
        said = " ".join(error_texts(body)).lower()
        assert EXPECTED_CALLBACK_WORDS[name] in said and "nothing was changed" in said, (name, said)
    assert _grants_and_connections(app) == before

    # A real consent completes once; the same callback URL replayed (same code, same state) creates nothing.
    started = flow.start(unit_id, "quickbooks")
    back = local_path(consent(flow.sandbox, started.headers["Location"], user="u-ada", realm_id=QBO_US))
    first = flow.client.get(back)
    assert first.status_code == 302
    after_first = _grants_and_connections(app)
    replayed = flow.client.get(back)
    assert 400 <= replayed.status_code < 500
    assert error_texts(replayed.get_data(as_text=True))
    assert _grants_and_connections(app) == after_first


# -- authorization links ---------------------------------------------------------------------------
def test_authorization_links_refuse_tampered_expired_replayed_and_wrong_division(app, make_link, approver, unit_id):
    from tests.portal.links.conftest import NL_USER, expire, link_state, url_of

    before = _grants_and_connections(app)
    _id, good = make_link(unit_id)
    for token in (good[:-2] + "zz", good + XSS_Q, "../" + good, ""):
        response = approver.client.get(url_of(token))
        assert response.status_code == 404 and RAW not in response.get_data(as_text=True)
    expired_id, expired = make_link(unit_id)
    expire(app, expired_id)
    assert approver.open(expired).status_code == 404
    _wrong_id, wrong = make_link(unit_id, expected_company_id="3010002")
    refused = approver.approve(wrong, user=NL_USER, divisions=["3010001"])
    assert refused.status_code == 409 and "3010002" in refused.get_data(as_text=True)
    assert _grants_and_connections(app) == before
    # Completed once, then replayed: the link no longer opens and its callback connects nothing more.
    done_id, done = make_link(unit_id)
    started = approver.start(done)
    from tests.portal.connections.conftest import consent, local_path

    back = local_path(consent(approver.sandbox, started.headers["Location"], user=NL_USER, divisions=["3010001"]))
    assert approver.client.get(back).status_code == 200
    assert link_state(app, done_id)[0] == "completed"
    after = _grants_and_connections(app)
    replayed = approver.client.get(back)  # the consent's state is spent: an anonymous browser must log in
    assert replayed.status_code == 302 and replayed.headers["Location"].startswith("/login")
    reopened = approver.open(done)
    assert reopened.status_code == 410 and "ll-bad" not in reopened.get_data(as_text=True)
    assert _grants_and_connections(app) == after


# -- hostile provider replies ----------------------------------------------------------------------
HOSTILE_REPLIES = {
    "html instead of json": ("text/html", f"<html><body><h1>Welcome</h1>{XSS}</body></html>"),
    "truncated json": ("application/json", '{"QueryResponse": {"Item": [{"Id": "1", "Name": '),
    "wrong types": ("application/json", '{"QueryResponse": {"Item": "all of them", "Account": 7}, "time": []}'),
    "enormous and scripted names": (
        "application/json",
        json.dumps(
            {
                "QueryResponse": {
                    "Item": [{"Id": "9", "Name": XSS + "N" * 200_000, "Type": "Service", "Active": True}],
                    "startPosition": 1,
                    "maxResults": 1,
                }
            }
        ),
    ),
}


@pytest.mark.faults
@pytest.mark.parametrize("kind", list(HOSTILE_REPLIES))
def test_hostile_provider_replies_are_reported_escaped_and_change_nothing(app, flow, connect, kind):
    import requests

    cid = connect("quickbooks")
    content_type, body = HOSTILE_REPLIES[kind]
    before = stable_counts(app)
    requests.post(
        f"{flow.sandbox}/_control/faults",
        json={
            "provider": "quickbooks",
            "kind": "hostile_reply",
            "status": 200,
            "body": body,
            "content_type": content_type,
            "path_contains": "/query",
        },
        timeout=10,
    ).raise_for_status()
    try:
        refreshed = flow.client.post(f"/connections/{cid}/mappings/reference", data={"csrf_token": flow.token})
        tested = flow.client.post(f"/connections/{cid}/test", data={"csrf_token": flow.token})
        page = flow.client.get(f"/connections/{cid}/mappings")
    finally:
        requests.delete(f"{flow.sandbox}/_control/faults", timeout=10).raise_for_status()
    for response in (refreshed, tested, page):
        text = response.get_data(as_text=True)
        assert response.status_code < 500 and RAW not in text
    assert stable_counts(app) == before
    if kind in ("html instead of json", "truncated json"):
        # Said in words with the ledger's own text (escaped), and the stored reference data is kept.
        said = " ".join(error_texts(page.get_data(as_text=True)))
        assert "The reference data could not be read" in said and body[:30] in said, said
        assert "does not exist in QuickBooks" not in said, said
        tested_said = " ".join(error_texts(tested.get_data(as_text=True)))
        assert "QuickBooks" in tested_said or body[:30] in tested_said, tested_said
