"""The ops dashboard keeps itself current, says when jobs fail and when connections are not live yet, and
shows the Exact quota as a bar; the connection page puts the status and its call to action on top."""

from __future__ import annotations

import re
from datetime import timedelta

from portal.database import utcnow
from portal.extensions import db as _db
from portal.models import Connection, ConnectionStatus, SyncRun, SyncRunKind, SyncRunStatus
from portal.sync import limiter

HX = {"HX-Request": "true"}


def _window(app, division: str, used: int, limit: int = 5000) -> None:
    from portal.extensions import queue

    with app.app_context():
        reset_ms = int((utcnow() + timedelta(hours=3)).timestamp() * 1000)
        key = limiter.window_key("exact-online", division, "day")
        queue.connection.hset(key, mapping={"used": used, "limit": limit, "reset": reset_ms})


def _failed_run(app, minutes_ago: float) -> None:
    with app.app_context():
        run = SyncRun(kind=SyncRunKind.incremental, queue="sync", parameters={})
        _db.session.add(run)
        _db.session.flush()
        run.transition(SyncRunStatus.running)
        run.transition(SyncRunStatus.failed, message="The ledger was down.")
        run.finished_at = utcnow() - timedelta(minutes=minutes_ago)
        _db.session.commit()


def test_the_dashboard_polls_its_own_fragment(app, ops_client, world):
    client, _ = ops_client
    world.connection()
    page = client.get("/ops/").get_data(as_text=True)
    polling = 'id="ops-figures" hx-get="/ops/" hx-trigger="every 30s" hx-target="this" hx-swap="outerHTML"'
    assert polling in page
    fragment = client.get("/ops/", headers=HX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in html and 'id="ops-figures"' in html and 'data-count="healthy"' in html
    assert "data-refreshed" in html


def test_jobs_failing_is_said_while_runs_fail_and_not_for_old_failures(app, ops_client, world):
    client, _ = ops_client
    _failed_run(app, minutes_ago=120)
    html = client.get("/ops/", headers=HX).get_data(as_text=True)
    assert 'id="jobs-failing"' not in html and 'id="jobs-ok"' in html
    _failed_run(app, minutes_ago=5)
    _failed_run(app, minutes_ago=1)
    html = client.get("/ops/", headers=HX).get_data(as_text=True)
    assert 'id="jobs-failing"' in html and "Jobs failing:" in html
    assert "2 background job(s) failed in the last 1 hour(s)" in html
    assert 'href="/ops/jobs?state=failed"' in html


def test_quota_bars_turn_amber_at_75_and_red_at_90_percent_with_the_reset(app, ops_client, world):
    client, _ = ops_client
    for division in ("3200001", "3200002", "3200003"):
        world.connection(company=division)
    _window(app, "3200001", 1000)
    _window(app, "3200002", 3750)
    _window(app, "3200003", 4600)
    html = client.get("/ops/").get_data(as_text=True)
    levels = dict(re.findall(r'<tr data-division="(\d+)" data-quota-level="(\w+)">', html))
    assert levels == {"3200001": "ok", "3200002": "amber", "3200003": "red"}
    red = html.split('data-division="3200003"', 1)[1].split("</tr>", 1)[0]
    assert '<meter class="quota quota-red" min="0" max="5000" low="3750.0" high="4500.0"' in red
    assert 'value="4600"' in red and "92 %" in red and "nearly spent" in red and "resets 00:00 UTC" in red
    amber = html.split('data-division="3200002"', 1)[1].split("</tr>", 1)[0]
    assert "75 %" in amber and "running low" in amber


def test_connections_not_live_yet_are_counted_listed_and_badged(app, ops_client, world):
    client, _ = ops_client
    live = world.connection()
    setting_up = world.connection(live=False)
    world.connection(status="disconnected", live=False)  # history, not "being set up"
    html = client.get("/ops/").get_data(as_text=True)
    assert re.search(r'data-count="not_live">1</a> connection\(s\) being set up', html)
    assert 'data-count="not_live_card">1<' in html
    listed = client.get("/ops/connections?health=not_live").get_data(as_text=True)
    assert f'id="connection-{setting_up}"' in listed and f'id="connection-{live}"' not in listed
    assert "data-not-live" in listed
    assert client.get("/ops/connections?health=bogus").status_code == 400
    records = client.get(f"/ops/connections/{setting_up}/records").get_data(as_text=True)
    assert 'id="records-not-live"' in records and "wait for the go-live" in records
    assert 'id="records-not-live"' not in client.get(f"/ops/connections/{live}/records").get_data(as_text=True)


def test_the_connection_page_leads_with_the_status_its_reason_and_what_to_do(app, ops_client, world):
    client, token = ops_client
    cid = world.connection()

    def top(status: ConnectionStatus, reason: str) -> str:
        with app.app_context():
            connection = _db.session.get(Connection, cid)
            connection.status, connection.status_reason = status, reason
            _db.session.commit()
        html = client.get(f"/connections/{cid}").get_data(as_text=True)
        return html.split('<article id="status"', 1)[1].split("</article>", 1)[0]

    reauth = top(ConnectionStatus.needs_reauthorization, "Exact refused the refresh token (invalid_grant)")
    assert "no longer accepts this connection" in reauth and "invalid_grant" in reauth
    assert 'id="cta-reauthorize"' in reauth and f'action="/connections/{cid}/reconnect"' in reauth
    assert 'id="cta-send-link"' in reauth and "/authorization-links/new" in reauth

    failing = top(ConnectionStatus.failing, "Exact Online was unavailable 3 times in a row")
    assert "Pushes are failing" in failing and "unavailable 3 times" in failing
    assert 'id="cta-checks"' in failing and f'hx-post="/connections/{cid}/test"' in failing

    paused = top(ConnectionStatus.paused, "Customer asked to wait")
    assert "Paused" in paused and "Customer asked to wait" in paused and 'id="cta-resume"' in paused
    assert client.post(f"/ops/connections/{cid}/resume", data={"csrf_token": token}).status_code in (302, 303)

    html = client.get(f"/connections/{cid}").get_data(as_text=True)
    nav = html.split('<nav class="page-nav"', 1)[1].split("</nav>", 1)[0]
    for anchor in ("#status", "#onboarding", "#sync", "#setup", "#test-box", "#settings-box", "#access"):
        assert f'href="{anchor}"' in nav and f'id="{anchor[1:]}"' in html
