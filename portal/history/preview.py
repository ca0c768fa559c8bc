"""The preview of a back-fill: per kind what would be created, exists, is skipped or blocked, and how long it takes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from ..connections import vault
from ..extensions import db
from ..integrations import specs
from ..integrations.base import (
    LedgerAdapter,
)
from ..models import (
    Connection,
)
from ..sync import limiter

# -- preview --------------------------------------------------------------------------------------
from .classify import Classifier, has_payment_push, supports_batch
from .scope import (
    PREVIEW_LIST_LIMIT,
    Scope,
    chunk_size,
    clear_session,
    date_of,
    id_query,
    label_of,
    load,
    next_ids,
    quota_share,
    records_of,
)


@dataclass
class KindPreview:
    """A kind's numbers in a preview."""

    kind: str
    create: int = 0
    existing: int = 0
    skipped: int = 0
    blocked: int = 0

    @property
    def total(self) -> int:
        """Return every record of the kind in the range."""
        return self.create + self.existing + self.skipped + self.blocked


@dataclass
class Preview:
    """What a back-fill would do: per-kind numbers, blocked records with fixes, calls and duration."""

    scope: Scope
    provider: str
    kinds: dict[str, KindPreview]
    blocked: list[dict[str, Any]] = field(default_factory=list)
    causes: list[dict[str, Any]] = field(default_factory=list)
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    estimate: dict[str, Any] = field(default_factory=dict)
    closed_periods: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Return every record of the range over the chosen kinds."""
        return sum(k.total for k in self.kinds.values())

    def as_dict(self) -> dict[str, Any]:
        """Return the preview as JSON-ready data (the CLI prints this)."""
        return {
            "connection_id": self.scope.connection_id,
            "provider": self.provider,
            "from": self.scope.date_from.isoformat(),
            "to": self.scope.date_to.isoformat(),
            "kinds": {k: {**asdict(v), "total": v.total} for k, v in self.kinds.items()},
            "blocked": self.blocked,
            "blocked_causes": self.causes,
            "skipped_reasons": self.skipped_reasons,
            "calls": self.calls,
            "estimate": self.estimate,
            "closed_periods": self.closed_periods,
            "notes": self.notes,
        }


def range_counts(connection: Connection, scope: Scope) -> dict[str, Any]:
    """Return how many records of each kind the range holds (one count query per kind, no ledger call)."""
    kinds = {}
    for kind in scope.kinds:
        sub = id_query(connection, kind, scope.date_from, scope.date_to).subquery()
        kinds[kind] = {"total": db.session.scalar(select(func.count()).select_from(sub))}
    return {"kinds": kinds}


def _iter_chunks(connection: Connection, kind: str, scope: Scope, *, after: int = 0) -> Iterator[list[int]]:
    size = chunk_size()
    while True:
        ids = next_ids(connection, kind, scope.date_from, scope.date_to, after=after, limit=size)
        if not ids:
            return
        yield ids
        after = ids[-1]


def preview(connection: Connection, scope: Scope, adapter: LedgerAdapter | None = None) -> Preview:
    """Count what a back-fill of ``scope`` would create, find existing, skip and block; write nothing.

    Reads the ledger (closed periods, its documents of the range where it can list them) but
    writes nothing to it nor to our records.

    :raise LedgerError: when the ledger cannot be read.
    """
    adapter = adapter or vault.fresh_adapter(connection)
    classifier = Classifier(connection, adapter, scope)
    result = Preview(scope, connection.provider, {k: KindPreview(k) for k in scope.kinds})
    causes: dict[str, dict[str, Any]] = {}
    for kind in scope.kinds:
        numbers = result.kinds[kind]
        for ids in _iter_chunks(connection, kind, scope):
            records = records_of(connection, kind, ids)
            for obj in load(kind, ids):
                v = classifier.verdict(kind, obj, records.get(obj.id))
                setattr(numbers, v.outcome, getattr(numbers, v.outcome) + 1)
                if v.outcome == "skipped":
                    key = v.reason.split(":")[0] if v.reason else "Skipped"
                    result.skipped_reasons[key] = result.skipped_reasons.get(key, 0) + 1
                if v.outcome == "blocked":
                    cause = causes.setdefault(
                        v.fix_label or v.reason or "",
                        {"cause": v.fix_label, "fix_url": v.fix_url, "count": 0, "example": v.reason},
                    )
                    cause["count"] += 1
                    if len(result.blocked) < PREVIEW_LIST_LIMIT:
                        day = date_of(kind, obj)
                        result.blocked.append(
                            {
                                "kind": kind,
                                "id": obj.id,
                                "label": label_of(kind, obj),
                                "date": day.isoformat() if day else None,
                                "reason": v.reason,
                                "fix_url": v.fix_url,
                                "fix_label": v.fix_label,
                            }
                        )
            connection = clear_session(keep=connection)
            classifier.rebind(connection)
    result.causes = sorted(causes.values(), key=lambda c: -c["count"])
    result.closed_periods = [
        {"start": p.start.isoformat() if p.start else None, "end": p.end.isoformat(), "reason": p.reason}
        for p in classifier.closed
    ]
    result.calls = calls_needed(connection, adapter, result)
    result.estimate = estimate(connection, result.calls)
    if "payment" in scope.kinds and not has_payment_push():
        result.notes.append("Payments: not yet — the payment push is not available, so payments are skipped.")
    elif "payment" in scope.kinds and (mode := classifier._payments_mode()) is not None:
        result.notes.append(mode.reason or "")
    if not classifier.in_ledger:
        result.notes.append(
            f"{classifier.name} documents are not listed here: records already in the ledger are recognised by "
            "their push record, and by our reference when a push finds them."
        )
    return result


#: Ledger calls per record created singly: documents and payments are looked up by our reference
#: before they are created (every adapter does, so a re-run never doubles them); customers are
#: looked up by their identifiers first (one ``or``-filtered query in Exact, a few elsewhere).
CALLS_PER_RECORD = {"customer": 2, "invoice": 2, "credit_note": 2, "payment": 2}
#: Where a provider needs more per document, as measured by bench/backfill.py (Exact: the look-up,
#: the create, and the after-push steps of the connection's sending method).
PROVIDER_CALLS_PER_RECORD = {specs.EXACT_ONLINE: {"invoice": 5, "credit_note": 5}}
#: Calls per batch call: the adapter looks the batch's numbers up in one query, then sends the batch.
CALLS_PER_BATCH = 2


def calls_needed(connection: Connection, adapter: LedgerAdapter | None, result: Preview) -> int:
    """Return about how many ledger calls the back-fill makes (batched where the ledger can).

    Counts the creates, the look-ups that guard them, and the range's reads (closed periods,
    the ledger's documents before and after, for the reconciliation).
    """
    batch = adapter.capabilities.batch_size if adapter is not None and supports_batch(adapter) else None
    documents = [k for k in result.kinds if k in ("invoice", "credit_note")]
    calls = 1 + 2 * len(documents)
    for kind, numbers in result.kinds.items():
        n = numbers.create
        if batch and kind == "invoice":
            calls += math.ceil(n / batch) * CALLS_PER_BATCH
        else:
            per = PROVIDER_CALLS_PER_RECORD.get(connection.provider, {}).get(kind, CALLS_PER_RECORD[kind])
            calls += n * per
    return calls


def estimate(connection: Connection, calls: int, share: float | None = None) -> dict[str, Any]:
    """Return how long ``calls`` ledger calls take within the back-fill's share of the quota."""
    spec = specs.get_spec(connection.provider)
    share = quota_share() if share is None else share
    per_minute = max(1, int(spec.quotas.per_minute * share))
    per_day = max(1, int(spec.quotas.per_day * share)) if spec.quotas.per_day else None
    seconds = calls / per_minute * 60
    days = 1
    if per_day and calls > per_day:
        days = math.ceil(calls / per_day)
        seconds = (days - 1) * 86400 + (calls - (days - 1) * per_day) / per_minute * 60
    quota = f"{spec.quotas.per_minute:,} calls a minute"
    if spec.quotas.per_day:
        quota += f" and {spec.quotas.per_day:,} a day"
    idle = max(share, 1 - limiter.LIVE_RESERVE)
    text = (
        f"About {calls:,} {spec.name} calls. {spec.name} allows {quota} per {spec.quotas.per}; the back-fill uses "
        f"{share:.0%} of that while the live sync works, leaving it the rest, and up to {idle:.0%} while it is idle"
    )
    if days > 1:
        text += (
            f". At {per_day:,} calls a day this back-fill spans {days} days: it waits for each daily quota to "
            "reset and continues by itself."
        )
    else:
        text += f", so it takes at most about {_duration(seconds)}."
    return {"calls": calls, "seconds": round(seconds, 1), "days": days, "share": share, "text": text}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} seconds"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"
