"""The domain models, one module per aggregate."""

from .api import ApiClient
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
    TaxKind,
)
from .connection import (
    Connection,
    ConnectionStatus,
    GrantOutcome,
    GrantPurpose,
    OAuthGrant,
    SendingMethod,
)
from .customer_link import CustomerLink, LedgerCustomerCache, LinkMethod, LinkSuggestion
from .external_record import ExternalRecord, RecordKind, RecordState
from .history import Backfill, BackfillItem, BackfillStatus, ItemOutcome
from .lease import ConnectionLease
from .link import AuthorizationLink, AuthorizationLinkEvent, LinkEventKind, LinkStatus
from .mapping import Mapping, ReferenceData, TaxMapping
from .operation_log import OperationLog
from .organization import BusinessUnit, Organization
from .staff import Role, StaffUser
from .sync import IllegalTransition, SyncRun, SyncRunKind, SyncRunStatus

__all__ = [
    "ApiClient",
    "AuditEvent",
    "AuthorizationLink",
    "AuthorizationLinkEvent",
    "Backfill",
    "BackfillItem",
    "BackfillStatus",
    "BusinessUnit",
    "Connection",
    "ConnectionLease",
    "ConnectionStatus",
    "CreditNote",
    "CreditNoteLine",
    "Customer",
    "CustomerLink",
    "ExternalRecord",
    "GrantOutcome",
    "GrantPurpose",
    "IllegalTransition",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "ItemOutcome",
    "LedgerCustomerCache",
    "LinkEventKind",
    "LinkMethod",
    "LinkStatus",
    "LinkSuggestion",
    "Mapping",
    "OAuthGrant",
    "OperationLog",
    "Organization",
    "Payment",
    "PaymentMethod",
    "Product",
    "RecordKind",
    "RecordState",
    "ReferenceData",
    "Role",
    "SendingMethod",
    "StaffUser",
    "SyncRun",
    "SyncRunKind",
    "SyncRunStatus",
    "TaxKind",
    "TaxMapping",
]
