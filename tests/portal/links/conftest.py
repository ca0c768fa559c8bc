"""Helpers for authorization links: create one as support would, approve it as the approver would."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import csrf_token_of
from tests.portal.connections.conftest import consent, local_path, sandbox, unit_id  # noqa: F401 - fixtures

NL_USER, NL_DIVISIONS = "jan.devries", ["3010001", "3010002"]


@pytest.fixture
def support(client, make_staff, login):
    """A logged-in support member: (client, csrf token, account)."""
    user = make_staff("support")
    return client, login(user), user


@pytest.fixture
def make_link(app):
    """Return a factory: make_link(unit_id, provider=..., **kwargs) -> (link id, token)."""
    from portal.extensions import db
    from portal.links import services
    from portal.models import BusinessUnit

    def make(unit: int, provider: str = "exact-online", region: str | None = "nl", **kwargs):
        with app.test_request_context():
            link, token = services.create_link(
                db.session.get(BusinessUnit, unit), provider=provider, region=region, **kwargs
            )
            db.session.commit()
            return link.id, token

    return make


def url_of(token: str) -> str:
    return f"/authorize/{token}"


class Approver:
    """A browser with no Ledgerlink session, opening a link and approving at the ledger."""

    def __init__(self, app, sandbox_url: str) -> None:
        self.client, self.sandbox = app.test_client(), sandbox_url

    def open(self, token: str, **headers):
        return self.client.get(url_of(token), headers=headers)

    def start(self, token: str):
        page = self.open(token)
        assert page.status_code == 200, page.get_data(as_text=True)
        return self.client.post(url_of(token), data={"csrf_token": csrf_token_of(page.get_data(as_text=True))})

    def approve(self, token: str, decision: str = "approve", **choices):
        """Open, start, decide at the ledger and come back; return the callback response."""
        started = self.start(token)
        assert started.status_code == 302, started.get_data(as_text=True)
        redirect = consent(self.sandbox, started.headers["Location"], decision=decision, **choices)
        return self.client.get(local_path(redirect))


@pytest.fixture
def approver(app, sandbox):  # noqa: F811 - the fixture imported above
    return Approver(app, sandbox)


def expire(app, link_id: int) -> None:
    """Move a link's expiry into the past (the clock is the database's)."""
    from portal.database import utcnow
    from portal.extensions import db
    from portal.models import AuthorizationLink

    with app.app_context():
        link = db.session.get(AuthorizationLink, link_id)
        link.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()


def link_state(app, link_id: int):
    """Return (status, [event kinds], connection id) of a link."""
    from portal.extensions import db
    from portal.models import AuthorizationLink

    with app.app_context():
        link = db.session.get(AuthorizationLink, link_id)
        return link.status.value, [e.kind.value for e in link.events], link.connection_id


def counts(app) -> tuple[int, int]:
    """Return (connections, grants) in the database."""
    from portal.extensions import db
    from portal.models import Connection, OAuthGrant

    with app.app_context():
        return (
            db.session.scalar(db.select(db.func.count(Connection.id))),
            db.session.scalar(db.select(db.func.count(OAuthGrant.id))),
        )


def org_name_of(app, unit: int) -> str:
    from portal.extensions import db
    from portal.models import BusinessUnit

    with app.app_context():
        return db.session.get(BusinessUnit, unit).organization.name
