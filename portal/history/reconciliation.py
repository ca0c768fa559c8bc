"""Reconciliation of a back-fill's range: what the ledger holds against what the SaaS has."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from ..extensions import db
from ..integrations.base import (
    LedgerAdapter,
    LedgerError,
    NotSupported,
)
from ..models import (
    Connection,
    CreditNote,
    ExternalRecord,
    Invoice,
    RecordKind,
    RecordState,
)
from .scope import Scope

# -- reconciliation -------------------------------------------------------------------------------


def reconcile(connection: Connection, scope: Scope, adapter: LedgerAdapter | None) -> dict[str, Any]:
    """Compare counts and totals of the range in the SaaS with the ledger's, per document kind.

    The ledger's side comes from listing its documents where the adapter can, else from our
    records of what was pushed.
    """
    summary: dict[str, Any] = {}
    for kind, model in (("invoice", Invoice), ("credit_note", CreditNote)):
        if kind not in scope.kinds:
            continue
        in_range = (
            model.business_unit_id == connection.business_unit_id,
            model.issue_date >= scope.date_from,
            model.issue_date <= scope.date_to,
        )
        saas_count, saas_total = db.session.execute(
            select(func.count(model.id), func.coalesce(func.sum(model.total), 0)).where(*in_range)
        ).one()
        pushed = (
            select(func.count(model.id), func.coalesce(func.sum(model.total), 0))
            .join(
                ExternalRecord,
                (ExternalRecord.local_id == model.id)
                & (ExternalRecord.kind == RecordKind(kind))
                & (ExternalRecord.connection_id == connection.id),
            )
            .where(*in_range, ExternalRecord.state == RecordState.pushed)
        )
        ours_count, ours_total = db.session.execute(pushed).one()
        source, ledger_count, ledger_total = "our records", ours_count, Decimal(ours_total)
        if adapter is not None:
            try:
                totals = [doc.total for doc in adapter.iter_documents(kind, scope.date_from, scope.date_to)]
                ledger_count, ledger_total = len(totals), sum(totals, Decimal("0"))
                source = "ledger"
            except NotSupported:
                source, ledger_count, ledger_total = "our records", ours_count, Decimal(ours_total)
            except LedgerError as exc:
                source, ledger_count, ledger_total = f"our records (ledger unreadable: {exc})", ours_count, ours_total
        summary[kind] = {
            "saas_count": saas_count,
            "saas_total": str(Decimal(saas_total).quantize(Decimal("0.01"))),
            "ledger_count": ledger_count,
            "ledger_total": str(Decimal(ledger_total).quantize(Decimal("0.01"))),
            "source": source,
            "matches": saas_count == ledger_count
            and Decimal(saas_total).quantize(Decimal("0.01")) == Decimal(ledger_total).quantize(Decimal("0.01")),
        }
    return summary
