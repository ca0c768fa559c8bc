"""What the QuickBooks Online Accounting API (v3) answers, endpoint by endpoint (types, not values).

Learnt from real calls recorded against Intuit's US sample company (2020 to 2022) and Intuit's API
reference:

- An entity answer is ``{"<Entity>": {...}, "time": "<ISO date-time with offset>"}``. Every entity
  has ``domain`` "QBO", ``sparse``, ``Id`` and ``SyncToken`` (digits as strings) and ``MetaData``
  (create and last-update times). References are ``{"value": …, "name": …}``; money is a JSON
  number; dates are ``"YYYY-MM-DD"``.
- A query answers ``{"QueryResponse": {"<Entity>": [...], "startPosition": n, "maxResults": n}}``;
  ``SELECT COUNT(*)`` answers ``{"QueryResponse": {"totalCount": n}}``; a page past the end is
  ``{"QueryResponse": {}}``.
- A transaction's ``Line`` array mixes line types told apart by ``DetailType``: the item lines,
  then one ``SubTotalLineDetail`` line.
- A delete or void answers the entity's id with ``status`` "Deleted" (a void: the entity, total 0).
- Batch answers one ``BatchItemResponse`` element per request, each with its ``bId`` and either
  the entity, a ``QueryResponse`` or a ``Fault``; an upload answers ``AttachableResponse``
  elements the same way, so an upload to a missing entity is a 200 carrying a Fault.
- Errors are ``{"Fault": {"Error": [{Message, Detail, code}], "type": …}}`` with status 400 and a
  plain ``application/json`` content type; an expired token is a 401 with
  ``WWW-Authenticate: Bearer realm="Intuit", error="invalid_token"`` and a different, lowercase
  envelope (``fault.error``), its ``time`` in epoch milliseconds.
- Successful answers carry ``Intuit-Tid``, ``QBO-Version``, ``Service-Time``, ``X-Spanid``,
  ``Strict-Transport-Security``, ``Expires`` and ``Cache-Control``, as
  ``application/json;charset=utf-8``.
"""

from __future__ import annotations

from . import BOOL, DATE, DIGITS, INT, ISO_DATETIME, NUM, STR, Answer, Const, Maybe, Obj, Tagged

SUCCESS_HEADERS = (
    "Intuit-Tid",
    "Qbo-Version",
    "Service-Time",
    "X-Spanid",
    "Strict-Transport-Security",
    "Expires",
    "Cache-Control",
)


def ok(body) -> Answer:
    """A successful answer."""
    return Answer(200, body, content_type="application/json;charset=utf-8", headers=SUCCESS_HEADERS)


def envelope(name: str, shape) -> dict:
    """``{"<name>": shape, "time": …}``."""
    return {name: shape, "time": ISO_DATETIME}


REF = {"value": STR}
NAMED_REF = Obj({"value": STR}, optional={"name": STR})
META = {"CreateTime": ISO_DATETIME, "LastUpdatedTime": ISO_DATETIME}
#: What every entity carries.
BASE = {"domain": Const("QBO"), "sparse": BOOL, "Id": DIGITS, "SyncToken": DIGITS, "MetaData": META}
#: QuickBooks numbers the addresses it stores (``Id``); the emulator's demo addresses have no Id.
ADDRESS = Obj(
    {},
    optional={
        "Id": DIGITS,
        **dict.fromkeys(("Line1", "Line2", "Line3", "Line4", "Line5", "City", "Country"), STR),
        **dict.fromkeys(("CountrySubDivisionCode", "PostalCode", "Lat", "Long"), STR),
    },
)
EMAIL = {"Address": STR}
PHONE = {"FreeFormNumber": STR}
CUSTOM_FIELD = Obj({"DefinitionId": DIGITS, "Name": STR, "Type": STR}, optional={"StringValue": STR})
LINKED_TXN = {"TxnId": DIGITS, "TxnType": STR}

SALES_ITEM_LINE = Obj(
    {
        "Id": DIGITS,
        "LineNum": INT,
        "Amount": NUM,
        "DetailType": STR,
        "SalesItemLineDetail": Obj(
            {"ItemRef": NAMED_REF},
            optional={"UnitPrice": NUM, "Qty": NUM, "TaxCodeRef": REF, "ClassRef": NAMED_REF, "ServiceDate": DATE},
            extra=True,
        ),
    },
    optional={"Description": STR},
)
SUBTOTAL_LINE = {"Amount": NUM, "DetailType": STR, "SubTotalLineDetail": Obj({}, extra=True)}
LINE = Tagged("DetailType", {"SalesItemLineDetail": SALES_ITEM_LINE, "SubTotalLineDetail": SUBTOTAL_LINE})
TAX_LINE = {
    "Amount": NUM,
    "DetailType": STR,
    "TaxLineDetail": Obj(
        {"TaxRateRef": REF, "PercentBased": BOOL}, optional={"TaxPercent": NUM, "NetAmountTaxable": NUM}
    ),
}
TXN_TAX_DETAIL = Obj({"TotalTax": NUM}, optional={"TxnTaxCodeRef": REF, "TaxLine": [TAX_LINE]})
#: What every sales transaction (invoice, sales receipt, estimate) carries.
SALES_TXN = {
    **BASE,
    "CustomField": [CUSTOM_FIELD],
    "DocNumber": STR,
    "TxnDate": DATE,
    "CurrencyRef": NAMED_REF,
    "Line": [LINE],
    "TxnTaxDetail": TXN_TAX_DETAIL,
    "TotalAmt": NUM,
    "ApplyTaxAfterDiscount": BOOL,
    "PrintStatus": STR,
    "EmailStatus": STR,
}
#: Optional on every sales transaction (the sample company's addresses, our demo's terms and e-mail).
SALES_TXN_OPTIONAL = {
    "BillAddr": ADDRESS,
    "ShipAddr": ADDRESS,
    "PrivateNote": STR,
    "BillEmail": EMAIL,
    "CustomerMemo": REF,
    "SalesTermRef": NAMED_REF,
    "LinkedTxn": [LINKED_TXN],
}
INVOICE = Obj(
    {
        **SALES_TXN,
        "LinkedTxn": [LINKED_TXN],
        "CustomerRef": NAMED_REF,
        "DueDate": DATE,
        "Balance": NUM,
        **dict.fromkeys(
            ("AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment"), BOOL
        ),
    },
    optional=SALES_TXN_OPTIONAL,
    extra=True,
)
SALES_RECEIPT = Obj(
    {**SALES_TXN, "Balance": NUM, "DepositToAccountRef": NAMED_REF}, optional=SALES_TXN_OPTIONAL, extra=True
)
ESTIMATE = Obj(
    {**SALES_TXN, "TxnStatus": STR, "CustomerRef": NAMED_REF, "BillEmail": EMAIL},
    optional={**SALES_TXN_OPTIONAL, "DeliveryInfo": {"DeliveryType": STR}},
    extra=True,
)
#: Name and contact fields a customer or vendor may carry.
PARTY_OPTIONAL = {
    **dict.fromkeys(("GivenName", "FamilyName", "CompanyName", "Title", "MiddleName", "Suffix", "Notes"), STR),
    **dict.fromkeys(("PrimaryPhone", "Mobile", "Fax"), PHONE),
    "PrimaryEmailAddr": EMAIL,
    "WebAddr": {"URI": STR},
    "BillAddr": ADDRESS,
}
CUSTOMER = Obj(
    {
        **BASE,
        "Taxable": BOOL,
        "Job": BOOL,
        "BillWithParent": BOOL,
        "Balance": NUM,
        "BalanceWithJobs": NUM,
        "CurrencyRef": NAMED_REF,
        "PreferredDeliveryMethod": STR,
        "FullyQualifiedName": STR,
        "DisplayName": STR,
        "PrintOnCheckName": STR,
        "Active": BOOL,
    },
    optional={
        **PARTY_OPTIONAL,
        "ShipAddr": ADDRESS,
        "DefaultTaxCodeRef": REF,
        "SalesTermRef": NAMED_REF,
        "ParentRef": REF,
        "Level": INT,
        "PrimaryTaxIdentifier": STR,
    },
)
VENDOR = Obj(
    {
        **BASE,
        "Balance": NUM,
        "Vendor1099": BOOL,
        "CurrencyRef": NAMED_REF,
        "DisplayName": STR,
        "PrintOnCheckName": STR,
        "Active": BOOL,
    },
    optional={**PARTY_OPTIONAL, "AcctNum": STR},
)
ATTACHABLE = {
    **BASE,
    "FileName": STR,
    "FileAccessUri": STR,
    "TempDownloadUri": STR,
    "Size": INT,
    "ContentType": STR,
    "AttachableRef": [{"EntityRef": {"value": DIGITS, "type": STR}, "IncludeOnSend": BOOL}],
}
DELETED = {"domain": Const("QBO"), "status": Const("Deleted"), "Id": DIGITS}
ERROR = Obj({"Message": STR, "Detail": STR, "code": DIGITS}, optional={"element": STR})
FAULT_BODY = {"Error": [ERROR], "type": STR}
FAULT = Obj({"Fault": FAULT_BODY}, optional={"time": ISO_DATETIME})


def query_body(**entities) -> Obj:
    """A QueryResponse body: rows of the named entities and the paging numbers."""
    return Obj(
        {}, optional={**{name: [shape] for name, shape in entities.items()}, "startPosition": INT, "maxResults": INT}
    )


ENTITY_QUERY = query_body(
    Customer=CUSTOMER, Vendor=VENDOR, Invoice=INVOICE, SalesReceipt=SALES_RECEIPT, Estimate=ESTIMATE
)
BATCH_ITEM = Obj(
    {"bId": STR},
    optional={
        "Vendor": VENDOR,
        "Customer": CUSTOMER,
        "Invoice": INVOICE,
        "SalesReceipt": SALES_RECEIPT,
        "QueryResponse": ENTITY_QUERY,
        "Fault": FAULT_BODY,
    },
)
#: The 401 envelope of an expired or revoked access token.
AUTH_FAULT = {
    "warnings": Maybe(STR),
    "intuitObject": Maybe(STR),
    "fault": {"error": [{"message": STR, "detail": STR, "code": DIGITS, "element": Maybe(STR)}], "type": STR},
    "report": Maybe(STR),
    "queryResponse": Maybe(STR),
    "batchItemResponse": [Obj({}, extra=True)],
    "attachableResponse": [Obj({}, extra=True)],
    "syncErrorResponse": Maybe(STR),
    "requestId": Maybe(STR),
    "time": INT,
    "status": Maybe(STR),
    "cdcresponse": [Obj({}, extra=True)],
}

ENDPOINTS: dict[str, Answer] = {
    "POST invoice": ok(envelope("Invoice", INVOICE)),
    "POST invoice?operation=delete": ok(envelope("Invoice", DELETED)),
    "POST invoice?operation=void": ok(envelope("Invoice", INVOICE)),
    "POST customer": ok(envelope("Customer", CUSTOMER)),
    "GET customer/{id}": ok(envelope("Customer", CUSTOMER)),
    "POST salesreceipt": ok(envelope("SalesReceipt", SALES_RECEIPT)),
    "GET query (rows)": ok(envelope("QueryResponse", ENTITY_QUERY)),
    "GET query (count)": ok(envelope("QueryResponse", {"totalCount": INT})),
    "GET query (past the end)": ok(envelope("QueryResponse", {})),
    "POST batch": ok(envelope("BatchItemResponse", [BATCH_ITEM])),
    "GET cdc": ok(envelope("CDCResponse", [{"QueryResponse": [query_body(Estimate=ESTIMATE)]}])),
    "POST upload": ok(
        envelope("AttachableResponse", [Obj({}, optional={"Attachable": ATTACHABLE, "Fault": FAULT_BODY})])
    ),
    "GET attachable/{id}": ok(envelope("Attachable", ATTACHABLE)),
    "POST attachable?operation=delete": ok(envelope("Attachable", DELETED)),
    "error 400": Answer(400, FAULT, headers=("Intuit-Tid",)),
    "error 401": Answer(
        401,
        AUTH_FAULT,
        headers=("Intuit-Tid",),
        header_values={"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
    ),
    "GET invoice/{id}/pdf": Answer(200, None, content_type="application/pdf"),
}
