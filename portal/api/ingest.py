"""Ingestion API: the SaaS upserts its billing records by its own ids (scope ``ingest``).

``PUT /api/v1/organizations/<org>/<resource>/<id>``: 201 when new, 200 when updated (updated_at
moves) or when the body says what is stored already (nothing is written). Every problem of a body
is answered at once as 422 with a path per problem. One transaction per request: nothing half-saved.

Decisions:
- invoice lines take quantity ≥ 0; unit_price may be negative (a discount line), the invoice total
  may not (send a credit note). Credit-note lines are positive throughout: the note credits.
- totals are computed from the lines (net = quantity x unit price, tax = net x rate, each rounded
  half-up to cents); a given subtotal / tax_total / total must match them.
- a changed invoice (or credit note) that a ledger holds is refused with 409 naming the ledger and
  what to send instead (a credit note): pushed, in the ledger with other totals ("differs"), made
  there by hand (resolved by hand), or being pushed with its outcome not known yet (send the
  change again once the push settled it). The same body again is still 200: nothing changes.
- ``pdf`` absent keeps the stored PDF, ``null`` removes it.
- a document number is unique per business unit and kind: an invoice (or credit note) whose
  number another id of the unit has already is refused with 409 naming that id
  (``conflicting_id``). Two SaaS documents never share one ledger document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import request
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from ..database import ZERO, utcnow
from ..extensions import db
from ..integrations import specs
from ..models import (
    BusinessUnit,
    Connection,
    CreditNote,
    CreditNoteLine,
    Customer,
    ExternalRecord,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Organization,
    Payment,
    PaymentMethod,
    Product,
    RecordKind,
    RecordState,
)
from ..models.external_record import MAPPING_HOLD_CLASSES, Resolution
from . import ingest_schema as schema
from . import jsonbody
from .auth import api_key_required
from .blueprint import bp

CENT = Decimal("0.01")
MONEY_MAX = Decimal(10) ** 12


class Refused(Exception):
    """A request answered with an error body: 404, 409 or 422 (with its problems)."""

    def __init__(
        self,
        status: int,
        message: str,
        problems: list[dict[str, str]] | None = None,
        *,
        conflicting_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []
        #: The SaaS id of the document that holds the number already (409 on a duplicate number).
        self.conflicting_id = conflicting_id


@bp.errorhandler(Refused)
def _refused(exc: Refused):
    db.session.rollback()
    body: dict[str, Any] = {"status": exc.status, "message": exc.message}
    if exc.status == 422 or exc.problems:
        body["problems"] = exc.problems
    if exc.conflicting_id is not None:
        body["conflicting_id"] = exc.conflicting_id
    return {"error": body}, exc.status


def _invalid(problems: list[dict[str, str]]) -> Refused:
    said = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
    return Refused(422, f"The body has {len(problems)} problem(s): {said}", problems)


def _body(fields: dict[str, schema.Field], external_id: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Parse the JSON body exactly (decimals, no NaN) and clean it; return it with its problems."""

    problems: list[dict[str, str]] = []
    if len(external_id) > schema.ID_MAX or not external_id.strip():
        problems.append({"path": "(url) id", "message": f"must have 1 to {schema.ID_MAX} characters"})
    try:
        data = jsonbody.parse()
    except jsonbody.BodyError as exc:
        problem = {"path": exc.path, "message": exc.message.removeprefix(f"{exc.path}: ")}
        if exc.status == 422:
            raise _invalid([problem]) from None
        raise Refused(exc.status, exc.message, [problem]) from None
    cleaned = schema.clean_object(data, fields, "", problems)
    return cleaned, problems


def _organization(org_id: str) -> Organization:
    if any(isinstance(v, str) and schema._CONTROL.search(v) for v in (request.view_args or {}).values()):
        raise Refused(404, "The URL holds control characters (such as NUL): there is no such record.")
    org = db.session.scalar(select(Organization).filter_by(external_id=org_id))
    if org is None:
        raise Refused(404, f"There is no organization with id {org_id!r}.")
    return org


def _by_external_id(model, org: Organization, external_id: str | None):
    if external_id is None:
        return None
    return db.session.scalar(select(model).filter_by(organization_id=org.id, external_id=external_id))


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def rate_text(rate: Decimal) -> str:
    """Return a rate with two decimals, or three where it has them ("21.00", "8.875")."""
    return str(rate.quantize(CENT)) if rate == rate.quantize(CENT) else str(rate.normalize())


#: Error classes of a pending record's last attempt after which the ledger may hold the document:
#: none (an attempt under way, or one a crash ended) and an outage (a timeout after the ledger
#: committed). After the others the ledger answered that it wrote nothing.
_UNKNOWN_OUTCOME_CLASSES = (None, "provider_down")


def _ledger_copy(kind: RecordKind, local_id: int) -> tuple[str, bool] | None:
    """Say where a ledger holds the document, or may hold it, so that a change could not follow it there.

    Returns (the words, whether it is certain) or None when no ledger has it: in the ledger
    (pushed, or there with other totals: "differs from the SaaS"), made there by hand (dismissed
    as resolved by hand), or an attempt whose outcome is unknown (under way, or ended by a crash or
    an outage before the ledger answered).
    """
    rows = db.session.execute(
        select(ExternalRecord, Connection.provider)
        .join(Connection, Connection.id == ExternalRecord.connection_id)
        .where(ExternalRecord.kind == kind, ExternalRecord.local_id == local_id)
        .order_by(ExternalRecord.id)
    ).all()
    maybe = None
    for record, provider in rows:
        name = specs.get_spec(provider).name
        number = record.external_number or record.external_id
        if record.state is RecordState.pushed or (record.external_id and record.state is not RecordState.dismissed):
            differs = ", where its totals differ from the SaaS's already" if record.differs else ""
            return f"is in {name} already (as {number}{differs})", True
        if record.state is RecordState.dismissed and record.resolution is Resolution.resolved_manually:
            return f"was made in {name} by hand (its record is marked resolved by hand)", True
        if (
            record.state is RecordState.pending
            and record.attempts > 0
            and record.last_error_class in _UNKNOWN_OUTCOME_CLASSES
        ):
            maybe = (
                f"is being pushed to {name}, or its last push ended before {name} answered, so {name} may hold "
                "it already",
                False,
            )
    return maybe


def _refuse_ledger_change(what: str, number: str, kind: RecordKind, local_id: int, changed: list[str]) -> None:
    """Refuse (409) a change of a document a ledger holds or may hold; say what to do instead.

    :raise Refused: 409 when :func:`_ledger_copy` finds a ledger copy.
    """
    copy = _ledger_copy(kind, local_id)
    if copy is None:
        return
    where, certain = copy
    changes = f" (this body changes its {', '.join(changed)})" if changed else ""
    if certain:
        fix = {
            RecordKind.invoice: "send a credit note for it, and the corrected invoice as a new invoice with a "
            "number of its own",
            RecordKind.credit_note: "send a new credit note for the difference, or correct it in the ledger by hand",
        }.get(kind, "send another payment for an amount paid on top, or correct the booking in the ledger by hand")
        raise Refused(
            409,
            f"{what.capitalize()} {number} {where}: the ledger copy cannot follow a change{changes}, so nothing "
            f"was changed. Instead, {fix}. The {what} as stored is answered 200 when sent again.",
        )
    raise Refused(
        409,
        f"{what.capitalize()} {number} {where}: a change now{changes} could reach the ledger or not, so nothing "
        f"was changed. Send it again once the push has settled (GET this {what}: ledger.state is no longer "
        f"pending); if the {what} is in the ledger by then, the change is refused for good.",
    )


def _changed_fields(obj, values: dict[str, Any], same_lines: bool) -> list[str]:
    """Name what a body changes of a stored document: its fields (by their API names) and lines."""
    names = {"business_unit_id": "business_unit", "customer_id": "customer", "invoice_id": "invoice"}
    changed = [names.get(k, k) for k, v in values.items() if getattr(obj, k) != v and k in _SHOWN_FIELDS]
    if not same_lines:
        changed.append("lines")
    return changed


#: Stored fields a change of which is named to the SaaS (totals follow from the lines).
_SHOWN_FIELDS = frozenset(
    {"business_unit_id", "customer_id", "invoice_id", "number", "issue_date", "due_date", "currency", "reason", "pdf"}
)


def _number_taken(model, unit_id: int, number: str, external_id: str) -> None:
    """Refuse a number another document of the business unit and kind has (409 naming it).

    On PostgreSQL a transaction lock on (kind, unit, number) keeps two concurrent requests from
    both taking a free number; it is released with the request's transaction.

    :raise Refused: 409 with ``conflicting_id``.
    """
    if db.engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"{model.__tablename__}:{unit_id}:{number}".encode()).digest()[:8], "big")
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - (1 << 63)})
    other = db.session.scalar(
        select(model.external_id)
        .where(model.business_unit_id == unit_id, model.number == number, model.external_id != external_id)
        .limit(1)
    )
    if other is not None:
        what = "invoice" if model is Invoice else "credit note"
        raise Refused(
            409,
            f"{what.capitalize()} number {number} is used by {what} {other} of this business unit already: each "
            f"{what} needs its own number (the ledger keeps one document per number).",
            conflicting_id=other,
        )


def _release_number_hold(kind: RecordKind, local_id: int) -> None:
    """Send a document held for a number another document has back to the push (its number changed)."""
    _release_holds(kind, local_id, {"duplicate"})


def _release_holds(kind: RecordKind, local_id: int, classes: Collection[str]) -> None:
    """Send a document held for one of these causes back to the push: the SaaS sent a new version."""
    for record in db.session.scalars(
        select(ExternalRecord).filter_by(kind=kind, local_id=local_id, state=RecordState.needs_action)
    ):
        if record.last_error_class in classes:
            record.transition(RecordState.pending)


def _answer(representation: dict[str, Any], created: bool):
    return representation, 201 if created else 200


# -- representations ----------------------------------------------------------------------------


def customer_json(c: Customer) -> dict[str, Any]:
    """Return a customer as the API shows it."""
    return {
        "id": c.external_id,
        **{name: getattr(c, name) for name in schema.CUSTOMER_FIELDS},
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
    }


def product_json(p: Product) -> dict[str, Any]:
    """Return a product as the API shows it."""
    return {
        "id": p.external_id,
        "code": p.code,
        "name": p.name,
        "unit_price": str(p.unit_price),
        "tax_rate": rate_text(p.tax_rate),
        "active": p.active,
        "updated_at": p.updated_at.isoformat(),
    }


def _lines_json(lines, products: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {
            "position": line.position,
            "description": line.description,
            "quantity": str(line.quantity),
            "unit_price": str(line.unit_price),
            "tax_rate": rate_text(line.tax_rate),
            "tax_kind": line.kind.value,
            "product": products.get(line.product_id) if line.product_id else None,
            "net_amount": _money(line.net_amount),
            "tax_amount": _money(line.tax_amount),
        }
        for line in sorted(lines, key=lambda x: x.position)
    ]


def _product_ids(lines) -> dict[int, str]:
    ids = {line.product_id for line in lines if line.product_id}
    if not ids:
        return {}
    rows = db.session.execute(select(Product.id, Product.external_id).where(Product.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


def invoice_json(inv: Invoice) -> dict[str, Any]:
    """Return an invoice as the API shows it (the PDF by size only)."""
    pdf = inv.pdf
    return {
        "id": inv.external_id,
        "business_unit": inv.business_unit_id,
        "number": inv.number,
        "customer": inv.customer.external_id,
        "issue_date": inv.issue_date.isoformat(),
        "due_date": inv.due_date.isoformat() if inv.due_date else None,
        "currency": inv.currency,
        "lines": _lines_json(inv.lines, _product_ids(inv.lines)),
        "subtotal": _money(inv.subtotal),
        "tax_total": _money(inv.tax_total),
        "total": _money(inv.total),
        "status": inv.status.value,
        "amount_paid": _money(inv.amount_paid),
        "pdf_bytes": len(pdf) if pdf is not None else None,
        "created_at": inv.created_at.isoformat(),
        "updated_at": inv.updated_at.isoformat(),
    }


def credit_note_json(note: CreditNote) -> dict[str, Any]:
    """Return a credit note as the API shows it."""
    return {
        "id": note.external_id,
        "invoice": note.invoice.external_id,
        "business_unit": note.business_unit_id,
        "customer": note.customer.external_id,
        "number": note.number,
        "issue_date": note.issue_date.isoformat(),
        "currency": note.currency,
        "reason": note.reason,
        "lines": _lines_json(note.lines, _product_ids(note.lines)),
        "subtotal": _money(note.subtotal),
        "tax_total": _money(note.tax_total),
        "total": _money(note.total),
        "created_at": note.created_at.isoformat(),
        "updated_at": note.updated_at.isoformat(),
    }


def payment_json(p: Payment) -> dict[str, Any]:
    """Return a payment as the API shows it."""
    return {
        "id": p.external_id,
        "invoice": p.invoice.external_id,
        "paid_on": p.paid_on.isoformat(),
        "amount": _money(p.amount),
        "currency": p.currency,
        "method": p.method.value,
        "reference": p.reference,
        "created_at": p.created_at.isoformat(),
    }


def organization_json(org: Organization) -> dict[str, Any]:
    """Return an organization with its business units (whose ids documents name)."""
    return {
        "id": org.external_id,
        "name": org.name,
        "country": org.country,
        "business_units": [
            {"id": u.id, "name": u.name, "country": u.country, "currency": u.currency, "vat_number": u.vat_number}
            for u in org.business_units
        ],
    }


# -- shared document logic ----------------------------------------------------------------------


def _computed_lines(data: dict[str, Any], org: Organization, problems: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Return the lines with their amounts and product ids; add problems for positions and products."""
    lines = [line for line in data.get("lines") or [] if line is not None]
    seen: dict[int, int] = {}
    out = []
    for i, line in enumerate(lines):
        position = line.get("position")
        if position is not None:
            if position in seen:
                problems.append(
                    {"path": f"lines[{i}].position", "message": f"repeats the position of lines[{seen[position]}]"}
                )
            else:
                seen[position] = i
        product_id = None
        if line.get("product") is not None:
            product = _by_external_id(Product, org, line["product"])
            if product is None:
                problems.append({"path": f"lines[{i}].product", "message": f"there is no product {line['product']!r}"})
            else:
                product_id = product.id
        kind, rate = line.get("tax_kind"), line.get("tax_rate")
        if kind is not None and rate is not None and (rate > 0) != (kind not in schema.ZERO_TAX_KINDS):
            words = kind.replace("_", " ")
            if rate > 0:
                article = "an" if words[0] in "aeiou" else "a"
                fix = (
                    f"a line at {rate.normalize():f} % is standard or reduced; "
                    f"send tax_rate 0 for {article} {words} line"
                )
            else:
                fix = "a line at 0 % is zero, exempt, reverse_charge or outside_scope; send its own tax_rate"
            problems.append({"path": f"lines[{i}].tax_kind", "message": f"is {words}, but {fix}"})
        if None in (line.get("quantity"), line.get("unit_price"), line.get("tax_rate")):
            continue
        net = (line["quantity"] * line["unit_price"]).quantize(CENT, ROUND_HALF_UP)
        tax = (net * line["tax_rate"] / 100).quantize(CENT, ROUND_HALF_UP)
        out.append({**line, "product_id": product_id, "net_amount": net, "tax_amount": tax})
    return out


def _totals(data: dict[str, Any], lines: list[dict[str, Any]], problems: list[dict[str, str]]) -> dict[str, Decimal]:
    subtotal = sum((x["net_amount"] for x in lines), ZERO)
    tax_total = sum((x["tax_amount"] for x in lines), ZERO)
    totals = {"subtotal": subtotal, "tax_total": tax_total, "total": subtotal + tax_total}
    for name, value in totals.items():
        given = data.get(name)
        if given is not None and given != value:
            problems.append({"path": name, "message": f"is {_money(given)} but the lines add up to {_money(value)}"})
        if abs(value) >= MONEY_MAX:
            problems.append({"path": name, "message": f"comes to {_money(value)}, more than the largest amount"})
    return totals


def _amounts_ok(problems: list[dict[str, str]]) -> bool:
    """Say whether every line's amounts are usable (so totals can be checked alongside other problems)."""
    return not any(p["path"] == "lines" or p["path"].startswith("lines[") for p in problems)


def _line_content(lines) -> list[tuple]:
    return sorted(
        (
            x["position"],
            x["description"],
            x["quantity"],
            x["unit_price"],
            x["tax_rate"],
            x.get("tax_kind") or "",
            x["product_id"],
        )
        if isinstance(x, dict)
        else (
            x.position,
            x.description,
            x.quantity,
            x.unit_price,
            x.tax_rate,
            x.tax_kind.value if x.tax_kind else "",
            x.product_id,
        )
        for x in lines
    )


def _set_lines(doc, line_model, lines: list[dict[str, Any]]) -> None:
    doc.lines = [
        line_model(
            position=x["position"],
            description=x["description"],
            quantity=x["quantity"],
            unit_price=x["unit_price"],
            tax_rate=x["tax_rate"],
            tax_kind=x.get("tax_kind"),
            net_amount=x["net_amount"],
            tax_amount=x["tax_amount"],
            product_id=x["product_id"],
        )
        for x in lines
    ]


def _apply(obj, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; return whether any did."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent request created the same id first
        db.session.rollback()
        raise Refused(409, "The record was created by a concurrent request; send it again.") from None


# -- routes -------------------------------------------------------------------------------------

ORG = "/organizations/<org_id>"


@bp.get(ORG)
@api_key_required("ingest")
def show_organization(org_id: str):
    return organization_json(_organization(org_id))


def _upsert(model, org, external_id: str, values: dict):
    """Create or update the record with this SaaS id; return it and whether it is new."""
    record = _by_external_id(model, org, external_id)
    created = record is None
    if created:
        record = model(organization_id=org.id, external_id=external_id)
        db.session.add(record)
    if _apply(record, values) and not created:
        record.updated_at = utcnow()
    return record, created


@bp.put(ORG + "/customers/<external_id>")
@api_key_required("ingest")
def put_customer(org_id: str, external_id: str):
    org = _organization(org_id)
    data, problems = _body(schema.CUSTOMER_FIELDS, external_id)
    if problems:
        raise _invalid(problems)
    values = {name: data.get(name) for name in schema.CUSTOMER_FIELDS}
    customer, created = _upsert(Customer, org, external_id, values)
    _commit()
    return _answer(customer_json(customer), created)


@bp.put(ORG + "/products/<external_id>")
@api_key_required("ingest")
def put_product(org_id: str, external_id: str):
    org = _organization(org_id)
    data, problems = _body(schema.PRODUCT_FIELDS, external_id)
    if problems:
        raise _invalid(problems)
    values = {name: data[name] for name in ("code", "name", "unit_price", "tax_rate")}
    values["active"] = data.get("active", True)
    product, created = _upsert(Product, org, external_id, values)
    _commit()
    return _answer(product_json(product), created)


@bp.put(ORG + "/invoices/<external_id>")
@api_key_required("ingest")
def put_invoice(org_id: str, external_id: str):
    org = _organization(org_id)
    data, problems = _body(schema.INVOICE_FIELDS, external_id)
    unit = None
    if data.get("business_unit") is not None:
        unit = next((u for u in org.business_units if u.id == data["business_unit"]), None)
        if unit is None:
            problems.append(
                {"path": "business_unit", "message": f"is not a business unit of organization {org.external_id}"}
            )
    customer = _by_external_id(Customer, org, data.get("customer"))
    if data.get("customer") is not None and customer is None:
        problems.append({"path": "customer", "message": f"there is no customer {data['customer']!r}"})
    if unit is not None and data.get("currency") and data["currency"] != unit.currency:
        problems.append(
            {
                "path": "currency",
                "message": f"is {data['currency']} but business unit {unit.id} invoices in {unit.currency}",
            }
        )
    if data.get("issue_date") and data.get("due_date") and data["due_date"] < data["issue_date"]:
        problems.append({"path": "due_date", "message": "is before issue_date"})
    amounts_ok = _amounts_ok(problems)
    lines = _computed_lines(data, org, problems)
    totals = _totals(data, lines, problems) if amounts_ok else {}
    if totals and totals["total"] < 0:
        problems.append({"path": "total", "message": "is below 0; an invoice cannot be negative, send a credit note"})
    if problems:
        raise _invalid(problems)
    assert unit is not None and customer is not None  # no problems means both were found

    invoice = _by_external_id(Invoice, org, external_id)
    created = invoice is None
    if created or invoice.number != data["number"] or invoice.business_unit_id != unit.id:
        _number_taken(Invoice, unit.id, data["number"], external_id)
    values = {
        "business_unit_id": unit.id,
        "customer_id": customer.id,
        "number": data["number"],
        "issue_date": data["issue_date"],
        "due_date": data.get("due_date"),
        "currency": data["currency"],
        **totals,
    }
    if "pdf" in data:
        values["pdf"] = data["pdf"]
    if created:
        invoice = Invoice(organization_id=org.id, external_id=external_id, **values)
        _set_lines(invoice, InvoiceLine, lines)
        db.session.add(invoice)
        _commit()
        return _answer(invoice_json(invoice), True)

    same_lines = _line_content(invoice.lines) == _line_content(lines)
    differs = not same_lines or any(getattr(invoice, k) != v for k, v in values.items())
    if not differs:
        return _answer(invoice_json(invoice), False)
    _refuse_ledger_change(
        "invoice", invoice.number, RecordKind.invoice, invoice.id, _changed_fields(invoice, values, same_lines)
    )
    has_dependants = invoice.payments or db.session.scalar(
        select(func.count(CreditNote.id)).filter_by(invoice_id=invoice.id)
    )
    if has_dependants and (
        values["currency"] != invoice.currency or values["business_unit_id"] != invoice.business_unit_id
    ):
        raise _invalid(
            [{"path": "currency", "message": "cannot change: payments or credit notes refer to this invoice"}]
        )
    if values["number"] != invoice.number:
        _release_number_hold(RecordKind.invoice, invoice.id)
    _release_holds(RecordKind.invoice, invoice.id, MAPPING_HOLD_CLASSES)  # its lines or totals may be mapped now
    _apply(invoice, values)
    if not same_lines:
        _set_lines(invoice, InvoiceLine, lines)
    _recompute_paid(invoice)
    invoice.updated_at = utcnow()
    _commit()
    return _answer(invoice_json(invoice), False)


def _referred_invoice(org, data: dict, problems: list[dict]) -> Invoice | None:
    """Return the invoice a credit note or payment refers to, noting a missing one or another currency."""
    invoice = _by_external_id(Invoice, org, data.get("invoice"))
    if data.get("invoice") is not None and invoice is None:
        problems.append({"path": "invoice", "message": f"there is no invoice {data['invoice']!r}"})
    if invoice is not None and data.get("currency") and data["currency"] != invoice.currency:
        problems.append(
            {
                "path": "currency",
                "message": f"is {data['currency']} but invoice {invoice.external_id} is in {invoice.currency}",
            }
        )
    return invoice


@bp.put(ORG + "/credit-notes/<external_id>")
@api_key_required("ingest")
def put_credit_note(org_id: str, external_id: str):
    org = _organization(org_id)
    data, problems = _body(schema.CREDIT_NOTE_FIELDS, external_id)
    invoice = _referred_invoice(org, data, problems)
    amounts_ok = _amounts_ok(problems)
    lines = _computed_lines(data, org, problems)
    totals = _totals(data, lines, problems) if amounts_ok else {}
    if totals and invoice is not None and totals["total"] > invoice.total:
        problems.append(
            {"path": "total", "message": f"is more than the {_money(invoice.total)} of invoice {invoice.external_id}"}
        )
    if problems:
        raise _invalid(problems)
    assert invoice is not None  # no problems means it was found

    note = _by_external_id(CreditNote, org, external_id)
    created = note is None
    if created or note.number != data["number"] or note.business_unit_id != invoice.business_unit_id:
        _number_taken(CreditNote, invoice.business_unit_id, data["number"], external_id)
    values = {
        "invoice_id": invoice.id,
        "business_unit_id": invoice.business_unit_id,
        "customer_id": invoice.customer_id,
        "number": data["number"],
        "issue_date": data["issue_date"],
        "currency": data["currency"],
        "reason": data.get("reason"),
        **totals,
    }
    if created:
        note = CreditNote(organization_id=org.id, external_id=external_id, **values)
        _set_lines(note, CreditNoteLine, lines)
        db.session.add(note)
        _commit()
        return _answer(credit_note_json(note), True)
    same_lines = _line_content(note.lines) == _line_content(lines)
    if same_lines and all(getattr(note, k) == v for k, v in values.items()):
        return _answer(credit_note_json(note), False)
    _refuse_ledger_change(
        "credit note", note.number, RecordKind.credit_note, note.id, _changed_fields(note, values, same_lines)
    )
    if values["number"] != note.number:
        _release_number_hold(RecordKind.credit_note, note.id)
    _release_holds(RecordKind.credit_note, note.id, MAPPING_HOLD_CLASSES)
    _apply(note, values)
    if not same_lines:
        _set_lines(note, CreditNoteLine, lines)
    note.updated_at = utcnow()
    _commit()
    return _answer(credit_note_json(note), False)


def _recompute_paid(invoice: Invoice) -> None:
    """Set amount_paid and status from the invoice's payments."""
    db.session.flush()
    paid = db.session.execute(
        select(func.coalesce(func.sum(Payment.amount), 0)).filter_by(invoice_id=invoice.id)
    ).scalar_one()
    paid = Decimal(paid).quantize(CENT)
    status = (
        InvoiceStatus.open
        if paid <= 0
        else InvoiceStatus.paid
        if paid >= invoice.total
        else InvoiceStatus.partially_paid
    )
    if invoice.amount_paid != paid or invoice.status is not status:
        invoice.amount_paid, invoice.status = paid, status


@bp.put(ORG + "/payments/<external_id>")
@api_key_required("ingest")
def put_payment(org_id: str, external_id: str):
    org = _organization(org_id)
    data, problems = _body(schema.PAYMENT_FIELDS, external_id)
    invoice = _referred_invoice(org, data, problems)
    payment = _by_external_id(Payment, org, external_id)
    if invoice is not None and data.get("amount") is not None:
        others = db.session.execute(
            select(func.coalesce(func.sum(Payment.amount), 0)).where(
                Payment.invoice_id == invoice.id, Payment.external_id != external_id
            )
        ).scalar_one()
        if Decimal(others) + data["amount"] > invoice.total:
            problems.append(
                {
                    "path": "amount",
                    "message": f"brings the payments to {_money(Decimal(others) + data['amount'])}, "
                    f"more than the invoice's total {_money(invoice.total)}",
                }
            )
    if problems:
        raise _invalid(problems)
    assert invoice is not None  # no problems means it was found

    values = {
        "invoice_id": invoice.id,
        "paid_on": data["paid_on"],
        "amount": data["amount"],
        "currency": data["currency"],
        "method": PaymentMethod(data["method"]),
        "reference": data.get("reference"),
    }
    created = payment is None
    old_invoice = None if created else payment.invoice
    if not created:
        changed = [{"invoice_id": "invoice"}.get(k, k) for k, v in values.items() if getattr(payment, k) != v]
        if changed:
            _refuse_ledger_change("payment", payment.external_id, RecordKind.payment, payment.id, changed)
    if created:
        payment = Payment(organization_id=org.id, external_id=external_id, **values)
        db.session.add(payment)
    elif not _apply(payment, values):
        return _answer(payment_json(payment), False)
    db.session.flush()
    db.session.refresh(invoice)
    _recompute_paid(invoice)
    if old_invoice is not None and old_invoice.id != invoice.id:
        _recompute_paid(old_invoice)
    _commit()
    return _answer(payment_json(payment), created)


__all__ = ["BusinessUnit", "Refused"]
