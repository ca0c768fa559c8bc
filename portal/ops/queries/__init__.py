"""Queries behind the ops console: health across every organization, failure groups, record lists.

Each page runs a fixed number of statements, whatever the number of rows it shows: lists are
paginated in SQL and what a row needs besides its own table is read for the whole page at once.
The figures are in :mod:`.dashboard`, kept in Redis by :mod:`.cache`; the lists in
:mod:`.connections`, :mod:`.failures` and :mod:`.records`; what they share in :mod:`.common`.
"""

from __future__ import annotations

from .cache import dashboard_keys, minute_cached
from .common import EXPIRY_HORIZON, HEALTH, HELD, SORTS, provider_name
from .connections import ConnectionFilters, connection_count, connections_query, held_counts, shared_companies
from .dashboard import (
    FAILING_JOBS_WINDOW,
    daily_volume,
    exact_divisions,
    failed_runs,
    held_total,
    late_counts_at,
    not_live_waiting,
    oldest_failure,
    status_counts_at,
)
from .failures import FailureFilters, failure_groups, held_ids_query, held_records_query
from .records import (
    RecordFilters,
    connection_records_query,
    held_customers,
    local_labels,
    state_counts,
    sync_delay_minutes,
)

__all__ = [
    "EXPIRY_HORIZON",
    "FAILING_JOBS_WINDOW",
    "HEALTH",
    "HELD",
    "SORTS",
    "ConnectionFilters",
    "FailureFilters",
    "RecordFilters",
    "connection_count",
    "connection_records_query",
    "connections_query",
    "daily_volume",
    "dashboard_keys",
    "exact_divisions",
    "failed_runs",
    "failure_groups",
    "held_counts",
    "held_customers",
    "held_ids_query",
    "held_records_query",
    "held_total",
    "late_counts_at",
    "local_labels",
    "minute_cached",
    "not_live_waiting",
    "oldest_failure",
    "provider_name",
    "shared_companies",
    "state_counts",
    "status_counts_at",
    "sync_delay_minutes",
]
