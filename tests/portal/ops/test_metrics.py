"""/metrics: Prometheus text for a bearer token or ops staff; JSON log lines with job and connection ids."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portal.extensions import db as _db
from portal.infra import logs, metrics
from portal.integrations.http import ResponseInfo
from portal.models import SyncRun, SyncRunKind, SyncRunStatus

TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
def metrics_token(app):
    app.config["METRICS_TOKEN"] = TOKEN
    yield TOKEN
    app.config["METRICS_TOKEN"] = ""


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_bearer_token_gets_the_metrics(app, client, world, metrics_token):
    world.connection(status="failing")
    world.connection("bexio")
    with app.app_context():
        _db.session.add_all(
            [
                SyncRun(kind=SyncRunKind.incremental, status=SyncRunStatus.succeeded, queue="sync"),
                SyncRun(kind=SyncRunKind.incremental, status=SyncRunStatus.failed, queue="sync"),
                SyncRun(kind=SyncRunKind.incremental, status=SyncRunStatus.failed, queue="sync"),
            ]
        )
        _db.session.commit()
        from portal.extensions import queue

        queue.enqueue("jobs.sync.push_connection", 1, queue="history")
        for elapsed, status in ((0.05, 200), (0.3, 200), (1.2, 429)):
            info = ResponseInfo("quickbooks", "123", "GET", "https://x", status, {}, None, elapsed)
            metrics.observe_response(queue.connection, info)

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.mimetype == "text/plain"
    s = _samples(response.get_data(as_text=True))
    assert s[("ledgerlink_queue_depth", (("queue", "history"),))] == 1
    assert s[("ledgerlink_queue_depth", (("queue", "sync"),))] == 0
    assert s[("ledgerlink_sync_runs_total", (("kind", "incremental"), ("status", "failed")))] == 2
    assert s[("ledgerlink_sync_runs_total", (("kind", "incremental"), ("status", "succeeded")))] == 1
    assert s[("ledgerlink_connections", (("provider", "exact-online"), ("status", "failing")))] == 1
    assert s[("ledgerlink_connections", (("provider", "bexio"), ("status", "connected")))] == 1
    assert s[("ledgerlink_provider_throttled_total", (("provider", "quickbooks"),))] == 1
    assert s[("ledgerlink_provider_request_seconds_count", (("provider", "quickbooks"),))] == 3
    assert s[("ledgerlink_provider_request_seconds_bucket", (("le", "0.5"), ("provider", "quickbooks")))] == 2
    assert s[("ledgerlink_provider_request_seconds_sum", (("provider", "quickbooks"),))] == pytest.approx(1.55)


def test_a_wrong_token_is_treated_as_no_login(client, metrics_token):
    for header in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", ""):
        response = client.get("/metrics", headers={"Authorization": header} if header else {})
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), header


def test_without_a_configured_token_only_ops_staff_get_in(client, login, make_staff):
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 302
    login(make_staff("ops"))
    response = client.get("/metrics")
    assert response.status_code == 200 and b"ledgerlink_queue_depth" in response.data


def test_json_log_lines_carry_job_and_connection_ids():
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("ledgerlink.jobs", logging.WARNING, __file__, 1, "push stopped: %s", ("429",), None)
    record.sync_run_id, record.rq_job_id, record.connection_id = 7, "sync-3", 3
    line = json.loads(formatter.format(record))
    assert line["message"] == "push stopped: 429" and line["level"] == "WARNING"
    assert (line["sync_run_id"], line["rq_job_id"], line["connection_id"]) == (7, "sync-3", 3)
    assert "provider" not in line


def test_log_format_json_switches_the_root_handlers():
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    old = handler.formatter
    try:
        logs.configure("text")
        assert not isinstance(handler.formatter, logs.JsonFormatter)
        logs.configure("json")
        assert isinstance(handler.formatter, logs.JsonFormatter)
    finally:
        root.removeHandler(handler)
        handler.setFormatter(old)


def test_window_usage_reads_todays_counters_and_ignores_a_past_window(app):
    from datetime import UTC, datetime

    from portal.extensions import queue
    from portal.sync import limiter

    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    future, past = int(now.timestamp() * 1000) + 3_600_000, int(now.timestamp() * 1000) - 1
    with app.app_context():
        r = queue.connection
        r.hset(limiter.window_key("exact-online", "1", "day"), mapping={"used": 40, "limit": 5000, "reset": future})
        r.hset(limiter.window_key("exact-online", "2", "day"), mapping={"used": 99, "limit": 5000, "reset": past})
        usage = limiter.window_usage(r, "exact-online", ["1", "2", "3"], "day", now)
    assert usage["1"] == {"used": 40.0, "limit": 5000.0, "reset": float(future)}
    assert usage["2"]["used"] == 0.0 and "3" not in usage


def test_the_response_hook_counts_in_memory_and_adds_them_in_one_pipeline_on_flush(app, monkeypatch):
    from portal.extensions import queue

    monkeypatch.setattr(metrics, "FLUSH_SECONDS", 3600.0)  # only an explicit flush adds them
    with app.app_context():
        connection = queue.connection
        key = f"{metrics.KEY_PREFIX}:bexio"
        metrics.flush()  # counts of earlier responses in this process
        connection.delete(key)
        hook = metrics.response_hook(connection)
        for elapsed, status in ((0.05, 200), (0.3, 200), (1.2, 429), (40.0, 200)):
            hook(ResponseInfo("bexio", "c1", "GET", "https://x", status, {}, None, elapsed))
        assert not connection.exists(key), "nothing is sent per response"

        pipelines = []
        original = connection.pipeline
        monkeypatch.setattr(connection, "pipeline", lambda *a, **k: pipelines.append(1) or original(*a, **k))
        metrics.flush()
        counted = {k.decode(): float(v) for k, v in connection.hgetall(key).items()}

    assert len(pipelines) == 1
    assert counted["count"] == 4 and counted["status_429"] == 1
    assert counted["sum"] == pytest.approx(41.55)
    assert counted["le:0.1"] == 1 and counted["le:0.5"] == 2 and counted["le:30.0"] == 3
    assert counted["le:0.25"] == 1


def test_a_second_of_responses_is_added_without_waiting_for_a_flush(app, monkeypatch):
    from portal.extensions import queue

    monkeypatch.setattr(metrics, "FLUSH_SECONDS", 0.0)  # every response is past the interval
    with app.app_context():
        connection = queue.connection
        key = f"{metrics.KEY_PREFIX}:exact-online"
        metrics.flush()
        connection.delete(key)
        hook = metrics.response_hook(connection)
        hook(ResponseInfo("exact-online", "1", "GET", "https://x", 200, {}, None, 0.2))
        assert connection.hget(key, "count") == b"1"
