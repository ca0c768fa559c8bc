"""QuickBooks Online adapter: only what differs from the other ledgers (quickbooks-online.md, §n).

A token is bound to one company (realm); the consent callback names it as ``realmId`` (quickbooks-online.md §1),
which :meth:`QuickBooksAdapter.exchange_code` pins as ``company_id``. Writes send a
``requestid`` so a repeated create replays instead of duplicating (quickbooks-online.md §2.4).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests

from . import specs
from .base import (
    BatchItemResult,
    BatchOperation,
    Check,
    ClosedPeriod,
    Company,
    CustomerDraft,
    CustomerQuery,
    DocumentDraft,
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
    Unavailable,
    clean_name,
    register,
    test_label,
)
from .http import map_error
from .totals import Totals

#: Reference kind → (entity, extra WHERE) for the query endpoint (quickbooks-online.md §2.2, §3). Inactive rows are
#: included (name lists hide them by default) so a mapping to one is reported as inactive.
_REFERENCE = {
    "items": ("Item", None),
    "tax_codes": ("TaxCode", None),
    "tax_rates": ("TaxRate", None),
    "gl_accounts": ("Account", "AccountType = 'Income'"),
    "all_accounts": ("Account", None),
    "payment_conditions": ("Term", None),
    "classes": ("Class", None),
    "bank_accounts": ("Account", "AccountType = 'Bank'"),
}
#: Preferences a mapping check reads, as (key, section, field, label).
_PREFERENCES = (
    ("custom_txn_numbers", "SalesFormsPrefs", "CustomTxnNumbers", "Custom transaction numbers"),
    ("closing_date", "AccountingInfoPrefs", "BookCloseDate", "Closing date"),
    ("class_tracking_per_line", "AccountingInfoPrefs", "ClassTrackingPerTxnLine", "Class tracking per line"),
    ("class_tracking_per_txn", "AccountingInfoPrefs", "ClassTrackingPerTxn", "Class tracking per transaction"),
    ("default_terms", "SalesFormsPrefs", "DefaultTerms", "Default terms"),
)
_DETAILS = (
    "Type",
    "AccountType",
    "Taxable",
    "UnitPrice",
    "DueDays",
    "SubItem",
    "Level",
    "RateValue",
    "Sku",
    "AcctNum",
    "Classification",
)
_CUSTOMER_FIELDS = {"id": "Id", "name": "DisplayName", "email": "PrimaryEmailAddr"}
#: Our record kinds → QBO entities.
_ENTITIES = {"customer": "Customer", "invoice": "Invoice", "credit_note": "CreditMemo", "payment": "Payment"}
_WORDS = {"invoice": "invoice", "credit_note": "credit memo"}
#: Short tags that keep requestids of different kinds with one reference apart.
_REQUEST_TAGS = {
    "customer": "cus",
    "invoice": "inv",
    "credit_note": "crm",
    "payment": "pay",
    "send": "snd",
    "pdf": "pdf",
}
#: Invoice ids per ``Id IN (…)`` payment-status query; keeps the GET URL short.
_IDS_PER_QUERY = 200
#: DocNumbers (at most 21 characters each) per ``DocNumber IN (…)`` look-up; keeps the GET URL short.
_NUMBERS_PER_QUERY = 100
#: HTTP status a single call answers with for each Fault type (quickbooks-online.md §4), for batch item faults.
_FAULT_STATUS = {
    "AuthenticationFault": 401,
    "AUTHENTICATION": 401,
    "AuthorizationFault": 403,
    "AuthorizatonFault": 403,
    "AUTHORIZATION": 403,
    "SystemFault": 500,
}
_T = TypeVar("_T")
#: QuickBooks' "Duplicate Name Exists Error": a DisplayName used by another customer, vendor or employee
#: (quickbooks-online.md §3 Customer).
DUPLICATE_NAME = "6240"
#: QuickBooks' "Duplicate Document Number Error": the DocNumber is another document's of the type
#: (quickbooks-online.md §6).
DUPLICATE_NUMBER = "6140"
#: QuickBooks' "Stale Object Error": the SyncToken sent is not the current one (quickbooks-online.md §4).
STALE_OBJECT = "5010"
#: Longest DisplayName QuickBooks keeps (Finance.xsd).
DISPLAY_NAME_MAX = 500
#: Start of the customer note that carries our reference (a customer has no other field for it,
#: quickbooks-online.md §3 Customer).
REFERENCE_NOTE = "Ledgerlink reference: "


def request_id(kind: str, reference: str) -> str:
    """Return the stable requestid of one write: kind + our reference, at most 50 characters
    (quickbooks-online.md §2.4).

    The kind is part of it so an invoice and a credit note sharing a number never replay each other.
    """
    digest = hashlib.sha256(f"{kind}\x00{reference}".encode()).hexdigest()[:40]
    return f"ll-{_REQUEST_TAGS.get(kind, kind[:3])}-{digest}"


@dataclass(frozen=True)
class QueryItemResult(BatchItemResult):
    """The answer to a Query item of a batch: the rows found (possibly none)."""

    rows: tuple[dict, ...] = ()


def qbo_literal(value: str) -> str:
    """Return ``value`` as a query string literal (apostrophes backslash-escaped, quickbooks-online.md §2.2)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@register(specs.QUICKBOOKS)
class QuickBooksAdapter(LedgerAdapter):
    """QuickBooks Online; ``company_id`` is the realm id."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        #: CompanyInfo.Country, read once: it decides the US or the global tax model (quickbooks-online.md §6).
        self._country: str | None = None
        #: Every customer, read once for e-mail look-ups (QuickBooks cannot filter on e-mail
        #: addresses as people type them); customers this adapter creates are added.
        self._customer_rows: list[dict] | None = None
        #: Invoice Id → DocNumber of invoices this adapter created or found: final as they are,
        #: so finalizing one without sending needs no call to read its number back.
        self._numbers: dict[str, str] = {}

    def share_state(self, other: LedgerAdapter) -> None:
        """Share ``other``'s grant and the numbers it knows (an invoice it created, finalized by this one)."""
        super().share_state(other)
        if isinstance(other, QuickBooksAdapter):
            self._numbers = other._numbers

    # -- OAuth (quickbooks-online.md §1) ----------------------------------------------------------

    def authorization_url(self, *, redirect_uri: str, state: str, code_verifier: str | None = None) -> str:
        """Return Intuit's consent URL for the accounting scope (no PKCE is used)."""
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "scope": self.spec.scope,
            "redirect_uri": redirect_uri,
            "state": state,
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
        """Trade the code for tokens (Basic client auth) and pin the callback's ``realmId``."""
        realm = (callback_params or {}).get("realmId")
        if realm:
            self.company_id = str(realm)
        return self._token_call({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    def refresh(self) -> TokenSet:
        """Refresh; within ~24 h the same refresh token comes back, later a new one (quickbooks-online.md §1)."""
        return self._refresh_grant()

    def revoke(self) -> bool:
        """Revoke the whole grant (refresh and access tokens) with the refresh token (quickbooks-online.md §1)."""
        if self.tokens is None:
            return False
        token = self.tokens.refresh_token or self.tokens.access_token
        self.http.post(
            self.region.revoke_url,
            json={"token": token},
            auth=(self.client_id, self.client_secret),
            company=self.company_id,
        )
        return True

    # -- plumbing ---------------------------------------------------------------------------------

    def _realm(self) -> str:
        if not self.company_id:
            raise Rejected("no QuickBooks company (realmId) is pinned on this connection", provider=self.provider)
        return str(self.company_id)

    def _url(self, path: str) -> str:
        return f"{self.region.api_base.format(company=self._realm())}/{path}"

    def _query(self, statement: str) -> list[dict]:
        """Run a query, paging by STARTPOSITION until a short page (max 1000 rows, quickbooks-online.md §2.2)."""
        size = self.spec.max_page_size
        found: list[dict] = []
        start = 1
        while True:
            body = self._call(
                "GET",
                self._url("query"),
                params={"query": f"{statement} STARTPOSITION {start} MAXRESULTS {size}"},
            )
            entity_rows = _query_rows(body)
            found.extend(entity_rows)
            if len(entity_rows) < size:
                return found
            start += size

    def _select(self, entity: str, *conditions: str) -> list[dict]:
        """Query ``entity`` rows matching every condition (values already escaped by qbo_literal)."""
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return self._query(f"SELECT * FROM {entity}{where}")  # noqa: S608 - QBO query language, escaped values

    def _write(self, entity: str, payload: Mapping[str, Any], **params: str) -> dict:
        """POST an entity (create, sparse update or operation) with a fresh ``requestid``
        (quickbooks-online.md §2.4)."""
        query = {"requestid": uuid.uuid4().hex, **params}  # callers pass a stable one for pushes
        body = self._call("POST", self._url(entity.lower()), params=query, json=dict(payload))
        return body[entity]

    # -- companies --------------------------------------------------------------------------------

    def list_companies(self) -> list[Company]:
        """Return the one realm the token is bound to."""
        return [self.company_info()]

    def company_info(self) -> Company:
        """Return the realm's CompanyInfo (name, country) and home currency."""
        realm = self._realm()
        info = self._call("GET", self._url(f"companyinfo/{realm}"))["CompanyInfo"]
        return Company(
            id=realm,
            name=info.get("CompanyName") or info.get("LegalName") or realm,
            country=info.get("Country") or None,
        )

    # -- preflight --------------------------------------------------------------------------------

    def preflight(self, *, default_item: str | None = None) -> list[Check]:
        """Check read-only: company, preferences, numbering, an income account, tax codes, the default item.

        ``default_item`` is the mapped default product/service id, checked when given.
        """
        company = self._check("company", self._probe_company)
        if not company.ok:
            return [company]
        preferences: dict[str, Any] = {}

        def read_preferences() -> tuple[bool, str]:
            preferences.update(self._call("GET", self._url("preferences"))["Preferences"])
            return True, "Company preferences are readable (the accounting scope is granted)"

        checks = [company, self._check("preferences", read_preferences)]
        if preferences:
            checks.append(_numbering(preferences))
        checks.append(self._check("income_account", self._probe_income))
        checks.append(self._check("tax_codes", self._probe_tax))
        if default_item:
            checks.append(self._check("default_item", lambda: self._probe_item(default_item)))
        return checks

    def _probe_item(self, item_id: str) -> tuple[bool, str]:
        rows = self._select("Item", f"Id = {qbo_literal(str(item_id))}", "Active IN (true, false)")
        if not rows:
            return False, f"The default product/service {item_id} does not exist in QuickBooks: choose another one"
        item = rows[0]
        name = item.get("FullyQualifiedName") or item.get("Name") or item_id
        if item.get("Type") == "Category":
            return False, (
                f"The default product/service {name} is a category: QuickBooks refuses categories on "
                "invoice lines. Choose a product or service inside it instead"
            )
        if item.get("Active") is False:
            return False, f"The default product/service {name} is inactive in QuickBooks: choose an active one"
        return True, f"The default product/service {name} ({item.get('Type', 'item')}) can be used on invoice lines"

    def _probe_company(self) -> tuple[bool, str]:
        company = self.company_info()
        return True, f"{company.name} ({company.country or 'country unknown'}) is reachable"

    def _probe_income(self) -> tuple[bool, str]:
        accounts = [a for a in self.reference_data("gl_accounts") if a.active]
        if accounts:
            return True, f"{len(accounts)} income account(s), e.g. {accounts[0].name}"
        return False, "No active income account exists: invoice lines need one through their items"

    def _probe_tax(self) -> tuple[bool, str]:
        codes = [c for c in self.reference_data("tax_codes") if c.active]
        if codes:
            return True, f"{len(codes)} tax code(s): " + ", ".join(c.name for c in codes[:5])
        return False, "No active tax code exists: non-US companies need one on every line (§6)"

    # -- connection test --------------------------------------------------------------------------

    def create_test_documents(self, draft: DocumentDraft | None = None) -> TestResult:
        """Create a test customer and an invoice on it (no e-mail is sent).

        With ``draft`` (the mappings' test invoice) the invoice is the one a push would send, on
        the test customer, numbered LLTEST-…; without, one line of the first service item at 0.
        """
        name = test_label().replace(":", " ")  # a colon in a name is refused (6000)
        customer = self._write("Customer", {"DisplayName": name, "Notes": "Created by the Ledgerlink connection test"})
        result = TestResult(created=[("customer", customer["Id"], name)])
        try:
            if draft is not None:
                number = f"LLTEST-{name[-7:-1]}"
                test = replace(draft, customer_id=str(customer["Id"]), number=number, reference=number, memo=name)
                body = self._document_payload("invoice", test)
            else:
                body = self._test_invoice(customer["Id"], name)
            invoice = self._write("Invoice", body)
        except LedgerError:
            self.cleanup_test_documents(result)
            raise
        result.created.append(("invoice", invoice["Id"], invoice.get("DocNumber") or name))
        return replace(result, totals=_totals(invoice))

    def _test_invoice(self, customer_id: str, name: str) -> dict[str, Any]:
        items = self._select("Item", "Type = 'Service'")
        if not items:
            raise Rejected("QuickBooks has no active service item for a test invoice line", provider=self.provider)
        detail: dict[str, Any] = {"ItemRef": {"value": items[0]["Id"]}, "Qty": 1, "UnitPrice": 0}
        if (self.company_info().country or "US") != "US":
            # Non-US lines need a real tax code (quickbooks-online.md §6); the first active one does for a 0 amount.
            codes = [c for c in self.reference_data("tax_codes") if c.active]
            if codes:
                detail["TaxCodeRef"] = {"value": codes[0].id}
        return {
            "CustomerRef": {"value": customer_id},
            "PrivateNote": name,
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 0,
                    "Description": name,
                    "SalesItemLineDetail": detail,
                }
            ],
        }

    def _delete_test_document(self, kind: str, external_id: str, label: str | None) -> str | None:
        entity = "Invoice" if kind == "invoice" else "Customer"
        current = self._call("GET", self._url(f"{entity.lower()}/{external_id}"))[entity]
        if kind == "invoice":
            self._write(entity, {"Id": external_id, "SyncToken": current["SyncToken"]}, operation="delete")
        else:
            # Customers cannot be deleted in QuickBooks, only made inactive.
            self._write(
                entity,
                {"Id": external_id, "SyncToken": current["SyncToken"], "sparse": True, "Active": False},
            )
        return None

    def _manual_cleanup_step(self, kind: str, external_id: str, label: str | None, error: LedgerError) -> str:
        if kind == "invoice":
            return (
                f"Delete or void invoice {label!r} in QuickBooks → Sales → Invoices ({error.provider_text or error})."
            )
        why = error.provider_text or error
        return f"Make customer {label!r} inactive in QuickBooks → Sales → Customers ({why})."

    # -- reference data and customers -------------------------------------------------------------

    def reference_data(self, kind: str) -> list[ReferenceItem]:
        """Return items, tax codes and rates, income (or all) accounts, terms, classes, banks.

        Inactive rows come back with ``active=False``. ``preferences`` returns the company
        settings a mapping depends on, one item per setting with its value in ``details``.
        """
        if kind == "preferences":
            return self._preference_items()
        if kind not in _REFERENCE:
            raise self._not_yet(f"QuickBooks reference data {kind!r}")
        entity, where = _REFERENCE[kind]
        conditions = [c for c in (where, "Active IN (true, false)") if c]
        items = [self._reference_item(kind, row) for row in self._select(entity, *conditions)]
        if kind == "tax_codes":
            items = self._with_rates(items)
        return items

    def _with_rates(self, codes: list[ReferenceItem]) -> list[ReferenceItem]:
        """Give each tax code its sales percentage: the sum of the TaxRates of its SalesTaxRateList
        (quickbooks-online.md §3 TaxCode).

        A code without sales rates (UK "No VAT") is at 0 %. ``rates`` keeps the parts of a
        combined code (state + county), each of which QuickBooks rounds on its own.
        """
        rates = {row["Id"]: _money(row.get("RateValue")) for row in self._select("TaxRate", "Active IN (true, false)")}
        rated = []
        for code in codes:
            parts = [rates.get(str(r), Decimal(0)) for r in code.details.get("SalesRateIds", ())]
            details = {k: v for k, v in code.details.items() if k != "SalesRateIds"}
            details["rate"] = format(sum(parts, Decimal(0)).normalize(), "f")
            if len(parts) > 1:
                details["rates"] = ",".join(format(p.normalize(), "f") for p in parts)
            rated.append(ReferenceItem(code.kind, code.id, code.code, code.name, code.active, details))
        return rated

    def _preference_items(self) -> list[ReferenceItem]:
        preferences = self._call("GET", self._url("preferences"))["Preferences"]
        items = []
        for key, section, field, label in _PREFERENCES:
            value = (preferences.get(section) or {}).get(field)
            if isinstance(value, Mapping):
                value = value.get("value")
            items.append(ReferenceItem("preferences", key, key, label, details={"value": value}))
        return items

    @staticmethod
    def _reference_item(kind: str, row: Mapping[str, Any]) -> ReferenceItem:
        details: dict[str, Any] = {k: row[k] for k in _DETAILS if k in row}
        if row.get("ParentRef"):
            details["ParentRef"] = row["ParentRef"].get("value")
        if kind == "tax_codes":
            rate_list = (row.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
            details["SalesRateIds"] = tuple(str((d.get("TaxRateRef") or {}).get("value")) for d in rate_list)
        return ReferenceItem(
            kind=kind,
            id=str(row["Id"]),
            code=str(row.get("Sku") or row.get("AcctNum") or row["Id"]),
            name=row.get("FullyQualifiedName") or row.get("Name") or "",
            active=row.get("Active", True),
            details=details,
        )

    def find_customers(self, query: CustomerQuery) -> list[LedgerCustomer]:
        """Look customers up by Id, DisplayName or e-mail, inactive ones included (quickbooks-online.md §6).

        A name is looked up as :func:`display_name` gives it, the form customers are created under.
        """
        if query.by not in _CUSTOMER_FIELDS:
            raise NotSupported(f"QuickBooks customers cannot be looked up by {query.by!r}", provider=self.provider)
        field = _CUSTOMER_FIELDS[query.by]
        if field == "PrimaryEmailAddr":
            # Not filterable on the server, and seeded e-mails are messy (" COOL@cars.test ",
            # two addresses in one field): compare normalised addresses locally.
            wanted = query.value.strip().lower()
            found = [c for c in self._all_customer_rows() if wanted in _emails(c)]
        else:
            value = display_name(query.value) if query.by == "name" else query.value.strip()
            found = self._select("Customer", f"{field} = {qbo_literal(value)}", "Active IN (true, false)")
        return [self._customer(row) for row in found]

    def _all_customer_rows(self) -> list[dict]:
        if self._customer_rows is None:
            self._customer_rows = self._select("Customer", "Active IN (true, false)")
        return self._customer_rows

    @staticmethod
    def _customer(row: Mapping[str, Any]) -> LedgerCustomer:
        return LedgerCustomer(
            id=str(row["Id"]),
            name=row.get("DisplayName") or "",
            email=(row.get("PrimaryEmailAddr") or {}).get("Address"),
            country=(row.get("BillAddr") or {}).get("Country"),
            active=row.get("Active", True),
        )

    def create_customer(self, draft: CustomerDraft) -> LedgerCustomer:
        """Create a customer with a ``requestid`` derived from our reference, the reference in its notes
        (quickbooks-online.md §2.4).

        The DisplayName must be unique across customers, vendors and employees (6240): when it
        is taken (another customer of the same name), the customer is created as "Name (our
        reference)" under a requestid of its own. Both requestids depend on our reference only,
        so creating the same draft again replays what an earlier attempt made (quickbooks-online.md §2.4).
        """
        try:
            created = self._write(
                "Customer", _customer_payload(draft), requestid=request_id("customer", draft.reference)
            )
        except Rejected as exc:
            if exc.provider_code != DUPLICATE_NAME:
                raise
            payload = _customer_payload(draft, display=distinct_name(draft))
            created = self._write("Customer", payload, requestid=request_id("customer", f"{draft.reference}\x00named"))
        if self._customer_rows is not None and not any(r.get("Id") == created.get("Id") for r in self._customer_rows):
            self._customer_rows.append(created)
        return self._customer(created)

    def find_customer_by_reference(self, draft: CustomerDraft) -> LedgerCustomer | None:
        """Return the customer whose notes carry our reference, under either name :meth:`create_customer` gives.

        QuickBooks cannot filter customers on their notes (quickbooks-online.md §2.2): the look-up asks for the two
        DisplayNames and keeps the one whose note names our reference; a customer that only has
        the same name is never returned.
        """
        names = ", ".join(qbo_literal(n) for n in dict.fromkeys((display_name(draft.name), distinct_name(draft))))
        for row in self._select("Customer", f"DisplayName IN ({names})", "Active IN (true, false)"):
            if _carries_reference(row, draft.reference):
                return self._customer(row)
        return None

    def update_customer(self, external_id: str, draft: CustomerDraft, fields: Collection[str]) -> None:
        """Sparse-update the changed fields with the customer's current SyncToken
        (quickbooks-online.md §3 common rules).

        VAT and company numbers have no place on a QuickBooks customer and are left out. A stale
        SyncToken (5010, e.g. a payment touched the customer meanwhile) is read again once; a
        DisplayName taken by someone else gets our reference added, as at creation.
        """
        wanted = _customer_payload(draft)
        body: dict[str, Any] = {}
        if "name" in fields:
            body["DisplayName"] = wanted["DisplayName"]
        if "email" in fields:
            body["PrimaryEmailAddr"] = {"Address": draft.email or ""}
        if {"address_lines", "postcode", "city", "country"} & set(fields):
            body["BillAddr"] = _bill_address(draft, blanks=True)
        if not body:
            return
        for attempt in range(2):
            current = self._call("GET", self._url(f"customer/{external_id}"))["Customer"]
            payload = {"Id": str(external_id), "SyncToken": current["SyncToken"], "sparse": True, **body}
            try:
                self._write("Customer", payload)
                return
            except Rejected as exc:
                if exc.provider_code == STALE_OBJECT and attempt == 0:
                    continue
                if exc.provider_code == DUPLICATE_NAME and "DisplayName" in body and attempt == 0:
                    body["DisplayName"] = distinct_name(draft)
                    continue
                raise

    def iter_customers(self, page_size: int | None = None) -> Iterator[LedgerCustomer]:
        """Yield every customer, inactive ones included, by STARTPOSITION / MAXRESULTS pages
        (quickbooks-online.md §2.2).

        Name lists return only active rows unless ``Active`` is filtered, hence ``IN (true, false)``.
        """
        size = min(page_size or self.spec.max_page_size, self.spec.max_page_size)
        start = 1
        while True:
            body = self._call(
                "GET",
                self._url("query"),
                params={
                    # Integers only are interpolated: no user input reaches the query.
                    "query": "SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY Id "  # noqa: S608
                    f"STARTPOSITION {start} MAXRESULTS {size}"
                },
            )
            page = body.get("QueryResponse") or {}
            found = page.get("Customer") or []
            yield from (self._customer(row) for row in found)
            if len(found) < size:
                return
            start += size

    # -- documents (quickbooks-online.md §3 Invoice / CreditMemo, §6) -------------------------------

    def push_invoice(self, draft: DocumentDraft, *, looked_up: bool = False) -> PushResult:
        """Create an invoice with DocNumber = our number and a requestid derived from our reference
        (quickbooks-online.md §2.4, §6).

        A lookup by DocNumber first (unless the caller has just ``looked_up``) makes a re-run after
        an unknown outcome create nothing twice.
        """
        return self._push_document("invoice", draft, looked_up=looked_up)

    def push_credit_note(self, draft: DocumentDraft) -> PushResult:
        """Create a credit memo with DocNumber = our number, lines mapped like invoices
        (quickbooks-online.md §3 CreditMemo).

        QuickBooks keeps no link from a credit memo to the invoice it corrects (outside India);
        the memo is applied to the invoice through a payment, or by the company's auto-apply setting.
        """
        return self._push_document("credit_note", draft)

    def _push_document(self, kind: str, draft: DocumentDraft, *, looked_up: bool = False) -> PushResult:
        """Create the document, or return the one QuickBooks has with its DocNumber.

        Created without a look-up when the caller ``looked_up`` (or knows there is nothing to
        find): a DocNumber QuickBooks has already is refused (6140, custom transaction numbers
        on), and only then is the document there looked up and returned as found.
        """
        result = None if looked_up else self.find_by_reference(kind, draft.number)
        if result is None:
            entity = _ENTITIES[kind]
            body = self._document_payload(kind, draft)
            try:
                created = self._write(entity, body, requestid=request_id(kind, draft.reference))
            except Rejected as exc:
                result = self.find_by_reference(kind, draft.number) if exc.provider_code == DUPLICATE_NUMBER else None
                if result is None:
                    raise
            else:
                result = PushResult(str(created["Id"]), created.get("DocNumber"), totals=_totals(created))
        if kind == "invoice" and result.external_number:
            self._numbers[result.external_id] = result.external_number
        return result

    def _document_payload(self, kind: str, draft: DocumentDraft) -> dict[str, Any]:
        """Return the Invoice / CreditMemo body: lines, tax in the company's model, dates, terms.

        US companies (quickbooks-online.md §6): each line says only TAX or NON; the rate is the document's
        ``TxnTaxCodeRef`` (``draft.sales_tax_code``, else the one code the taxable lines map to),
        and ``draft.tax_total`` goes as ``TotalTax``, which QuickBooks takes as stated, so the
        tax booked is the SaaS's to the cent. Elsewhere each line carries its own tax code.
        """
        us = self._is_us()
        lines, sales_tax_codes = [], []
        for line in draft.lines:
            detail: dict[str, Any] = {"Qty": float(line.quantity), "UnitPrice": float(line.unit_price)}
            for key, value in (("ItemRef", line.item), ("ClassRef", line.class_ref)):
                if value:
                    detail[key] = {"value": value}
            if us:
                # US lines say only whether they are taxable; the rate is the header's code (quickbooks-online.md §6).
                code = (line.tax_code or "").strip()
                taxable = bool(code) and code.upper() != "NON"
                detail["TaxCodeRef"] = {"value": "TAX" if taxable else "NON"}
                if taxable and code.upper() != "TAX" and code not in sales_tax_codes:
                    sales_tax_codes.append(code)
            elif line.tax_code:
                detail["TaxCodeRef"] = {"value": line.tax_code}
            amount = (line.quantity * line.unit_price).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            lines.append(
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": float(amount),
                    "Description": line.description,
                    "SalesItemLineDetail": detail,
                }
            )
        payload: dict[str, Any] = {
            "DocNumber": draft.number,
            "CustomerRef": {"value": draft.customer_id},
            "TxnDate": draft.issue_date.isoformat(),
            "Line": lines,
        }
        if not us:
            # The SaaS's prices exclude tax; said explicitly rather than left to the company's preference.
            payload["GlobalTaxCalculation"] = "TaxExcluded"
        if us and draft.sales_tax_code:
            sales_tax_codes = [draft.sales_tax_code]
        if len(sales_tax_codes) > 1:
            raise Rejected(
                f"QuickBooks US companies take one sales tax code per {_WORDS[kind]}, but the lines of "
                f"{draft.number} map to {', '.join(sales_tax_codes)}: map one sales tax code for all its "
                "products (or TAX / NON per product and the rate as the default tax code)",
                provider=self.provider,
            )
        if sales_tax_codes:
            payload["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": sales_tax_codes[0]}}
            if draft.tax_total is not None:
                payload["TxnTaxDetail"]["TotalTax"] = float(draft.tax_total)
        if kind == "invoice":
            if draft.due_date:
                payload["DueDate"] = draft.due_date.isoformat()
            if draft.payment_condition:
                payload["SalesTermRef"] = {"value": draft.payment_condition}
        if draft.memo:
            payload["PrivateNote"] = draft.memo
        return payload

    def _is_us(self) -> bool:
        """Say whether the company uses the US sales-tax model (CompanyInfo.Country, quickbooks-online.md §2.1, §6)."""
        if self._country is None:
            self._country = (self.company_info().country or "").upper()
        return self._country in ("US", "USA")

    def final_without_call(self, external_id: str, *, send: bool) -> tuple[bool, str | None]:
        """Say whether the invoice is one this adapter created (final, DocNumber known) and is not to be sent."""
        number = None if send else self._numbers.get(str(external_id))
        return number is not None, number

    def finalize_invoice(
        self, external_id: str, *, send: bool, email: str | None = None, message: str | None = None
    ) -> str | None:
        """Return the invoice's DocNumber; when ``send``, have QuickBooks e-mail it once
        (quickbooks-online.md §3 Invoice "Send").

        QuickBooks invoices are final when created. An invoice whose EmailStatus is already
        EmailSent is not sent again. ``message`` has no place in QuickBooks' send call and is
        not used; ``email`` becomes ``sendTo`` (it replaces the invoice's BillEmail).

        :raise NotSent: when QuickBooks refuses the send (e.g. no e-mail address) or does not
            answer EmailSent; the invoice keeps its number.
        """
        known, number = self.final_without_call(external_id, send=send)
        if known:
            return number
        invoice = self._call("GET", self._url(f"invoice/{external_id}"))["Invoice"]
        if not send or invoice.get("EmailStatus") == "EmailSent":
            return invoice.get("DocNumber")
        return self._email_invoice(external_id, invoice.get("DocNumber"), email, request_id("send", str(external_id)))

    def send_invoice(self, external_id: str, *, email: str | None = None, message: str | None = None) -> str | None:
        """E-mail an invoice QuickBooks shows as not sent, under a requestid of this attempt ("Send again").

        An earlier refused send may be remembered under the first requestid (quickbooks-online.md §2.4), so this
        one is new; an invoice already EmailSent is not sent twice.
        """
        invoice = self._call("GET", self._url(f"invoice/{external_id}"))["Invoice"]
        if invoice.get("EmailStatus") == "EmailSent":
            return invoice.get("DocNumber")
        attempt = f"{external_id}:{invoice.get('SyncToken')}:{uuid.uuid4().hex}"
        return self._email_invoice(external_id, invoice.get("DocNumber"), email, request_id("send", attempt))

    def _email_invoice(self, external_id: str, number: str | None, email: str | None, requestid: str) -> str | None:
        params = {"requestid": requestid}
        if email:
            params["sendTo"] = email
        try:
            sent = self._call(
                "POST",
                self._url(f"invoice/{external_id}/send"),
                params=params,
                data=b"",
                headers={"Content-Type": "application/octet-stream"},
            )["Invoice"]
        except Rejected as exc:
            raise NotSent(
                f"QuickBooks did not e-mail invoice {number}. Give the customer an e-mail address (in the SaaS: "
                "the next push sends it to QuickBooks), then choose Send again",
                provider=self.provider,
                provider_code=exc.provider_code,
                provider_text=exc.provider_text,
                number=number,
            ) from None
        if sent.get("EmailStatus") != "EmailSent":
            raise NotSent(
                f"QuickBooks did not confirm the e-mail of invoice {number} (EmailStatus {sent.get('EmailStatus')})",
                provider=self.provider,
                number=sent.get("DocNumber") or number,
            )
        return sent.get("DocNumber") or number

    def attach_pdf(self, external_id: str, *, filename: str, content: bytes) -> str | None:
        """Upload the PDF to the invoice as an Attachable that goes along when QuickBooks e-mails it
        (quickbooks-online.md §3 Attachable).

        The same file for the same invoice carries the same requestid, so a retry after a lost
        answer returns the first attachment instead of adding a second one.
        """
        metadata = {
            "AttachableRef": [{"EntityRef": {"type": "Invoice", "value": str(external_id)}, "IncludeOnSend": True}],
            "FileName": filename,
            "ContentType": "application/pdf",
        }
        boundary = f"----LedgerlinkBoundary{uuid.uuid4().hex}"
        body = b"".join(
            [
                f"--{boundary}\r\n".encode(),
                b'Content-Disposition: form-data; name="file_metadata_01"\r\n',
                b"Content-Type: application/json\r\n\r\n",
                json.dumps(metadata).encode(),
                f"\r\n--{boundary}\r\n".encode(),
                b'Content-Disposition: form-data; name="file_content_01"; ',
                f'filename="{_header_safe(filename)}"\r\n'.encode(),
                b"Content-Type: application/pdf\r\n\r\n",
                content,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        digest = hashlib.sha256(content).hexdigest()
        answer = self._call(
            "POST",
            self._url("upload"),
            params={"requestid": request_id("pdf", f"{external_id}:{filename}:{digest}")},
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        (item,) = (answer or {}).get("AttachableResponse", [])[:1] or [{}]
        if "Fault" in item:
            # Upload faults come inside a 200 (attachment/error_estimate.yml).
            raise self._fault_error(item["Fault"])
        if "Attachable" not in item:
            raise Rejected("QuickBooks answered the upload without an attachment", provider=self.provider)
        return str(item["Attachable"]["Id"])

    def find_by_reference(self, kind: str, reference: str) -> PushResult | None:
        """Return the invoice, credit memo or payment pushed with our reference, or None.

        Invoices and credit memos carry it as DocNumber (quickbooks-online.md §6). Payments cannot be filtered by
        DocNumber (quickbooks-online.md §2.2, Finance.xsd) and no source names a query filter on PaymentRefNum
        or PrivateNote, so payments are read newest first and matched here on PrivateNote (our
        full reference) or PaymentRefNum (its first 21 characters).
        """
        if kind == "payment":
            return self._find_payment(reference)
        entity = _ENTITIES.get(kind)
        if entity is None or kind == "customer":
            raise self._not_yet(f"QuickBooks look-up of {kind!r} by reference")
        found = self._select(entity, f"DocNumber = {qbo_literal(reference)}")
        if not found:
            return None
        return PushResult(str(found[0]["Id"]), found[0].get("DocNumber"), created=False, totals=_totals(found[0]))

    def find_by_references(self, kind: str, references: Sequence[str]) -> dict[str, PushResult]:
        """Return the invoices or credit memos with these DocNumbers: one ``DocNumber IN (…)`` query per page of them.

        A DocNumber matches whatever its case (QuickBooks compares them so); the first document
        answered for a number is the one returned. Payments are looked up one by one.
        """
        if kind not in ("invoice", "credit_note"):
            return super().find_by_references(kind, references)
        entity = _ENTITIES[kind]
        wanted = list(dict.fromkeys(references))
        by_case = {reference.lower(): reference for reference in reversed(wanted)}
        found: dict[str, PushResult] = {}
        for chunk in _chunks(wanted, _NUMBERS_PER_QUERY):
            listed = ", ".join(qbo_literal(number) for number in chunk)
            for row in self._select(entity, f"DocNumber IN ({listed})"):
                number = row.get("DocNumber")
                reference = by_case.get(str(number).lower()) if number is not None else None
                if reference is not None:
                    found.setdefault(reference, PushResult(str(row["Id"]), number, False, totals=_totals(row)))
        if kind == "invoice":
            self._numbers.update((r.external_id, r.external_number) for r in found.values() if r.external_number)
        return found

    def _find_payment(self, reference: str) -> PushResult | None:
        size = self.spec.max_page_size
        start = 1
        while True:
            rows = self._page(
                # Integers only are interpolated.
                f"SELECT * FROM Payment ORDERBY MetaData.CreateTime DESC STARTPOSITION {start} MAXRESULTS {size}"  # noqa: S608
            )
            for row in rows:
                if row.get("PrivateNote") == reference or row.get("PaymentRefNum") == reference[:21] == reference:
                    return PushResult(str(row["Id"]), row.get("PaymentRefNum"), created=False)
            if len(rows) < size:
                return None
            start += size

    def _page(self, statement: str) -> list[dict]:
        """Run one query page and return its rows (an empty page has no entity key, quickbooks-online.md §2.2)."""
        page = self._call("GET", self._url("query"), params={"query": statement}).get("QueryResponse") or {}
        return next((v for v in page.values() if isinstance(v, list)), [])

    # -- payments (quickbooks-online.md §3 Payment) ---------------------------------------------

    def payment_status(self, external_id: str) -> PaymentStatus:
        """Return the invoice's open balance (Balance) against its total (TotalAmt).

        :raise NotFound: when QuickBooks no longer has the invoice.
        """
        found = self.payment_statuses([external_id])
        if str(external_id) not in found:
            raise NotFound(f"QuickBooks has no invoice {external_id}", provider=self.provider)
        return found[str(external_id)]

    def payment_statuses(self, external_ids: Sequence[str]) -> dict[str, PaymentStatus]:
        """Return Balance and TotalAmt of many invoices with one ``Id IN (…)`` query per page of ids.

        The query language has no projections (every property comes back) and no OR; IN takes
        the page of ids, and a page never asks for more rows than MAXRESULTS allows (quickbooks-online.md §2.2).
        """
        ids = list(dict.fromkeys(str(i) for i in external_ids if str(i).isdigit()))
        found: dict[str, PaymentStatus] = {}
        for chunk in _chunks(ids, _IDS_PER_QUERY):
            for row in self._invoices_by_id(chunk):
                found[str(row["Id"])] = _status(row)
        return found

    def _invoices_by_id(self, ids: Sequence[str]) -> list[dict]:
        listed = ", ".join(qbo_literal(i) for i in ids)
        return self._page(f"SELECT * FROM Invoice WHERE Id IN ({listed}) MAXRESULTS {len(ids)}")  # noqa: S608

    def push_payment(self, draft: PaymentDraft) -> PushResult:
        """Record a payment against a pushed invoice, which lowers the invoice's Balance
        (quickbooks-online.md §3 Payment).

        The customer is read from the invoice. An amount above the open balance is applied up to
        the balance; QuickBooks keeps the rest as unapplied credit. Our reference goes into
        PrivateNote (and PaymentRefNum, max 21 characters) and the requestid derives from it.
        """
        invoices = self._invoices_by_id([str(draft.invoice_id)]) if str(draft.invoice_id).isdigit() else []
        if not invoices:
            raise NotFound(
                f"QuickBooks has no invoice {draft.invoice_id} to record payment {draft.reference} against",
                provider=self.provider,
            )
        created = self._write(
            "Payment", _payment_payload(draft, invoices[0]), requestid=request_id("payment", draft.reference)
        )
        return PushResult(str(created["Id"]), created.get("PaymentRefNum"))

    # -- reconciliation and back-fill -----------------------------------------------------------

    def iter_documents(self, kind: str, date_from: date, date_to: date) -> Iterator[LedgerDocument]:
        """Yield invoices or credit memos dated within the range, a page of up to 1000 at a time
        (quickbooks-online.md §2.2)."""
        entity = {"invoice": "Invoice", "credit_note": "CreditMemo"}.get(kind)
        if entity is None:
            raise NotSupported(f"QuickBooks documents of kind {kind!r} cannot be listed", provider=self.provider)
        size = self.spec.max_page_size
        start = 1
        while True:
            rows = self._page(
                # Only ISO dates and integers are interpolated.
                f"SELECT * FROM {entity} WHERE TxnDate >= '{date_from.isoformat()}' "  # noqa: S608
                f"AND TxnDate <= '{date_to.isoformat()}' ORDERBY Id STARTPOSITION {start} MAXRESULTS {size}"
            )
            yield from (_document(row) for row in rows)
            if len(rows) < size:
                return
            start += size

    def closed_periods(self, date_from: date, date_to: date) -> list[ClosedPeriod]:
        """Return the span up to the books' closing date (Preferences.AccountingInfoPrefs.BookCloseDate)."""
        preferences = self._call("GET", self._url("preferences"))["Preferences"]
        closing = (preferences.get("AccountingInfoPrefs") or {}).get("BookCloseDate")
        if not closing:
            return []
        closed_until = date.fromisoformat(str(closing)[:10])
        if closed_until < date_from:
            return []
        return [
            ClosedPeriod(
                start=None,
                end=min(closed_until, date_to),
                reason=f"The books are closed up to and including {closed_until.isoformat()} "
                "(QuickBooks closing date): documents dated then are refused",
            )
        ]

    # -- batch (quickbooks-online.md §2.3) ----------------------------------------------------

    def batch(self, operations: Sequence[BatchOperation], *, looked_up: bool = False) -> list[BatchItemResult]:
        """Run creates (customer, invoice, credit_note, payment) and queries, 30 per batch call.

        Each item's Fault becomes the typed error the single call would raise. Invoices and
        credit memos already in QuickBooks (by DocNumber) are reported as found, not sent again:
        looked up first with one query unless ``looked_up``; then a create QuickBooks refuses for
        its number (6140) is answered with the document that has it, as a single create is. With
        short operation ids (≤ 10 characters) the call carries a requestid derived from its items,
        so a repeat after a lost answer replays it. Whole-call failures (401, 429, 5xx) are raised.
        """
        size = self.capabilities.batch_size or 30
        results: list[BatchItemResult] = []
        for chunk in _chunks(list(operations), size):
            results.extend(self._batch_call(chunk, looked_up=looked_up))
        return results

    def _batch_call(self, operations: Sequence[BatchOperation], *, looked_up: bool) -> list[BatchItemResult]:
        done: dict[str, BatchItemResult] = {}
        existing = {} if looked_up else self._existing_documents(operations)
        invoices = self._payment_invoices(operations)
        items: list[dict[str, Any]] = []
        for op in operations:
            try:
                item = self._batch_item(op, existing, invoices)
            except LedgerError as exc:
                done[op.id] = BatchItemResult(op.id, error=exc)
                continue
            if isinstance(item, PushResult):
                done[op.id] = BatchItemResult(op.id, result=item)
            else:
                items.append({"bId": op.id, **item})
        if items:
            params = {}
            if all(len(op.id) <= 10 for op in operations):
                # Batch requestids are at most 36 characters, bIds then at most 10 (quickbooks-online.md §2.4).
                digest = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()
                params["requestid"] = f"llb-{digest[:32]}"
            answer = self._call("POST", self._url("batch"), params=params, json={"BatchItemRequest": items})
            for response in answer.get("BatchItemResponse") or []:
                bid = str(response.get("bId"))
                done[bid] = self._batch_result(bid, response)
            self._found_for_duplicates(operations, done)
        for op in operations:
            made = done[op.id].result if op.id in done else None
            if op.kind == "invoice" and made is not None and made.external_number:
                self._numbers[made.external_id] = made.external_number  # final as created (finalize_invoice)
        return [
            done.get(op.id)
            or BatchItemResult(
                op.id, error=Unavailable("QuickBooks returned no answer for this batch item", provider=self.provider)
            )
            for op in operations
        ]

    def _batch_item(
        self, op: BatchOperation, existing: Mapping[tuple[str, str], PushResult], invoices: Mapping[str, dict]
    ) -> dict[str, Any] | PushResult:
        if op.kind == "query":
            return {"Query": str(op.payload)}
        if op.action != "create" or op.kind not in _ENTITIES:
            raise NotSupported(
                f"QuickBooks batch operation {op.action!r} on {op.kind!r} is not available", provider=self.provider
            )
        entity = _ENTITIES[op.kind]
        if op.kind == "customer":
            return {"operation": "create", entity: _customer_payload(op.payload)}
        if op.kind == "payment":
            invoice = invoices.get(str(op.payload.invoice_id))
            if invoice is None:
                raise NotFound(
                    f"QuickBooks has no invoice {op.payload.invoice_id} to record payment {op.payload.reference} "
                    "against",
                    provider=self.provider,
                )
            return {"operation": "create", entity: _payment_payload(op.payload, invoice)}
        found = existing.get((entity, op.payload.number))
        if found is not None:
            return found
        return {"operation": "create", entity: self._document_payload(op.kind, op.payload)}

    def _found_for_duplicates(self, operations: Sequence[BatchOperation], done: dict[str, BatchItemResult]) -> None:
        """Answer the document creates QuickBooks refused for their number (6140) with the documents that have it."""
        for kind in ("invoice", "credit_note"):
            refused = {
                op.id: op.payload.number
                for op in operations
                if op.kind == kind
                and op.action == "create"
                and (error := done.get(op.id, BatchItemResult(op.id)).error) is not None
                and error.provider_code == DUPLICATE_NUMBER
            }
            if refused:
                found = self.find_by_references(kind, list(refused.values()))
                for bid, number in refused.items():
                    if number in found:
                        done[bid] = BatchItemResult(bid, result=found[number])

    def _existing_documents(self, operations: Sequence[BatchOperation]) -> dict[tuple[str, str], PushResult]:
        """Look the batch's documents up by DocNumber: one query per entity (quickbooks-online.md §6 duplicate
        avoidance)."""
        found: dict[tuple[str, str], PushResult] = {}
        for kind in ("invoice", "credit_note"):
            numbers = [op.payload.number for op in operations if op.kind == kind and op.action == "create"]
            if numbers:
                entity = _ENTITIES[kind]
                found.update(((entity, n), r) for n, r in self.find_by_references(kind, numbers).items())
        return found

    def _payment_invoices(self, operations: Sequence[BatchOperation]) -> dict[str, dict]:
        ids = [
            str(op.payload.invoice_id)
            for op in operations
            if op.kind == "payment" and op.action == "create" and str(op.payload.invoice_id).isdigit()
        ]
        return {str(row["Id"]): row for row in self._invoices_by_id(list(dict.fromkeys(ids)))} if ids else {}

    def _batch_result(self, bid: str, response: Mapping[str, Any]) -> BatchItemResult:
        if "Fault" in response:
            return BatchItemResult(bid, error=self._fault_error(response["Fault"]))
        if "QueryResponse" in response:
            page = response["QueryResponse"] or {}
            rows = next((v for v in page.values() if isinstance(v, list)), [])
            return QueryItemResult(bid, rows=tuple(rows))
        entity = next((k for k in response if k in _ENTITIES.values()), None)
        if entity is None:
            return BatchItemResult(
                bid, error=Rejected("QuickBooks answered this batch item with nothing usable", provider=self.provider)
            )
        row = response[entity]
        number = row.get("DocNumber") if entity != "Payment" else row.get("PaymentRefNum")
        totals = _totals(row) if entity != "Payment" else None
        return BatchItemResult(bid, result=PushResult(str(row["Id"]), number, totals=totals))

    def _fault_error(self, fault: Mapping[str, Any]) -> LedgerError:
        """Return the typed error a single call answering with ``fault`` would have raised."""
        response = requests.Response()
        response.status_code = _FAULT_STATUS.get(str(fault.get("type")), 400)
        response._content = json.dumps({"Fault": fault}).encode()  # a synthetic answer
        response.headers["Content-Type"] = "application/json"
        return map_error(self.spec, response, method="POST")


def _chunks(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _header_safe(filename: str) -> str:
    return "".join(c for c in filename if c.isprintable() and c not in '"\\\r\n') or "invoice.pdf"


def _money(value: Any) -> Decimal:
    return Decimal(str(value if value not in (None, "") else 0))


def _totals(row: Mapping[str, Any]) -> Totals | None:
    """Return an Invoice / CreditMemo's totals: TotalAmt with the TxnTaxDetail's TotalTax
    (quickbooks-online.md §3 Invoice, §6)."""
    if row.get("TotalAmt") in (None, ""):
        return None
    total = _money(row.get("TotalAmt"))
    tax = _money((row.get("TxnTaxDetail") or {}).get("TotalTax"))
    return Totals(total - tax, tax, total)


def _status(row: Mapping[str, Any]) -> PaymentStatus:
    balance, total = _money(row.get("Balance")), _money(row.get("TotalAmt"))
    state = "paid" if balance == 0 else ("partial" if balance < total else "open")
    return PaymentStatus(str(row["Id"]), balance == 0, balance, total, state)


def _document(row: Mapping[str, Any]) -> LedgerDocument:
    balance = row.get("Balance", row.get("RemainingCredit"))
    return LedgerDocument(
        external_id=str(row["Id"]),
        reference=row.get("DocNumber"),
        number=row.get("DocNumber"),
        issue_date=date.fromisoformat(row["TxnDate"]),
        total=_money(row.get("TotalAmt")),
        currency=(row.get("CurrencyRef") or {}).get("value") or "",
        amount_open=_money(balance) if balance is not None else None,
        customer_id=(row.get("CustomerRef") or {}).get("value"),
    )


def display_name(name: str) -> str:
    """Return a name as a QuickBooks DisplayName: no colon (quickbooks-online.md §3 Customer), trimmed, inner spaces
    collapsed."""
    return clean_name(name.replace(":", " "))[:DISPLAY_NAME_MAX]


def distinct_name(draft: CustomerDraft) -> str:
    """Return the DisplayName of a customer whose plain name someone else has in QuickBooks: "Name (reference)"."""
    suffix = f" ({display_name(draft.reference)})"
    return display_name(draft.name)[: DISPLAY_NAME_MAX - len(suffix)] + suffix


def _carries_reference(row: Mapping[str, Any], reference: str) -> bool:
    notes = str(row.get("Notes") or "")
    return any(line.strip() == f"{REFERENCE_NOTE}{reference}".strip() for line in notes.splitlines())


def _bill_address(draft: CustomerDraft, *, blanks: bool = False) -> dict[str, str]:
    address = {
        "Line1": draft.address_lines[0] if draft.address_lines else None,
        "City": draft.city,
        "PostalCode": draft.postcode,
        "Country": draft.country,
    }
    return {k: v or "" for k, v in address.items()} if blanks else {k: v for k, v in address.items() if v}


def _customer_payload(draft: CustomerDraft, *, display: str | None = None) -> dict[str, Any]:
    """Return the Customer body: a DisplayName without colon (quickbooks-online.md §3 Customer), our reference in the
    notes."""
    payload: dict[str, Any] = {
        "DisplayName": display or display_name(draft.name),
        "Notes": f"{REFERENCE_NOTE}{draft.reference}",
    }
    if draft.email:
        payload["PrimaryEmailAddr"] = {"Address": draft.email}
    address = _bill_address(draft)
    if address:
        payload["BillAddr"] = address
    return payload


def _payment_payload(draft: PaymentDraft, invoice: Mapping[str, Any]) -> dict[str, Any]:
    """Return the Payment body for ``draft`` against ``invoice`` (customer and open balance read from it)."""
    amount = draft.amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    applied = min(amount, _money(invoice.get("Balance")))
    payload: dict[str, Any] = {
        "CustomerRef": {"value": invoice["CustomerRef"]["value"]},
        "TotalAmt": float(amount),
        "TxnDate": draft.paid_on.isoformat(),
        "PrivateNote": draft.reference,
        "PaymentRefNum": draft.reference[:21],
        "Line": [],
    }
    if applied > 0:
        payload["Line"] = [
            {"Amount": float(applied), "LinkedTxn": [{"TxnId": str(invoice["Id"]), "TxnType": "Invoice"}]}
        ]
    if draft.bank_account:
        payload["DepositToAccountRef"] = {"value": draft.bank_account}
    return payload


def _emails(customer: Mapping[str, Any]) -> list[str]:
    address = (customer.get("PrimaryEmailAddr") or {}).get("Address") or ""
    return [part.strip().lower() for part in address.split(",") if part.strip()]


def _numbering(preferences: Mapping[str, Any]) -> Check:
    """Check that custom transaction numbers are on (quickbooks-online.md §3 Preferences, §6).

    Ledgerlink finds a pushed document again by its DocNumber. With the setting off, QuickBooks
    numbers documents itself, advises against sending a DocNumber, and does not refuse duplicates.
    """
    if (preferences.get("SalesFormsPrefs") or {}).get("CustomTxnNumbers"):
        return Check(
            "custom_transaction_numbers",
            True,
            "Custom transaction numbers are on: invoices keep the numbers Ledgerlink sends",
        )
    return Check(
        "custom_transaction_numbers",
        False,
        "Custom transaction numbers are off in QuickBooks: it then numbers invoices itself and does not "
        "refuse a number used twice, so the invoice numbers Ledgerlink sends are not protected and a retried "
        "push could create an invoice twice. Turn them on in QuickBooks → Settings → Account and settings → "
        "Sales → Custom transaction numbers.",
    )


#: Keys of a QueryResponse that describe the page rather than hold rows.
_QUERY_META = frozenset({"startPosition", "maxResults", "totalCount"})


def _query_rows(body: Any) -> list[dict]:
    """Return the rows of a query answer; refuse an answer of another shape.

    A malformed answer must not read as "no rows": reference data refreshed from it would
    wipe every code the mappings use.

    :raise Unavailable: when the answer is not a QueryResponse of row lists.
    """
    page = body.get("QueryResponse") if isinstance(body, dict) else None
    if page is None and isinstance(body, dict) and "QueryResponse" in body:
        page = {}
    values = [value for key, value in page.items() if key not in _QUERY_META] if isinstance(page, dict) else None
    if values is None or any(not isinstance(v, list) or not all(isinstance(r, dict) for r in v) for v in values):
        raise Unavailable(
            "QuickBooks answered a query in an unexpected shape; nothing was changed. Try again later.",
            provider=specs.QUICKBOOKS,
            provider_text=str(body)[:500],
        )
    return values[0] if values else []
