"""Historical push: preview and push a connection's records of a date range (DESIGN.md "Jobs").

Only records dated on or after a connection's ``sync_from`` sync by themselves; a back-fill pushes
older ones. Both the preview and the push read the range in chunks of ids (keyset pagination,
never the whole range at once) and put every record through one :class:`Classifier`, so the
preview's numbers are what the push then does:

* **existing** — pushed earlier (its ExternalRecord is pushed), linked (customers), or found in
  the ledger by our reference;
* **skipped** — the ledger cannot take it (bexio credit notes; payments until the push exists);
* **blocked** — held with the cause and the screen that fixes it: a mapping gap, a customer not
  linked in link-only mode, a closed period, a credit note whose invoice is not in the ledger;
* **create** — pushed through :mod:`portal.sync.push`, the sync engine's exactly-once protocol.

The push runs kinds in dependency order (customers → invoices → credit notes → payments) and
commits its cursor after every chunk: a crash, a pause or a quota wait resumes at the cursor, and
records pushed already are left alone by their ExternalRecord anyway. While live syncs of the
company work it takes at most ``HISTORY_QUOTA_SHARE`` of every quota window (the shared limiter),
so they keep the rest; while they are idle it uses all but a small reserve
(:data:`portal.sync.limiter.LIVE_RESERVE`): the quota nobody needs is not left unused.

Like :mod:`portal.sync.push`, the push commits as it goes (STYLE 6 names the job's outer
function as the boundary; here every chunk is one): the commits are the resumability.

This module is the room's interface (pages, CLI, jobs) and reads back-fills; the work lives in
:mod:`.scope` (the range and its settings), :mod:`.classify` (one verdict per record),
:mod:`.preview`, :mod:`.lifecycle` (start, pause, resume, cancel), :mod:`.runner` (the job) and
:mod:`.reconciliation`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models import (
    Backfill,
    BackfillItem,
    Connection,
    ItemOutcome,
)

# -- reading a back-fill --------------------------------------------------------------------------
from .classify import has_payment_push
from .lifecycle import request_cancel, request_pause, resume, start
from .preview import estimate, preview, range_counts
from .reconciliation import reconcile
from .runner import crashed, run
from .scope import DEFAULT_SHARE, HistoryError, Scope, parse_scope

__all__ = [
    "DEFAULT_SHARE",
    "HistoryError",
    "Scope",
    "as_dict",
    "backfills_of",
    "crashed",
    "estimate",
    "has_payment_push",
    "items",
    "parse_scope",
    "preview",
    "range_counts",
    "rate_per_minute",
    "reconcile",
    "request_cancel",
    "request_pause",
    "resume",
    "run",
    "start",
]


def items(backfill: Backfill, *, outcome: str | None = None, kind: str | None = None):
    """Return a query of the back-fill's record outcomes, filtered, newest first."""
    stmt = select(BackfillItem).where(BackfillItem.backfill_id == backfill.id)
    if outcome:
        stmt = stmt.where(BackfillItem.outcome == ItemOutcome(outcome))
    if kind:
        stmt = stmt.where(BackfillItem.kind == kind)
    return stmt.order_by(BackfillItem.id.desc())


def rate_per_minute(backfill: Backfill) -> float | None:
    """Return records handled per minute of running time."""
    if not backfill.busy_seconds:
        return None
    return backfill.total() / backfill.busy_seconds * 60


def backfills_of(connection: Connection, limit: int = 20) -> list[Backfill]:
    """Return the connection's back-fills, newest first."""
    return list(
        db.session.scalars(
            select(Backfill).where(Backfill.connection_id == connection.id).order_by(Backfill.id.desc()).limit(limit)
        )
    )


def as_dict(backfill: Backfill) -> dict[str, Any]:
    """Return the back-fill's state as JSON-ready data (the CLI prints this)."""
    return {
        "backfill_id": backfill.id,
        "connection_id": backfill.connection_id,
        "sync_run_id": backfill.sync_run_id,
        "status": backfill.status.value,
        "from": backfill.date_from.isoformat(),
        "to": backfill.date_to.isoformat(),
        "kinds": list(backfill.kinds),
        "counts": backfill.counts,
        "calls": backfill.calls,
        "cursor": {"kind": backfill.cursor_kind, "after_id": backfill.cursor_id},
        "resume_at": backfill.resume_at.isoformat() if backfill.resume_at else None,
        "message": backfill.message,
        "summary": backfill.summary,
    }
