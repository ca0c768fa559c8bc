"""The entity names of the QuickBooks Online Accounting API v3, emulated or not.

Names as in Intuit's API reference ("All entities") and its XSD (``IntuitRestServiceDef.xsd``,
the ``IntuitObject`` substitution group), limited to those QBO serves: the QuickBooks Desktop-only
types of that XSD (SalesOrder, StatementCharge, InventorySite, …) are not QBO entities.

A name here that the sandbox does not emulate behaves as in a real company that has none of it:
queries (alone, in a batch) answer an empty ``QueryResponse``, ``COUNT(*)`` answers 0, change data
capture answers an empty block for it, and reading one by id answers "Object Not Found".
"""

from __future__ import annotations

#: Every queryable QBO entity (Accounting API v3).
QBO_ENTITIES: tuple[str, ...] = (
    "Account",
    "Attachable",
    "Bill",
    "BillPayment",
    "Budget",
    "Class",
    "CompanyCurrency",
    "CompanyInfo",
    "CreditCardPayment",
    "CreditMemo",
    "Customer",
    "CustomerType",
    "Department",
    "Deposit",
    "Employee",
    "Estimate",
    "ExchangeRate",
    "Invoice",
    "Item",
    "JournalCode",
    "JournalEntry",
    "Payment",
    "PaymentMethod",
    "Preferences",
    "Purchase",
    "PurchaseOrder",
    "RecurringTransaction",
    "RefundReceipt",
    "ReimburseCharge",
    "SalesReceipt",
    "TaxAgency",
    "TaxClassification",
    "TaxCode",
    "TaxPayment",
    "TaxRate",
    "Term",
    "TimeActivity",
    "Transfer",
    "Vendor",
    "VendorCredit",
)

#: Lower-cased name -> real name (QBO matches entity names case-insensitively in queries).
BY_LOWER: dict[str, str] = {name.lower(): name for name in QBO_ENTITIES}


def unemulated(emulated: set[str] | frozenset[str]) -> frozenset[str]:
    """Return the real entity names the sandbox does not emulate, given the emulated ones."""
    return frozenset(QBO_ENTITIES) - set(emulated)
