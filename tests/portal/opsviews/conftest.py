"""The operation-log suite's fixtures: connected organizations through the sandbox and an ops client."""

from __future__ import annotations

from tests.portal.oplog.conftest import (  # noqa: F401 - fixtures
    add_operations,
    connect,
    flow,
    make_invoice,
    ops_client,
    org_unit,
    sandbox,
)


def run_queued_jobs(flask_app) -> None:
    """Work every queued job once on the test's Redis, in this process, as a worker would."""
    from rq.serializers import JSONSerializer

    from portal.extensions import queue
    from portal.queue import AppContextWorker

    with flask_app.app_context():
        state = queue.state
        worker = AppContextWorker(list(state.queues.values()), connection=state.connection, serializer=JSONSerializer)
        worker.flask_app = flask_app
        worker.work(burst=True, logging_level="WARNING")
