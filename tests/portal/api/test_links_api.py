"""POST /api/v1/authorization-links: API-key auth, precise 422s, and the same approval path."""

from __future__ import annotations

import pytest

from tests.portal.connections.conftest import sandbox, unit_id  # noqa: F401 - fixtures
from tests.portal.links.conftest import NL_USER, Approver, counts, link_state

API = "/api/v1/authorization-links"


@pytest.fixture
def api_key(app):
    """Return a factory of API keys: api_key(scopes=["links"], revoked=False) -> key."""
    from portal.api.auth import create_client, hash_key
    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import ApiClient

    def make(name: str = "invoicr", scopes=("links",), revoked: bool = False) -> str:
        with app.test_request_context():
            if set(scopes) <= {"links"} and scopes:
                client, key = create_client(name, list(scopes))
            else:  # a key for a scope this endpoint does not accept
                key = "llk_" + name * 4
                client = ApiClient(name=name, key_hash=hash_key(key), key_prefix=key[:10], scopes=list(scopes))
                db.session.add(client)
            if revoked:
                client.revoked_at = utcnow()
            db.session.commit()
            return key

    return make


@pytest.fixture
def org_external_id(app, unit_id):  # noqa: F811 - the fixture imported above
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        return db.session.get(BusinessUnit, unit_id).organization.external_id


def _post(client, key, body, **kw):
    return client.post(API, json=body, headers={"Authorization": f"Bearer {key}"}, **kw)


def test_a_key_creates_a_link_that_an_approver_completes(app, client, api_key, org_external_id, unit_id, sandbox):  # noqa: F811
    key = api_key()
    created = _post(
        client,
        key,
        {
            "organization_id": org_external_id,
            "business_unit_id": unit_id,
            "provider": "exact-online",
            "region": "nl",
            "expected_company_id": "3010001",
            "expires_in_days": 3,
            "note": "Please approve",
            "requested_for": "ada@customer.example",
            "email_to": "accountant@example.com",
        },
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (
        body["status"] == "created"
        and body["url"].startswith("http")
        and created.headers["Cache-Control"] == "no-store"
    )
    assert body["requested_for"] == "ada@customer.example" and body["created_via"] == "api:invoicr"
    assert [e["kind"] for e in body["events"]] == ["created", "emailed"]

    from portal.extensions import db
    from portal.models import AuditEvent

    with app.app_context():
        actors = set(db.session.scalars(db.select(AuditEvent.actor_label).filter_by(subject_type="AuthorizationLink")))
    assert actors == {"api:invoicr"}

    token = body["url"].rsplit("/", 1)[1]
    approver = Approver(app, sandbox)
    assert approver.approve(token, user=NL_USER).status_code == 200
    shown = client.get(f"{API}/{body['id']}", headers={"Authorization": f"Bearer {key}"}).get_json()
    assert shown["status"] == "completed" and shown["connection_id"] and "url" not in shown
    assert link_state(app, body["id"])[0] == "completed" and counts(app)[0] == 1


def test_keys_are_required_valid_active_and_scoped(app, client, api_key, org_external_id):
    body = {"organization_id": org_external_id, "provider": "bexio", "requested_for": "ada"}
    assert client.post(API, json=body).status_code == 401
    assert client.post(API, json=body, headers={"Authorization": "Basic abc"}).status_code == 401
    assert _post(client, "llk_wrong", body).status_code == 401
    revoked = _post(client, api_key("old", revoked=True), body)
    assert revoked.status_code == 403 and "revoked" in revoked.get_json()["error"]["message"]
    wrong_scope = _post(client, api_key("ops", scopes=("status",)), body)
    assert wrong_scope.status_code == 403 and "'links' scope" in wrong_scope.get_json()["error"]["message"]
    assert counts(app) == (0, 0)
    from portal.extensions import db
    from portal.models import AuthorizationLink

    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(AuthorizationLink.id))) == 0


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        ({"provider": None}, "provider", "provider is required"),
        ({"provider": "sage"}, "provider", "Unknown ledger"),
        ({"provider": "exact-online"}, "region", "Choose the Exact Online instance"),
        ({"provider": "exact-online", "region": "xx"}, "region", "has no instance 'xx'"),
        ({"expires_in_days": 31}, "expires_in_days", "1 to 30 days"),
        ({"expires_in_days": "7"}, "expires_in_days", "must be an integer"),
        ({"expires_in_days": True}, "expires_in_days", "must be an integer"),
        ({"organization_id": "nope"}, "organization_id", "no organization with id 'nope'"),
        ({"business_unit_id": 999999}, "business_unit_id", "does not belong"),
        ({"colour": "red"}, "colour", "Unknown field(s): colour"),
        ({"notify_email": "not-an-address"}, "notify_email", "is not an e-mail address"),
        ({"requested_for": ""}, "requested_for", "requested_for is required"),
    ],
)
def test_bad_payloads_get_precise_422s(app, client, api_key, org_external_id, unit_id, change, field, phrase):  # noqa: F811
    body = {
        "organization_id": org_external_id,
        "business_unit_id": unit_id,
        "provider": "bexio",
        "requested_for": "ada",
    }
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = _post(client, api_key(), body)
    error = response.get_json()["error"]
    assert response.status_code == 422, error
    assert error["field"] == field and phrase in error["message"], error


def test_a_body_that_is_not_json_is_refused_saying_so(client, api_key):
    key = api_key()
    response = client.post(API, data="provider=bexio", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 415 and "Content-Type: application/json" in response.get_json()["error"]["message"]
    bad = client.post(
        API,
        data=b'{"provider": bexio}',
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert bad.status_code == 400 and "line 1, column 14" in bad.get_json()["error"]["message"]


def test_the_api_revokes_a_link(app, client, api_key, org_external_id, unit_id, sandbox):  # noqa: F811
    key = api_key()
    body = {
        "organization_id": org_external_id,
        "business_unit_id": unit_id,
        "provider": "bexio",
        "requested_for": "ada",
    }
    created = _post(client, key, body).get_json()
    revoked = client.post(f"{API}/{created['id']}/revoke", headers={"Authorization": f"Bearer {key}"})
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    again = client.post(f"{API}/{created['id']}/revoke", headers={"Authorization": f"Bearer {key}"})
    assert again.status_code == 409
    assert Approver(app, sandbox).open(created["url"].rsplit("/", 1)[1]).status_code == 404


def test_the_cli_creates_a_client_and_prints_its_key_once(app, client, org_external_id):
    result = app.test_cli_runner().invoke(args=["api-clients", "create", "--name", "saas", "--scopes", "links"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("llk_")
    from portal.extensions import db
    from portal.models import ApiClient

    with app.app_context():
        stored = db.session.scalar(db.select(ApiClient).filter_by(name="saas"))
        assert stored.key_hash != key and key not in str(stored.scopes) and stored.scopes == ["links"]
    ok = _post(client, key, {"organization_id": org_external_id, "provider": "bexio", "requested_for": "x"})
    assert ok.status_code in (201, 422)  # authenticated (422 only when the org has several units)
    bad = app.test_cli_runner().invoke(args=["api-clients", "create", "--name", "saas", "--scopes", "admin"])
    assert bad.exit_code != 0 and "scopes must be among" in bad.output
