"""One QBO company (realm): its entities, indexes, preferences and the business rules on writes.

Callers hold :attr:`Realm.lock` around every call. Objects are stored in their JSON response
form so reads serialise them directly; indexes keep creates O(1) (names, DocNumbers, requestids).
"""

from __future__ import annotations

import copy
import itertools
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from . import faults as F
from .faults import QBOFault

NAME_ENTITIES = ("Customer", "Vendor", "Employee")
#: Name-list entities: queries return only active rows unless Active is filtered (quickbooks-online.md §2.2).
NAME_LISTS = {"Customer", "Vendor", "Employee", "Item", "Account", "Class", "Term", "TaxCode", "TaxRate"}
SALES_TXNS = ("Invoice", "CreditMemo", "SalesReceipt", "Estimate")
TXNS = (*SALES_TXNS, "Payment")
ENTITY_PATHS = {
    "invoice": "Invoice",
    "customer": "Customer",
    "vendor": "Vendor",
    "employee": "Employee",
    "item": "Item",
    "account": "Account",
    "taxcode": "TaxCode",
    "taxrate": "TaxRate",
    "class": "Class",
    "term": "Term",
    "creditmemo": "CreditMemo",
    "payment": "Payment",
    "salesreceipt": "SalesReceipt",
    "estimate": "Estimate",
    "attachable": "Attachable",
}
QUERYABLE = {name.lower(): name for name in [*ENTITY_PATHS.values(), "CompanyInfo", "Preferences"]}
ORDER_DEFAULT = {
    "Customer": "DisplayName",
    "Vendor": "DisplayName",
    "Employee": "DisplayName",
    "Item": "Name",
    "Account": "Name",
    "Class": "Name",
    "Term": "Name",
    "TaxCode": "Name",
    "TaxRate": "Name",
}

_COMMON = {"Id", "SyncToken", "domain", "sparse", "MetaData", "status"}
_TXN = _COMMON | {
    "DocNumber",
    "TxnDate",
    "PrivateNote",
    "Line",
    "CurrencyRef",
    "ExchangeRate",
    "LinkedTxn",
    "TxnTaxDetail",
    "DepartmentRef",
    "TxnSource",
    "TransactionLocationType",
    "Tag",
    "TxnStatus",
    "CustomField",
    "ClassRef",
    "TaxExemptionRef",
    "ProjectRef",
    "RecurDataRef",
    "HomeTotalAmt",
    "TotalAmt",
    "GlobalTaxCalculation",
}
_SALES = _TXN | {
    "CustomerRef",
    "BillAddr",
    "ShipAddr",
    "ShipFromAddr",
    "FreeFormAddress",
    "SalesTermRef",
    "DueDate",
    "ShipDate",
    "ShipMethodRef",
    "TrackingNum",
    "BillEmail",
    "BillEmailCc",
    "BillEmailBcc",
    "EmailStatus",
    "PrintStatus",
    "CustomerMemo",
    "ApplyTaxAfterDiscount",
    "AllowIPNPayment",
    "AllowOnlinePayment",
    "AllowOnlineCreditCardPayment",
    "AllowOnlineACHPayment",
    "AutoDocNumber",
    "DeliveryInfo",
    "Balance",
    "HomeBalance",
    "Deposit",
    "DepositToAccountRef",
    "InvoiceLink",
    "PONumber",
    "PaymentMethodRef",
    "PaymentRefNum",
    "SalesRepRef",
    "FOB",
    "RemitToRef",
    "DiscountRate",
    "EInvoiceStatus",
    "ECloudStatusTimeStamp",
    "InvoiceEx",
    "LessCIS",
    "TaxFormNum",
    "TaxFormType",
    "invoiceStatusLog",
    "callToAction",
    "ConvenienceFeeDetail",
    "PaymentDetailsMessage",
    "TxnApprovalInfo",
    "RecurringInfo",
    "RemainingCredit",
    "InvoiceRef",
    "ExpirationDate",
    "AcceptedBy",
    "AcceptedDate",
    "PaymentType",
    "CreditCardPayment",
    "TotalTaxAmt",
    "DiscountAmt",
}
_NAMES = _COMMON | {
    "DisplayName",
    "Title",
    "GivenName",
    "MiddleName",
    "FamilyName",
    "Suffix",
    "CompanyName",
    "FullyQualifiedName",
    "PrintOnCheckName",
    "Active",
    "PrimaryPhone",
    "AlternatePhone",
    "Mobile",
    "Fax",
    "PrimaryEmailAddr",
    "WebAddr",
    "OtherContactInfo",
    "BillAddr",
    "ShipAddr",
    "OtherAddr",
    "Notes",
    "Taxable",
    "DefaultTaxCodeRef",
    "SalesTermRef",
    "PaymentMethodRef",
    "CurrencyRef",
    "ParentRef",
    "Job",
    "BillWithParent",
    "Level",
    "Balance",
    "BalanceWithJobs",
    "OpenBalanceDate",
    "PreferredDeliveryMethod",
    "ResaleNum",
    "PrimaryTaxIdentifier",
    "SecondaryTaxIdentifier",
    "TaxExemptionReasonId",
    "IsProject",
    "ARAccountRef",
    "CustomerTypeRef",
    "GSTIN",
    "GSTRegistrationType",
    "BusinessNumber",
    "Source",
    "TaxRegistrationNumber",
    "ClientEntityId",
    "CustomField",
    "AcctNum",
    "Vendor1099",
    "TaxIdentifier",
    "TermRef",
    "BillRate",
    "CostRate",
    "TaxReportingBasis",
    "APAccountRef",
    "VendorPaymentBankDetail",
    "EmployeeNumber",
    "SSN",
    "PrimaryAddr",
    "BillableTime",
    "Organization",
    "BirthDate",
    "Gender",
    "HiredDate",
    "ReleasedDate",
    "V4IDPseudonym",
    "HasTPAR",
    "T4AEligible",
    "T5018Eligible",
}
ALLOWED = {
    **{name: _SALES for name in SALES_TXNS},
    "Payment": _TXN
    | {
        "CustomerRef",
        "DepositToAccountRef",
        "PaymentMethodRef",
        "PaymentRefNum",
        "UnappliedAmt",
        "ProcessPayment",
        "ARAccountRef",
        "CreditCardPayment",
        "TxnSource",
    },
    **{name: _NAMES for name in NAME_ENTITIES},
    "Item": _COMMON
    | {
        "Name",
        "Description",
        "Active",
        "SubItem",
        "ParentRef",
        "Level",
        "FullyQualifiedName",
        "Taxable",
        "SalesTaxIncluded",
        "UnitPrice",
        "RatePercent",
        "Type",
        "PaymentMethodRef",
        "UOMSetRef",
        "IncomeAccountRef",
        "PurchaseDesc",
        "PurchaseTaxIncluded",
        "PurchaseCost",
        "ExpenseAccountRef",
        "COGSAccountRef",
        "AssetAccountRef",
        "PrefVendorRef",
        "AvgCost",
        "TrackQtyOnHand",
        "QtyOnHand",
        "QtyOnPurchaseOrder",
        "QtyOnSalesOrder",
        "ReorderPoint",
        "ManPartNum",
        "DepositToAccountRef",
        "SalesTaxCodeRef",
        "PurchaseTaxCodeRef",
        "InvStartDate",
        "BuildPoint",
        "PrintGroupedItems",
        "SpecialItem",
        "SpecialItemType",
        "ItemGroupDetail",
        "ItemAssemblyDetail",
        "AbatementRate",
        "ReverseChargeRate",
        "ServiceType",
        "ItemCategoryType",
        "ItemEx",
        "TaxClassificationRef",
        "Sku",
        "ClassRef",
        "Source",
    },
    "Account": _COMMON
    | {
        "Name",
        "SubAccount",
        "ParentRef",
        "Description",
        "FullyQualifiedName",
        "AccountAlias",
        "TxnLocationType",
        "Active",
        "Classification",
        "AccountType",
        "AccountSubType",
        "AcctNum",
        "BankNum",
        "OpeningBalance",
        "OpeningBalanceDate",
        "CurrentBalance",
        "CurrentBalanceWithSubAccounts",
        "CurrencyRef",
        "TaxAccount",
        "TaxCodeRef",
        "OnlineBankingEnabled",
        "FIName",
        "JournalCodeRef",
        "AccountEx",
    },
    "Class": _COMMON | {"Name", "SubClass", "ParentRef", "FullyQualifiedName", "Active"},
    "Term": _COMMON
    | {
        "Name",
        "Active",
        "Type",
        "DiscountPercent",
        "DueDays",
        "DiscountDays",
        "DayOfMonthDue",
        "DueNextMonthDays",
        "DiscountDayOfMonth",
    },
    "Attachable": _COMMON
    | {
        "FileName",
        "Note",
        "Category",
        "ContentType",
        "PlaceName",
        "AttachableRef",
        "Long",
        "Tag",
        "Lat",
        "FileAccessUri",
        "TempDownloadUri",
        "Size",
        "ThumbnailFileAccessUri",
        "ThumbnailTempDownloadUri",
    },
}
_JAVA_CLASS = {"Class": "Class", "Term": "Term"}

ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset",
    "Accounts Receivable": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Other Current Liability": "Liability",
    "Long Term Liability": "Liability",
    "Equity": "Equity",
    "Income": "Revenue",
    "Other Income": "Revenue",
    "Cost of Goods Sold": "Expense",
    "Expense": "Expense",
    "Other Expense": "Expense",
}
ITEM_TYPES = {"Service", "NonInventory", "Inventory", "Category", "Group"}
LINE_TYPES = {
    "SalesItemLineDetail",
    "SubTotalLineDetail",
    "DiscountLineDetail",
    "DescriptionOnly",
    "GroupLineDetail",
}
CENT = Decimal("0.01")


def money(value: Any) -> Decimal:
    """Return ``value`` as a Decimal rounded half-up to cents."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def num(value: Decimal) -> float | int:
    """Return a Decimal as a JSON number (ints stay ints, like QBO's ``0``)."""
    return int(value) if value == value.to_integral_value() and abs(value) < 10**15 else float(value)


def strip_blank(value: Any) -> Any:
    """Drop "" values recursively: python-quickbooks sends "" for absent fields (quickbooks-online.md §7)."""
    if isinstance(value, dict):
        return {k: strip_blank(v) for k, v in value.items() if v != "" and v is not None}
    if isinstance(value, list):
        return [strip_blank(v) for v in value]
    return value


def unknown_property(entity: str, name: str) -> QBOFault:
    """Return the 2010 fault for an unknown top-level property (error/400_json.yml)."""
    known = sorted(ALLOWED.get(entity, ()))
    listed = ", ".join(f'"{k}"' for k in known[:60])
    java = _JAVA_CLASS.get(entity, entity)
    return QBOFault(
        "2010",
        "Request has invalid or unsupported property",
        f'Property Name:Unrecognized field "{name}" (class com.intuit.schema.finance.v3.{java}), '
        f"not marked as ignorable ({len(known)} known properties: {listed} [truncated]])\n"
        " specified is unsupported or invalid",
        element=None,
    )


def bad_value(entity: str, name: str, value: Any, java_type: str) -> QBOFault:
    """Return the 2010 fault Jackson produces for a value of the wrong type."""
    return QBOFault(
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:Can not construct instance of {java_type} from String value '{value}' "
        f"(class com.intuit.schema.finance.v3.{entity}) specified is unsupported or invalid",
        element=None,
    )


def to_decimal(entity: str, name: str, value: Any) -> Decimal:
    """Parse a JSON number (or numeric string) field.

    :raise QBOFault: 2010 for a value that is not a number.
    """
    if isinstance(value, bool):
        raise bad_value(entity, name, value, "java.math.BigDecimal")
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise bad_value(entity, name, value, "java.math.BigDecimal") from exc
    if not result.is_finite():
        raise bad_value(entity, name, value, "java.math.BigDecimal")
    return result


def to_date(entity: str, name: str, value: Any) -> date:
    """Parse a ``YYYY-MM-DD`` field.

    :raise QBOFault: 2010 for anything else.
    """
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise bad_value(entity, name, value, "java.util.Date") from exc


class Realm:
    """The state of one emulated QBO company."""

    def __init__(self, realm_id: str, name: str, country: str, tz: str, currency: tuple[str, str]) -> None:
        self.id = realm_id
        self.name = name
        self.country = country
        self.us = country == "US"
        try:
            self.tz = ZoneInfo(tz)
        except Exception:
            self.tz = UTC
        self.currency = {"value": currency[0], "name": currency[1]}
        self.lock = threading.RLock()
        self.entities: dict[str, dict[str, dict]] = {n: {} for n in [*ENTITY_PATHS.values()]}
        #: entity -> id -> POSIX time of the last change (for CDC).
        self.changed: dict[str, dict[str, float]] = {n: {} for n in self.entities}
        #: entity -> id -> (POSIX time, stub) of deleted objects (for CDC).
        self.deleted: dict[str, dict[str, tuple[float, dict]]] = {n: {} for n in self.entities}
        self._ids = {n: itertools.count(1) for n in self.entities}
        # Customers, vendors and employees share one id sequence in QBO (see the recordings).
        self._name_ids = itertools.count(1)
        self.next_doc_number = 1001
        self.names: dict[str, tuple[str, str]] = {}
        self.item_names: dict[str, str] = {}
        self.doc_numbers: dict[tuple[str, str], str] = {}
        self.request_ids: dict[str, tuple[int, bytes]] = {}
        self.attachments: dict[str, bytes] = {}
        self.company_info: dict = {}
        self.preferences: dict = {}
        self.categories_enabled = True
        self.default_tax_code: str | None = None
        self.users: list[str] = []
        self.last_writer = "QuickBooks User"
        #: Ids created by the batch that is running: later items must not see them (quickbooks-online.md §2.3).
        self.batch_hidden: set[tuple[str, str]] | None = None

    # -- time -----------------------------------------------------------------------------
    def local(self, ts: float) -> datetime:
        """Return ``ts`` in the company's time zone."""
        return datetime.fromtimestamp(ts, tz=self.tz)

    def stamp(self, ts: float) -> str:
        """Return a MetaData timestamp (``2020-09-29T05:58:07-07:00``)."""
        return self.local(ts).isoformat(timespec="seconds")

    def time_text(self, ts: float) -> str:
        """Return the envelope ``time`` (``2020-09-29T05:58:07.300-07:00``)."""
        return self.local(ts).isoformat(timespec="milliseconds")

    def today(self, ts: float) -> date:
        """Return the company's current local date."""
        return self.local(ts).date()

    # -- storage --------------------------------------------------------------------------
    def new_id(self, entity: str) -> str:
        """Return the next Id for ``entity``."""
        if entity in NAME_ENTITIES:
            return str(next(self._name_ids))
        return str(next(self._ids[entity]))

    def skip_ids(self, entity: str, upto: int) -> None:
        """Make the next ids of ``entity`` start after ``upto``."""
        if entity in NAME_ENTITIES:
            self._name_ids = itertools.count(upto + 1)
        else:
            self._ids[entity] = itertools.count(upto + 1)

    def get(self, entity: str, obj_id: Any) -> dict | None:
        """Return the stored object, or None (also for ids hidden inside a running batch)."""
        key = str(obj_id)
        if self.batch_hidden and (entity, key) in self.batch_hidden:
            return None
        return self.entities[entity].get(key)

    def put(self, entity: str, obj: dict, ts: float, *, created: bool = False) -> dict:
        """Store ``obj`` and record the change time."""
        self.entities[entity][obj["Id"]] = obj
        self.changed[entity][obj["Id"]] = ts
        if created and self.batch_hidden is not None:
            self.batch_hidden.add((entity, obj["Id"]))
        return obj

    def remove(self, entity: str, obj_id: str, ts: float) -> dict:
        """Delete an object, leaving the stub QBO returns and CDC reports."""
        self.entities[entity].pop(obj_id, None)
        self.changed[entity].pop(obj_id, None)
        stub = {"domain": "QBO", "status": "Deleted", "Id": obj_id}
        self.deleted[entity][obj_id] = (ts, {**stub, "MetaData": {"LastUpdatedTime": self.stamp(ts)}})
        return stub

    def meta(self, ts: float, existing: dict | None = None) -> dict:
        """Return MetaData for a create (or an update of ``existing``)."""
        created = existing["MetaData"]["CreateTime"] if existing else self.stamp(ts)
        return {"CreateTime": created, "LastUpdatedTime": self.stamp(ts)}

    def bump(self, entity: str, obj: dict, ts: float) -> None:
        """Increase SyncToken and LastUpdatedTime after a side-effect change (e.g. a payment)."""
        obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
        obj["MetaData"] = self.meta(ts, obj)
        self.changed[entity][obj["Id"]] = ts

    def ref(self, entity: str, ref: Any, *, element: str, name_key: str = "") -> dict:
        """Resolve a ``{"value": id}`` reference to an active object.

        :raise QBOFault: 2020 when absent, 2500 when unknown or inactive.
        """
        if not isinstance(ref, dict) or not ref.get("value"):
            raise F.required(element)
        obj = self.get(entity, ref["value"])
        if obj is None or obj.get("Active") is False:
            raise F.invalid_reference(
                f"Invalid Reference Id : {entity} assigned to this transaction has been deleted or does not "
                f"exist. Id={ref['value']}",
                element=element,
            )
        return obj

    # -- preferences ------------------------------------------------------------------------
    @property
    def custom_txn_numbers(self) -> bool:
        return bool(self.preferences["SalesFormsPrefs"].get("CustomTxnNumbers"))

    @property
    def closing_date(self) -> date | None:
        text = self.preferences["AccountingInfoPrefs"].get("BookCloseDate")
        return date.fromisoformat(text) if text else None

    @property
    def class_tracking_line(self) -> bool:
        return bool(self.preferences["AccountingInfoPrefs"].get("ClassTrackingPerTxnLine"))

    @property
    def class_tracking_txn(self) -> bool:
        return bool(self.preferences["AccountingInfoPrefs"].get("ClassTrackingPerTxn"))

    def check_open_period(self, txn_date: date) -> None:
        """Refuse a transaction dated on or before the closing date.

        :raise QBOFault: "Account Period Closed" as reported in python-quickbooks#208 (code as
            reported there; quickbooks-online.md §4 has no recorded body for it).
        """
        closing = self.closing_date
        if closing is not None and txn_date <= closing:
            raise QBOFault(
                "6210",
                "Account Period Closed",
                f"The account period has closed. Closing date: {closing.isoformat()}, "
                f"transaction date: {txn_date.isoformat()}",
                element="TxnDate",
            )

    # -- name lists -------------------------------------------------------------------------
    def check_unique_name(self, display_name: str, *, own: tuple[str, str] | None = None) -> None:
        """Refuse a DisplayName used by another customer, vendor or employee (6240)."""
        hit = self.names.get(display_name.strip().lower())
        if hit is not None and hit != own:
            raise F.duplicate_name()

    def term_due(self, term: dict | None, txn_date: date) -> date:
        """Return the due date ``term`` gives a transaction dated ``txn_date``."""
        if term is None:
            return txn_date
        if term.get("Type") == "DATE_DRIVEN":
            day = int(term.get("DayOfMonthDue", 1))
            month = txn_date.replace(day=1) + timedelta(days=32)
            try:
                return month.replace(day=day)
            except ValueError:
                return (month.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        return txn_date + timedelta(days=int(term.get("DueDays", 0)))

    def snapshot(self) -> dict:
        """Return a deep copy of the whole company as JSON-ready data."""
        return copy.deepcopy(
            {
                "realm_id": self.id,
                "CompanyInfo": self.company_info,
                "Preferences": self.preferences,
                "categories_enabled": self.categories_enabled,
                "entities": {k: list(v.values()) for k, v in self.entities.items()},
                "deleted": {k: sorted(v) for k, v in self.deleted.items() if v},
            }
        )
