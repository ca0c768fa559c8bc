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
from .connection import (
    Connection,
    ConnectionStatus,
    GrantPurpose,
    OAuthGrant,
    SendingMethod,
)
from .organization import BusinessUnit, Organization
from .staff import Role, StaffUser
from .sync import IllegalTransition, SyncRun, SyncRunKind, SyncRunStatus

__all__ = [
    "AuditEvent",
    "BusinessUnit",
    "Connection",
    "ConnectionStatus",
    "CreditNote",
    "CreditNoteLine",
    "Customer",
    "GrantPurpose",
    "IllegalTransition",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "OAuthGrant",
    "Organization",
    "Payment",
    "PaymentMethod",
    "Product",
    "Role",
    "SendingMethod",
    "StaffUser",
    "SyncRun",
    "SyncRunKind",
    "SyncRunStatus",
]
