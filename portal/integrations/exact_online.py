"""Exact Online adapter: only what differs from the other ledgers (exact-online.md, cited §n).

Divisions are integers in every REST URL (exact-online.md §2); the adapter never trusts ``Me.CurrentDivision``
(it drifts when the user switches company in the browser) and always uses ``company_id``.
Refresh tokens rotate on every refresh and the old one dies at once (exact-online.md §1.5), so the new pair is
handed to the token updater inside :meth:`LedgerAdapter._token_call` before it is returned.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from . import specs
from .base import (
    Check,
    ClosedPeriod,
    Company,
    CustomerDraft,
    CustomerQuery,
    DocumentDraft,
    Forbidden,
    LedgerAdapter,
    LedgerCustomer,
    LedgerDocument,
    LedgerError,
    NotFound,
    NotSent,
    NotSupported,
    PaymentDraft,
    PaymentStatus,
    PushResult,
    ReferenceItem,
    Rejected,
    TestResult,
    TokenSet,
    clean_name,
    customer_code,
    register,
    test_label,
)
from .totals import Totals

#: Reference kind → (endpoint, $select, $filter) (exact-online.md §3.2 to §3.6). Items need a filter
#: (mandatory filtering).
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
#: Customer look-up key → Account field (exact-online.md §3.1).
_CUSTOMER_FIELDS = {"code": "Code", "vat": "VATNumber", "coc": "ChamberOfCommerce", "email": "Email", "name": "Name"}
_ACCOUNT_SELECT = "ID,Code,Name,Email,VATNumber,ChamberOfCommerce,Country,Blocked,Status"
#: CustomerDraft field → Account fields an update sets (exact-online.md §3.1; Code is never re-sent, picqer#416).
_ACCOUNT_UPDATES = {
    "name": ("Name",),
    "email": ("Email",),
    "vat_number": ("VATNumber",),
    "coc_number": ("ChamberOfCommerce",),
    "address_lines": ("AddressLine1", "AddressLine2", "AddressLine3"),
    "postcode": ("Postcode",),
    "city": ("City",),
    "country": ("Country",),
}
#: SalesInvoices.Type per document kind: 8020 invoice, 8023 direct invoice, 8021/8024 credit notes
#: (exact-online.md §3.7).
_DOCUMENT_TYPES = {"invoice": (8020, 8023), "credit_note": (8021, 8024)}
#: SalesInvoices.Status of a processed (printed) invoice (exact-online.md §3.7).
_PROCESSED = 50
#: documents/Documents Type of a sales invoice document (picqer#178, exact-online.md §3.10).
_SALES_INVOICE_DOCUMENT = 10
#: Documents.Subject is kept short; Exact's own subjects are "Factuur 26700001"-sized.
_SUBJECT_MAX = 200
#: Ids per ``or``-filtered query, as ossobv batches them (exact-online.md §3.0, §6).
_OR_BATCH = 40
#: The SalesInvoices fields that hold Exact's own totals (excl. VAT, VAT, incl. VAT; exact-online.md §3.7).
_TOTALS = "AmountFCExclVat,VATAmountFC,AmountFC"
_WIRE_DATE = re.compile(r"^/Date\((-?\d+)\)/$")


def odata_literal(value: str) -> str:
    """Return ``value`` as an OData string literal (quotes doubled, exact-online.md §3.0)."""
    return "'" + value.replace("'", "''") + "'"


def account_code(code: str) -> str:
    """Return an Account ``Code`` right-aligned to 18 characters as Exact stores it (exact-online.md §3.0)."""
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

    # -- OAuth (exact-online.md §1) ---------------------------------------------------------------

    def authorization_url(self, *, redirect_uri: str, state: str, code_verifier: str | None = None) -> str:
        """Return the region's consent URL; Exact has no scopes parameter and no PKCE (exact-online.md §1.3)."""
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
        """Refresh (allowed 570 s after the last token, exact-online.md §1.5); the rotated pair is persisted first.

        :raise NeedsReauthorization: "Old refresh token used.", unknown chain or expired token.
        :raise Rejected: "Access Token not expired" (too early: wait, the grant is fine).
        """
        return self._refresh_grant()

    # -- companies (exact-online.md §2) -----------------------------------------------------------

    def _division(self) -> str:
        if not self.company_id:
            raise Rejected("no Exact Online division is pinned on this connection", provider=self.provider)
        return str(self.company_id)

    def _url(self, path: str, division: str | int | None = None) -> str:
        return f"{self.region.api_base}/{division if division is not None else self._division()}/{path}"

    def _get_rows(self, path: str, params: Mapping[str, str], division: str | int | None = None) -> list[dict]:
        """GET every page of a collection, following ``__next`` sequentially (exact-online.md §3.0)."""
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
        user can see (exact-online.md §2); the division in those URLs is not checked, so Me's is used.
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
        # system/* URLs are not access-checked (exact-online.md §2): read something the division guards.
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

    def create_test_documents(self, draft: DocumentDraft | None = None) -> TestResult:
        """Create a test account and a draft (open) sales invoice on it; never print it.

        With ``draft`` (the mappings' test invoice) the invoice is the one a push would send,
        on the test account; without, one line of the first sales item at 0.
        """
        name = test_label()
        account = self._create_account({"Name": name, "Status": "C", "IsSales": True})
        result = TestResult(created=[("customer", account["ID"], (account.get("Code") or "").strip() or name)])
        reference = f"ledgerlink-test-{name[-7:-1]}"
        try:
            if draft is not None:
                body = self._invoice_body(
                    replace(draft, customer_id=account["ID"], reference=reference, number=reference, memo=name)
                )
            else:
                body = self._simplest_test_invoice(account["ID"], name, reference)
            invoice = rows(self._call("POST", self._url("salesinvoice/SalesInvoices"), json=body))[0]
        except LedgerError:
            self.cleanup_test_documents(result)
            raise
        result.created.append(("invoice", invoice["InvoiceID"], str(invoice.get("InvoiceNumber") or name)))
        return replace(result, totals=_totals(invoice))

    def _simplest_test_invoice(self, account_id: str, name: str, reference: str) -> dict[str, Any]:
        items = self._get_rows("logistics/Items", {"$select": "ID,Code", "$filter": "IsSalesItem eq true", "$top": "1"})
        if not items:
            raise Rejected("Exact Online has no sales item for a test invoice line", provider=self.provider)
        journals = [j for j in self.reference_data("journals") if j.active]
        body: dict[str, Any] = {
            "OrderedBy": account_id,
            "InvoiceTo": account_id,
            "Description": name,
            "YourRef": reference,
            "SalesInvoiceLines": [{"Item": items[0]["ID"], "Quantity": 1, "UnitPrice": 0, "Description": name}],
        }
        if journals:
            body["Journal"] = journals[0].code
        return body

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
        """Look accounts up by ID, padded Code, VAT number, company number, e-mail or name (exact-online.md §3.1).

        A name is looked up as :func:`clean_name` gives it, the form accounts are created under.
        """
        found = self._get_rows("crm/Accounts", {"$select": _ACCOUNT_SELECT, "$filter": self._where(query)})
        return [self._customer(row) for row in found]

    def find_customers_matching(self, queries: Sequence[CustomerQuery]) -> list[LedgerCustomer]:
        """Look accounts up by several keys at once: one ``or``-filtered query per 40 keys
        (exact-online.md §3.0, §6)."""
        clauses = list(dict.fromkeys(self._where(query) for query in queries))
        found: dict[str, LedgerCustomer] = {}
        for start in range(0, len(clauses), _OR_BATCH):
            where = " or ".join(clauses[start : start + _OR_BATCH])
            for row in self._get_rows("crm/Accounts", {"$select": _ACCOUNT_SELECT, "$filter": where}):
                found.setdefault(str(row["ID"]), self._customer(row))
        return list(found.values())

    @staticmethod
    def _where(query: CustomerQuery) -> str:
        if query.by == "id":
            return f"ID eq guid'{_guid(query.value)}'"
        if query.by == "code":
            value = account_code(query.value)
        elif query.by == "name":
            value = clean_name(query.value)
        else:
            value = query.value.strip()
        return f"{_CUSTOMER_FIELDS[query.by]} eq {odata_literal(value)}"

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
            coc_number=_strip(row.get("ChamberOfCommerce")),
        )

    def _create_account(self, body: Mapping[str, Any]) -> dict:
        return rows(self._call("POST", self._url("crm/Accounts"), json=dict(body)))[0]

    def create_customer(self, draft: CustomerDraft) -> LedgerCustomer:
        """Create a sales account (Status C) whose ``Code`` carries our reference (:func:`customer_code`,
        exact-online.md §3.1, §6).

        Exact refuses a second account with one code ("Gegeven bestaat reeds", exact-online.md §4.2): when it
        does, the account holding our code is the one an earlier attempt made, and is returned.
        """
        body: dict[str, Any] = {
            "Code": customer_code(draft.reference),
            "Name": clean_name(draft.name),
            "Status": "C",
            "IsSales": True,
        }
        body.update({k: v for k, v in self._account_fields(draft, _ACCOUNT_UPDATES).items() if v})
        try:
            return self._customer(self._create_account(body))
        except Rejected:
            found = self.find_customer_by_reference(draft)
            if found is None:
                raise
            return found

    def find_customer_by_reference(self, draft: CustomerDraft) -> LedgerCustomer | None:
        """Return the account whose ``Code`` is the draft's :func:`customer_code`, or None."""
        found = self.find_customers(CustomerQuery("code", customer_code(draft.reference)))
        return found[0] if found else None

    def update_customer(self, external_id: str, draft: CustomerDraft, fields: Collection[str]) -> None:
        """PUT the changed fields on the account (204); ``Code`` is never sent (picqer#416, exact-online.md §3.1)."""
        body = self._account_fields(draft, {f: _ACCOUNT_UPDATES[f] for f in fields if f in _ACCOUNT_UPDATES})
        if body:
            self._call("PUT", self._url(f"crm/Accounts(guid'{_guid(external_id)}')"), json=body)

    @staticmethod
    def _account_fields(draft: CustomerDraft, wanted: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
        """Return the Account properties of ``wanted`` draft fields; an emptied field is sent as null."""
        values: dict[str, Any] = {
            "Name": clean_name(draft.name),
            "Email": draft.email or None,
            "VATNumber": draft.vat_number or None,
            "ChamberOfCommerce": draft.coc_number or None,
            "Postcode": draft.postcode or None,
            "City": draft.city or None,
            "Country": draft.country or None,
        }
        for index in range(3):
            lines = draft.address_lines
            values[f"AddressLine{index + 1}"] = lines[index] if index < len(lines) else None
        body = {prop: values[prop] for props in wanted.values() for prop in props}
        if "Name" in body and not body["Name"]:
            body.pop("Name")  # Name is mandatory (exact-online.md §3.1): never blanked
        return body

    def iter_customers(self, page_size: int | None = None) -> Iterator[LedgerCustomer]:
        """Yield every sales account, blocked ones as inactive, following ``__next`` page by page.

        Accounts have mandatory filtering (exact-online.md §3.0): ``IsSales eq true`` is the filter. Exact sets
        the page size (60) itself; ``page_size`` is accepted for the contract and ignored.
        """
        params = {"$select": _ACCOUNT_SELECT + ",ChamberOfCommerce", "$filter": "IsSales eq true"}
        for row in self._iter_rows("crm/Accounts", params):
            yield replace(self._customer(row), coc_number=_strip(row.get("ChamberOfCommerce")))

    def _iter_rows(self, path: str, params: Mapping[str, str]) -> Iterator[dict]:
        """Yield the rows of a collection one page at a time, following ``__next`` (exact-online.md §3.0)."""
        url, company = self._url(path), self._division()
        query: Mapping[str, str] | None = params
        while url:
            body = self._call("GET", url, params=query, company=company)
            yield from rows(body)
            data = body.get("d") if isinstance(body, Mapping) else None
            following = data.get("__next") if isinstance(data, Mapping) else None
            url, query = (self.http.hosts.to_real(following), None) if following else ("", None)

    # -- documents (exact-online.md §3.7, §3.8, §3.10) --------------------------------------------

    def find_by_reference(self, kind: str, reference: str) -> PushResult | None:
        """Return the record pushed earlier with our reference, or None.

        Invoices and credit notes carry it in ``YourRef`` (exact-online.md §6), told apart by ``Type`` (8020/8023
        invoice, 8021/8024 credit note, exact-online.md §3.7); payments in the bank entry line's ``Description``.
        """
        if kind == "payment":
            found = self._get_rows(
                "financialtransaction/BankEntryLines",
                {"$select": "EntryID,EntryNumber", "$filter": f"Description eq {odata_literal(reference)}"},
            )
            if not found:
                return None
            number = found[0].get("EntryNumber")
            return PushResult(found[0]["EntryID"], str(number) if number else None, created=False)
        if kind not in _DOCUMENT_TYPES:
            raise self._not_yet(f"Exact Online look-up of {kind!r} by reference")
        types = " or ".join(f"Type eq {t}" for t in _DOCUMENT_TYPES[kind])
        found = self._get_rows(
            "salesinvoice/SalesInvoices",
            {
                "$select": f"InvoiceID,InvoiceNumber,YourRef,{_TOTALS}",
                "$filter": f"YourRef eq {odata_literal(reference)} and ({types})",
            },
        )
        if not found:
            return None
        number = found[0].get("InvoiceNumber")
        return PushResult(
            found[0]["InvoiceID"], str(number) if number else None, created=False, totals=_totals(found[0])
        )

    def push_invoice(self, draft: DocumentDraft, *, looked_up: bool = False) -> PushResult:
        """Create an open sales invoice with ``YourRef`` = our reference (lines need an item GUID).

        Unless ``looked_up``, an invoice with that reference already there is returned instead.

        ``InvoiceDate`` is sent so a date in a closed period or outside every financial year is
        refused now, with Exact's own text, not only when the invoice is printed.
        """
        existing = None if looked_up else self.find_by_reference("invoice", draft.reference)
        if existing is not None:
            return existing
        return self._post_sales_invoice(self._invoice_body(draft))

    def push_credit_note(self, draft: DocumentDraft) -> PushResult:
        """Create an open sales credit note (Type 8021) with ``YourRef`` = our reference.

        Credit amounts are negative in Exact (exact-online.md §3.7, "in case of a credit invoice the amount should
        be negative"): lines go with negative quantities and positive prices, the usual pattern
        (exact-online.md §3.7, unverified). No source names a SalesInvoices field that links a credit note to the
        invoice it corrects, and posting the original ``InvoiceID`` is refused with "Reeds
        verwerkt" (picqer#464), so the corrected invoice's number goes into ``Remarks``. Journal
        and lines map as for invoices.
        """
        existing = self.find_by_reference("credit_note", draft.reference)
        if existing is not None:
            return existing
        body = self._invoice_body(draft, credit=True)
        body["Type"] = 8021
        if draft.corrects_id:
            corrected = self._sales_invoice(draft.corrects_id, "InvoiceID,InvoiceNumber,YourRef")
            label = corrected.get("InvoiceNumber") or corrected.get("YourRef") or draft.corrects_id
            body["Remarks"] = f"Credit note for invoice {label}"
        return self._post_sales_invoice(body)

    def _invoice_body(self, draft: DocumentDraft, *, credit: bool = False) -> dict[str, Any]:
        """Return the SalesInvoices POST body of a draft (lines embedded as an array, exact-online.md §3.7)."""
        # A credit note's lines are negative in Exact; a draft may state them either way.
        flip = credit and sum(line.quantity * line.unit_price for line in draft.lines) > 0
        body: dict[str, Any] = {
            "OrderedBy": draft.customer_id,
            "InvoiceTo": draft.customer_id,
            "YourRef": draft.reference,
            "Description": draft.memo or draft.number,
            "OrderDate": _iso(draft.issue_date),
            "InvoiceDate": _iso(draft.issue_date),
            "SalesInvoiceLines": [
                {
                    k: v
                    for k, v in {
                        "Item": line.item,
                        "Description": line.description,
                        "Quantity": float(-line.quantity if flip else line.quantity),
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
        return body

    def _post_sales_invoice(self, body: Mapping[str, Any]) -> PushResult:
        """POST the invoice; the answer carries Exact's own totals (AmountFCExclVat, VATAmountFC, AmountFC)."""
        created = rows(self._call("POST", self._url("salesinvoice/SalesInvoices"), json=dict(body)))[0]
        number = created.get("InvoiceNumber")
        return PushResult(created["InvoiceID"], str(number) if number else None, totals=_totals(created))

    def _sales_invoice(self, external_id: str, select: str) -> dict:
        """Return one sales invoice by InvoiceID.

        :raise NotFound: when the division has no such invoice (404).
        """
        body = self._call(
            "GET", self._url(f"salesinvoice/SalesInvoices(guid'{_guid(external_id)}')"), params={"$select": select}
        )
        return rows(body)[0]

    def finalize_invoice(
        self, external_id: str, *, send: bool, email: str | None = None, message: str | None = None
    ) -> str | None:
        """Process ("print") the invoice through PrintedSalesInvoices and e-mail it when ``send``
        (exact-online.md §3.8).

        An invoice already processed (Status 50) is not printed again, so a retry after an
        unknown outcome never e-mails twice; its number is returned. The number is read back
        after printing (divisions that number at print assign it now). ``InvoiceDate`` is the
        invoice's own date. Exact mails the account's own address: ``email`` cannot override it.

        :raise Rejected: when Exact refuses to print (closed period: its own text).
        :raise NotSent: when ``send`` and Exact processed the invoice without e-mailing it
            (``EmailCreationError``, e.g. the account has no address), or had processed it
            before this call (an earlier attempt's answer was lost, or someone printed it in
            Exact): Exact does not say whether that e-mailed it, so it is not reported as sent.
        """
        select = "InvoiceID,InvoiceNumber,Status,InvoiceDate,OrderDate"
        invoice = self._sales_invoice(external_id, select)
        if invoice.get("Status") == _PROCESSED:
            return self._already_processed(invoice, send)
        body: dict[str, Any] = {"InvoiceID": invoice["InvoiceID"], "SendEmailToCustomer": bool(send)}
        if message:
            body["ExtraText"] = message
        day = _exact_date(invoice.get("InvoiceDate")) or _exact_date(invoice.get("OrderDate"))
        if day is not None:
            body["InvoiceDate"] = _iso(day)
        try:
            printed = rows(self._call("POST", self._url("salesinvoice/PrintedSalesInvoices"), json=body))[0]
        except Rejected:
            # "Reeds verwerkt": another attempt printed it meanwhile.
            again = self._sales_invoice(external_id, select)
            if again.get("Status") == _PROCESSED:
                return self._already_processed(again, send)
            raise
        number = _number(self._sales_invoice(external_id, select))
        if send:
            self._check_emailed(printed, number)
        return number

    def _already_processed(self, invoice: Mapping[str, Any], send: bool) -> str | None:
        number = _number(invoice)
        if send:
            raise NotSent(
                f"Exact Online had processed invoice {number} already, and does not say whether it was e-mailed "
                "then: check it in Exact Online (Sales → Invoices) and e-mail it from there if it was not",
                provider=self.provider,
                number=number,
            )
        return number

    def _check_emailed(self, printed: Mapping[str, Any], number: str | None) -> None:
        """Raise :class:`NotSent` unless PrintedSalesInvoices' answer confirms the e-mail (exact-online.md §3.8)."""
        failure = printed.get("EmailCreationError")
        if failure or not printed.get("EmailCreationSuccess"):
            why = "Exact Online processed the invoice but did not e-mail it" + (
                "" if failure else " (its answer confirmed no e-mail)"
            )
            raise NotSent(
                f"{why}. Exact e-mails the address of the invoice's account: add an e-mail address to the account "
                "in Exact Online (CRM → Accounts), then choose Send again",
                provider=self.provider,
                provider_text=failure or None,
                number=number,
            )

    def send_invoice(self, external_id: str, *, email: str | None = None, message: str | None = None) -> str | None:
        """E-mail a processed invoice again through PrintedSalesInvoices (``SendEmailToCustomer``,
        exact-online.md §3.8).

        An open invoice is processed and e-mailed as :meth:`finalize_invoice` does. Exact e-mails
        the account's address, so the fix for a missing one is made on the account in Exact.

        :raise NotSent: with Exact's answer when it does not e-mail the invoice (no address on
            the account, or it refuses to print a processed invoice again, "Reeds verwerkt"):
            the invoice keeps its number.
        """
        select = "InvoiceID,InvoiceNumber,Status,InvoiceDate,OrderDate"
        invoice = self._sales_invoice(external_id, select)
        if invoice.get("Status") != _PROCESSED:
            return self.finalize_invoice(external_id, send=True, email=email, message=message)
        number = _number(invoice)
        body: dict[str, Any] = {"InvoiceID": invoice["InvoiceID"], "SendEmailToCustomer": True}
        if message:
            body["ExtraText"] = message
        try:
            printed = rows(self._call("POST", self._url("salesinvoice/PrintedSalesInvoices"), json=body))[0]
        except Rejected as exc:
            raise NotSent(
                f"Exact Online did not e-mail invoice {number} again: it e-mails an invoice through its API "
                f"only when it processes it ({exc.provider_text or exc}). E-mail it from Exact Online → Sales → "
                "Invoices",
                provider=self.provider,
                provider_text=exc.provider_text,
                number=number,
            ) from None
        self._check_emailed(printed, number)
        return number

    def attach_pdf(self, external_id: str, *, filename: str, content: bytes) -> str | None:
        """Attach the PDF as a sales-invoice document (Type 10) on the invoice's account (exact-online.md §3.10).

        An open invoice gets the document as its manually linked ``Document``; a processed one
        (its financial entry exists, EntryID = InvoiceID) is linked through
        ``FinancialTransactionEntryID``. The document's subject names our reference and the file,
        so a retry finds what an earlier attempt made and attaches nothing twice.
        """
        invoice = self._sales_invoice(external_id, "InvoiceID,InvoiceTo,InvoiceNumber,Status,YourRef,Document")
        subject = f"{invoice.get('YourRef') or invoice['InvoiceID']} {filename}"[:_SUBJECT_MAX]
        account = invoice["InvoiceTo"]
        documents = self._get_rows(
            "documents/Documents",
            {"$select": "ID", "$filter": f"Account eq guid'{account}' and Subject eq {odata_literal(subject)}"},
        )
        if documents:
            document_id = documents[0]["ID"]
        else:
            body: dict[str, Any] = {"Subject": subject, "Type": _SALES_INVOICE_DOCUMENT, "Account": account}
            if invoice.get("Status") == _PROCESSED:
                body["FinancialTransactionEntryID"] = invoice["InvoiceID"]
            document_id = rows(self._call("POST", self._url("documents/Documents"), json=body))[0]["ID"]
        attached = self._get_rows(
            "documents/DocumentAttachments",
            {
                "$select": "ID,FileName",
                "$filter": f"Document eq guid'{document_id}' and FileName eq {odata_literal(filename)}",
            },
        )
        if attached:
            attachment_id = attached[0]["ID"]
        else:
            body = {
                "Document": document_id,
                "FileName": filename,
                "Attachment": base64.b64encode(content).decode("ascii"),
            }
            attachment_id = rows(self._call("POST", self._url("documents/DocumentAttachments"), json=body))[0]["ID"]
        if invoice.get("Status") != _PROCESSED and invoice.get("Document") != document_id:
            self._call(
                "PUT",
                self._url(f"salesinvoice/SalesInvoices(guid'{_guid(external_id)}')"),
                json={"Document": document_id},
            )
        return attachment_id

    # -- payments (exact-online.md §3.11) ---------------------------------------------------------

    def payment_status(self, external_id: str) -> PaymentStatus:
        """Return how much of the invoice is paid (see :meth:`payment_statuses`).

        :raise NotFound: when the division has no such invoice.
        """
        found = self.payment_statuses([external_id])
        if external_id not in found:
            raise NotFound(f"Exact Online has no sales invoice {external_id}", provider=self.provider)
        return found[external_id]

    def payment_statuses(self, external_ids: Sequence[str]) -> dict[str, PaymentStatus]:
        """Return the payment status of many invoices: two filtered reads per page of 40 ids.

        The invoices' totals and status come from SalesInvoices; the unpaid amounts from
        ``read/financial/ReceivablesList``, which lists outstanding items only (split payments
        give several rows): a processed invoice absent from it is paid in full (exact-online.md §3.11). An open
        (unprinted) invoice is not a receivable yet: unpaid, the whole amount open. Pages of
        40 ``or``-filters keep URLs short (exact-online.md §3.0, §6).
        """
        found: dict[str, PaymentStatus] = {}
        ids = list(dict.fromkeys(external_ids))
        for start in range(0, len(ids), _OR_BATCH):
            page = ids[start : start + _OR_BATCH]
            invoices = self._get_rows(
                "salesinvoice/SalesInvoices",
                {
                    "$select": "InvoiceID,InvoiceNumber,Status,AmountDC,Journal",
                    "$filter": " or ".join(f"InvoiceID eq guid'{_guid(i)}'" for i in page),
                },
            )
            numbers = sorted({row["InvoiceNumber"] for row in invoices if row.get("Status") == _PROCESSED})
            outstanding: dict[tuple[int, str], Decimal] = {}
            if numbers:
                for row in self._get_rows(
                    "read/financial/ReceivablesList",
                    {
                        "$select": "InvoiceNumber,JournalCode,Amount",
                        "$filter": " or ".join(f"InvoiceNumber eq {int(n)}" for n in numbers),
                    },
                ):
                    key = (int(row["InvoiceNumber"]), str(row.get("JournalCode") or "").strip())
                    outstanding[key] = outstanding.get(key, Decimal(0)) + _decimal(row.get("Amount"))
            by_id = {row["InvoiceID"].lower(): row for row in invoices}
            for external_id in page:
                invoice = by_id.get(_guid(external_id))
                if invoice is not None:
                    found[external_id] = self._payment_status(external_id, invoice, outstanding)
        return found

    @staticmethod
    def _payment_status(
        external_id: str, invoice: Mapping[str, Any], outstanding: Mapping[tuple[int, str], Decimal]
    ) -> PaymentStatus:
        total = _decimal(invoice.get("AmountDC"))
        if invoice.get("Status") != _PROCESSED:
            return PaymentStatus(external_id, False, total, total, "open")
        key = (int(invoice["InvoiceNumber"]), str(invoice.get("Journal") or "").strip())
        amount_open = outstanding.get(key, Decimal(0))
        if amount_open == 0:
            return PaymentStatus(external_id, True, Decimal(0), total, "paid")
        state = "partial" if abs(amount_open) < abs(total) else "open"
        return PaymentStatus(external_id, False, amount_open, total, state)

    def push_payment(self, draft: PaymentDraft) -> PushResult:
        """Record a customer receipt as a bank entry matched to the invoice; return the entry.

        Source: exact-online.md §3.11 has no payment push. Exact's bank entries
        (``financialtransaction/BankEntries`` with embedded ``BankEntryLines``; fields from
        picqer BankEntry.php / BankEntryLine.php and Exact's SDK model BankEntryLine.cs) carry
        the customer ``Account`` and ``OurRef``, the sales invoice number the receipt settles.
        A receipt is a negative ``AmountFC`` on the line (credit on the receivable, as credit
        amounts are negative in Exact, exact-online.md §3.7). The journal is ``draft.bank_account`` (a bank
        journal code, reference kind ``bank_accounts``) or the division's first bank journal.
        Our reference is the line's ``Description`` (found again by :meth:`find_by_reference`).

        :raise Rejected: when the invoice is not processed yet (no number, no receivable to
            settle) or the division has no bank journal.
        """
        existing = self.find_by_reference("payment", draft.reference)
        if existing is not None:
            return existing
        invoice = self._sales_invoice(draft.invoice_id, "InvoiceID,InvoiceNumber,Status,InvoiceTo,Currency")
        if invoice.get("Status") != _PROCESSED or not invoice.get("InvoiceNumber"):
            raise Rejected(
                "Exact Online takes payments only on processed invoices: finalize the invoice first",
                provider=self.provider,
            )
        journal = draft.bank_account or self._bank_journal()
        body: dict[str, Any] = {
            "JournalCode": journal,
            "BankEntryLines": [
                {
                    "Account": invoice["InvoiceTo"],
                    "AmountFC": float(-draft.amount),
                    "Date": _iso(draft.paid_on),
                    "Description": draft.reference,
                    "OurRef": int(invoice["InvoiceNumber"]),
                }
            ],
        }
        if invoice.get("Currency"):
            body["Currency"] = invoice["Currency"]
        created = rows(self._call("POST", self._url("financialtransaction/BankEntries"), json=body))[0]
        number = created.get("EntryNumber")
        return PushResult(created["EntryID"], str(number) if number else None)

    def _bank_journal(self) -> str:
        banks = [item for item in self.reference_data("bank_accounts") if item.active]
        if not banks:
            raise Rejected(
                "Exact Online has no bank journal in this division to book payments in", provider=self.provider
            )
        return banks[0].code

    # -- reconciliation (exact-online.md §3.7, §3.0) ------------------------------------------------

    def iter_documents(self, kind: str, date_from: date, date_to: date) -> Iterator[LedgerDocument]:
        """Yield sales invoices or credit notes whose InvoiceDate is in the range, page by page.

        Totals are ``AmountFC`` in the document's ``Currency``, positive for credit notes too
        (Exact stores credit amounts negative, exact-online.md §3.7). The open amount is not read here (see
        :meth:`payment_statuses`).
        """
        if kind not in _DOCUMENT_TYPES:
            raise NotSupported(f"Exact Online cannot list {kind!r} documents", provider=self.provider)
        types = " or ".join(f"Type eq {t}" for t in _DOCUMENT_TYPES[kind])
        where = (
            f"({types}) and InvoiceDate ge datetime'{date_from.isoformat()}' "
            f"and InvoiceDate le datetime'{date_to.isoformat()}'"
        )
        params = {
            "$select": "InvoiceID,InvoiceNumber,YourRef,InvoiceDate,AmountFC,Currency,InvoiceTo",
            "$filter": where,
        }
        for row in self._iter_rows("salesinvoice/SalesInvoices", params):
            number = row.get("InvoiceNumber")
            total = _decimal(row.get("AmountFC"))
            yield LedgerDocument(
                external_id=row["InvoiceID"],
                reference=_strip(row.get("YourRef")),
                number=str(number) if number else None,
                issue_date=_exact_date(row.get("InvoiceDate")) or date_from,
                total=abs(total) if kind == "credit_note" else total,
                currency=_strip(row.get("Currency")) or "",
                customer_id=row.get("InvoiceTo"),
            )

    def closed_periods(self, date_from: date, date_to: date) -> list[ClosedPeriod]:
        """Return the spans in the range that take no sales documents: closed or missing periods.

        ``financial/FinancialPeriods`` gives the periods that exist (a date outside every
        financial year is refused); ``read/financial/JournalStatusList`` (Status 1 = closed;
        picqer JournalStatusList.php) says which are closed for a sales journal (Type 20).
        """
        years = f"FinYear ge {date_from.year - 1} and FinYear le {date_to.year}"
        periods = sorted(
            (
                (_exact_date(row.get("StartDate")), _exact_date(row.get("EndDate")), row["FinYear"], row["FinPeriod"])
                for row in self._get_rows(
                    "financial/FinancialPeriods",
                    {"$select": "FinYear,FinPeriod,StartDate,EndDate", "$filter": years},
                )
            ),
            key=lambda p: p[0] or date.min,
        )
        closed: dict[tuple[int, int], list[str]] = {}
        for row in self._get_rows(
            "read/financial/JournalStatusList",
            {
                "$select": "Journal,Year,Period,Status",
                "$filter": f"JournalType eq 20 and Status eq 1 and Year ge {date_from.year - 1} "
                f"and Year le {date_to.year}",
            },
        ):
            closed.setdefault((row["Year"], row["Period"]), []).append(str(row["Journal"]).strip())
        found: list[ClosedPeriod] = []
        cursor = date_from
        for start, end, year, period in periods:
            if start is None or end is None or end < date_from or start > date_to:
                continue
            if start > cursor:
                found.append(ClosedPeriod(cursor, start - timedelta(days=1), "no financial period in Exact Online"))
            journals = closed.get((year, period))
            if journals:
                found.append(
                    ClosedPeriod(
                        max(start, date_from),
                        min(end, date_to),
                        f"period {year}-{period} is closed for sales journal {', '.join(sorted(journals))}",
                    )
                )
            cursor = max(cursor, end + timedelta(days=1))
        if cursor <= date_to:
            found.append(ClosedPeriod(cursor, date_to, "no financial period in Exact Online"))
        return found


def _iso(day: date) -> str:
    # Exact accepts ISO-8601 on input (exact-online.md §3.0); OS sends midnight UTC.
    return f"{day.isoformat()}T00:00:00Z"


def _exact_date(value: Any) -> date | None:
    """Return the UTC day of a ``/Date(ms)/`` value (exact-online.md §3.0), or None."""
    found = _WIRE_DATE.match(value) if isinstance(value, str) else None
    if found is None:
        return None
    return datetime.fromtimestamp(int(found.group(1)) / 1000, tz=UTC).date()


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _totals(invoice: Mapping[str, Any]) -> Totals | None:
    """Return a SalesInvoices row's totals, positive for credit notes (Exact keeps them negative,
    exact-online.md §3.7)."""
    if invoice.get("AmountFC") is None:
        return None
    return Totals(
        _decimal(invoice.get("AmountFCExclVat")), _decimal(invoice.get("VATAmountFC")), _decimal(invoice["AmountFC"])
    ).absolute()


def _number(invoice: Mapping[str, Any]) -> str | None:
    number = invoice.get("InvoiceNumber")
    return str(number) if number else None


def _guid(value: str) -> str:
    """Return a GUID for a key URL or filter, refusing anything else (ids end up in URLs).

    :raise Rejected: when ``value`` is not a GUID.
    """
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise Rejected(f"{value!r} is not an Exact Online id (a GUID)", provider=specs.EXACT_ONLINE) from None
