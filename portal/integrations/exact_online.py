"""Exact Online adapter: only what differs from the other ledgers (exact-online.md, cited §n).

Divisions are integers in every REST URL (§2); the adapter never trusts ``Me.CurrentDivision``
(it drifts when the user switches company in the browser) and always uses ``company_id``.
Refresh tokens rotate on every refresh and the old one dies at once (§1.5), so the new pair is
handed to the token updater inside :meth:`LedgerAdapter._token_call` before it is returned.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import date
from typing import Any
from urllib.parse import urlencode

from . import specs
from .base import (
    Check,
    Company,
    CustomerDraft,
    CustomerQuery,
    DocumentDraft,
    Forbidden,
    LedgerAdapter,
    LedgerCustomer,
    LedgerError,
    NotFound,
    PaymentDraft,
    PaymentStatus,
    PushResult,
    ReferenceItem,
    Rejected,
    TestResult,
    TokenSet,
    register,
    test_label,
)

#: Reference kind → (endpoint, $select, $filter) (§3.2 to §3.6). Items need a filter (mandatory filtering).
_REFERENCE = {
    "items": ("logistics/Items", "ID,Code,Description,SalesVatCode,EndDate", "IsSalesItem eq true"),
    "tax_codes": ("vat/VATCodes", "ID,Code,Description,Percentage,VATTransactionType,IsBlocked", None),
    "gl_accounts": ("financial/GLAccounts", "ID,Code,Description,Type,IsBlocked", "Type eq 110"),
    "journals": ("financial/Journals", "ID,Code,Description,Type,IsBlocked", "Type eq 20"),
    "payment_conditions": ("cashflow/PaymentConditions", "ID,Code,Description,PaymentDays", None),
    "bank_accounts": ("financial/Journals", "ID,Code,Description,Type,IsBlocked", "Type eq 12"),
    # Every account and journal with its type, so a mapping to the wrong type can be named as such.
    "all_accounts": ("financial/GLAccounts", "ID,Code,Description,Type,TypeDescription,IsBlocked", None),
    "all_journals": ("financial/Journals", "ID,Code,Description,Type,TypeDescription,IsBlocked", None),
}
#: Customer look-up key → Account field (§3.1).
_CUSTOMER_FIELDS = {"code": "Code", "vat": "VATNumber", "email": "Email", "name": "Name"}
_ACCOUNT_SELECT = "ID,Code,Name,Email,VATNumber,Country,Blocked,Status"


def odata_literal(value: str) -> str:
    """Return ``value`` as an OData string literal (quotes doubled, §3.0)."""
    return "'" + value.replace("'", "''") + "'"


def account_code(code: str) -> str:
    """Return an Account ``Code`` right-aligned to 18 characters as Exact stores it (§3.0)."""
    return code.strip().rjust(18)


def rows(body: Any) -> list[dict]:
    """Return the records of an OData envelope: ``d.results``, a ``d`` array or a single ``d``."""
    data = body.get("d") if isinstance(body, Mapping) else None
    if isinstance(data, Mapping):
        results = data.get("results")
        return list(results) if isinstance(results, list) else [dict(data)]
    return list(data) if isinstance(data, list) else []


def _strip(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else value


@register(specs.EXACT_ONLINE)
class ExactOnlineAdapter(LedgerAdapter):
    """Exact Online, one region (site) per adapter; ``company_id`` is the division number."""

    # -- OAuth (§1) -------------------------------------------------------------------------------

    def authorization_url(self, *, redirect_uri: str, state: str, code_verifier: str | None = None) -> str:
        """Return the region's consent URL; Exact has no scopes parameter and no PKCE (§1.3)."""
        query = {
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
            "force_login": "0",
        }
        return f"{self.region.authorize_url}?{urlencode(query)}"

    def exchange_code(
        self,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str | None = None,
        callback_params: Mapping[str, str] | None = None,
    ) -> TokenSet:
        """Trade the code (single use, ~3 min) for a token pair and persist it."""
        return self._token_call({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    def refresh(self) -> TokenSet:
        """Refresh (allowed 570 s after the last token, §1.5); the rotated pair is persisted first.

        :raise NeedsReauthorization: "Old refresh token used.", unknown chain or expired token.
        :raise Rejected: "Access Token not expired" (too early: wait, the grant is fine).
        """
        return self._refresh_grant()

    # -- companies (§2) ---------------------------------------------------------------------------

    def _division(self) -> str:
        if not self.company_id:
            raise Rejected("no Exact Online division is pinned on this connection", provider=self.provider)
        return str(self.company_id)

    def _url(self, path: str, division: str | int | None = None) -> str:
        return f"{self.region.api_base}/{division if division is not None else self._division()}/{path}"

    def _get_rows(self, path: str, params: Mapping[str, str], division: str | int | None = None) -> list[dict]:
        """GET every page of a collection, following ``__next`` sequentially (§3.0)."""
        url = self._url(path, division)
        company = str(division if division is not None else self._division())
        found: list[dict] = []
        query: Mapping[str, str] | None = params
        while url:
            body = self._call("GET", url, params=query, company=company)
            found.extend(rows(body))
            data = body.get("d") if isinstance(body, Mapping) else None
            following = data.get("__next") if isinstance(data, Mapping) else None
            # __next is a full URL built by the server: map it back to the real host first.
            url, query = (self.http.hosts.to_real(following), None) if following else ("", None)
        return found

    def _current_division(self) -> int:
        body = self._call(
            "GET", f"{self.region.api_base}/current/Me", params={"$select": "CurrentDivision"}, company=None
        )
        return int(rows(body)[0]["CurrentDivision"])

    @staticmethod
    def _company(row: Mapping[str, Any], accessible: bool, reason: str | None = None) -> Company:
        blocked = row.get("BlockingStatus") not in (None, 0)
        return Company(
            id=str(row["Code"]),
            name=(row.get("Description") or "").strip(),
            country=_strip(row.get("Country")),
            currency=_strip(row.get("Currency")),
            accessible=accessible and not blocked,
            reason="DivisionBlocked" if accessible and blocked else reason,
        )

    def list_companies(self) -> list[Company]:
        """Return every division the user sees; those not granted to the app are inaccessible.

        ``system/Divisions`` lists what consent granted, ``system/AllDivisions`` everything the
        user can see (§2); the division in those URLs is not checked, so Me's is used.
        """
        probe = self.company_id or self._current_division()
        select = {"$select": "Code,Description,Country,Currency,BlockingStatus,Status"}
        granted = {row["Code"]: row for row in self._get_rows("system/Divisions", select, probe)}
        every = {row["Code"]: row for row in self._get_rows("system/AllDivisions", select, probe)}
        companies = [self._company(row, True) for row in granted.values()]
        companies += [
            # Not granted at consent, or no rights for this user: Exact answers 403 NoDivisionAccess.
            self._company(row, False, "NoDivisionAccess")
            for code, row in every.items()
            if code not in granted
        ]
        return sorted(companies, key=lambda c: (not c.accessible, int(c.id)))

    def company_info(self) -> Company:
        """Return the pinned division.

        :raise Forbidden: when the user sees it but consent did not grant it (NoDivisionAccess).
        :raise NotFound: when the user does not see it at all.
        """
        division = self._division()
        params = {
            "$select": "Code,Description,Country,Currency,BlockingStatus,Status",
            "$filter": f"Code eq {int(division)}",
        }
        found = self._get_rows("system/Divisions", params, division)
        if found:
            return self._company(found[0], True)
        if self._get_rows("system/AllDivisions", params, division):
            raise Forbidden(
                f"Exact Online division {division} was not granted to Ledgerlink",
                provider=self.provider,
                provider_code="NoDivisionAccess",
                provider_text="NoDivisionAccess",
            )
        raise NotFound(f"Exact Online division {division} is not visible to this user", provider=self.provider)

    # -- preflight --------------------------------------------------------------------------------

    def preflight(self) -> list[Check]:
        """Check read-only: division reachable, invoice rights, a sales journal, VAT codes, revenue."""
        company = self._check("company", self._probe_company)
        if not company.ok:
            return [company]
        return [
            company,
            self._check("create_invoices", self._probe_rights),
            self._check("sales_journal", lambda: self._probe_any("journals", "sales journal")),
            self._check("vat_code", self._probe_vat),
            self._check("revenue_account", lambda: self._probe_any("gl_accounts", "revenue G/L account")),
        ]

    def _probe_company(self) -> tuple[bool, str]:
        company = self.company_info()
        # system/* URLs are not access-checked (§2): read something the division guards.
        self._get_rows("financial/Journals", {"$select": "Code", "$top": "1"})
        return True, f"Division {company.id} {company.name} is reachable"

    def _probe_rights(self) -> tuple[bool, str]:
        body = self._call(
            "GET",
            self._url("users/UserHasRights"),
            params={"endpoint": "'salesinvoice/SalesInvoices'", "action": "'POST'"},
        )
        data = body.get("d", {}) if isinstance(body, Mapping) else {}
        allowed = data.get("UserHasRights")
        if isinstance(allowed, Mapping):
            allowed = allowed.get("UserHasRights")
        if allowed:
            return True, "The connected user may create sales invoices"
        return False, "The connected user has no right to create sales invoices in this division"

    def _probe_any(self, kind: str, what: str) -> tuple[bool, str]:
        usable = [item for item in self.reference_data(kind) if item.active]
        if usable:
            return True, f"{len(usable)} {what}(s), e.g. {usable[0].code} {usable[0].name}"
        return False, f"No active {what} exists in this division"

    def _probe_vat(self) -> tuple[bool, str]:
        usable = [
            item
            for item in self.reference_data("tax_codes")
            if item.active and item.details.get("transaction_type") in ("S", "B", None)
        ]
        if usable:
            return True, f"{len(usable)} sales VAT code(s): " + ", ".join(i.code for i in usable[:5])
        return False, "No active sales VAT code exists in this division"

    # -- connection test --------------------------------------------------------------------------

    def create_test_documents(self) -> TestResult:
        """Create a test account and a draft (open) sales invoice on it; never print it."""
        name = test_label()
        account = self._create_account({"Name": name, "Status": "C", "IsSales": True})
        result = TestResult(created=[("customer", account["ID"], (account.get("Code") or "").strip() or name)])
        try:
            items = self._get_rows(
                "logistics/Items", {"$select": "ID,Code", "$filter": "IsSalesItem eq true", "$top": "1"}
            )
            if not items:
                raise Rejected("Exact Online has no sales item for a test invoice line", provider=self.provider)
            journals = [j for j in self.reference_data("journals") if j.active]
            body: dict[str, Any] = {
                "OrderedBy": account["ID"],
                "InvoiceTo": account["ID"],
                "Description": name,
                "YourRef": f"ledgerlink-test-{name[-7:-1]}",
                "SalesInvoiceLines": [{"Item": items[0]["ID"], "Quantity": 1, "UnitPrice": 0, "Description": name}],
            }
            if journals:
                body["Journal"] = journals[0].code
            invoice = rows(self._call("POST", self._url("salesinvoice/SalesInvoices"), json=body))[0]
        except LedgerError:
            self.cleanup_test_documents(result)
            raise
        result.created.append(("invoice", invoice["InvoiceID"], str(invoice.get("InvoiceNumber") or name)))
        return result

    def _delete_test_document(self, kind: str, external_id: str, label: str | None) -> str | None:
        path = "salesinvoice/SalesInvoices" if kind == "invoice" else "crm/Accounts"
        self._call("DELETE", self._url(f"{path}(guid'{external_id}')"))
        return None

    def _manual_cleanup_step(self, kind: str, external_id: str, label: str | None, error: LedgerError) -> str:
        if kind == "invoice":
            return (
                f"Delete sales invoice {label!r} in Exact Online → Sales → Invoices "
                f"(Exact refused: {error.provider_text or error})."
            )
        return (
            f"Delete account {label!r} in Exact Online → CRM → Accounts "
            f"(Exact refused: {error.provider_text or error})."
        )

    # -- reference data and customers -------------------------------------------------------------

    def reference_data(self, kind: str) -> list[ReferenceItem]:
        """Return items, VAT codes, revenue accounts, sales journals, payment conditions or banks.

        ``all_accounts`` and ``all_journals`` list every G/L account and journal with its type.
        """
        if kind not in _REFERENCE:
            raise self._not_yet(f"Exact Online reference data {kind!r}")
        path, select, where = _REFERENCE[kind]
        params = {"$select": select, "$orderby": "Code"}
        if where:
            params["$filter"] = where
        return [self._reference_item(kind, row) for row in self._get_rows(path, params)]

    @staticmethod
    def _reference_item(kind: str, row: Mapping[str, Any]) -> ReferenceItem:
        details: dict[str, Any] = {}
        if kind == "tax_codes":
            details = {
                "rate": row.get("Percentage"),
                "transaction_type": _strip(row.get("VATTransactionType")),
            }
        elif kind == "payment_conditions":
            details = {"days": row.get("PaymentDays")}
        elif kind in ("gl_accounts", "journals", "bank_accounts", "all_accounts", "all_journals"):
            details = {"type": row.get("Type")}
            if row.get("TypeDescription"):
                details["type_description"] = row["TypeDescription"]
        # VAT codes are padded to 3, item codes may be: keep the raw code, it is what Exact matches.
        return ReferenceItem(
            kind=kind,
            id=str(row.get("ID") or row.get("Code")),
            code=str(row.get("Code") or ""),
            name=(row.get("Description") or "").strip(),
            active=not row.get("IsBlocked") and not row.get("EndDate"),
            details=details,
        )

    def find_customers(self, query: CustomerQuery) -> list[LedgerCustomer]:
        """Look accounts up by ID, padded Code, VAT number, e-mail or name (§3.1)."""
        if query.by == "id":
            where = f"ID eq guid'{query.value}'"
        else:
            value = account_code(query.value) if query.by == "code" else query.value.strip()
            where = f"{_CUSTOMER_FIELDS[query.by]} eq {odata_literal(value)}"
        found = self._get_rows("crm/Accounts", {"$select": _ACCOUNT_SELECT, "$filter": where})
        return [self._customer(row) for row in found]

    @staticmethod
    def _customer(row: Mapping[str, Any]) -> LedgerCustomer:
        return LedgerCustomer(
            id=row["ID"],
            name=(row.get("Name") or "").strip(),
            code=_strip(row.get("Code")),
            email=_strip(row.get("Email")),
            vat_number=_strip(row.get("VATNumber")),
            country=_strip(row.get("Country")),
            active=not row.get("Blocked"),
        )

    def _create_account(self, body: Mapping[str, Any]) -> dict:
        return rows(self._call("POST", self._url("crm/Accounts"), json=dict(body)))[0]

    def create_customer(self, draft: CustomerDraft) -> LedgerCustomer:
        """Create a sales account (Status C); Exact assigns the code (§3.1)."""
        body: dict[str, Any] = {"Name": draft.name, "Status": "C", "IsSales": True}
        lines = list(draft.address_lines[:3])
        for index, line in enumerate(lines, start=1):
            body[f"AddressLine{index}"] = line
        optional = {
            "Email": draft.email,
            "VATNumber": draft.vat_number,
            "Country": draft.country,
            "Postcode": draft.postcode,
            "City": draft.city,
        }
        body.update({k: v for k, v in optional.items() if v})
        return self._customer(self._create_account(body))

    def iter_customers(self, page_size: int | None = None) -> Iterator[LedgerCustomer]:
        """Yield every sales account, blocked ones as inactive, following ``__next`` page by page.

        Accounts have mandatory filtering (§3.0): ``IsSales eq true`` is the filter. Exact sets
        the page size (60) itself; ``page_size`` is accepted for the contract and ignored.
        """
        params = {"$select": _ACCOUNT_SELECT + ",ChamberOfCommerce", "$filter": "IsSales eq true"}
        for row in self._iter_rows("crm/Accounts", params):
            yield replace(self._customer(row), coc_number=_strip(row.get("ChamberOfCommerce")))

    def _iter_rows(self, path: str, params: Mapping[str, str]) -> Iterator[dict]:
        """Yield the rows of a collection one page at a time, following ``__next`` (§3.0)."""
        url, company = self._url(path), self._division()
        query: Mapping[str, str] | None = params
        while url:
            body = self._call("GET", url, params=query, company=company)
            yield from rows(body)
            data = body.get("d") if isinstance(body, Mapping) else None
            following = data.get("__next") if isinstance(data, Mapping) else None
            url, query = (self.http.hosts.to_real(following), None) if following else ("", None)

    def find_by_reference(self, kind: str, reference: str) -> PushResult | None:
        """Return the sales invoice whose ``YourRef`` is our reference (§3.7), or None."""
        if kind not in ("invoice", "credit_note"):
            raise self._not_yet(f"Exact Online look-up of {kind!r} by reference")
        found = self._get_rows(
            "salesinvoice/SalesInvoices",
            {
                "$select": "InvoiceID,InvoiceNumber,YourRef",
                "$filter": f"YourRef eq {odata_literal(reference)}",
            },
        )
        if not found:
            return None
        number = found[0].get("InvoiceNumber")
        return PushResult(found[0]["InvoiceID"], str(number) if number else None, created=False)

    def push_invoice(self, draft: DocumentDraft) -> PushResult:
        """Create an open sales invoice with ``YourRef`` = our reference (lines need an item GUID)."""
        existing = self.find_by_reference("invoice", draft.reference)
        if existing is not None:
            return existing
        body: dict[str, Any] = {
            "OrderedBy": draft.customer_id,
            "InvoiceTo": draft.customer_id,
            "YourRef": draft.reference,
            "Description": draft.memo or draft.number,
            "OrderDate": _iso(draft.issue_date),
            "SalesInvoiceLines": [
                {
                    k: v
                    for k, v in {
                        "Item": line.item,
                        "Description": line.description,
                        "Quantity": float(line.quantity),
                        "UnitPrice": float(line.unit_price),
                        "VATCode": line.tax_code,
                        "GLAccount": line.gl_account,
                    }.items()
                    if v is not None
                }
                for line in draft.lines
            ],
        }
        optional = {
            "Journal": draft.journal,
            "PaymentCondition": draft.payment_condition,
            "DueDate": _iso(draft.due_date) if draft.due_date else None,
            "Currency": draft.currency,
        }
        body.update({k: v for k, v in optional.items() if v})
        created = rows(self._call("POST", self._url("salesinvoice/SalesInvoices"), json=body))[0]
        number = created.get("InvoiceNumber")
        return PushResult(created["InvoiceID"], str(number) if number else None)

    # -- not yet ----------------------------------------------------------------------------------

    def push_credit_note(self, draft: DocumentDraft) -> PushResult:
        raise self._not_yet("Pushing Exact Online credit notes")

    def finalize_invoice(
        self, external_id: str, *, send: bool, email: str | None = None, message: str | None = None
    ) -> str | None:
        raise self._not_yet("Finalizing and sending Exact Online invoices")

    def payment_status(self, external_id: str) -> PaymentStatus:
        raise self._not_yet("Exact Online payment status")

    def push_payment(self, draft: PaymentDraft) -> PushResult:
        raise self._not_yet("Pushing Exact Online payments")


def _iso(day: date) -> str:
    # Exact accepts ISO-8601 on input (§3.0); OS sends midnight UTC.
    return f"{day.isoformat()}T00:00:00Z"
