"""Writes on a division: the business rules Exact applies to each POST/PUT/DELETE.

Callers hold the state lock. Rules cite docs/providers/exact-online.md.
"""

from __future__ import annotations

import base64
import binascii
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from . import schema
from .messages import ExactError, Validation, label, text
from .odata import date_to_ms, ms_to_date, pad_left, pad_right, parse_date_in
from .state import Division, new_guid

#: OData text for a malformed body (picqer#277, #117).
BAD_STREAM = "Error processing request stream. The request should be a valid top-level resource object."


def conversion_error(prop: str, edm: str) -> ExactError:
    """Return the 400 Exact gives for a value of the wrong type (picqer#178)."""
    return ExactError(
        400,
        "Error processing request stream. Error encountered in converting the value from request "
        f"payload for property '{prop}' to type '{edm}'",
    )


def check_properties(entity: schema.Entity, body: object, *, allow: tuple[str, ...] = ()) -> dict:
    """Return ``body`` when it is an object of known properties.

    :raise ExactError: 400 with the WCF text otherwise.
    """
    if not isinstance(body, dict):
        raise ExactError(400, BAD_STREAM)
    known = entity.known.union(allow) if allow else entity.known
    for name in body:
        if name not in known:
            raise ExactError(
                400,
                f"The property '{name}' does not exist on type '{entity.type_name}'. "
                "Make sure to only use property names that are defined by the type.",
            )
    return body


def number(body: dict, prop: str, default: float | None = None) -> float | None:
    """Read a numeric property (numbers or numeric strings, as ossobv sends).

    :raise ExactError: 400 conversion error on anything else.
    """
    value = body.get(prop)
    if value is None:
        return default
    if isinstance(value, bool):
        raise conversion_error(prop, "Double")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise conversion_error(prop, "Double")


def integer(body: dict, prop: str, default: int | None = None) -> int | None:
    """Read an integer property.

    :raise ExactError: 400 conversion error on anything else.
    """
    value = number(body, prop)
    if value is None:
        return default
    if value != int(value):
        raise conversion_error(prop, "Int32")
    return int(value)


def string(body: dict, prop: str) -> str | None:
    """Read a string property.

    :raise ExactError: 400 conversion error on a non-string.
    """
    value = body.get(prop)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise conversion_error(prop, "String")


def guid(body: dict, prop: str) -> str | None:
    """Read a GUID property, lower-cased.

    :raise ExactError: 400 conversion error when it is not a GUID.
    """
    value = body.get(prop)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value.strip()) != 36 or value.count("-") != 4:
        raise conversion_error(prop, "Guid")
    return value.strip().lower()


def when(body: dict, prop: str) -> int | None:
    """Read a date property (ISO-8601 in, exact-online.md §3.0).

    :raise ExactError: 400 conversion error when it is not a date.
    """
    try:
        return parse_date_in(body.get(prop))
    except (ValueError, TypeError) as exc:
        raise conversion_error(prop, "DateTime") from exc


def boolean(body: dict, prop: str, default: bool = False) -> bool:
    """Read a boolean property ("true"/"false" strings accepted, as PHP clients send).

    :raise ExactError: 400 conversion error on anything else.
    """
    value = body.get(prop)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise conversion_error(prop, "Boolean")


def money(value: float) -> float:
    """Round to cents."""
    return round(value + 0.0, 2)


def exact(value: float | int) -> Decimal:
    """Return a JSON number as the decimal it was written as (never binary float arithmetic)."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def cents(value: Decimal) -> Decimal:
    """Round half away from zero to cents, as Exact rounds amounts."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def invoice_vat(lines: list[dict]) -> Decimal:
    """Return an invoice's VAT: per VAT code, the VAT of the code's lines together, rounded once.

    Exact groups the lines of a sales invoice by VAT code and rounds each group's VAT (integrators
    such as QICS call this Exact's own mode: "the rounded sum of the grouped invoice line VAT
    amounts"); a line's own VATAmountFC is its share rounded for display.
    """
    groups: dict[tuple[str | None, float], Decimal] = {}
    for line in lines:
        key = (line["VATCode"], line["VATPercentage"])
        groups[key] = groups.get(key, Decimal(0)) + exact(line["AmountFC"])
    return sum((cents(base * exact(pct)) for (_code, pct), base in groups.items()), Decimal(0))


# -- periods ------------------------------------------------------------------------------
def period_of(div: Division, day_ms: int) -> tuple[int, int] | None:
    """Return (FinYear, FinPeriod) containing ``day_ms``, or None outside every year."""
    day = ms_to_date(day_ms)
    key = (day.year, day.month)
    periods = div.tables.get("FinancialPeriods", {})
    for record in periods.values():
        if (record["FinYear"], record["FinPeriod"]) == key:
            return key
    return None


def check_open(div: Division, day_ms: int, lang: str, status: int) -> tuple[int, int]:
    """Return the period of ``day_ms`` when it is open.

    :raise ExactError: when the period is closed or no financial year covers it.
    """
    found = period_of(div, day_ms)
    if found is None:
        raise ExactError(status, text("no_fin_year", lang, year=ms_to_date(day_ms).year))
    if found in div.closed:
        raise ExactError(status, text("period_closed", lang, year=found[0], period=found[1]))
    return found


# -- accounts and items -------------------------------------------------------------------
def create_account(div: Division, body: dict, now_ms: int, lang: str, status: int) -> dict:
    """Create a crm/Accounts record (exact-online.md §3.1)."""
    check_properties(schema.ACCOUNT, body)
    errors = Validation(lang, status)
    name = string(body, "Name")
    if not name:
        errors.mandatory("Name")
    errors.raise_if_any()
    code = string(body, "Code")
    if code is None or not code.strip():
        # Exact assigns highest numeric code + 1 when Code is omitted (BVB).
        numeric = [int(c) for c in div.codes.get("Accounts", {}) if c.strip().isdigit()]
        code = str(max(numeric, default=0) + 1)
    code = pad_left(code, 18)
    if code in div.codes.get("Accounts", {}):
        raise ExactError(status, text("exists", lang))
    record = schema.ACCOUNT.blank()
    _assign(schema.ACCOUNT, record, body)
    record.update(ID=new_guid(), Code=code, Name=name)
    if record.get("Country"):
        record["Country"] = pad_right(str(record["Country"]), 3)
    if record.get("Status") is None:
        record["Status"] = "C"
    if record.get("Type") is None:
        record["Type"] = "A"
    if body.get("IsSales") is not None:
        record["IsSales"] = boolean(body, "IsSales")
    if record.get("SalesCurrency") is None:
        record["SalesCurrency"] = div.currency
    pc = div.by_code("PaymentConditions", record.get("PaymentConditionSales"))
    if record.get("PaymentConditionSales") is not None and pc is None:
        raise ExactError(status, text("invalid_reference", lang, label=label("PaymentCondition", lang)))
    if pc is not None:
        record["PaymentConditionSalesDescription"] = pc["Description"]
    return div.insert(schema.ACCOUNT, record, now_ms, code_field="Code")


def update_account(div: Division, record: dict, body: dict, now_ms: int, lang: str, status: int) -> None:
    """Apply a PUT on crm/Accounts.

    Re-sending an unchanged Code fails with "Gegeven bestaat reeds." (picqer#416, #432).
    """
    check_properties(schema.ACCOUNT, body)
    if "Code" in body:
        code = pad_left(string(body, "Code") or "", 18)
        if code in div.codes.get("Accounts", {}):
            raise ExactError(status, text("exists", lang))
        div.codes["Accounts"].pop(record["Code"], None)
        record["Code"] = code
        div.codes["Accounts"][code] = record["ID"]
    _assign(schema.ACCOUNT, record, {k: v for k, v in body.items() if k not in ("Code", "ID")})
    div.touch(record, now_ms)


def create_item(div: Division, body: dict, now_ms: int, lang: str, status: int) -> dict:
    """Create a logistics/Items record (exact-online.md §3.2: Code and Description mandatory)."""
    check_properties(schema.ITEM, body)
    errors = Validation(lang, status)
    code, description = string(body, "Code"), string(body, "Description")
    if not code:
        errors.mandatory("Code")
    if not description:
        errors.mandatory("Description")
    errors.raise_if_any()
    if code in div.codes.get("Items", {}):
        raise ExactError(status, text("exists", lang))
    record = schema.ITEM.blank()
    _assign(schema.ITEM, record, body)
    record.update(ID=new_guid(), Code=code, Description=description)
    if record.get("SalesVatCode"):
        record["SalesVatCode"] = pad_right(str(record["SalesVatCode"]), 3)
    if record.get("Unit"):
        record["Unit"] = pad_right(str(record["Unit"]), 8)
    return div.insert(schema.ITEM, record, now_ms, code_field="Code")


def update_item(div: Division, record: dict, body: dict, now_ms: int, lang: str, status: int) -> None:
    """Apply a PUT on logistics/Items: dates in ISO-8601 or ``/Date(ms)/`` are stored as epoch ms
    (exact-online.md §3.0)."""
    check_properties(schema.ITEM, body)
    if "Code" in body and body["Code"] != record["Code"] and body["Code"] in div.codes.get("Items", {}):
        raise ExactError(status, text("exists", lang))
    _assign(schema.ITEM, record, {k: v for k, v in body.items() if k not in ("ID", "Code")})
    if body.get("SalesVatCode"):
        record["SalesVatCode"] = pad_right(str(record["SalesVatCode"]), 3)
    if body.get("Unit"):
        record["Unit"] = pad_right(str(record["Unit"]), 8)
    div.touch(record, now_ms)


def _assign(entity: schema.Entity, record: dict, body: dict) -> None:
    """Copy plain properties from a request body, converting dates."""
    for name, value in body.items():
        if name == "__metadata" or name in entity.nav or name not in record:
            continue
        record[name] = when(body, name) if name in schema.DATE_FIELDS else value


# -- sales invoices -----------------------------------------------------------------------
def _sales_journal(div: Division, body: dict, errors: Validation, lang: str) -> dict | None:
    code = string(body, "Journal")
    if code is None:
        # picqer#277: Journal may be left out; the division's first sales journal is used.
        return next((j for j in div.table("Journals").values() if j["Type"] == 20), None)
    journal = div.by_code("Journals", code)
    if journal is None:
        # A GUID or unknown code (picqer#31).
        errors.reference("Journals")
        return None
    if journal["Type"] != 20:
        errors.add(text("sales_journal", lang))
        return None
    return journal


def _account_ref(div: Division, body: dict, prop: str, errors: Validation) -> dict | None:
    try:
        key = guid(body, prop)
    except ExactError:
        errors.reference(prop)
        return None
    if key is None:
        return None
    account = div.table("Accounts").get(key)
    if account is None:
        errors.reference(prop)
    return account


def _invoice_line(div: Division, raw: object, account: dict | None, errors: Validation, lang: str) -> dict | None:
    line_body = check_properties(schema.SALESINVOICELINE, raw)
    item = None
    item_id = None
    try:
        item_id = guid(line_body, "Item")
    except ExactError:
        errors.reference("Item")
    if item_id is None and "Item" not in line_body:
        errors.mandatory("Item")
    elif item_id is not None:
        item = div.table("Items").get(item_id)
        if item is None:
            errors.reference("Item")
    vat_code = string(line_body, "VATCode")
    if vat_code is not None:
        vat_code = pad_right(vat_code, 3)
    else:
        vat_code = (item or {}).get("SalesVatCode") or (account or {}).get("SalesVATCode")
    vat = div.by_code("VATCodes", vat_code) if vat_code else None
    if vat_code and vat is None:
        errors.reference("VATCode")
    gl_id = guid(line_body, "GLAccount") or (item or {}).get("GLRevenue")
    gl = div.table("GLAccounts").get(gl_id) if gl_id else None
    if gl_id and gl is None:
        errors.reference("GLAccount")
    elif gl is not None and gl["Type"] != 110:
        # Sales lines need a revenue account (picqer#121).
        errors.add(text("gl_type", lang))
    if item is None:
        return None
    quantity = number(line_body, "Quantity", 1.0)
    unit_price = number(line_body, "UnitPrice")
    if unit_price is None:
        unit_price = div.prices.get(item["ID"], 0.0)
    discount = number(line_body, "Discount", 0.0)
    # AmountFC = Quantity x NetPrice in cents (exact-online.md §3.7); decimals, not binary floats.
    net_price = exact(unit_price) * (1 - exact(discount))
    amount = float(cents(exact(quantity) * net_price))
    pct = vat["Percentage"] if vat else 0.0
    vat_amount = float(cents(exact(amount) * exact(pct)))
    net_price = float(net_price)
    line = schema.SALESINVOICELINE.blank()
    _assign(schema.SALESINVOICELINE, line, line_body)
    line.update(
        ID=new_guid(),
        Item=item["ID"],
        ItemCode=item["Code"],
        ItemDescription=item["Description"],
        Description=string(line_body, "Description") or item["Description"],
        Quantity=quantity,
        UnitPrice=unit_price,
        NetPrice=net_price,
        Discount=discount,
        AmountFC=amount,
        AmountDC=amount,
        VATCode=vat_code,
        VATCodeDescription=vat["Description"] if vat else None,
        VATPercentage=pct,
        VATAmountFC=vat_amount,
        VATAmountDC=vat_amount,
        GLAccount=gl["ID"] if gl else None,
        GLAccountDescription=gl["Description"] if gl else None,
        UnitCode=(item.get("Unit") or "").strip() or None,
        UnitDescription=item.get("UnitDescription"),
        Division=div.code,
    )
    return line


def create_sales_invoice(div: Division, body: object, now_ms: int, lang: str, status: int) -> dict:
    """Create a salesinvoice/SalesInvoices record with its lines in one call (exact-online.md §3.7)."""
    body = check_properties(schema.SALESINVOICE, body)
    posted_id = body.get("InvoiceID")
    if isinstance(posted_id, str) and posted_id.strip().lower() in div.table("SalesInvoices"):
        # picqer#464: a credit note posted with the original invoice's InvoiceID is refused with
        # "Reeds verwerkt" (already processed); an open one's id is simply taken.
        existing = div.table("SalesInvoices")[posted_id.strip().lower()]
        raise ExactError(status, text("processed" if existing["Status"] == 50 else "exists", lang))
    lines_raw = body.get("SalesInvoiceLines")
    if lines_raw is not None and not isinstance(lines_raw, list):
        # Lines must be a JSON array (picqer#277, #117).
        raise ExactError(400, BAD_STREAM)
    errors = Validation(lang, status)
    ordered_by = _account_ref(div, body, "OrderedBy", errors)
    if body.get("OrderedBy") in (None, ""):
        errors.mandatory("OrderedBy")
    invoice_to = _account_ref(div, body, "InvoiceTo", errors) if body.get("InvoiceTo") else ordered_by
    deliver_to = _account_ref(div, body, "DeliverTo", errors) if body.get("DeliverTo") else invoice_to
    journal = _sales_journal(div, body, errors, lang)
    pc_code = string(body, "PaymentCondition") or (invoice_to or {}).get("PaymentConditionSales")
    condition = div.by_code("PaymentConditions", pc_code) if pc_code else None
    if pc_code and condition is None:
        errors.reference("PaymentCondition")
    inv_type = integer(body, "Type", 8020)
    if inv_type not in (8020, 8021, 8023, 8024):
        errors.add(text("invalid_value", lang, label=label("Type", lang)))
    lines = [_invoice_line(div, raw, invoice_to, errors, lang) for raw in (lines_raw or [])]
    if not lines:
        errors.mandatory("Item")
    errors.raise_if_any()
    invoice_date = when(body, "InvoiceDate")
    if invoice_date is not None:
        check_open(div, invoice_date, lang, status)
    order_date = when(body, "OrderDate") or date_to_ms(ms_to_date(now_ms))
    record = schema.SALESINVOICE.blank()
    _assign(schema.SALESINVOICE, record, body)
    invoice_id = new_guid()
    excl = float(sum((exact(line["AmountFC"]) for line in lines), Decimal(0)))
    vat = float(invoice_vat(lines))
    base_day = invoice_date or order_date
    record.update(
        InvoiceID=invoice_id,
        OrderedBy=ordered_by["ID"],
        OrderedByName=ordered_by["Name"],
        InvoiceTo=invoice_to["ID"],
        InvoiceToName=invoice_to["Name"],
        DeliverTo=deliver_to["ID"],
        DeliverToName=deliver_to["Name"],
        Journal=journal["Code"],
        JournalDescription=journal["Description"],
        PaymentCondition=condition["Code"] if condition else None,
        PaymentConditionDescription=condition["Description"] if condition else None,
        DueDate=when(body, "DueDate") or base_day + int((condition or {}).get("PaymentDays", 0)) * 86_400_000,
        InvoiceDate=invoice_date,
        OrderDate=order_date,
        Currency=string(body, "Currency") or div.currency,
        Type=inv_type,
        TypeDescription={8020: "Normal", 8021: "Credit note", 8023: "Direct", 8024: "Direct credit note"}[inv_type],
        Status=20,
        StatusDescription="Open",
        InvoiceNumber=None,
        AmountFCExclVat=excl,
        VATAmountFC=vat,
        VATAmountDC=vat,
        AmountFC=float(exact(excl) + exact(vat)),
        AmountDC=float(exact(excl) + exact(vat)),
        OrderNumber=len(div.table("SalesInvoices")) + 1,
    )
    if div.invoice_number_at_entry:
        record["InvoiceNumber"] = next_invoice_number(div, journal["Code"], base_day)
    for number_, line in enumerate(lines, start=1):
        line.update(InvoiceID=invoice_id, LineNumber=number_)
        div.insert(schema.SALESINVOICELINE, line, now_ms)
    return div.insert(schema.SALESINVOICE, record, now_ms)


def next_invoice_number(div: Division, journal: str, day_ms: int) -> int:
    """Take the journal's next free number: YY + journal + 4-digit sequence (e.g. 26700001)."""
    seq = div.sequences.get(journal, 0) + 1
    div.sequences[journal] = seq
    return int(f"{ms_to_date(day_ms).year % 100:02d}{journal}{seq:04d}")


def invoice_lines(div: Division, invoice_id: str) -> list[dict]:
    """Return an invoice's lines in LineNumber order."""
    return div.child_rows("SalesInvoiceLines", invoice_id)


def update_sales_invoice(div: Division, record: dict, body: object, now_ms: int, lang: str, status: int) -> None:
    """Apply a PUT on an open invoice; processed invoices cannot change (exact-online.md §3.7)."""
    body = check_properties(schema.SALESINVOICE, body)
    if record["Status"] == 50:
        raise ExactError(status, text("processed", lang))
    if "SalesInvoiceLines" in body:
        raise ExactError(400, BAD_STREAM)
    allowed = ("Description", "YourRef", "Remarks", "PaymentReference", "OrderDate", "DueDate", "InvoiceDate")
    if body.get("Document") is not None:
        # The "manually linked" document (exact-online.md §3.10) must exist in the division.
        try:
            document_id = guid(body, "Document")
        except ExactError:
            document_id = None
        if document_id not in div.table("Documents"):
            raise ExactError(status, text("invalid_reference", lang, label=label("Document", lang)))
        document = div.table("Documents")[document_id]
        record.update(Document=document_id, DocumentNumber=document["HID"], DocumentSubject=document["Subject"])
    _assign(schema.SALESINVOICE, record, {k: v for k, v in body.items() if k in allowed})
    div.touch(record, now_ms)


def delete_sales_invoice(div: Division, record: dict, now_ms: int, lang: str, status: int) -> None:
    """Delete an open invoice and its lines."""
    if record["Status"] == 50:
        raise ExactError(status, text("processed", lang))
    for line in invoice_lines(div, record["InvoiceID"]):
        div.remove(schema.SALESINVOICELINE, line["ID"], now_ms)
    div.remove(schema.SALESINVOICE, record["InvoiceID"], now_ms)


def print_sales_invoice(div: Division, body: object, now_ms: int, lang: str, status: int) -> dict:
    """Process ("print") an invoice: number, sales entry, document, receivable, e-mail (exact-online.md §3.8)."""
    body = check_properties(schema.PRINTEDSALESINVOICE, body)
    errors = Validation(lang, status)
    invoice_id = None
    try:
        invoice_id = guid(body, "InvoiceID")
    except ExactError:
        errors.reference("InvoiceID")
    invoice = div.table("SalesInvoices").get(invoice_id) if invoice_id else None
    if "InvoiceID" not in body:
        errors.mandatory("InvoiceID")
    elif invoice is None:
        errors.reference("InvoiceID")
    errors.raise_if_any()
    if invoice["Status"] == 50:
        raise ExactError(status, text("processed", lang))
    invoice_date = when(body, "InvoiceDate") or invoice["InvoiceDate"] or date_to_ms(ms_to_date(now_ms))
    year, period = check_open(div, invoice_date, lang, status)
    year = integer(body, "ReportingYear", year)
    period = integer(body, "ReportingPeriod", period)
    if (year, period) in div.closed:
        raise ExactError(status, text("period_closed", lang, year=year, period=period))
    number_ = invoice["InvoiceNumber"] or next_invoice_number(div, invoice["Journal"], invoice_date)
    # The due date moves with the invoice date: one derived from the payment condition stays
    # date + PaymentDays, one posted with the invoice is kept when the date does not change.
    before = invoice["InvoiceDate"] or invoice["OrderDate"] or invoice_date
    invoice.update(
        InvoiceNumber=number_,
        InvoiceDate=invoice_date,
        DueDate=(invoice["DueDate"] if invoice["DueDate"] is not None else before) + (invoice_date - before),
        Status=50,
        StatusDescription="Processed",
    )
    account = div.table("Accounts")[invoice["InvoiceTo"]]
    document = create_document(
        div,
        {
            "Subject": f"{'Factuur' if lang == 'nl' else 'Invoice'} {number_}",
            "Type": 10,
            "Account": account["ID"],
            "FinancialTransactionEntryID": invoice["InvoiceID"],
        },
        now_ms,
        lang,
        status,
        document_date=invoice_date,
    )
    document["SalesInvoiceNumber"] = number_
    attach(div, document["ID"], f"{number_}.pdf", _pdf(number_, invoice), now_ms)
    if invoice["Document"] is None:
        # The printed layout is linked through its financial entry; a document linked by hand
        # before printing (SalesInvoices.Document, exact-online.md §3.10) stays the invoice's document.
        invoice["Document"] = document["ID"]
        invoice["DocumentNumber"] = document["HID"]
        invoice["DocumentSubject"] = document["Subject"]
    div.touch(invoice, now_ms)
    entry = _entry_from_invoice(div, invoice, year, period, now_ms)
    add_receivable(div, entry, account, now_ms)
    result = schema.PRINTEDSALESINVOICE.blank()
    _assign(schema.PRINTEDSALESINVOICE, result, body)
    result.update(
        InvoiceID=invoice["InvoiceID"],
        Division=div.code,
        Document=document["ID"],
        DocumentCreationSuccess=text("document_ok", lang),
        InvoiceDate=invoice_date,
        ReportingYear=year,
        ReportingPeriod=period,
    )
    if boolean(body, "SendEmailToCustomer"):
        address = (account.get("Email") or "").strip()
        if address:
            div.outbox.append(
                {
                    "to": address,
                    "from": string(body, "SenderEmailAddress"),
                    "invoice_number": number_,
                    "document": document["ID"],
                    "extra_text": string(body, "ExtraText"),
                }
            )
            result["EmailCreationSuccess"] = text("email_ok", lang)
        else:
            result["EmailCreationError"] = text("email_missing", lang)
    return result


def _pdf(number_: int, invoice: dict) -> bytes:
    """Return a tiny but well-formed PDF standing in for Exact's invoice layout."""
    body = f"Invoice {number_} {invoice['InvoiceToName']} {invoice['AmountFC']:.2f} {invoice['Currency']}"
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
        + f"% {body}\n".encode()
        + b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )


def _entry_from_invoice(div: Division, invoice: dict, year: int, period: int, now_ms: int) -> dict:
    """Book the sales entry of a processed invoice; its EntryID equals the InvoiceID (exact-online.md §3.8)."""
    entry = schema.SALESENTRY.blank()
    entry.update(
        EntryID=invoice["InvoiceID"],
        AmountDC=invoice["AmountDC"],
        AmountFC=invoice["AmountFC"],
        Currency=invoice["Currency"],
        Customer=invoice["InvoiceTo"],
        CustomerName=invoice["InvoiceToName"],
        Description=invoice["Description"],
        Document=invoice["Document"],
        DueDate=invoice["DueDate"],
        EntryDate=invoice["InvoiceDate"],
        EntryNumber=invoice["InvoiceNumber"],
        InvoiceNumber=invoice["InvoiceNumber"],
        Journal=invoice["Journal"],
        JournalDescription=invoice["JournalDescription"],
        PaymentCondition=invoice["PaymentCondition"],
        PaymentConditionDescription=invoice["PaymentConditionDescription"],
        ReportingYear=year,
        ReportingPeriod=period,
        Status=50,
        StatusDescription="Processed",
        Type=21 if invoice["Type"] in (8021, 8024) else 20,
        VATAmountDC=invoice["VATAmountDC"],
        VATAmountFC=invoice["VATAmountFC"],
        YourRef=invoice["YourRef"],
    )
    for line in invoice_lines(div, invoice["InvoiceID"]):
        entry_line = schema.SALESENTRYLINE.blank()
        entry_line.update(
            ID=line["ID"],
            EntryID=entry["EntryID"],
            AmountDC=line["AmountDC"],
            AmountFC=line["AmountFC"],
            Description=line["Description"],
            GLAccount=line["GLAccount"],
            GLAccountDescription=line["GLAccountDescription"],
            LineNumber=line["LineNumber"],
            Quantity=line["Quantity"],
            VATAmountDC=line["VATAmountDC"],
            VATAmountFC=line["VATAmountFC"],
            VATBaseAmountDC=line["AmountDC"],
            VATBaseAmountFC=line["AmountFC"],
            VATCode=line["VATCode"],
            VATPercentage=line["VATPercentage"],
            Division=div.code,
        )
        div.insert(schema.SALESENTRYLINE, entry_line, now_ms)
    return div.insert(schema.SALESENTRY, entry, now_ms)


def add_receivable(div: Division, entry: dict, account: dict, now_ms: int) -> dict:
    """Open the receivable of a booked sales entry (Status 20, IsFullyPaid false, exact-online.md §3.11)."""
    div.hid += 1
    receivable = schema.RECEIVABLE.blank()
    receivable.update(
        ID=new_guid(),
        Account=account["ID"],
        AccountCode=account["Code"],
        AccountName=account["Name"],
        AmountDC=entry["AmountDC"],
        AmountFC=entry["AmountFC"],
        Currency=entry["Currency"],
        Description=entry["Description"],
        DueDate=entry["DueDate"],
        EntryDate=entry["EntryDate"],
        EntryID=entry["EntryID"],
        EntryNumber=entry["EntryNumber"],
        InvoiceDate=entry["EntryDate"],
        InvoiceNumber=entry["InvoiceNumber"],
        Journal=entry["Journal"],
        JournalDescription=entry["JournalDescription"],
        PaymentCondition=entry["PaymentCondition"],
        PaymentMethod="B",
        Source=1,
        Status=20,
        TransactionAmountDC=entry["AmountDC"],
        TransactionAmountFC=entry["AmountFC"],
        TransactionEntryID=entry["EntryID"],
        TransactionReportingPeriod=entry["ReportingPeriod"],
        TransactionReportingYear=entry["ReportingYear"],
        YourRef=entry["YourRef"],
    )
    return div.insert(schema.RECEIVABLE, receivable, now_ms)


def set_paid(div: Division, receivable: dict, paid: bool, now_ms: int) -> None:
    """Mark a receivable matched (paid) or open again (picqer#618: paid can become open)."""
    if not paid:
        div.paid.pop(receivable["ID"], None)
    receivable.update(
        IsFullyPaid=paid,
        Status=50 if paid else 20,
        LastPaymentDate=now_ms if paid else None,
    )
    div.touch(receivable, now_ms)


# -- bank entries (customer payments) -----------------------------------------------------
def create_bank_entry(div: Division, body: object, now_ms: int, lang: str, status: int) -> dict:
    """Book a financialtransaction/BankEntries record with its lines; match receipts to invoices.

    Header ``JournalCode`` (a bank journal, Type 12) and lines (``AmountFC``; ``Account`` and/or
    ``GLAccount``) follow picqer BankEntry.php / BankEntryLine.php and Exact's SDK model. A line
    with an ``Account`` and no ``GLAccount`` books on the receivables account (Type 20). A line
    whose ``OurRef`` is the number of one of that account's open sales invoices is matched to its
    receivable: a receipt is a negative ``AmountFC`` (a credit on the receivable); the unpaid rest
    stays in ReceivablesList and a receivable paid in full becomes IsFullyPaid, Status 50. The
    automatic matching on OurRef is an assumption: exact-online.md §3.11 documents no payment push.
    """
    body = check_properties(schema.BANKENTRY, body)
    lines_raw = body.get("BankEntryLines")
    if lines_raw is not None and not isinstance(lines_raw, list):
        raise ExactError(400, BAD_STREAM)
    errors = Validation(lang, status)
    journal = None
    code = string(body, "JournalCode")
    if not code:
        errors.mandatory("JournalCode")
    else:
        journal = div.by_code("Journals", code)
        if journal is None:
            errors.reference("JournalCode")
        elif journal["Type"] != 12:
            errors.add(text("bank_journal", lang))
    if not lines_raw:
        errors.mandatory("Lines")
    lines = [_bank_line(div, check_properties(schema.BANKENTRYLINE, raw), now_ms, errors) for raw in lines_raw or []]
    errors.raise_if_any()
    for line in lines:
        check_open(div, line["Date"], lang, status)
    year, period = period_of(div, lines[0]["Date"]) or (0, 0)
    year = integer(body, "FinancialYear", year)
    period = integer(body, "FinancialPeriod", period)
    if (year, period) in div.closed:
        raise ExactError(status, text("period_closed", lang, year=year, period=period))
    entry_id = new_guid()
    number_ = next_invoice_number(div, journal["Code"], lines[0]["Date"])
    entry = schema.BANKENTRY.blank()
    entry.update(
        EntryID=entry_id,
        Currency=string(body, "Currency") or div.currency,
        EntryNumber=number_,
        FinancialYear=year,
        FinancialPeriod=period,
        JournalCode=journal["Code"],
        JournalDescription=journal["Description"],
        Status=20,
        StatusDescription="Open",
    )
    for line_number, line in enumerate(lines, start=1):
        line.update(EntryID=entry_id, EntryNumber=number_, LineNumber=line_number)
        div.insert(schema.BANKENTRYLINE, line, now_ms)
        _match_receipt(div, line, now_ms)
    return div.insert(schema.BANKENTRY, entry, now_ms)


def _bank_line(div: Division, body: dict, now_ms: int, errors: Validation) -> dict:
    account = _account_ref(div, body, "Account", errors)
    gl = None
    try:
        gl_id = guid(body, "GLAccount")
    except ExactError:
        gl_id = ""
    if gl_id is not None:
        gl = div.table("GLAccounts").get(gl_id)
        if gl is None:
            errors.reference("GLAccount")
    elif account is not None:
        gl = next((g for g in div.table("GLAccounts").values() if g["Type"] == 20), None)
    else:
        errors.mandatory("GLAccount")
    amount = number(body, "AmountFC")
    if amount is None:
        errors.mandatory("AmountFC")
        amount = 0.0
    line = schema.BANKENTRYLINE.blank()
    _assign(schema.BANKENTRYLINE, line, body)
    line.update(
        ID=new_guid(),
        Account=account["ID"] if account else None,
        AccountCode=account["Code"] if account else None,
        AccountName=account["Name"] if account else None,
        AmountFC=money(amount),
        AmountDC=money(amount),
        Date=when(body, "Date") or date_to_ms(ms_to_date(now_ms)),
        GLAccount=gl["ID"] if gl else None,
        GLAccountCode=gl["Code"] if gl else None,
        GLAccountDescription=gl["Description"] if gl else None,
        OurRef=integer(body, "OurRef"),
        Division=div.code,
    )
    return line


def _match_receipt(div: Division, line: dict, now_ms: int) -> None:
    """Apply a receipt line to the open receivable of the invoice its OurRef names."""
    if line["Account"] is None or line["OurRef"] is None:
        return
    for receivable in div.table("Receivables").values():
        if receivable["Account"] != line["Account"] or receivable["InvoiceNumber"] != line["OurRef"]:
            continue
        if receivable["IsFullyPaid"]:
            continue
        paid = money(div.paid.get(receivable["ID"], 0.0) - line["AmountFC"])
        div.paid[receivable["ID"]] = paid
        receivable["LastPaymentDate"] = line["Date"]
        if abs(paid) >= abs(receivable["AmountDC"]) - 0.005:
            receivable.update(IsFullyPaid=True, Status=50)
        div.touch(receivable, now_ms)
        return


# -- journal status per period ----------------------------------------------------------------
def journal_status_rows(div: Division, lang: str) -> list[dict]:
    """Return read/financial/JournalStatusList: one row per journal and financial period.

    Closing a period (control ``close_period``) closes it for every journal: Status 1.
    """
    rows = []
    periods = sorted((p["FinYear"], p["FinPeriod"]) for p in div.table("FinancialPeriods").values())
    for journal in div.table("Journals").values():
        for year, period in periods:
            closed = (year, period) in div.closed
            rows.append(
                {
                    "ID": f"{journal['ID'][:24]}{year:04d}{period:02d}000000",
                    "Journal": journal["Code"],
                    "Period": period,
                    "Year": year,
                    "JournalDescription": journal["Description"],
                    "JournalType": journal["Type"],
                    "JournalTypeDescription": journal.get("TypeDescription"),
                    "Status": 1 if closed else 0,
                    "StatusDescription": ("Gesloten" if closed else "Open")
                    if lang == "nl"
                    else ("Closed" if closed else "Open"),
                }
            )
    return rows


# -- sales entries ------------------------------------------------------------------------
def create_sales_entry(div: Division, body: object, now_ms: int, lang: str, status: int) -> dict:
    """Book a salesentry/SalesEntries record with its lines (exact-online.md §3.9)."""
    body = check_properties(schema.SALESENTRY, body)
    lines_raw = body.get("SalesEntryLines")
    if lines_raw is not None and not isinstance(lines_raw, list):
        raise ExactError(400, BAD_STREAM)
    errors = Validation(lang, status)
    if body.get("Journal") in (None, ""):
        errors.mandatory("Journal")
        journal = None
    else:
        journal = _sales_journal(div, body, errors, lang)
    if body.get("Customer") in (None, ""):
        errors.mandatory("Customer")
    customer = _account_ref(div, body, "Customer", errors)
    if not lines_raw:
        errors.mandatory("Lines")
    lines = []
    for raw in lines_raw or []:
        line_body = check_properties(schema.SALESENTRYLINE, raw)
        lines.append(_entry_line(div, line_body, errors, lang))
    errors.raise_if_any()
    entry_date = when(body, "EntryDate") or date_to_ms(ms_to_date(now_ms))
    year, period = check_open(div, entry_date, lang, status)
    year = integer(body, "ReportingYear", year)
    period = integer(body, "ReportingPeriod", period)
    if (year, period) in div.closed:
        raise ExactError(status, text("period_closed", lang, year=year, period=period))
    wanted = integer(body, "EntryNumber") or integer(body, "InvoiceNumber")
    taken = {e["EntryNumber"] for e in div.table("SalesEntries").values() if e["Journal"] == journal["Code"]}
    # Own numbering works on SalesEntries (picqer#176); a duplicate is silently replaced (OS note).
    number_ = wanted if wanted and wanted not in taken else next_invoice_number(div, journal["Code"], entry_date)
    condition = div.by_code("PaymentConditions", string(body, "PaymentCondition") or customer["PaymentConditionSales"])
    entry_id = new_guid()
    excl = money(sum(line["AmountFC"] for line in lines))
    vat = money(sum(line["VATAmountFC"] for line in lines))
    entry = schema.SALESENTRY.blank()
    _assign(schema.SALESENTRY, entry, body)
    entry.update(
        EntryID=entry_id,
        AmountFC=money(excl + vat),
        AmountDC=money(excl + vat),
        VATAmountFC=vat,
        VATAmountDC=vat,
        Currency=string(body, "Currency") or div.currency,
        Customer=customer["ID"],
        CustomerName=customer["Name"],
        EntryDate=entry_date,
        DueDate=when(body, "DueDate") or entry_date + int((condition or {}).get("PaymentDays", 0)) * 86_400_000,
        EntryNumber=number_,
        InvoiceNumber=number_,
        Journal=journal["Code"],
        JournalDescription=journal["Description"],
        PaymentCondition=condition["Code"] if condition else None,
        PaymentConditionDescription=condition["Description"] if condition else None,
        ReportingYear=year,
        ReportingPeriod=period,
        Status=div.sales_entry_status,
        StatusDescription="Open" if div.sales_entry_status == 20 else "Processed",
        Type=21 if excl < 0 else 20,
        TypeDescription="Sales credit note" if excl < 0 else "Sales entry",
    )
    for number_line, line in enumerate(lines, start=1):
        line.update(EntryID=entry_id, LineNumber=number_line)
        div.insert(schema.SALESENTRYLINE, line, now_ms)
    div.insert(schema.SALESENTRY, entry, now_ms)
    add_receivable(div, entry, customer, now_ms)
    return entry


def _entry_line(div: Division, body: dict, errors: Validation, lang: str) -> dict:
    gl = None
    if body.get("GLAccount") in (None, ""):
        errors.mandatory("GLAccount")
    else:
        try:
            gl = div.table("GLAccounts").get(guid(body, "GLAccount") or "")
        except ExactError:
            gl = None
        if gl is None:
            errors.reference("GLAccount")
        elif gl["Type"] != 110:
            errors.add(text("gl_type", lang))
    amount = number(body, "AmountFC")
    if amount is None:
        errors.mandatory("AmountFC")
        amount = 0.0
    vat_code = string(body, "VATCode")
    vat_code = pad_right(vat_code, 3) if vat_code else (gl or {}).get("VATCode")
    vat = div.by_code("VATCodes", vat_code) if vat_code else None
    if vat_code and vat is None:
        errors.reference("VATCode")
    pct = vat["Percentage"] if vat else 0.0
    vat_amount = number(body, "VATAmountFC")
    vat_amount = money(amount * pct) if vat_amount is None else money(vat_amount)
    line = schema.SALESENTRYLINE.blank()
    _assign(schema.SALESENTRYLINE, line, body)
    line.update(
        ID=new_guid(),
        AmountFC=money(amount),
        AmountDC=money(number(body, "AmountDC", amount)),
        GLAccount=gl["ID"] if gl else None,
        GLAccountCode=gl["Code"] if gl else None,
        GLAccountDescription=gl["Description"] if gl else None,
        VATCode=vat_code,
        VATCodeDescription=vat["Description"] if vat else None,
        VATPercentage=pct,
        VATAmountFC=vat_amount,
        VATAmountDC=vat_amount,
        VATBaseAmountFC=money(amount),
        VATBaseAmountDC=money(amount),
        Division=div.code,
    )
    return line


def delete_sales_entry(div: Division, record: dict, now_ms: int) -> None:
    """Delete a sales entry with its lines and receivables."""
    entry_id = record["EntryID"]
    for line in div.child_rows("SalesEntryLines", entry_id):
        div.remove(schema.SALESENTRYLINE, line["ID"], now_ms)
    for rec in [x for x in div.table("Receivables").values() if x["EntryID"] == entry_id]:
        div.remove(schema.RECEIVABLE, rec["ID"], now_ms)
    div.remove(schema.SALESENTRY, entry_id, now_ms)


# -- documents ----------------------------------------------------------------------------
def create_document(
    div: Division, body: object, now_ms: int, lang: str, status: int, *, document_date: int | None = None
) -> dict:
    """Create a documents/Documents record (exact-online.md §3.10: Subject and Type mandatory)."""
    body = check_properties(schema.DOCUMENT, body)
    errors = Validation(lang, status)
    if not string(body, "Subject"):
        errors.mandatory("Subject")
    if body.get("Type") is None:
        errors.mandatory("Type")
    account = _account_ref(div, body, "Account", errors)
    errors.raise_if_any()
    div.hid += 1
    record = schema.DOCUMENT.blank()
    _assign(schema.DOCUMENT, record, body)
    record.update(
        ID=new_guid(),
        HID=div.hid,
        Type=integer(body, "Type"),
        TypeDescription={10: "Verkoopfactuur" if lang == "nl" else "Sales invoice"}.get(integer(body, "Type")),
        Account=account["ID"] if account else None,
        AccountCode=account["Code"] if account else None,
        AccountName=account["Name"] if account else None,
        DocumentDate=document_date or when(body, "DocumentDate") or date_to_ms(ms_to_date(now_ms)),
        FinancialTransactionEntryID=guid(body, "FinancialTransactionEntryID"),
    )
    return div.insert(schema.DOCUMENT, record, now_ms)


def create_attachment(div: Division, body: object, now_ms: int, lang: str, status: int) -> dict:
    """Create a documents/DocumentAttachments record from base64 content (exact-online.md §3.10)."""
    body = check_properties(schema.DOCUMENTATTACHMENT, body)
    errors = Validation(lang, status)
    for prop in ("Document", "FileName", "Attachment"):
        if body.get(prop) in (None, ""):
            errors.mandatory(prop)
    errors.raise_if_any()
    raw = body["Attachment"]
    try:
        if not isinstance(raw, str):
            raise ValueError
        content = base64.b64decode(raw, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise conversion_error("Attachment", "Byte[]") from exc
    try:
        document_id = guid(body, "Document")
    except ExactError:
        document_id = None
    if document_id not in div.table("Documents"):
        raise ExactError(status, text("invalid_reference", lang, label=label("Document", lang)))
    return attach(div, document_id, string(body, "FileName") or "", content, now_ms)


def attach(div: Division, document_id: str, file_name: str, content: bytes, now_ms: int) -> dict:
    """Store an attachment on a document."""
    record = schema.DOCUMENTATTACHMENT.blank()
    record.update(ID=new_guid(), Document=document_id, FileName=file_name, FileSize=len(content))
    div.blobs[record["ID"]] = content
    div.insert(schema.DOCUMENTATTACHMENT, record, now_ms)
    document = div.table("Documents").get(document_id)
    if document is not None:
        document["HasEmptyBody"] = False
    return record


def days_later(day_ms: int, days: int) -> int:
    """Return the day ``days`` after ``day_ms``."""
    return date_to_ms(ms_to_date(day_ms) + timedelta(days=days))


def first_day(year: int, period: int) -> int:
    """Return the first day of a monthly period."""
    return date_to_ms(date(year, period, 1))
