"""What Exact Online's REST API (OData v2) answers, endpoint by endpoint (types, not values).

Learnt from responses recorded by Exact's own .NET SDK (a Dutch demo division, 2013) and by
picqer's PHP client (logistics/Items, 2022), and from Exact's API reference:

- A collection is ``{"d": {"results": [...]}}``; when more rows follow, ``d.__next`` is the URL of
  the next page, continuing with ``$skiptoken=guid'<last ID>'``. A single entity is ``{"d": {...}}``.
- Every entity carries ``__metadata`` (``uri`` of itself, ``type`` such as
  ``Exact.Web.Api.Models.Account``); a navigation property not expanded is
  ``{"__deferred": {"uri": …}}``, an expanded one ``{"results": [...]}``, possibly empty.
- Dates are OData v2 literals, ``"/Date(1356998400000)/"``; ids are GUIDs; codes are strings.
- Every answer carries the daily and minutely rate-limit headers (``X-RateLimit-Limit``,
  ``-Remaining``, ``-Reset`` and the ``X-RateLimit-Minutely-*`` triple), as numbers.

The recorded field sets are from 2013 (items 2022); the API has added fields since (IsSales,
Timestamp, AmountFCExclVat …), so entities are open: every field listed must be there with its
type, and newer ones may follow.
"""

from __future__ import annotations

from . import BOOL, GUID, INT, NUM, ODATA_DATE, STR, URL, Answer, Const, Maybe, Obj

#: The rate-limit headers on every answer.
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Minutely-Limit",
    "X-RateLimit-Minutely-Remaining",
    "X-RateLimit-Minutely-Reset",
)

S, G, D, N = Maybe(STR), Maybe(GUID), Maybe(ODATA_DATE), Maybe(NUM)
METADATA = {"uri": URL, "type": STR}
DEFERRED = {"__deferred": {"uri": URL}}


def entity(type_name: str, fields: dict) -> Obj:
    """An entity of ``Exact.Web.Api.Models.<type_name>``: its metadata and (at least) these fields."""
    return Obj({"__metadata": {"uri": URL, "type": Const(f"Exact.Web.Api.Models.{type_name}")}, **fields}, extra=True)


def expanded(shape) -> dict:
    """An expanded navigation property."""
    return {"results": [shape]}


def collection(shape, *, paged: bool = False) -> Obj:
    """A collection envelope; ``paged`` when a next page follows."""
    return Obj({"d": Obj({"results": [shape], **({"__next": URL} if paged else {})})})


def single(shape) -> dict:
    return {"d": shape}


#: The fields audit data adds to every entity.
AUDIT = {"Created": ODATA_DATE, "Creator": GUID, "CreatorFullName": S, "Modified": ODATA_DATE, "Modifier": GUID}
AUDIT |= {"ModifierFullName": S, "Division": INT}

ACCOUNT = entity(
    "Account",
    {
        **AUDIT,
        "ID": GUID,
        "Code": STR,
        "Name": STR,
        "Status": STR,
        "Type": STR,
        "Country": STR,
        "Blocked": BOOL,
        "BankAccounts": Maybe(DEFERRED),
        **dict.fromkeys(("Accountant", "AccountManager", "Classification", "Costcenter", "InvoiceAccount"), G),
        **dict.fromkeys(("MainContact", "Parent", "PriceList", "Reseller", "Document", "LeadSource"), G),
        **dict.fromkeys(("GLAccountPurchase", "GLAccountSales", "GLAP", "GLAR", "ShippingMethod"), G),
        **dict.fromkeys(
            (
                "AccountManagerFullName",
                "ActivitySector",
                "ActivitySubSector",
                "AddressLine1",
                "AddressLine2",
                "AddressLine3",
                "BRIN",
                "BusinessType",
                "ChamberOfCommerce",
                "City",
                "ClassificationDescription",
                "CodeAtSupplier",
                "CompanySize",
                "CostcenterDescription",
                "Currency",
                "DunsNumber",
                "Email",
                "Fax",
                "IntraStatArea",
                "IntraStatDeliveryTerm",
                "IntraStatSystem",
                "IntraStatTransactionA",
                "IntraStatTransactionB",
                "IntraStatTransportMethod",
                "InvoiceAccountCode",
                "InvoiceAccountName",
                "Language",
                "LanguageDescription",
                "LogoFileName",
                "Logo",
                "PaymentConditionPurchase",
                "PaymentConditionPurchaseDescription",
                "PaymentConditionSales",
                "PaymentConditionSalesDescription",
                "Phone",
                "PhoneExtension",
                "Postcode",
                "PurchaseVATCode",
                "PurchaseVATCodeDescription",
                "Remarks",
                "ResellerCode",
                "ResellerName",
                "SalesVATCode",
                "SalesVATCodeDescription",
                "SearchCode",
                "State",
                "StateName",
                "VATLiability",
                "VATNumber",
                "Website",
            ),
            S,
        ),
        **dict.fromkeys(("ControlledDate", "CustomerSince", "EndDate"), D),
        **dict.fromkeys(("StartDate", "StatusSince"), ODATA_DATE),
        **dict.fromkeys(("Latitude", "Longitude"), N),
        "AccountManagerHID": Maybe(INT),
        **dict.fromkeys(
            (
                "CanDropShip",
                "IsBank",
                "IsMember",
                "IsPilot",
                "IsPurchase",
                "IsReseller",
                "IsSales",
                "IsSupplier",
                "RecepientOfCommissions",
            ),
            BOOL,
        ),
        **dict.fromkeys(
            (
                "ConsolidationScenario",
                "CostPaid",
                "CreditLinePurchase",
                "CreditLineSales",
                "InvoiceAttachmentType",
                "InvoicingMethod",
                "IsAccountant",
                "IsAgency",
                "IsCompetitor",
                "IsMailing",
                "PurchaseLeadDays",
                "SecurityLevel",
                "SeparateInvPerProject",
                "SeparateInvPerSubscription",
                "ShippingLeadDays",
            ),
            NUM,
        ),
        "DiscountPurchase": NUM,
        "DiscountSales": NUM,
        "LogoThumbnailUrl": STR,
        "LogoUrl": STR,
        **dict.fromkeys(("PurchaseCurrency", "PurchaseCurrencyDescription"), STR),
        **dict.fromkeys(("SalesCurrency", "SalesCurrencyDescription"), STR),
    },
)
GL_ACCOUNT = entity(
    "GLAccount",
    {
        **AUDIT,
        "ID": GUID,
        "Code": STR,
        "Description": STR,
        "SearchCode": S,
        "BalanceSide": STR,
        "BalanceType": STR,
        "Type": INT,
        "TypeDescription": STR,
        "Compress": BOOL,
        "IsBlocked": BOOL,
        "Matching": BOOL,
        "RevalueCurrency": BOOL,
        **dict.fromkeys(("Costcenter", "Costunit", "VATCode", "VATGLAccountType", "BelcotaxType"), S),
        **dict.fromkeys(("CostcenterDescription", "CostunitDescription", "VATDescription", "ReportingCode"), S),
        **dict.fromkeys(
            ("PrivateGLAccount", "VATNonDeductibleGLAccount", "YearEndCostGLAccount", "YearEndReflectionGLAccount"), G
        ),
        **dict.fromkeys(
            (
                "ExcludeVATListing",
                "ExpenseNonDeductiblePercentage",
                "PrivatePercentage",
                "UseCostcenter",
                "UseCostunit",
                "VATNonDeductiblePercentage",
            ),
            NUM,
        ),
    },
)
SALES_INVOICE_LINE = entity(
    "SalesInvoiceLine",
    {
        "ID": GUID,
        "InvoiceID": GUID,
        "Division": INT,
        "LineNumber": INT,
        "Item": GUID,
        "ItemDescription": S,
        "Description": S,
        "Quantity": NUM,
        "UnitPrice": NUM,
        "NetPrice": NUM,
        "Discount": NUM,
        "AmountFC": NUM,
        "AmountDC": NUM,
        "VATAmountFC": NUM,
        "VATAmountDC": NUM,
        "VATCode": S,
        "VATCodeDescription": S,
        "VATPercentage": NUM,
        "GLAccount": G,
        "GLAccountDescription": S,
        "UnitCode": S,
        "UnitDescription": S,
        **dict.fromkeys(("CostCenter", "CostUnit", "Pricelist", "Project", "Subscription", "Employee"), Maybe(STR)),
        **dict.fromkeys(
            (
                "CostCenterDescription",
                "CostUnitDescription",
                "PricelistDescription",
                "ProjectDescription",
                "SubscriptionDescription",
                "EmployeeFullName",
                "Notes",
            ),
            S,
        ),
        "StartTime": D,
        "EndTime": D,
    },
)
SALES_INVOICE = entity(
    "SalesInvoice",
    {
        **AUDIT,
        "InvoiceID": GUID,
        "InvoiceNumber": Maybe(INT),
        "Type": INT,
        "TypeDescription": STR,
        "Status": INT,
        "StatusDescription": STR,
        "Currency": STR,
        "AmountFC": NUM,
        "AmountDC": NUM,
        "VATAmountFC": NUM,
        "VATAmountDC": NUM,
        "Description": S,
        "Document": G,
        "DocumentNumber": Maybe(INT),
        "DocumentSubject": S,
        "InvoiceDate": D,
        "DueDate": D,
        "OrderDate": ODATA_DATE,
        "OrderNumber": INT,
        "InvoiceTo": GUID,
        "InvoiceToName": STR,
        "InvoiceToContactPerson": G,
        "InvoiceToContactPersonFullName": S,
        "OrderedBy": GUID,
        "OrderedByName": STR,
        "OrderedByContactPerson": G,
        "OrderedByContactPersonFullName": S,
        "Journal": STR,
        "JournalDescription": STR,
        "PaymentCondition": S,
        "PaymentConditionDescription": S,
        "Remarks": S,
        "Salesperson": G,
        "SalespersonFullName": S,
        "YourRef": S,
    },
)
#: An invoice read with $expand=SalesInvoiceLines.
SALES_INVOICE_WITH_LINES = Obj({**SALES_INVOICE.keys, "SalesInvoiceLines": expanded(SALES_INVOICE_LINE)}, extra=True)
ITEM = entity(
    "Item",
    {
        **AUDIT,
        "ID": GUID,
        "Code": STR,
        "Description": STR,
        "ExtraDescription": S,
        "SearchCode": S,
        "Barcode": S,
        "Notes": S,
        **{f"Class_{n:02}": S for n in range(1, 11)},
        **{f"FreeBoolField_{n:02}": BOOL for n in range(1, 6)},
        **{f"FreeDateField_{n:02}": D for n in range(1, 6)},
        **{f"FreeNumberField_{n:02}": N for n in range(1, 9)},
        **{f"FreeTextField_{n:02}": S for n in range(1, 11)},
        "CostPriceCurrency": STR,
        "CostPriceNew": N,
        "CostPriceStandard": NUM,
        "AverageCost": N,
        "StartDate": ODATA_DATE,
        "EndDate": D,
        **{f"GL{kind}": G for kind in ("Costs", "Revenue", "Stock")},
        **{f"GL{kind}Code": S for kind in ("Costs", "Revenue", "Stock")},
        **{f"GL{kind}Description": S for kind in ("Costs", "Revenue", "Stock")},
        **dict.fromkeys(("IsFractionAllowedItem", "IsPackageItem", "IsPurchaseItem", "IsSalesItem"), BOOL),
        **dict.fromkeys(("IsSerialItem", "IsStockItem", "IsSubcontractedItem"), BOOL),
        **dict.fromkeys(
            (
                "IsBatchItem",
                "IsBatchNumberItem",
                "IsMakeItem",
                "IsNewContract",
                "IsOnDemandItem",
                "IsRegistrationCodeItem",
                "IsTime",
                "IsWebshopItem",
                "CopyRemarks",
                "SecurityLevel",
                "Stock",
            ),
            NUM,
        ),
        "IsSerialNumberItem": Maybe(BOOL),
        "IsTaxableItem": Maybe(NUM),
        "ItemGroup": G,
        "ItemGroupCode": S,
        "ItemGroupDescription": S,
        **dict.fromkeys(("GrossWeight", "NetWeight"), N),
        "NetWeightUnit": S,
        "PictureName": S,
        "PictureUrl": S,
        "PictureThumbnailUrl": S,
        "SalesVatCode": S,
        "SalesVatCodeDescription": S,
        "Unit": S,
        "UnitDescription": S,
        "UnitType": S,
    },
)

ENDPOINTS: dict[str, Answer] = {
    "GET crm/Accounts": Answer(200, collection(ACCOUNT), headers=RATE_HEADERS),
    "GET crm/Accounts(guid'{id}')": Answer(200, single(ACCOUNT), headers=RATE_HEADERS),
    # $select=BankAccounts&$expand=BankAccounts: only the metadata and the (possibly empty) expansion.
    "GET crm/Accounts?$expand=BankAccounts": Answer(
        200,
        collection({"__metadata": METADATA, "BankAccounts": expanded(Obj({}, extra=True))}),
        headers=RATE_HEADERS,
    ),
    "GET financial/GLAccounts": Answer(200, collection(GL_ACCOUNT), headers=RATE_HEADERS),
    "GET financial/GLAccounts (a page with more)": Answer(
        200, collection(GL_ACCOUNT, paged=True), headers=RATE_HEADERS
    ),
    "GET financial/GLAccounts(guid'{id}')": Answer(200, single(GL_ACCOUNT), headers=RATE_HEADERS),
    "GET salesinvoice/SalesInvoices?$expand=SalesInvoiceLines": Answer(
        200, collection(SALES_INVOICE_WITH_LINES), headers=RATE_HEADERS
    ),
    "GET salesinvoice/SalesInvoices(guid'{id}')?$expand=SalesInvoiceLines": Answer(
        200, single(SALES_INVOICE_WITH_LINES), headers=RATE_HEADERS
    ),
    "POST salesinvoice/SalesInvoices": Answer(201, single(SALES_INVOICE), headers=RATE_HEADERS),
    "GET logistics/Items": Answer(200, collection(ITEM), headers=RATE_HEADERS),
    "GET logistics/Items(guid'{id}')": Answer(200, single(ITEM), headers=RATE_HEADERS),
    "GET financial/Journals": Answer(200, collection(Obj({}, extra=True)), headers=RATE_HEADERS),
    # OData's error envelope, e.g. a property the entity does not have.
    "POST (unknown property)": Answer(
        400, {"error": {"code": STR, "message": {"lang": STR, "value": STR}}}, headers=RATE_HEADERS
    ),
}
