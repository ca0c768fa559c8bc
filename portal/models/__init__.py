"""The domain models, one module per aggregate."""

from .audit import AuditEvent
from .billing import (
    CreditNote,
    CreditNoteLine,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    Product,
)
from .organization import BusinessUnit, Organization
from .staff import Role, StaffUser
from .sync import IllegalTransition, SyncRun, SyncRunKind, SyncRunStatus

__all__ = [
    "AuditEvent",
    "BusinessUnit",
    "CreditNote",
    "CreditNoteLine",
    "Customer",
    "IllegalTransition",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "Organization",
    "Payment",
    "PaymentMethod",
    "Product",
    "Role",
    "StaffUser",
    "SyncRun",
    "SyncRunKind",
    "SyncRunStatus",
]
