"""Entity field sets and endpoint table of the emulated Exact Online REST API.

Field lists of Account, GLAccount, SalesInvoice(Line) and Item follow the recorded responses in
Exact's .NET SDK (exactonline/exactonline-api-dotnet-client, test JSON, in their order); newer fields
from exact-online.md §3 are appended. The other entities follow exact-online.md and picqer's entity classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

ACCOUNT_FIELDS = (
    ("Accountant", None),
    ("AccountManager", None),
    ("AccountManagerFullName", None),
    ("AccountManagerHID", None),
    ("ActivitySector", None),
    ("ActivitySubSector", None),
    ("AddressLine1", None),
    ("AddressLine2", None),
    ("AddressLine3", None),
    ("Blocked", False),
    ("BRIN", None),
    ("BusinessType", None),
    ("CanDropShip", False),
    ("ChamberOfCommerce", None),
    ("City", None),
    ("Classification", None),
    ("ClassificationDescription", None),
    ("Code", None),
    ("CodeAtSupplier", None),
    ("CompanySize", None),
    ("ConsolidationScenario", 0),
    ("ControlledDate", None),
    ("Costcenter", None),
    ("CostcenterDescription", None),
    ("CostPaid", 0),
    ("Country", None),
    ("Created", None),
    ("Creator", None),
    ("CreatorFullName", None),
    ("CreditLinePurchase", 0),
    ("CreditLineSales", 0),
    ("Currency", None),
    ("CustomerSince", None),
    ("DiscountPurchase", 0),
    ("DiscountSales", 0),
    ("Division", 0),
    ("Document", None),
    ("DunsNumber", None),
    ("Email", None),
    ("EndDate", None),
    ("Fax", None),
    ("GLAccountPurchase", None),
    ("GLAccountSales", None),
    ("GLAP", None),
    ("GLAR", None),
    ("ID", None),
    ("IntraStatArea", None),
    ("IntraStatDeliveryTerm", None),
    ("IntraStatSystem", None),
    ("IntraStatTransactionA", None),
    ("IntraStatTransactionB", None),
    ("IntraStatTransportMethod", None),
    ("InvoiceAccount", None),
    ("InvoiceAccountCode", None),
    ("InvoiceAccountName", None),
    ("InvoiceAttachmentType", 0),
    ("InvoicingMethod", 0),
    ("IsAccountant", 0),
    ("IsAgency", 0),
    ("IsBank", False),
    ("IsCompetitor", 0),
    ("IsMailing", 0),
    ("IsMember", False),
    ("IsPilot", False),
    ("IsPurchase", False),
    ("IsReseller", False),
    ("IsSales", False),
    ("IsSupplier", False),
    ("Language", None),
    ("LanguageDescription", None),
    ("Latitude", None),
    ("LeadSource", None),
    ("LogoFileName", None),
    ("LogoThumbnailUrl", None),
    ("LogoUrl", None),
    ("Logo", None),
    ("Longitude", None),
    ("MainContact", None),
    ("Modified", None),
    ("Modifier", None),
    ("ModifierFullName", None),
    ("Name", None),
    ("Parent", None),
    ("PaymentConditionPurchase", None),
    ("PaymentConditionPurchaseDescription", None),
    ("PaymentConditionSales", None),
    ("PaymentConditionSalesDescription", None),
    ("Phone", None),
    ("PhoneExtension", None),
    ("Postcode", None),
    ("PriceList", None),
    ("PurchaseCurrency", None),
    ("PurchaseCurrencyDescription", None),
    ("PurchaseLeadDays", 0),
    ("PurchaseVATCode", None),
    ("PurchaseVATCodeDescription", None),
    ("Remarks", None),
    ("RecepientOfCommissions", False),
    ("Reseller", None),
    ("ResellerCode", None),
    ("ResellerName", None),
    ("SalesCurrency", None),
    ("SalesCurrencyDescription", None),
    ("SalesVATCode", None),
    ("SalesVATCodeDescription", None),
    ("SearchCode", None),
    ("SecurityLevel", 0),
    ("SeparateInvPerProject", 0),
    ("SeparateInvPerSubscription", 0),
    ("ShippingLeadDays", 0),
    ("ShippingMethod", None),
    ("StartDate", None),
    ("State", None),
    ("StateName", None),
    ("Status", None),
    ("StatusSince", None),
    ("Type", None),
    ("VATLiability", None),
    ("VATNumber", None),
    ("Website", None),
)

GLACCOUNT_FIELDS = (
    ("BalanceSide", None),
    ("BalanceType", None),
    ("BelcotaxType", None),
    ("Code", None),
    ("Compress", False),
    ("Costcenter", None),
    ("CostcenterDescription", None),
    ("Costunit", None),
    ("CostunitDescription", None),
    ("Created", None),
    ("Creator", None),
    ("CreatorFullName", None),
    ("Description", None),
    ("Division", 0),
    ("ExcludeVATListing", 0),
    ("ExpenseNonDeductiblePercentage", 0),
    ("ID", None),
    ("IsBlocked", False),
    ("Matching", False),
    ("Modified", None),
    ("Modifier", None),
    ("ModifierFullName", None),
    ("PrivateGLAccount", None),
    ("PrivatePercentage", 0),
    ("ReportingCode", None),
    ("RevalueCurrency", False),
    ("SearchCode", None),
    ("Type", 0),
    ("TypeDescription", None),
    ("UseCostcenter", 0),
    ("UseCostunit", 0),
    ("VATCode", None),
    ("VATDescription", None),
    ("VATGLAccountType", None),
    ("VATNonDeductibleGLAccount", None),
    ("VATNonDeductiblePercentage", 0),
    ("YearEndCostGLAccount", None),
    ("YearEndReflectionGLAccount", None),
)

SALESINVOICE_FIELDS = (
    ("AmountFC", 0),
    ("AmountDC", 0),
    ("Created", None),
    ("Creator", None),
    ("CreatorFullName", None),
    ("Currency", None),
    ("Description", None),
    ("Division", 0),
    ("Document", None),
    ("DocumentNumber", None),
    ("DocumentSubject", None),
    ("DueDate", None),
    ("InvoiceDate", None),
    ("InvoiceID", None),
    ("InvoiceTo", None),
    ("InvoiceToContactPerson", None),
    ("InvoiceToContactPersonFullName", None),
    ("InvoiceToName", None),
    ("InvoiceNumber", None),
    ("Journal", None),
    ("JournalDescription", None),
    ("Modified", None),
    ("Modifier", None),
    ("ModifierFullName", None),
    ("OrderDate", None),
    ("OrderedBy", None),
    ("OrderedByContactPerson", None),
    ("OrderedByContactPersonFullName", None),
    ("OrderedByName", None),
    ("OrderNumber", 0),
    ("PaymentCondition", None),
    ("PaymentConditionDescription", None),
    ("Remarks", None),
    ("Salesperson", None),
    ("SalespersonFullName", None),
    ("Status", 0),
    ("StatusDescription", None),
    ("Type", 0),
    ("TypeDescription", None),
    ("VATAmountFC", 0),
    ("VATAmountDC", 0),
    ("YourRef", None),
)

SALESINVOICELINE_FIELDS = (
    ("AmountFC", 0),
    ("AmountDC", 0),
    ("CostCenter", None),
    ("CostCenterDescription", None),
    ("CostUnit", None),
    ("CostUnitDescription", None),
    ("Description", None),
    ("Discount", 0),
    ("Division", 0),
    ("Employee", None),
    ("EmployeeFullName", None),
    ("EndTime", None),
    ("GLAccount", None),
    ("GLAccountDescription", None),
    ("ID", None),
    ("InvoiceID", None),
    ("Item", None),
    ("ItemDescription", None),
    ("LineNumber", 0),
    ("NetPrice", 0),
    ("Notes", None),
    ("Pricelist", None),
    ("PricelistDescription", None),
    ("Project", None),
    ("ProjectDescription", None),
    ("Quantity", 0),
    ("StartTime", None),
    ("Subscription", None),
    ("SubscriptionDescription", None),
    ("UnitCode", None),
    ("UnitDescription", None),
    ("UnitPrice", 0),
    ("VATAmountFC", 0),
    ("VATAmountDC", 0),
    ("VATCode", None),
    ("VATCodeDescription", None),
    ("VATPercentage", 0),
)

ITEM_FIELDS = (
    ("ID", None),
    ("IsSerialNumberItem", None),
    ("IsBatchNumberItem", 0),
    ("Class_01", None),
    ("Class_02", None),
    ("Class_03", None),
    ("Class_04", None),
    ("Class_05", None),
    ("Class_06", None),
    ("Class_07", None),
    ("Class_08", None),
    ("Class_09", None),
    ("Class_10", None),
    ("Code", None),
    ("CopyRemarks", 0),
    ("CostPriceCurrency", None),
    ("CostPriceNew", None),
    ("CostPriceStandard", 0),
    ("AverageCost", None),
    ("Created", None),
    ("CreatorFullName", None),
    ("Creator", None),
    ("Description", None),
    ("Division", 0),
    ("EndDate", None),
    ("ExtraDescription", None),
    ("Barcode", None),
    ("FreeBoolField_01", False),
    ("FreeBoolField_02", False),
    ("FreeBoolField_03", False),
    ("FreeBoolField_04", False),
    ("FreeBoolField_05", False),
    ("FreeDateField_01", None),
    ("FreeDateField_02", None),
    ("FreeDateField_03", None),
    ("FreeDateField_04", None),
    ("FreeDateField_05", None),
    ("FreeNumberField_01", None),
    ("FreeNumberField_02", None),
    ("FreeNumberField_03", None),
    ("FreeNumberField_04", None),
    ("FreeNumberField_05", None),
    ("FreeNumberField_06", None),
    ("FreeNumberField_07", None),
    ("FreeNumberField_08", None),
    ("FreeTextField_01", None),
    ("FreeTextField_02", None),
    ("FreeTextField_03", None),
    ("FreeTextField_04", None),
    ("FreeTextField_05", None),
    ("FreeTextField_06", None),
    ("FreeTextField_07", None),
    ("FreeTextField_08", None),
    ("FreeTextField_09", None),
    ("FreeTextField_10", None),
    ("GLCostsCode", None),
    ("GLCostsDescription", None),
    ("GLCosts", None),
    ("GLRevenueCode", None),
    ("GLRevenueDescription", None),
    ("GLRevenue", None),
    ("GLStockCode", None),
    ("GLStockDescription", None),
    ("GLStock", None),
    ("IsBatchItem", 0),
    ("IsFractionAllowedItem", False),
    ("IsMakeItem", 0),
    ("IsNewContract", 0),
    ("IsOnDemandItem", 0),
    ("IsPackageItem", False),
    ("IsPurchaseItem", False),
    ("IsRegistrationCodeItem", 0),
    ("IsSalesItem", False),
    ("IsSerialItem", False),
    ("IsStockItem", False),
    ("IsSubcontractedItem", False),
    ("IsTaxableItem", None),
    ("IsTime", 0),
    ("IsWebshopItem", 0),
    ("ItemGroupCode", None),
    ("ItemGroupDescription", None),
    ("ItemGroup", None),
    ("Modified", None),
    ("ModifierFullName", None),
    ("Modifier", None),
    ("GrossWeight", None),
    ("NetWeight", None),
    ("NetWeightUnit", None),
    ("Notes", None),
    ("PictureName", None),
    ("PictureUrl", None),
    ("PictureThumbnailUrl", None),
    ("SalesVatCodeDescription", None),
    ("SalesVatCode", None),
    ("SearchCode", None),
    ("SecurityLevel", 0),
    ("StartDate", None),
    ("Stock", 0),
    ("Unit", None),
    ("UnitDescription", None),
    ("UnitType", None),
)

#: Fields the 2013 recordings predate but exact-online.md §3.1, §3.7 documents.
ACCOUNT_FIELDS += (("IsSales", False), ("Timestamp", 0))
ACCOUNT_FIELDS = tuple(dict(ACCOUNT_FIELDS).items())
GLACCOUNT_FIELDS += (("Timestamp", 0),)
ITEM_FIELDS += (("Timestamp", 0),)
SALESINVOICE_FIELDS += (
    ("AmountFCExclVat", 0),
    ("DeliverTo", None),
    ("DeliverToName", None),
    ("Discount", 0),
    ("DiscountType", 0),
    ("PaymentReference", None),
    ("Timestamp", 0),
)
SALESINVOICELINE_FIELDS += (("ItemCode", None), ("VATCodeDescription", None), ("DeliveryDate", None))
SALESINVOICELINE_FIELDS = tuple(dict(SALESINVOICELINE_FIELDS).items())

VATCODE_FIELDS = (
    ("ID", None),
    ("Code", None),
    ("Description", None),
    ("Percentage", 0),
    ("Type", None),
    ("VATTransactionType", None),
    ("IsBlocked", False),
    ("Charged", False),
    ("EUSalesListing", None),
    ("GLToPay", None),
    ("GLToPayCode", None),
    ("GLToPayDescription", None),
    ("GLToClaim", None),
    ("GLToClaimCode", None),
    ("GLToClaimDescription", None),
    ("LegalText", None),
    ("OssCountry", None),
    ("Created", None),
    ("Creator", None),
    ("Modified", None),
    ("Modifier", None),
    ("Division", 0),
)
JOURNAL_FIELDS = (
    ("ID", None),
    ("Code", None),
    ("Description", None),
    ("Type", 0),
    ("TypeDescription", None),
    ("Currency", None),
    ("CurrencyDescription", None),
    ("AllowVariableCurrency", False),
    ("AllowVariableExchangeRate", False),
    ("IsBlocked", False),
    ("GLAccount", None),
    ("GLAccountCode", None),
    ("GLAccountDescription", None),
    ("Created", None),
    ("Creator", None),
    ("Modified", None),
    ("Modifier", None),
    ("Division", 0),
)
PAYMENTCONDITION_FIELDS = (
    ("ID", None),
    ("Code", None),
    ("Description", None),
    ("PaymentDays", 0),
    ("PaymentEndOfMonths", 0),
    ("DiscountPaymentDays", 0),
    ("DiscountPercentage", 0),
    ("PaymentDiscountType", None),
    ("PaymentMethod", None),
    ("Percentage", 0),
    ("VATCalculation", None),
    ("Created", None),
    ("Creator", None),
    ("Modified", None),
    ("Modifier", None),
    ("Division", 0),
)
FINANCIALPERIOD_FIELDS = (
    ("ID", None),
    ("FinYear", 0),
    ("FinPeriod", 0),
    ("StartDate", None),
    ("EndDate", None),
    ("Created", None),
    ("Creator", None),
    ("Modified", None),
    ("Modifier", None),
    ("Division", 0),
)
SALESENTRY_FIELDS = (
    ("EntryID", None),
    ("AmountDC", 0),
    ("AmountFC", 0),
    ("Created", None),
    ("Creator", None),
    ("Currency", None),
    ("Customer", None),
    ("CustomerName", None),
    ("Description", None),
    ("Division", 0),
    ("Document", None),
    ("DueDate", None),
    ("EntryDate", None),
    ("EntryNumber", 0),
    ("ExternalLinkReference", None),
    ("InvoiceNumber", 0),
    ("Journal", None),
    ("JournalDescription", None),
    ("Modified", None),
    ("Modifier", None),
    ("OrderNumber", None),
    ("PaymentCondition", None),
    ("PaymentConditionDescription", None),
    ("PaymentReference", None),
    ("Rate", 1),
    ("ReportingPeriod", 0),
    ("ReportingYear", 0),
    ("Reversal", False),
    ("Status", 0),
    ("StatusDescription", None),
    ("Type", 0),
    ("TypeDescription", None),
    ("VATAmountDC", 0),
    ("VATAmountFC", 0),
    ("YourRef", None),
    ("Timestamp", 0),
)
SALESENTRYLINE_FIELDS = (
    ("ID", None),
    ("AmountDC", 0),
    ("AmountFC", 0),
    ("CostCenter", None),
    ("CostUnit", None),
    ("Description", None),
    ("Division", 0),
    ("EntryID", None),
    ("From", None),
    ("GLAccount", None),
    ("GLAccountCode", None),
    ("GLAccountDescription", None),
    ("LineNumber", 0),
    ("Project", None),
    ("Quantity", 0),
    ("To", None),
    ("VATAmountDC", 0),
    ("VATAmountFC", 0),
    ("VATBaseAmountDC", 0),
    ("VATBaseAmountFC", 0),
    ("VATCode", None),
    ("VATCodeDescription", None),
    ("VATPercentage", 0),
)
DOCUMENT_FIELDS = (
    ("ID", None),
    ("Account", None),
    ("AccountCode", None),
    ("AccountName", None),
    ("Body", None),
    ("Category", None),
    ("CategoryDescription", None),
    ("Created", None),
    ("Creator", None),
    ("Division", 0),
    ("DocumentDate", None),
    ("DocumentFolder", None),
    ("DocumentViewUrl", None),
    ("FinancialTransactionEntryID", None),
    ("HasEmptyBody", True),
    ("HID", 0),
    ("Language", None),
    ("Modified", None),
    ("Modifier", None),
    ("SalesInvoiceNumber", None),
    ("Subject", None),
    ("Type", 0),
    ("TypeDescription", None),
    ("Timestamp", 0),
)
DOCUMENTATTACHMENT_FIELDS = (
    ("ID", None),
    ("Attachment", None),
    ("Document", None),
    ("FileName", None),
    ("FileSize", 0),
    ("Url", None),
    ("Division", 0),
)
RECEIVABLE_FIELDS = (
    ("ID", None),
    ("Account", None),
    ("AccountCode", None),
    ("AccountName", None),
    ("AmountDC", 0),
    ("AmountFC", 0),
    ("Created", None),
    ("Currency", None),
    ("Description", None),
    ("Division", 0),
    ("DueDate", None),
    ("EntryDate", None),
    ("EntryID", None),
    ("EntryNumber", 0),
    ("InvoiceDate", None),
    ("InvoiceNumber", 0),
    ("IsFullyPaid", False),
    ("Journal", None),
    ("JournalDescription", None),
    ("LastPaymentDate", None),
    ("Modified", None),
    ("PaymentCondition", None),
    ("PaymentMethod", None),
    ("Source", 0),
    ("Status", 0),
    ("TransactionAmountDC", 0),
    ("TransactionAmountFC", 0),
    ("TransactionEntryID", None),
    ("TransactionID", None),
    ("TransactionIsReversal", False),
    ("TransactionReportingPeriod", 0),
    ("TransactionReportingYear", 0),
    ("YourRef", None),
    ("Timestamp", 0),
)
RECEIVABLESLIST_FIELDS = (
    ("HID", 0),
    ("AccountCode", None),
    ("AccountId", None),
    ("AccountName", None),
    ("Amount", 0),
    ("AmountInTransit", 0),
    ("CurrencyCode", None),
    ("Description", None),
    ("DueDate", None),
    ("EntryNumber", 0),
    ("Id", None),
    ("InvoiceDate", None),
    ("InvoiceNumber", 0),
    ("JournalCode", None),
    ("JournalDescription", None),
    ("YourRef", None),
)
PRINTEDSALESINVOICE_FIELDS = (
    ("InvoiceID", None),
    ("Division", 0),
    ("Document", None),
    ("DocumentCreationError", None),
    ("DocumentCreationSuccess", None),
    ("DocumentLayout", None),
    ("EmailCreationError", None),
    ("EmailCreationSuccess", None),
    ("EmailLayout", None),
    ("ExtraText", None),
    ("InvoiceDate", None),
    ("PeppolCreationError", None),
    ("PeppolCreationSuccess", None),
    ("PostboxMessageCreationError", None),
    ("PostboxMessageCreationSuccess", None),
    ("PostboxSender", None),
    ("ReportingPeriod", 0),
    ("ReportingYear", 0),
    ("SendEmailToCustomer", False),
    ("SenderEmailAddress", None),
    ("SendInvoiceToCustomerPostbox", False),
    ("SendInvoiceViaPeppol", False),
    ("SendOutputBasedOnAccount", False),
)
#: Bank entries (picqer BankEntry.php / BankEntryLine.php, Exact SDK BankEntryLine.cs).
BANKENTRY_FIELDS = (
    ("EntryID", None),
    ("BankStatementDocument", None),
    ("BankStatementDocumentNumber", None),
    ("BankStatementDocumentSubject", None),
    ("ClosingBalanceFC", 0),
    ("Created", None),
    ("Currency", None),
    ("Division", 0),
    ("EntryNumber", 0),
    ("FinancialPeriod", 0),
    ("FinancialYear", 0),
    ("JournalCode", None),
    ("JournalDescription", None),
    ("Modified", None),
    ("OpeningBalanceFC", 0),
    ("Status", 0),
    ("StatusDescription", None),
)
BANKENTRYLINE_FIELDS = (
    ("ID", None),
    ("Account", None),
    ("AccountCode", None),
    ("AccountName", None),
    ("AmountDC", 0),
    ("AmountFC", 0),
    ("AmountVATFC", 0),
    ("CostCenter", None),
    ("CostUnit", None),
    ("Created", None),
    ("Date", None),
    ("Description", None),
    ("Division", 0),
    ("Document", None),
    ("EntryID", None),
    ("EntryNumber", 0),
    ("ExchangeRate", 1),
    ("GLAccount", None),
    ("GLAccountCode", None),
    ("GLAccountDescription", None),
    ("LineNumber", 0),
    ("Modified", None),
    ("Notes", None),
    ("OffsetID", None),
    ("OurRef", None),
    ("Project", None),
    ("Quantity", 0),
    ("VATCode", None),
    ("VATPercentage", 0),
    ("VATType", None),
)
#: read/financial/JournalStatusList (picqer JournalStatusList.php): Status 0 open, 1 closed.
JOURNALSTATUS_FIELDS = (
    ("Journal", None),
    ("Period", 0),
    ("Year", 0),
    ("JournalDescription", None),
    ("JournalType", 0),
    ("JournalTypeDescription", None),
    ("Status", 0),
    ("StatusDescription", None),
)
DIVISION_FIELDS = (
    ("Code", 0),
    ("BlockingStatus", 0),
    ("Country", None),
    ("CountryDescription", None),
    ("Created", None),
    ("Currency", None),
    ("CurrencyDescription", None),
    ("Current", False),
    ("Customer", None),
    ("CustomerCode", None),
    ("CustomerName", None),
    ("Description", None),
    ("Hid", 0),
    ("IsMainDivision", False),
    ("Legislation", None),
    ("Modified", None),
    ("StartDate", None),
    ("ArchiveDate", None),
    ("Status", 1),
    ("VATNumber", None),
)
ME_FIELDS = (
    ("UserID", None),
    ("AccountingDivision", 0),
    ("CurrentDivision", 0),
    ("DivisionCustomer", None),
    ("DivisionCustomerCode", None),
    ("DivisionCustomerName", None),
    ("DivisionCustomerVatNumber", None),
    ("Email", None),
    ("EmployeeID", None),
    ("FirstName", None),
    ("FullName", None),
    ("Gender", None),
    ("Initials", None),
    ("IsClientUser", False),
    ("IsStarterUser", False),
    ("LanguageCode", None),
    ("LastName", None),
    ("Legislation", 0),
    ("MiddleName", None),
    ("PackageCode", None),
    ("ServerTime", None),
    ("ServerUtcOffset", 0),
    ("UserName", None),
)
DELETED_FIELDS = (
    ("Timestamp", 0),
    ("DeletedBy", None),
    ("DeletedDate", None),
    ("Division", 0),
    ("EntityKey", None),
    ("EntityType", 0),
    ("ID", None),
)

#: Field names whose values are dates, rendered as /Date(ms)/ (exact-online.md §3.0).
DATE_FIELDS = frozenset(
    {
        "Created",
        "Modified",
        "StartDate",
        "EndDate",
        "DueDate",
        "InvoiceDate",
        "OrderDate",
        "EntryDate",
        "DocumentDate",
        "StatusSince",
        "CustomerSince",
        "ControlledDate",
        "DeliveryDate",
        "StartTime",
        "EndTime",
        "LastPaymentDate",
        "ServerTime",
        "ArchiveDate",
        "From",
        "To",
        "DeletedDate",
        "Date",
        "FreeDateField_01",
        "FreeDateField_02",
        "FreeDateField_03",
        "FreeDateField_04",
        "FreeDateField_05",
    }
)


@dataclass(frozen=True)
class Entity:
    """One OData entity type: its set name, canonical path, key and fields."""

    #: Table name inside a division (also the entity set name).
    table: str
    #: Canonical service path used in __metadata uris, e.g. "crm/Accounts".
    path: str
    type_name: str
    key: str
    fields: tuple[tuple[str, object], ...]
    #: Navigation property -> (child table, foreign key on the child).
    nav: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Fields the emulator accepts on POST/PUT besides the listed ones (write-only helpers).
    writable_extra: frozenset[str] = frozenset()

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Return the property names in output order (navigation properties included)."""
        # Cached: render() and check_properties() ask on every request (bench/sandbox_throughput.py).
        return tuple(n for n, _ in self.fields) + tuple(self.nav)

    @cached_property
    def known(self) -> frozenset[str]:
        """Return every property name a request body may carry (plus ``__metadata``)."""
        return frozenset(self.names) | {"__metadata"}

    def blank(self) -> dict:
        """Return a record with every field at its default."""
        return dict(self.fields)


def _t(name: str) -> str:
    return f"Exact.Web.Api.Models.{name}"


ACCOUNT = Entity(
    "Accounts",
    "crm/Accounts",
    _t("Account"),
    "ID",
    ACCOUNT_FIELDS,
    nav={"BankAccounts": ("BankAccounts", "Account")},
)
ITEM = Entity("Items", "logistics/Items", _t("Item"), "ID", ITEM_FIELDS)
VATCODE = Entity("VATCodes", "vat/VATCodes", _t("VATCode"), "ID", VATCODE_FIELDS)
GLACCOUNT = Entity("GLAccounts", "financial/GLAccounts", _t("GLAccount"), "ID", GLACCOUNT_FIELDS)
JOURNAL = Entity("Journals", "financial/Journals", _t("Journal"), "ID", JOURNAL_FIELDS)
PAYMENTCONDITION = Entity(
    "PaymentConditions", "cashflow/PaymentConditions", _t("PaymentCondition"), "ID", PAYMENTCONDITION_FIELDS
)
FINANCIALPERIOD = Entity(
    "FinancialPeriods", "financial/FinancialPeriods", _t("FinancialPeriod"), "ID", FINANCIALPERIOD_FIELDS
)
SALESINVOICELINE = Entity(
    "SalesInvoiceLines",
    "salesinvoice/SalesInvoiceLines",
    _t("SalesInvoiceLine"),
    "ID",
    SALESINVOICELINE_FIELDS,
)
SALESINVOICE = Entity(
    "SalesInvoices",
    "salesinvoice/SalesInvoices",
    _t("SalesInvoice"),
    "InvoiceID",
    SALESINVOICE_FIELDS,
    nav={"SalesInvoiceLines": ("SalesInvoiceLines", "InvoiceID")},
)
PRINTEDSALESINVOICE = Entity(
    "PrintedSalesInvoices",
    "salesinvoice/PrintedSalesInvoices",
    _t("PrintedSalesInvoice"),
    "InvoiceID",
    PRINTEDSALESINVOICE_FIELDS,
)
SALESENTRYLINE = Entity(
    "SalesEntryLines", "salesentry/SalesEntryLines", _t("SalesEntryLine"), "ID", SALESENTRYLINE_FIELDS
)
SALESENTRY = Entity(
    "SalesEntries",
    "salesentry/SalesEntries",
    _t("SalesEntry"),
    "EntryID",
    SALESENTRY_FIELDS,
    nav={"SalesEntryLines": ("SalesEntryLines", "EntryID")},
)
DOCUMENT = Entity("Documents", "documents/Documents", _t("Document"), "ID", DOCUMENT_FIELDS)
DOCUMENTATTACHMENT = Entity(
    "DocumentAttachments",
    "documents/DocumentAttachments",
    _t("DocumentAttachment"),
    "ID",
    DOCUMENTATTACHMENT_FIELDS,
)
BANKENTRYLINE = Entity(
    "BankEntryLines", "financialtransaction/BankEntryLines", _t("BankEntryLine"), "ID", BANKENTRYLINE_FIELDS
)
BANKENTRY = Entity(
    "BankEntries",
    "financialtransaction/BankEntries",
    _t("BankEntry"),
    "EntryID",
    BANKENTRY_FIELDS,
    nav={"BankEntryLines": ("BankEntryLines", "EntryID")},
)
#: Rows are computed per (journal, year, period); ``ID`` is a hidden row key for paging only.
JOURNALSTATUS = Entity(
    "JournalStatusList",
    "read/financial/JournalStatusList",
    _t("JournalStatusList"),
    "ID",
    JOURNALSTATUS_FIELDS,
)
RECEIVABLE = Entity("Receivables", "cashflow/Receivables", _t("Receivable"), "ID", RECEIVABLE_FIELDS)
RECEIVABLESLIST = Entity(
    "ReceivablesList", "read/financial/ReceivablesList", _t("ReceivablesList"), "HID", RECEIVABLESLIST_FIELDS
)
DIVISION = Entity("Divisions", "system/Divisions", _t("SystemDivision"), "Code", DIVISION_FIELDS)
ALLDIVISION = Entity("AllDivisions", "system/AllDivisions", _t("AllDivision"), "Code", DIVISION_FIELDS)
ME = Entity("Me", "current/Me", _t("Me"), "UserID", ME_FIELDS)
DELETED = Entity("Deleted", "sync/Deleted", _t("Deleted"), "ID", DELETED_FIELDS)
SYNCSALESINVOICE = Entity(
    "SyncSalesInvoices",
    "sync/SalesInvoice/SalesInvoices",
    _t("SyncSalesInvoice"),
    "ID",
    tuple(dict(SALESINVOICELINE_FIELDS + SALESINVOICE_FIELDS).items()),
)

#: Fields a normal GET may filter on when mandatory filtering is on (exact-online.md §3.0, picqer#591).
ACCOUNT_FILTER_FIELDS = (
    "Accountant",
    "AccountManager",
    "Blocked",
    "ChamberOfCommerce",
    "Classification",
    "Code",
    "Created",
    "Email",
    "ID",
    "IsSales",
    "IsSupplier",
    "Modified",
    "Name",
    "Parent",
    "Postcode",
    "SearchCode",
    "Status",
    "Type",
    "VATNumber",
)
ITEM_FILTER_FIELDS = (
    "Barcode",
    "Code",
    "Created",
    "Description",
    "ID",
    "IsSalesItem",
    "ItemGroup",
    "Modified",
)
INVOICE_FILTER_FIELDS = (
    "Created",
    "Description",
    "InvoiceDate",
    "InvoiceID",
    "InvoiceNumber",
    "InvoiceTo",
    "Journal",
    "Modified",
    "OrderedBy",
    "OrderNumber",
    "Status",
    "Type",
    "YourRef",
)
DOCUMENT_FILTER_FIELDS = (
    "Account",
    "Created",
    "FinancialTransactionEntryID",
    "ID",
    "Modified",
    "Subject",
    "Type",
)


@dataclass(frozen=True)
class Endpoint:
    """One URL below /api/v1/{division}/ and what it allows."""

    entity: Entity
    methods: frozenset[str]
    page_size: int = 60
    #: Fields one of which a GET $filter must use (None: no mandatory filtering).
    mandatory_filter: tuple[str, ...] | None = None
    #: Bulk/sync endpoints need $select (or $top=1), exact-online.md §3.0.
    needs_select: bool = False
    #: Sync endpoints filter only on Timestamp (exact-online.md §3.12).
    sync: bool = False
    #: The real, mixed-case service path (``sync/CRM/Accounts``), from the reference.
    path: str = ""
    #: Properties Exact documents for this endpoint that the sandbox does not model: they may be
    #: selected, filtered and ordered on, and always read null (``properties.json``).
    unmodelled: tuple[str, ...] = ()

    @cached_property
    def selectable(self) -> frozenset[str]:
        """Return every name ``$select`` accepts: modelled fields, navigation and documented ones."""
        return frozenset(self.entity.names) | frozenset(self.unmodelled)

    @cached_property
    def filterable(self) -> frozenset[str]:
        """Return every name ``$filter`` and ``$orderby`` accept (no navigation properties)."""
        return frozenset(n for n, _ in self.entity.fields) | frozenset(self.unmodelled)


_G = frozenset({"GET"})
_GP = frozenset({"GET", "POST"})
_GPPD = frozenset({"GET", "POST", "PUT", "DELETE"})
_GPD = frozenset({"GET", "POST", "DELETE"})


def _bulk(entity: Entity) -> Endpoint:
    return Endpoint(entity, _G, page_size=1000, needs_select=True)


def _sync(entity: Entity) -> Endpoint:
    return Endpoint(entity, _G, page_size=1000, needs_select=True, sync=True)


#: Lower-cased resource path -> endpoint (Exact matches service paths case-insensitively).
ENDPOINTS: dict[str, Endpoint] = {
    "system/divisions": Endpoint(DIVISION, _G),
    "system/alldivisions": Endpoint(ALLDIVISION, _G),
    "crm/accounts": Endpoint(ACCOUNT, _GPPD, mandatory_filter=ACCOUNT_FILTER_FIELDS),
    "logistics/items": Endpoint(ITEM, _GPPD, mandatory_filter=ITEM_FILTER_FIELDS),
    "vat/vatcodes": Endpoint(VATCODE, _G),
    "financial/glaccounts": Endpoint(GLACCOUNT, _G),
    "financial/journals": Endpoint(JOURNAL, _G),
    "financial/financialperiods": Endpoint(FINANCIALPERIOD, _G),
    "cashflow/paymentconditions": Endpoint(PAYMENTCONDITION, _G),
    "salesinvoice/salesinvoices": Endpoint(SALESINVOICE, _GPPD, mandatory_filter=INVOICE_FILTER_FIELDS),
    "salesinvoice/salesinvoicelines": Endpoint(SALESINVOICELINE, _G),
    "salesinvoice/printedsalesinvoices": Endpoint(PRINTEDSALESINVOICE, frozenset({"POST"})),
    "salesentry/salesentries": Endpoint(SALESENTRY, _GPD),
    "salesentry/salesentrylines": Endpoint(SALESENTRYLINE, _G),
    "documents/documents": Endpoint(DOCUMENT, _GP, mandatory_filter=DOCUMENT_FILTER_FIELDS),
    "documents/documentattachments": Endpoint(DOCUMENTATTACHMENT, _GP),
    "cashflow/receivables": Endpoint(RECEIVABLE, _G),
    "read/financial/receivableslist": Endpoint(RECEIVABLESLIST, _G),
    "read/financial/journalstatuslist": Endpoint(JOURNALSTATUS, _G),
    "financialtransaction/bankentries": Endpoint(BANKENTRY, _GP),
    "financialtransaction/bankentrylines": Endpoint(BANKENTRYLINE, _G),
    "bulk/crm/accounts": _bulk(ACCOUNT),
    "bulk/logistics/items": _bulk(ITEM),
    "bulk/salesinvoice/salesinvoices": _bulk(SALESINVOICE),
    "bulk/salesinvoice/salesinvoicelines": _bulk(SALESINVOICELINE),
    "bulk/cashflow/receivables": _bulk(RECEIVABLE),
    "bulk/documents/documents": _bulk(DOCUMENT),
    "bulk/financial/glaccounts": _bulk(GLACCOUNT),
    "sync/crm/accounts": _sync(ACCOUNT),
    "sync/logistics/items": _sync(ITEM),
    "sync/salesinvoice/salesinvoices": _sync(SYNCSALESINVOICE),
    "sync/cashflow/paymentterms": _sync(RECEIVABLE),
    "sync/financial/glaccounts": _sync(GLACCOUNT),
    "sync/documents/documents": _sync(DOCUMENT),
    "sync/deleted": _sync(DELETED),
}

#: Documented properties per endpoint, as Exact's REST reference lists them (real-cased paths).
DOCUMENTED: dict[str, tuple[str, ...]] = {
    path: tuple(names)
    for path, names in json.loads((Path(__file__).parent / "properties.json").read_text(encoding="utf-8"))[
        "endpoints"
    ].items()
}


def _documented(key: str, endpoint: Endpoint) -> Endpoint:
    path = next((p for p in DOCUMENTED if p.lower() == key), key)
    modelled = set(endpoint.entity.names)
    extra = tuple(n for n in DOCUMENTED.get(path, ()) if n not in modelled)
    return replace(endpoint, path=path, unmodelled=extra)


ENDPOINTS = {key: _documented(key, endpoint) for key, endpoint in ENDPOINTS.items()}
#: current/Me has no division segment and no entry in ENDPOINTS; its documented properties.
ME_ENDPOINT = _documented("current/me", Endpoint(ME, frozenset({"GET"})))

#: sync/Deleted EntityType codes (exact-online.md §3.12, LF sync/Deleted.go).
DELETED_TYPES = {
    "Accounts": 2,
    "DocumentAttachments": 4,
    "Documents": 6,
    "GLAccounts": 7,
    "Items": 9,
    "Receivables": 10,
    "SalesInvoices": 13,
}
