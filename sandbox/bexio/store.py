"""One bexio company's state: master data, contacts, articles, invoices and their payments.

Methods that change state raise :class:`ApiError` with the status and text bexio answers; the
caller holds the emulator lock. Numbers are kept as Decimal and formatted on the way out the
way the recordings show (bexio.md §2.5, §3.2).
"""

from __future__ import annotations

import base64
import itertools
import uuid
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from . import data

ZURICH = ZoneInfo("Europe/Zurich")

DRAFT, PENDING, PAID, PARTIAL, CANCELLED, OVERDUE = 7, 8, 9, 16, 19, 31

#: Positions per document above which bexio fails with a 500 and a partial document
#: (bexio.md §3.2 "Large documents", MM PR #90).
MAX_POSITIONS = 150

#: The symfony form error message bexio answers 422 with (bexio.md §4, PP #19).
FORM_ERROR = "The form could not be saved due to the following errors:."

ZERO = Decimal(0)


class ApiError(Exception):
    """An API refusal rendered as ``{"error_code", "message"[, "errors"]}`` (bexio.md §4)."""

    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self) -> dict:
        """Return the JSON body bexio sends for this error."""
        body: dict[str, Any] = {"error_code": self.status, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def invalid(*errors: str) -> ApiError:
    """Return the 422 validation error listing ``errors``."""
    return ApiError(422, FORM_ERROR, list(errors))


def not_found(what: str = "Entity") -> ApiError:
    """Return the 404 for an unknown id [U: message text, bexio.md §8]."""
    return ApiError(404, f"{what} not found")


def f6(value: Decimal) -> str:
    """Format like bexio's normalised money and quantities: six decimals."""
    return f"{value:.6f}"


def f4(value: Decimal) -> str:
    """Format with four decimals, as bexio does for taxes and remaining amounts."""
    return f"{value:.4f}"


def short(value: Decimal) -> str:
    """Format without trailing zeros, as create responses echo numbers (bexio.md §3.2)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def decimal_field(body: dict, key: str, errors: list[str], *, required: bool = False) -> Decimal | None:
    """Read a decimal given as string or number; note an error when it is missing or invalid."""
    raw = body.get(key)
    if raw is None or raw == "":
        if required:
            errors.append(f"{key} [Required.]")
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        errors.append(f"{key} [Invalid.]")
        return None
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        errors.append(f"{key} [Invalid.]")
        return None
    # bexio stores amounts as DECIMAL(20,6); larger values cannot be saved.
    if not value.is_finite() or abs(value) >= Decimal(10) ** 14:
        errors.append(f"{key} [Invalid.]")
        return None
    return value


def int_field(body: dict, key: str, errors: list[str], *, required: bool = False) -> int | None:
    """Read an integer id given as number or numeric string."""
    raw = body.get(key)
    if raw is None or raw == "":
        if required:
            errors.append(f"{key} [Required.]")
        return None
    if isinstance(raw, bool):
        errors.append(f"{key} [Invalid.]")
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw.strip())
    errors.append(f"{key} [Invalid.]")
    return None


def str_field(body: dict, key: str, errors: list[str], *, max_len: int = 255) -> str | None:
    """Read an optional string of at most ``max_len`` characters."""
    raw = body.get(key)
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or len(raw) > max_len:
        errors.append(f"{key} [Invalid.]")
        return None
    return raw


def date_field(body: dict, key: str, errors: list[str]) -> str | None:
    """Read a date; ``YYYY-MM-DD HH:MM:SS`` is accepted and stored as the date (bexio.md §2.5)."""
    raw = body.get(key)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        errors.append(f"{key} [Invalid.]")
        return None
    try:
        return date.fromisoformat(raw.strip()[:10]).isoformat()
    except ValueError:
        errors.append(f"{key} [Invalid.]")
        return None


def bool_field(body: dict, key: str, errors: list[str]) -> bool | None:
    """Read a boolean (true/false, 1/0)."""
    raw = body.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool):
        return raw
    if raw in (0, 1, "0", "1", "true", "false"):
        return raw in (1, "1", "true")
    errors.append(f"{key} [Invalid.]")
    return None


def round_to(value: Decimal, factor: Decimal) -> Decimal:
    """Round ``value`` to a multiple of ``factor`` (CHF: 0.05), half up."""
    return ((value / factor).quantize(Decimal(1), rounding=ROUND_HALF_UP) * factor).quantize(Decimal("0.01"))


# A tiny PDF template: the real endpoint returns a base64 PDF inside JSON (bexio.md §3.4).
_PDF = (
    "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    "2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    "3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R"
    "/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    "4 0 obj<</Length {length}>>stream\n{stream}\nendstream endobj\n"
    "5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
    "trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _pdf_text(text: str) -> str:
    return (
        text.encode("latin-1", "replace")
        .decode("latin-1")
        .replace("\\", "\\\\")
        .replace("(", "\\(")
        .replace(")", "\\)")
    )


def render_pdf(lines: list[str]) -> bytes:
    """Return a minimal one-page PDF showing ``lines``."""
    body = "BT /F1 12 Tf 50 800 Td 16 TL " + " ".join(f"({_pdf_text(line)}) Tj T*" for line in lines) + " ET"
    return _PDF.replace("{length}", str(len(body))).replace("{stream}", body).encode("latin-1")


CONTACT_FIELDS = (
    "salutation_form",
    "birthday",
    "street_name",
    "house_number",
    "address_addition",
    "postcode",
    "city",
    "mail",
    "mail_second",
    "phone_fixed",
    "phone_fixed_second",
    "phone_mobile",
    "fax",
    "url",
    "skype_name",
    "remarks",
    "contact_group_ids",
    "contact_branch_ids",
)

INVOICE_ID_FIELDS = ("language_id", "bank_account_id", "currency_id", "payment_type_id")

POSITION_TYPES = (
    "KbPositionCustom",
    "KbPositionArticle",
    "KbPositionText",
    "KbPositionSubtotal",
    "KbPositionDiscount",
    "KbPositionPagebreak",
)

#: Position sub-resource path segment → position type (bexio.md §3.3).
POSITION_PATHS = {
    "kb_position_custom": "KbPositionCustom",
    "kb_position_article": "KbPositionArticle",
    "kb_position_text": "KbPositionText",
    "kb_position_subtotal": "KbPositionSubtotal",
    "kb_position_discount": "KbPositionDiscount",
    "kb_position_pagebreak": "KbPositionPagebreak",
}

# A 1x1 PNG standing in for the generated avatar that contact responses carry.
PROFILE_IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


class Company:
    """The state of one bexio company."""

    def __init__(self, spec: dict, clock) -> None:
        self.clock = clock
        self.company_id: str = spec["company_id"]
        self.name: str = spec["name"]
        self.spec = spec
        self.ids = itertools.count(1)
        self.position_ids = itertools.count(1)
        self.payment_ids = itertools.count(1)
        self.contact_nr = itertools.count(1)
        self.invoice_nr = itertools.count(1)
        #: company_user_id → user dict (from data.USERS) plus per-company rights.
        self.users: dict[int, dict] = {}
        #: Modules a user may not use, per company_user_id (two-level authorization, bexio.md §1.2).
        self.denied: dict[int, set[str]] = {}
        self.trial = False
        self.max_positions = MAX_POSITIONS
        self.languages = {
            i: {
                "id": i,
                "name": n,
                "decimal_point": ".",
                "thousands_separator": "'",
                "date_format_id": 1,
                "date_format": "d.m.Y",
                "iso_639_1": iso,
            }
            for i, n, iso in data.LANGUAGES
        }
        self.currencies = {i: {"id": i, "name": n, "round_factor": r} for i, n, r in data.CURRENCIES}
        self.payment_types = {i: {"id": i, "name": n} for i, n in data.PAYMENT_TYPES}
        self.units = {i: {"id": i, "name": n} for i, n in data.UNITS}
        self.countries = {i: {"id": i, "name": n, "name_short": c, "iso_3166_alpha2": c} for i, n, c in data.COUNTRIES}
        self.accounts = {
            i: {
                "id": i,
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.company_id}/account/{i}")),
                "account_no": no,
                "name": name,
                "account_type": t,
                "tax_id": None,
                "fibu_account_group_id": g,
                "is_active": True,
                "is_locked": False,
            }
            for i, no, name, t, g in data.ACCOUNTS
        }
        self.taxes = {}
        for i, code, digit, typ, value, start, end, active, label in data.TAXES:
            self.taxes[i] = {
                "id": i,
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.company_id}/tax/{i}")),
                "name": f"lib.model.tax.ch.{typ}_{digit}.name",
                "code": code,
                "digit": digit,
                "type": typ,
                "account_id": 80 if typ == "sales_tax" else 99,
                "tax_settlement_type": "none",
                "value": value,
                "net_tax_value": None,
                "start_year": start,
                "end_year": end,
                "is_active": active,
                "display_name": f"{code} - {label}",
                "start_month": 1 if start else None,
                "end_month": 12 if end else None,
            }
        self.bank_accounts = {
            1: self._bank_account(1, "Hausbank CHF", 1, "CH9300762011623852957", 77),
            2: self._bank_account(2, "Hausbank EUR", 2, "CH5604835012345678009", 77),
        }
        self.contacts: dict[int, dict] = {}
        self.articles: dict[int, dict] = {}
        self.invoices: dict[int, dict] = {}
        #: api_reference → invoice ids, so the idempotency lookup (bexio.md §7.13) does not scan.
        self.by_api_reference: dict[str, set[int]] = {}
        self.contact_ids = itertools.count(1)
        self.article_ids = itertools.count(1)
        self.invoice_ids = itertools.count(1)

    def _bank_account(self, i: int, name: str, currency_id: int, iban: str, account_id: int) -> dict:
        spec = self.spec
        return {
            "id": i,
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.company_id}/bank/{i}")),
            "name": name,
            "owner": spec["name"],
            "owner_address": spec["address"],
            "owner_house_number": spec["address_nr"],
            "owner_zip": spec["postcode"],
            "owner_city": spec["city"],
            "owner_country_code": "CH",
            "bc_nr": "762",
            "bank_name": "Musterbank AG",
            "bank_account_nr": iban[-12:],
            "iban_nr": iban,
            "currency_id": currency_id,
            "account_id": account_id,
            "remarks": "",
            "is_esr": False,
            "esr_besr_id": "",
            "esr_bottom_line_include_amount": True,
            "esr_post_account_nr": "",
            "esr_payment_for_text": "",
            "esr_in_favour_of_text": "",
            "invoice_mode": "none",
            "qr_invoice_iban": None,
            "type": "bank",
            "bank_nr": "MUSTCH22XXX",
        }

    # -- time ------------------------------------------------------------------------------
    def local_now(self) -> datetime:
        """Return the emulated time in Europe/Zurich (2.0 timestamps are local, bexio.md §2.5)."""
        return self.clock.now().astimezone(ZURICH)

    def today(self) -> str:
        """Return today's date in Zurich as YYYY-MM-DD."""
        return self.local_now().date().isoformat()

    def stamp(self) -> str:
        """Return the 2.0 timestamp format ``YYYY-MM-DD HH:MM:SS`` in Zurich time."""
        return self.local_now().strftime("%Y-%m-%d %H:%M:%S")

    # -- users -----------------------------------------------------------------------------
    def add_user(self, user: dict, company_user_id: int) -> None:
        """Give ``user`` access to this company as ``company_user_id``."""
        self.users[company_user_id] = user

    def user_json(self, company_user_id: int) -> dict:
        """Return a user as ``/3.0/users`` shows it."""
        user = self.users[company_user_id]
        return {
            "id": company_user_id,
            "salutation_type": user["salutation_type"],
            "firstname": user["given_name"],
            "lastname": user["family_name"],
            "email": user["email"],
            "is_superadmin": user["superadmin"].get(self.company_id, False),
            "is_accountant": False,
        }

    # -- contacts --------------------------------------------------------------------------
    def _contact_values(self, body: dict, errors: list[str], current: dict | None) -> dict:
        values: dict[str, Any] = {}
        for key in ("contact_type_id", "user_id", "owner_id"):
            value = int_field(body, key, errors, required=current is None)
            if value is not None:
                values[key] = value
        if "contact_type_id" in values and values["contact_type_id"] not in (1, 2):
            errors.append("contact_type_id [Invalid.]")
        for key in ("user_id", "owner_id"):
            if key in values and values[key] not in self.users:
                errors.append(f"{key} [Invalid.]")
        name_1 = str_field(body, "name_1", errors)
        if name_1 is not None:
            if not name_1.strip():
                errors.append("name_1 [Required.]")
            values["name_1"] = name_1
        elif current is None and "name_1 [Invalid.]" not in errors:
            errors.append("name_1 [Required.]")
        name_2 = str_field(body, "name_2", errors)
        if name_2 is not None:
            values["name_2"] = name_2
        # salutation_id reads back as 0 when unset, and posting that 0 back fails (bexio.md §3.1, ARTNUM).
        if "salutation_id" in body:
            sal = int_field(body, "salutation_id", errors)
            if sal == 0:
                errors.append("salutation_id [Invalid.]")
            values["salutation_id"] = sal
        for key in ("title_id", "titel_id"):
            if key in body:
                values["title_id"] = int_field(body, key, errors)
        for key in ("country_id", "language_id"):
            if key in body:
                value = int_field(body, key, errors)
                table = self.countries if key == "country_id" else self.languages
                if value is not None and value not in table:
                    errors.append(f"{key} [Invalid.]")
                values[key] = value
        for key in CONTACT_FIELDS:
            if key in body:
                value = str_field(body, key, errors, max_len=10000 if key == "remarks" else 255)
                values[key] = value
        if body.get("house_number") or body.get("address_addition"):
            street = values.get("street_name", current.get("street_name") if current else None)
            if not street:
                errors.append("street_name [Required.]")
        if "nr" in body:
            nr = str_field(body, "nr", errors)
            if nr is not None:
                values["nr"] = nr
        return values

    def create_contact(self, body: dict) -> dict:
        """Create a contact; ``address`` is read-only and composed (bexio.md §3.1).

        :raise ApiError: 422 when a required field is missing or invalid.
        """
        errors: list[str] = []
        values = self._contact_values(body, errors, None)
        if errors:
            raise invalid(*errors)
        cid = next(self.contact_ids)
        number = next(self.contact_nr)
        contact = {
            "id": cid,
            "nr": values.pop("nr", None) or f"{number:06d}",
            "contact_type_id": 1,
            "name_1": "",
            "name_2": "",
            "salutation_id": None,
            "salutation_form": None,
            "title_id": None,
            "birthday": None,
            "address": None,
            "street_name": None,
            "house_number": None,
            "address_addition": None,
            "postcode": "",
            "city": "",
            "country_id": None,
            "mail": "",
            "mail_second": "",
            "phone_fixed": "",
            "phone_fixed_second": "",
            "phone_mobile": "",
            "fax": "",
            "url": "",
            "skype_name": "",
            "remarks": "",
            "language_id": None,
            "is_lead": False,
            "contact_group_ids": None,
            "contact_branch_ids": None,
            "user_id": None,
            "owner_id": None,
            "updated_at": self.stamp(),
            "deleted": False,
        }
        contact.update(values)
        self._compose_address(contact)
        self.contacts[cid] = contact
        return contact

    def edit_contact(self, cid: int, body: dict) -> dict:
        """Edit a contact by POST (bexio.md §2.1).

        :raise ApiError: 404 for an unknown or deleted contact, 422 for invalid fields.
        """
        contact = self.contact(cid)
        errors: list[str] = []
        values = self._contact_values(body, errors, contact)
        if errors:
            raise invalid(*errors)
        contact.update(values)
        contact["updated_at"] = self.stamp()
        self._compose_address(contact)
        return contact

    @staticmethod
    def _compose_address(contact: dict) -> None:
        street = " ".join(p for p in (contact.get("street_name"), contact.get("house_number")) if p)
        contact["address"] = street or None

    def contact(self, cid: int, *, include_deleted: bool = False) -> dict:
        """Return a contact.

        :raise ApiError: 404 when unknown or deleted.
        """
        contact = self.contacts.get(cid)
        if contact is None or (contact["deleted"] and not include_deleted):
            raise not_found("Contact")
        return contact

    @staticmethod
    def contact_json(contact: dict, *, with_image: bool) -> dict:
        """Return a contact as the API shows it (single reads carry ``profile_image``, bexio.md §3.1)."""
        out = {k: v for k, v in contact.items() if k != "deleted"}
        if with_image:
            out["profile_image"] = PROFILE_IMAGE
        return out

    def contact_address(self, contact: dict) -> str:
        """Return the invoice address block "Name\\nStreet Nr\\nZIP City\\nCountry" (bexio.md §3.2)."""
        name = " ".join(p for p in (contact["name_1"], contact.get("name_2") or "") if p).strip()
        if contact["contact_type_id"] == 2 and contact.get("name_2"):
            name = f"{contact['name_2']} {contact['name_1']}"
        lines = [name]
        if contact.get("address"):
            lines.append(contact["address"])
        city = " ".join(p for p in (contact.get("postcode") or "", contact.get("city") or "") if p)
        if city:
            lines.append(city)
        country = self.countries.get(contact.get("country_id") or 0)
        if country:
            lines.append(country["name"])
        return "\n".join(lines)

    # -- articles --------------------------------------------------------------------------
    def _article_values(self, body: dict, errors: list[str], current: dict | None) -> dict:
        values: dict[str, Any] = {}
        user_id = int_field(body, "user_id", errors, required=current is None)
        if user_id is not None:
            if user_id not in self.users:
                errors.append("user_id [Invalid.]")
            values["user_id"] = user_id
        name = str_field(body, "intern_name", errors)
        if name is not None and name.strip():
            values["intern_name"] = name
        elif current is None or name is not None:
            errors.append("intern_name [Required.]")
        article_type = int_field(body, "article_type_id", errors)
        if article_type is not None:
            if article_type not in (1, 2):
                errors.append("article_type_id [Invalid.]")
            values["article_type_id"] = article_type
        for key in (
            "intern_code",
            "intern_description",
            "html_text",
            "remarks",
            "deliverer_code",
            "deliverer_name",
            "deliverer_description",
        ):
            value = str_field(body, key, errors, max_len=10000)
            if value is not None:
                values[key] = value
        for key in ("sale_price", "purchase_price"):
            if key in body:
                value = decimal_field(body, key, errors)
                values[key] = f6(value) if value is not None else None
        for key, table in (
            ("currency_id", self.currencies),
            ("unit_id", self.units),
            ("tax_income_id", self.taxes),
            ("tax_expense_id", self.taxes),
            ("account_id", self.accounts),
            ("contact_id", self.contacts),
        ):
            if key in body:
                value = int_field(body, key, errors)
                if value is not None and value not in table:
                    errors.append(f"{key} [Invalid.]")
                values[key] = value
        return values

    def create_article(self, body: dict) -> dict:
        """Create an article; ``user_id`` and ``intern_name`` are required (bexio.md §3.7).

        :raise ApiError: 422 on invalid input.
        """
        errors: list[str] = []
        values = self._article_values(body, errors, None)
        if errors:
            raise invalid(*errors)
        aid = next(self.article_ids)
        article = {
            "id": aid,
            "user_id": None,
            "article_type_id": 1,
            "contact_id": None,
            "deliverer_code": "",
            "deliverer_name": "",
            "deliverer_description": "",
            "intern_code": f"ART-{aid:05d}",
            "intern_name": "",
            "intern_description": "",
            "purchase_price": None,
            "sale_price": None,
            "purchase_total": None,
            "sale_total": None,
            "currency_id": 1,
            "tax_income_id": None,
            "tax_id": None,
            "tax_expense_id": None,
            "unit_id": None,
            "is_stock": False,
            "stock_id": None,
            "stock_place_id": None,
            "stock_nr": 0,
            "stock_min_nr": 0,
            "stock_reserved_nr": 0,
            "stock_available_nr": 0,
            "stock_picked_nr": 0,
            "stock_disposed_nr": 0,
            "stock_ordered_nr": 0,
            "width": None,
            "height": None,
            "weight": None,
            "volume": None,
            "html_text": "",
            "remarks": "",
            "delivery_price": None,
            "article_group_id": None,
            "account_id": None,
            "expense_account_id": None,
        }
        article.update(values)
        article["tax_id"] = article["tax_income_id"]
        self.articles[aid] = article
        return article

    def edit_article(self, aid: int, body: dict) -> dict:
        """Edit an article by POST.

        :raise ApiError: 404 unknown, 422 invalid.
        """
        article = self.article(aid)
        errors: list[str] = []
        values = self._article_values(body, errors, article)
        if errors:
            raise invalid(*errors)
        article.update(values)
        article["tax_id"] = article["tax_income_id"]
        return article

    def article(self, aid: int) -> dict:
        """Return an article.

        :raise ApiError: 404 when unknown.
        """
        article = self.articles.get(aid)
        if article is None:
            raise not_found("Article")
        return article

    # -- invoices --------------------------------------------------------------------------
    def invoice(self, iid: int) -> dict:
        """Return an invoice.

        :raise ApiError: 404 when unknown.
        """
        invoice = self.invoices.get(iid)
        if invoice is None:
            raise not_found("Invoice")
        return invoice

    def status(self, invoice: dict) -> int:
        """Return the invoice's kb_item_status_id; pending ones past due read as 31 (bexio.md §3.4)."""
        status = invoice["status"]
        if status == PENDING and (invoice["overdue"] or invoice["is_valid_to"] < self.today()):
            return OVERDUE
        return status

    def _header_values(self, body: dict, errors: list[str], current: dict | None) -> dict:
        values: dict[str, Any] = {}
        contact_id = int_field(body, "contact_id", errors, required=current is None)
        if contact_id is not None:
            contact = self.contacts.get(contact_id)
            if contact is None or contact["deleted"]:
                errors.append("contact_id [Invalid.]")
            values["contact_id"] = contact_id
        user_id = int_field(body, "user_id", errors, required=current is None)
        if user_id is not None:
            if user_id not in self.users:
                errors.append("user_id [Invalid.]")
            values["user_id"] = user_id
        for key, table in (
            ("language_id", self.languages),
            ("bank_account_id", self.bank_accounts),
            ("currency_id", self.currencies),
            ("payment_type_id", self.payment_types),
        ):
            value = int_field(body, key, errors)
            if value is not None:
                if value not in table:
                    errors.append(f"{key} [Invalid.]")
                values[key] = value
        for key in ("contact_sub_id", "pr_project_id", "logopaper_id"):
            if key in body:
                value = int_field(body, key, errors)
                if key == "contact_sub_id" and value is not None and value not in self.contacts:
                    errors.append("contact_sub_id [Invalid.]")
                values["project_id" if key == "pr_project_id" else key] = value
        mwst_type = int_field(body, "mwst_type", errors)
        if mwst_type is not None:
            if mwst_type not in (0, 1, 2):
                errors.append("mwst_type [Invalid.]")
            values["mwst_type"] = mwst_type
        for key in ("mwst_is_net", "show_position_taxes"):
            value = bool_field(body, key, errors)
            if value is not None:
                values[key] = value
        for key in ("is_valid_from", "is_valid_to"):
            value = date_field(body, key, errors)
            if value is not None:
                values[key] = value
        for key, max_len in (
            ("title", 255),
            ("reference", 255),
            ("api_reference", 255),
            ("template_slug", 255),
            ("header", 65535),
            ("footer", 65535),
        ):
            if key in body:
                value = str_field(body, key, errors, max_len=max_len)
                values[key] = value if value is not None or key == "api_reference" else ""
        return values

    def _position(self, body: Any, errors: list[str], index: int) -> dict | None:
        if not isinstance(body, dict):
            errors.append(f"positions[{index}] [Invalid.]")
            return None
        kind = body.get("type")
        if kind not in POSITION_TYPES:
            errors.append(f"positions[{index}][type] [Invalid.]")
            return None
        local: list[str] = []
        pos: dict[str, Any] = {"type": kind, "is_optional": bool(body.get("is_optional", False))}
        if kind in ("KbPositionCustom", "KbPositionArticle"):
            article = None
            if kind == "KbPositionArticle":
                article_id = int_field(body, "article_id", local, required=True)
                article = self.articles.get(article_id) if article_id is not None else None
                if article_id is not None and article is None:
                    local.append("article_id [Invalid.]")
                pos["article_id"] = article_id
            amount = decimal_field(body, "amount", local, required=True)
            price = decimal_field(body, "unit_price", local, required=article is None and kind != "KbPositionArticle")
            if price is None and article is not None and article["sale_price"] is not None:
                price = Decimal(article["sale_price"])
            discount = decimal_field(body, "discount_in_percent", local) or ZERO
            if discount < 0 or discount > 100:
                local.append("discount_in_percent [Invalid.]")
            tax_id = int_field(body, "tax_id", local)
            if tax_id is None and article is not None:
                tax_id = article["tax_income_id"]
            tax = self.taxes.get(tax_id) if tax_id is not None else None
            # Only active sales taxes are accepted on positions (bexio.md §3.3, §7.11).
            if tax_id is None:
                local.append("tax_id [Required.]")
            elif tax is None or tax["type"] != "sales_tax" or not tax["is_active"]:
                local.append("tax_id [Invalid.]")
            account_id = int_field(body, "account_id", local)
            if account_id is None and article is not None:
                account_id = article["account_id"]
            # Positions book to a revenue account (account_type 1, bexio.md §3.3) [U: refusal of others].
            if account_id is not None:
                account = self.accounts.get(account_id)
                if account is None or account["account_type"] != 1 or not account["is_active"]:
                    local.append("account_id [Invalid.]")
            unit_id = int_field(body, "unit_id", local)
            if unit_id is None and article is not None:
                unit_id = article["unit_id"]
            if unit_id is not None and unit_id not in self.units:
                local.append("unit_id [Invalid.]")
            text = str_field(body, "text", local, max_len=65535)
            if text is None and article is not None:
                text = article["intern_name"]
            if not local:
                pos.update(
                    amount=amount,
                    unit_price=price if price is not None else ZERO,
                    discount=discount,
                    tax_id=tax_id,
                    tax_value=Decimal(str(tax["value"])),
                    account_id=account_id,
                    unit_id=unit_id,
                    text=text or "",
                    raw={k: body.get(k) for k in ("amount", "unit_price", "discount_in_percent")},
                )
        elif kind == "KbPositionText":
            pos["text"] = str_field(body, "text", local, max_len=65535) or ""
            pos["show_pos_nr"] = bool(body.get("show_pos_nr", True))
        elif kind == "KbPositionSubtotal":
            pos["text"] = str_field(body, "text", local) or "Subtotal"
        elif kind == "KbPositionDiscount":
            pos["text"] = str_field(body, "text", local) or ""
            value = decimal_field(body, "value", local, required=True)
            percent = body.get("is_percentual", body.get("discount_in_percent", False))
            pos["is_percentual"] = bool(percent)
            pos["value"] = value if value is not None else ZERO
        errors.extend(f"positions[{index}][{e.split(' ', 1)[0]}] {e.split(' ', 1)[1]}" for e in local)
        return None if local else pos

    def _positions(self, items: Any, errors: list[str]) -> list[dict]:
        if not isinstance(items, list):
            errors.append("positions [Invalid.]")
            return []
        positions = []
        for index, item in enumerate(items):
            pos = self._position(item, errors, index)
            if pos is not None:
                positions.append(pos)
        return positions

    def _number_positions(self, positions: list[dict]) -> None:
        nr = 0
        for internal, pos in enumerate(positions, start=1):
            pos["internal_pos"] = internal
            if pos["type"] in ("KbPositionCustom", "KbPositionArticle", "KbPositionText"):
                nr += 1
                pos["pos"] = str(nr)
            else:
                pos["pos"] = None

    def compute_totals(self, invoice: dict) -> None:
        """Compute totals per the recipe of bexio.md §8 "Totals"; store Decimals."""
        net = ZERO
        by_rate: dict[Decimal, Decimal] = {}
        running = ZERO
        for pos in invoice["positions"]:
            kind = pos["type"]
            if kind in ("KbPositionCustom", "KbPositionArticle"):
                total = pos["amount"] * pos["unit_price"] * (1 - pos["discount"] / 100)
                pos["position_total"] = total
                if pos["is_optional"]:
                    continue
                net += total
                running += total
                by_rate[pos["tax_value"]] = by_rate.get(pos["tax_value"], ZERO) + total
            elif kind == "KbPositionSubtotal":
                pos["value"] = running
            elif kind == "KbPositionDiscount":
                amount = net * pos["value"] / 100 if pos["is_percentual"] else pos["value"]
                pos["discount_total"] = amount
                if net:
                    factor = (net - amount) / net
                    by_rate = {rate: base * factor for rate, base in by_rate.items()}
                net -= amount
        taxes: dict[Decimal, Decimal] = {}
        if invoice["mwst_type"] == 0:
            for rate, base in by_rate.items():
                if not rate:
                    continue
                if invoice["mwst_is_net"]:
                    taxes[rate] = base * rate / 100
                else:
                    taxes[rate] = base * rate / (100 + rate)
        total_taxes = sum(taxes.values(), ZERO).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        if invoice["mwst_type"] == 0 and invoice["mwst_is_net"]:
            total_net, gross = net, net + total_taxes
        elif invoice["mwst_type"] == 0:
            total_net, gross = net - total_taxes, net
        else:
            total_net, gross = net, net
        factor = Decimal(str(self.currencies[invoice["currency_id"]]["round_factor"]))
        total = round_to(gross, factor)
        received = sum((p["value"] for p in invoice["payments"]), ZERO)
        invoice["totals"] = {
            "total_gross": gross,
            "total_net": total_net,
            "total_taxes": total_taxes,
            "total": total,
            "total_rounding_difference": float((total - gross).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
            "total_received_payments": received,
            "total_credit_vouchers": ZERO,
            "total_remaining_payments": max(total - received, ZERO) if invoice["status"] != CANCELLED else ZERO,
            "taxs": [
                {
                    "percentage": f"{rate:.2f}",
                    "value": f4(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)),
                }
                for rate, value in sorted(taxes.items())
            ],
        }

    def _defaults(self, invoice: dict) -> None:
        contact = self.contacts[invoice["contact_id"]]
        user = self.users[invoice["user_id"]]
        if invoice.get("header") is None:
            invoice["header"] = (
                f"Guten Tag {contact['name_1']}<br/><br/>"
                "Danke für Ihr Vertrauen. Ihre Rechnung setzt sich wie folgt zusammen:"
            )
        if invoice.get("footer") is None:
            invoice["footer"] = (
                "Sie haben Fragen? Melden Sie sich bei uns.<br/><br/>Freundliche Grüsse<br/>"
                f"{user['given_name']} {user['family_name']}"
            )
        invoice["contact_address"] = self.contact_address(contact)

    def create_invoice(self, body: dict) -> dict:
        """Create a draft invoice (status 7) with its positions (bexio.md §3.2).

        :raise ApiError: 422 on invalid input; 500 with a partial document above 150 positions.
        """
        errors: list[str] = []
        values = self._header_values(body, errors, None)
        positions = self._positions(body.get("positions", []), errors) if "positions" in body else []
        if errors:
            raise invalid(*errors)
        iid = next(self.invoice_ids)
        today = self.today()
        invoice = {
            "id": iid,
            "document_nr": f"RE-{next(self.invoice_nr):05d}",
            "title": None,
            "contact_id": None,
            "contact_sub_id": None,
            "user_id": None,
            "project_id": None,
            "logopaper_id": 1,
            "language_id": 1,
            "bank_account_id": 1,
            "currency_id": 1,
            "payment_type_id": 4,
            "header": None,
            "footer": None,
            "mwst_type": 0,
            "mwst_is_net": True,
            "show_position_taxes": False,
            "is_valid_from": today,
            "is_valid_to": None,
            "reference": "",
            "api_reference": None,
            "viewed_by_client_at": None,
            "updated_at": self.stamp(),
            "esr_id": iid,
            "qr_invoice_id": iid,
            "template_slug": "",
            "network_link": "",
            "status": DRAFT,
            "overdue": False,
            "positions": [],
            "payments": [],
            "totals": {},
            "sent": [],
        }
        invoice.update(values)
        if invoice["is_valid_to"] is None:
            invoice["is_valid_to"] = (date.fromisoformat(invoice["is_valid_from"]) + timedelta(days=30)).isoformat()
        self._defaults(invoice)
        partial = len(positions) > self.max_positions
        for pos in positions[: self.max_positions]:
            pos["id"] = next(self.position_ids)
        invoice["positions"] = positions[: self.max_positions]
        self._number_positions(invoice["positions"])
        self.compute_totals(invoice)
        self.invoices[iid] = invoice
        if invoice["api_reference"]:
            self.by_api_reference.setdefault(invoice["api_reference"], set()).add(iid)
        if partial:
            # bexio stores the first part and answers 500 without an id (bexio.md §3.2, MM PR #90).
            raise ApiError(500, "An unexpected error occurred")
        return invoice

    def edit_invoice(self, iid: int, body: dict) -> dict:
        """Edit a draft's header fields by POST; positions are refused (bexio.md §3.2).

        :raise ApiError: 404 unknown, 422 for positions, non-drafts or invalid fields.
        """
        invoice = self.invoice(iid)
        if "positions" in body:
            raise ApiError(422, "Widget schema does not include positions")
        if invoice["status"] != DRAFT:
            raise invalid("kb_item_status_id [Only drafts can be edited.]")
        errors: list[str] = []
        values = self._header_values(body, errors, invoice)
        if errors:
            raise invalid(*errors)
        old_ref = invoice["api_reference"]
        invoice.update(values)
        if old_ref != invoice["api_reference"]:
            if old_ref:
                self.by_api_reference.get(old_ref, set()).discard(iid)
            if invoice["api_reference"]:
                self.by_api_reference.setdefault(invoice["api_reference"], set()).add(iid)
        invoice["contact_address"] = self.contact_address(self.contacts[invoice["contact_id"]])
        self.compute_totals(invoice)
        invoice["updated_at"] = self.stamp()
        return invoice

    def copy_invoice(self, iid: int, body: dict) -> dict:
        """Copy an invoice into a new draft for ``contact_id`` (bexio.md §3.2).

        :raise ApiError: 404 unknown, 422 invalid.
        """
        source = self.invoice(iid)
        errors: list[str] = []
        contact_id = int_field(body, "contact_id", errors, required=True)
        if contact_id is not None and (contact_id not in self.contacts or self.contacts[contact_id]["deleted"]):
            errors.append("contact_id [Invalid.]")
        if errors:
            raise invalid(*errors)
        new = self.create_invoice(
            {
                "contact_id": contact_id,
                "user_id": source["user_id"],
                "language_id": source["language_id"],
                "bank_account_id": source["bank_account_id"],
                "currency_id": source["currency_id"],
                "payment_type_id": source["payment_type_id"],
                "mwst_type": source["mwst_type"],
                "mwst_is_net": source["mwst_is_net"],
                "title": body.get("title", ""),
                "is_valid_from": body.get("is_valid_from"),
            }
        )
        for pos in source["positions"]:
            clone = {k: v for k, v in pos.items() if k != "id"}
            clone["id"] = next(self.position_ids)
            clone.pop("raw", None)
            new["positions"].append(clone)
        self.compute_totals(new)
        return new

    def delete_invoice(self, iid: int) -> None:
        """Delete a draft; issued invoices must be cancelled instead (bexio.md §3.4) [U: 422 text].

        :raise ApiError: 404 unknown, 422 not a draft.
        """
        invoice = self.invoice(iid)
        if invoice["status"] != DRAFT:
            raise invalid("kb_item_status_id [Only drafts can be deleted; cancel issued invoices.]")
        del self.invoices[iid]
        if invoice["api_reference"]:
            self.by_api_reference.get(invoice["api_reference"], set()).discard(iid)

    def _touch(self, invoice: dict) -> None:
        invoice["updated_at"] = self.stamp()

    def issue(self, iid: int) -> None:
        """Issue a draft: 7 → 8 (bexio.md §3.4).

        :raise ApiError: 422 when not a draft.
        """
        invoice = self.invoice(iid)
        if invoice["status"] != DRAFT:
            raise invalid("kb_item_status_id [The invoice is not a draft.]")
        if not any(p["type"] in ("KbPositionCustom", "KbPositionArticle") for p in invoice["positions"]):
            raise invalid("positions [The invoice has no positions.]")
        invoice["status"] = PENDING
        self._touch(invoice)

    def revert_issue(self, iid: int) -> None:
        """Return an issued, unpaid invoice to draft: 8/31 → 7.

        :raise ApiError: 422 otherwise.
        """
        invoice = self.invoice(iid)
        if invoice["status"] != PENDING or invoice["payments"]:
            raise invalid("kb_item_status_id [Only issued invoices without payments can be reverted.]")
        invoice["status"] = DRAFT
        invoice["overdue"] = False
        self._touch(invoice)

    def mark_as_sent(self, iid: int) -> None:
        """Record a manual "sent"; a draft becomes pending [U: bexio.md §3.4].

        :raise ApiError: 422 for a cancelled invoice.
        """
        invoice = self.invoice(iid)
        if invoice["status"] == CANCELLED:
            raise invalid("kb_item_status_id [The invoice is cancelled.]")
        if invoice["status"] == DRAFT:
            if not invoice["positions"]:
                raise invalid("positions [The invoice has no positions.]")
            invoice["status"] = PENDING
        invoice["sent"].append({"kind": "manual", "at": self.stamp()})
        self._touch(invoice)

    def send(self, iid: int, body: dict, owner_email: str) -> None:
        """Send by bexio mail; the message must contain ``[Network Link]`` (bexio.md §3.4).

        :raise ApiError: 422 for missing fields, a message without the placeholder, or a cancelled
            invoice; in a trial company, a recipient other than the token owner.
        """
        invoice = self.invoice(iid)
        errors: list[str] = []
        recipient = body.get("recipient_email")
        if not isinstance(recipient, str) or not recipient.strip():
            errors.append("recipient_email [Required.]")
        elif "@" not in recipient or " " in recipient.strip():
            errors.append("recipient_email [Invalid.]")
        for key in ("subject", "message"):
            value = body.get(key)
            if not isinstance(value, str) or not value.strip():
                errors.append(f"{key} [Required.]")
        message = body.get("message")
        if isinstance(message, str) and message.strip() and "[Network Link]" not in message:
            errors.append("message [The message must contain the placeholder [Network Link].]")
        if not isinstance(body.get("mark_as_open"), bool):
            errors.append("mark_as_open [Required.]")
        if "attach_pdf" in body and not isinstance(body["attach_pdf"], bool):
            errors.append("attach_pdf [Invalid.]")
        if errors:
            raise invalid(*errors)
        if self.trial and recipient.strip().lower() != owner_email.lower():
            raise invalid("recipient_email [During the trial you can only send to your own address.]")
        if invoice["status"] == CANCELLED:
            raise invalid("kb_item_status_id [The invoice is cancelled.]")
        if invoice["status"] == DRAFT:
            if not invoice["positions"]:
                raise invalid("positions [The invoice has no positions.]")
            invoice["status"] = PENDING
        if not invoice["network_link"]:
            token = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.company_id}/invoice/{iid}").hex
            invoice["network_link"] = f"https://office.bexio.com/index.php/kb_invoice/show/id/{iid}/hash/{token}"
        invoice["sent"].append(
            {"kind": "mail", "to": recipient.strip(), "subject": body["subject"], "at": self.stamp()}
        )
        self._touch(invoice)

    def cancel(self, iid: int) -> None:
        """Cancel an issued invoice: 8/9/16/31 → 19 (bexio.md §3.4).

        :raise ApiError: 422 for drafts and cancelled invoices.
        """
        invoice = self.invoice(iid)
        if invoice["status"] in (DRAFT, CANCELLED):
            raise invalid("kb_item_status_id [Only issued invoices can be cancelled.]")
        invoice["status"] = CANCELLED
        self.compute_totals(invoice)
        self._touch(invoice)

    def _settle(self, invoice: dict) -> None:
        self.compute_totals(invoice)
        received = invoice["totals"]["total_received_payments"]
        if received <= 0:
            invoice["status"] = PENDING
        elif received >= invoice["totals"]["total"]:
            invoice["status"] = PAID
        else:
            invoice["status"] = PARTIAL
        self.compute_totals(invoice)

    def add_payment(self, iid: int, body: dict) -> dict:
        """Record a payment; the invoice becomes 9 (paid) or 16 (partial) (bexio.md §3.5).

        :raise ApiError: 422 for invalid input, drafts and cancelled invoices.
        """
        invoice = self.invoice(iid)
        errors: list[str] = []
        value = decimal_field(body, "value", errors, required=True)
        if value is not None and value <= 0:
            errors.append("value [Invalid.]")
        paid_on = date_field(body, "date", errors) or self.today()
        bank_account_id = int_field(body, "bank_account_id", errors)
        if bank_account_id is not None and bank_account_id not in self.bank_accounts:
            errors.append("bank_account_id [Invalid.]")
        service = int_field(body, "payment_service_id", errors)
        if service is not None and service not in (1, 2, 3):
            errors.append("payment_service_id [Invalid.]")
        if errors:
            raise invalid(*errors)
        if invoice["status"] in (DRAFT, CANCELLED):
            raise invalid("kb_invoice_id [Payments can only be added to issued invoices.]")
        payment = {
            "id": next(self.payment_ids),
            "date": paid_on,
            "value": value,
            "bank_account_id": bank_account_id,
            "title": "Zahlungseingang",
            "payment_service_id": service,
            "is_client_account_redemption": False,
            "is_cash_discount": False,
            "kb_invoice_id": iid,
            "kb_credit_voucher_id": None,
            "kb_credit_voucher_text": "",
            "kb_bill_id": None,
            "raw": body.get("value"),
        }
        invoice["payments"].append(payment)
        self._settle(invoice)
        self._touch(invoice)
        return payment

    def payment(self, iid: int, pid: int) -> dict:
        """Return one payment of an invoice.

        :raise ApiError: 404 when unknown.
        """
        for payment in self.invoice(iid)["payments"]:
            if payment["id"] == pid:
                return payment
        raise not_found("Payment")

    def delete_payment(self, iid: int, pid: int) -> None:
        """Delete a payment and recompute the status (bexio.md §8).

        :raise ApiError: 404 unknown, 422 on a cancelled invoice.
        """
        invoice = self.invoice(iid)
        payment = self.payment(iid, pid)
        if invoice["status"] == CANCELLED:
            raise invalid("kb_invoice_id [The invoice is cancelled.]")
        invoice["payments"].remove(payment)
        self._settle(invoice)
        self._touch(invoice)

    @staticmethod
    def payment_json(payment: dict, *, echo: bool = False) -> dict:
        """Return a payment; create echoes ``value`` as sent (bexio.md §3.5)."""
        out = {k: v for k, v in payment.items() if k != "raw"}
        out["value"] = str(payment["raw"]) if echo and payment["raw"] is not None else f6(payment["value"])
        return out

    def add_position(self, iid: int, kind: str, body: dict) -> dict:
        """Add one position to a draft through its sub-resource (bexio.md §3.3).

        :raise ApiError: 404 unknown invoice, 422 invalid or not a draft.
        """
        invoice = self.invoice(iid)
        if invoice["status"] != DRAFT:
            raise invalid("kb_item_status_id [Only drafts can be changed.]")
        errors: list[str] = []
        pos = self._position({**body, "type": kind}, errors, len(invoice["positions"]))
        if errors or pos is None:
            raise invalid(*[e.split("]", 1)[1].strip() if e.startswith("positions[") else e for e in errors])
        pos["id"] = next(self.position_ids)
        invoice["positions"].append(pos)
        self._number_positions(invoice["positions"])
        self.compute_totals(invoice)
        self._touch(invoice)
        return pos

    def position(self, iid: int, kind: str, pid: int) -> dict:
        """Return one position of a type.

        :raise ApiError: 404 when unknown.
        """
        for pos in self.invoice(iid)["positions"]:
            if pos["id"] == pid and pos["type"] == kind:
                return pos
        raise not_found("Position")

    def delete_position(self, iid: int, kind: str, pid: int) -> None:
        """Remove a position from a draft.

        :raise ApiError: 404 unknown, 422 not a draft.
        """
        invoice = self.invoice(iid)
        pos = self.position(iid, kind, pid)
        if invoice["status"] != DRAFT:
            raise invalid("kb_item_status_id [Only drafts can be changed.]")
        invoice["positions"].remove(pos)
        self._number_positions(invoice["positions"])
        self.compute_totals(invoice)
        self._touch(invoice)

    def position_json(self, pos: dict, *, echo: bool = False) -> dict:
        """Return a position as the API shows it; create echoes numbers as sent (bexio.md §3.2)."""
        kind = pos["type"]
        base = {"id": pos["id"], "type": kind}
        if kind in ("KbPositionCustom", "KbPositionArticle"):
            raw = pos.get("raw") or {}

            def num(key: str, value: Decimal, fmt=f6) -> str:
                sent = raw.get(key)
                return str(sent) if echo and sent is not None else fmt(value)

            base.update(
                amount=num("amount", pos["amount"]),
                amount_reserved=None if echo else f6(ZERO),
                amount_open=None if echo else f6(ZERO),
                amount_completed=None if echo else f6(ZERO),
                unit_id=pos["unit_id"],
                account_id=pos["account_id"],
                unit_name=self.units[pos["unit_id"]]["name"] if pos["unit_id"] else None,
                tax_id=pos["tax_id"],
                tax_value=f"{pos['tax_value']:.2f}",
                text=pos["text"],
                unit_price=num("unit_price", pos["unit_price"]),
                discount_in_percent=num("discount_in_percent", pos["discount"], f4),
                position_total=short(pos["position_total"]) if echo else f6(pos["position_total"]),
                pos=pos["pos"],
                internal_pos=pos["internal_pos"],
                parent_id=None,
                is_optional=pos["is_optional"],
            )
            if kind == "KbPositionArticle":
                base["article_id"] = pos["article_id"]
        elif kind == "KbPositionText":
            base.update(
                text=pos["text"],
                show_pos_nr=pos["show_pos_nr"],
                pos=pos["pos"],
                internal_pos=pos["internal_pos"],
                parent_id=None,
                is_optional=pos["is_optional"],
            )
        elif kind == "KbPositionSubtotal":
            base.update(
                text=pos["text"],
                value=f6(pos.get("value", ZERO)),
                internal_pos=pos["internal_pos"],
                parent_id=None,
                is_optional=pos["is_optional"],
            )
        elif kind == "KbPositionDiscount":
            base.update(
                text=pos["text"],
                is_percentual=pos["is_percentual"],
                value=f6(pos["value"]),
                discount_total=f6(pos.get("discount_total", ZERO)),
            )
        else:
            base.update(internal_pos=pos["internal_pos"], parent_id=None, is_optional=pos["is_optional"])
        return base

    def invoice_json(self, invoice: dict, *, positions: bool = True, echo: bool = False) -> dict:
        """Return an invoice as the API shows it.

        ``echo`` mimics create/edit responses, which echo totals unnormalised (bexio.md §3.2).
        """
        t = invoice["totals"]
        money = short if echo else f6
        out = {
            "id": invoice["id"],
            "document_nr": invoice["document_nr"],
            "title": invoice["title"],
            "contact_id": invoice["contact_id"],
            "contact_sub_id": invoice["contact_sub_id"],
            "user_id": invoice["user_id"],
            "project_id": invoice["project_id"],
            "logopaper_id": invoice["logopaper_id"],
            "language_id": invoice["language_id"],
            "bank_account_id": invoice["bank_account_id"],
            "currency_id": invoice["currency_id"],
            "payment_type_id": invoice["payment_type_id"],
            "header": invoice["header"],
            "footer": invoice["footer"],
            "total_gross": money(t["total_gross"]),
            "total_net": money(t["total_net"]),
            "total_taxes": f4(t["total_taxes"]),
            "total_received_payments": money(t["total_received_payments"]),
            "total_credit_vouchers": money(t["total_credit_vouchers"]),
            "total_remaining_payments": f4(t["total_remaining_payments"]),
            "total": money(t["total"]),
            "total_rounding_difference": t["total_rounding_difference"],
            "mwst_type": invoice["mwst_type"],
            "mwst_is_net": invoice["mwst_is_net"],
            "show_position_taxes": invoice["show_position_taxes"],
            "is_valid_from": invoice["is_valid_from"],
            "is_valid_to": invoice["is_valid_to"],
            "contact_address": invoice["contact_address"],
            "kb_item_status_id": self.status(invoice),
            "reference": invoice["reference"],
            "api_reference": invoice["api_reference"],
            "viewed_by_client_at": invoice["viewed_by_client_at"],
            "updated_at": invoice["updated_at"],
            "esr_id": invoice["esr_id"],
            "qr_invoice_id": invoice["qr_invoice_id"],
            "template_slug": invoice["template_slug"],
            "taxs": t["taxs"],
        }
        if positions:
            out["positions"] = [self.position_json(p, echo=echo) for p in invoice["positions"]]
        out["network_link"] = invoice["network_link"]
        return out

    def invoice_search_record(self, invoice: dict) -> dict:
        """Return the fields invoice search filters on (bexio.md §2.4)."""
        t = invoice["totals"]
        return {
            "id": invoice["id"],
            "kb_item_status_id": self.status(invoice),
            "document_nr": invoice["document_nr"],
            "title": invoice["title"],
            "api_reference": invoice["api_reference"],
            "contact_id": invoice["contact_id"],
            "contact_sub_id": invoice["contact_sub_id"],
            "user_id": invoice["user_id"],
            "currency_id": invoice["currency_id"],
            "total_gross": t["total_gross"],
            "total_net": t["total_net"],
            "total": t["total"],
            "is_valid_from": invoice["is_valid_from"],
            "is_valid_to": invoice["is_valid_to"],
            "updated_at": invoice["updated_at"],
        }

    def pdf(self, iid: int) -> dict:
        """Return the invoice PDF as bexio's JSON wrapper (bexio.md §3.4)."""
        invoice = self.invoice(iid)
        t = invoice["totals"]
        currency = self.currencies[invoice["currency_id"]]["name"]
        lines = [
            self.name,
            f"Rechnung {invoice['document_nr']}",
            invoice["title"] or "",
            *invoice["contact_address"].split("\n"),
            f"Total {currency} {t['total']:.2f}",
        ]
        content = render_pdf(lines)
        return {
            "name": f"{invoice['document_nr'].lower()}.pdf",
            "size": len(content),
            "mime": "application/pdf",
            "content": base64.b64encode(content).decode("ascii"),
        }

    # -- company ---------------------------------------------------------------------------
    def profile(self) -> dict:
        """Return the ``/2.0/company_profile`` entry."""
        s = self.spec
        return {
            "id": 1,
            "name": s["name"],
            "address": s["address"],
            "address_nr": s["address_nr"],
            "postcode": s["postcode"],
            "city": s["city"],
            "country_id": 1,
            "legal_form": s["legal_form"],
            "country_name": "Schweiz",
            "mail": s["mail"],
            "phone_fixed": s["phone_fixed"],
            "phone_mobile": None,
            "fax": None,
            "url": None,
            "skype_name": None,
            "facebook_name": None,
            "twitter_name": None,
            "description": None,
            "ust_id_nr": None,
            "mwst_nr": s["mwst_nr"],
            "trade_register_nr": None,
            "has_own_logo": False,
            "is_public_profile": False,
            "is_logo_public": False,
            "is_address_public": False,
            "is_phone_public": False,
            "is_mobile_public": False,
            "is_fax_public": False,
            "is_mail_public": False,
            "is_url_public": False,
            "is_skype_public": False,
            "logo_base64": None,
        }
