"""A connection made through an authorization link starts being set up: not live, its reference data being read."""

from __future__ import annotations

from tests.portal.links.conftest import NL_USER, link_state
from tests.portal.sync.rq_workers import run_queued_jobs


def test_a_completed_link_queues_the_first_data_run_and_leaves_the_connection_not_live(
    app, db, make_link, approver, unit_id
):
    from portal.mappings.services import reference_data
    from portal.models import Connection, SyncRun, SyncRunKind

    link_id, token = make_link(unit_id, expected_company_id="3010001")
    approver.open(token)
    done = approver.approve(token, user=NL_USER)
    assert done.status_code == 200, done.get_data(as_text=True)
    _status, _events, connection_id = link_state(app, link_id)
    connection = db.session.get(Connection, connection_id)
    assert connection.live_since is None  # nothing is pushed until support takes it live

    (run,) = db.session.scalars(db.select(SyncRun).where(SyncRun.kind == SyncRunKind.reference_refresh)).all()
    assert run.parameters == {"connection_id": connection_id, "first_data_run": True}
    run_queued_jobs(app)
    db.session.expire_all()
    assert db.session.get(SyncRun, run.id).status.value == "succeeded"
    assert {"items", "tax_codes", "journals"} <= set(reference_data(db.session.get(Connection, connection_id)))
