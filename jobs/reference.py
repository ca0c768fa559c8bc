"""Refresh a connection's cached reference data from its ledger in the background."""

from __future__ import annotations

from portal.connections import services as connection_services
from portal.extensions import db
from portal.mappings import services
from portal.models import Connection, SyncRun

from .runtime import tracked


@tracked
def refresh_reference_data(run: SyncRun, log) -> dict:
    """Read every reference list of ``run.parameters["connection_id"]`` and replace the cache.

    :raise LookupError: when the connection is gone or disconnected (the run fails with it).
    """
    connection_id = run.parameters["connection_id"]
    connection = db.session.get(Connection, connection_id)
    if connection is None or not connection.is_live:
        raise LookupError(f"connection {connection_id} does not exist or is disconnected")
    counts = services.refresh_reference(connection)
    connection_services.note_success(connection)
    run.progress_total = run.progress_done = len(counts)
    run.message = f"Read {sum(counts.values())} rows of {len(counts)} lists from {services.provider_name(connection)}."
    log.info("reference data refreshed: %s", counts)
    return counts
