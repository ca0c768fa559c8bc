"""QuickBooks Online adapter: only what differs from the other ledgers (quickbooks-online.md, §n).

A token is bound to one company (realm); the consent callback names it as ``realmId`` (§1),
which :meth:`QuickBooksAdapter.exchange_code` pins as ``company_id``. Writes send a
``requestid`` so a repeated create replays instead of duplicating (§2.4).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from . import specs
from .base import (
    Check,
    Company,
    CustomerDraft,
    CustomerQuery,
    DocumentDraft,
    LedgerAdapter,
    LedgerCustomer,
    LedgerError,
    NotSupported,
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

#: Reference kind → (entity, extra WHERE) for the query endpoint (§2.2, §3). Inactive rows are
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


def qbo_literal(value: str) -> str:
    """Return ``value`` as a query string literal (apostrophes backslash-escaped, §2.2)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@register(specs.QUICKBOOKS)
class QuickBooksAdapter(LedgerAdapter):
    """QuickBooks Online; ``company_id`` is the realm id."""

    # -- OAuth (§1) -------------------------------------------------------------------------------

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
        """Refresh; within ~24 h the same refresh token comes back, later a new one (§1)."""
        return self._refresh_grant()

    def revoke(self) -> bool:
        """Revoke the whole grant (refresh and access tokens) with the refresh token (§1)."""
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
        """Run a query, paging by STARTPOSITION until a short page (max 1000 rows, §2.2)."""
        size = self.spec.max_page_size
        found: list[dict] = []
        start = 1
        while True:
            body = self._call(
                "GET",
                self._url("query"),
                params={"query": f"{statement} STARTPOSITION {start} MAXRESULTS {size}"},
            )
            page = body.get("QueryResponse") or {}
            entity_rows = next((v for v in page.values() if isinstance(v, list)), [])
            found.extend(entity_rows)
            if len(entity_rows) < size:
                return found
            start += size

    def _select(self, entity: str, *conditions: str) -> list[dict]:
        """Query ``entity`` rows matching every condition (values already escaped by qbo_literal)."""
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return self._query(f"SELECT * FROM {entity}{where}")  # noqa: S608 - QBO query language, escaped values

    def _write(self, entity: str, payload: Mapping[str, Any], **params: str) -> dict:
        """POST an entity (create, sparse update or operation) with a fresh ``requestid`` (§2.4)."""
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

    def preflight(self) -> list[Check]:
        """Check read-only: company, preferences, numbering, an income account, tax codes."""
        company = self._check("company", self._probe_company)
        if not company.ok:
            return [company]
        preferences: dict[str, Any] = {}

        def read_preferences() -> tuple[bool, str]:
            preferences.update(self._call("GET", self._url("preferences"))["Preferences"])
            return True, "Company preferences are readable (the accounting scope is granted)"

        checks = [company, self._check("preferences", read_preferences)]
        if preferences:
            checks.append(Check("custom_transaction_numbers", True, _numbering(preferences)))
        checks.append(self._check("income_account", self._probe_income))
        checks.append(self._check("tax_codes", self._probe_tax))
        return checks

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

    def create_test_documents(self) -> TestResult:
        """Create a test customer and a zero-amount invoice (no e-mail is sent)."""
        name = test_label().replace(":", " ")  # a colon in a name is refused (6000)
        customer = self._write("Customer", {"DisplayName": name, "Notes": "Created by the Ledgerlink connection test"})
        result = TestResult(created=[("customer", customer["Id"], name)])
        try:
            invoice = self._write("Invoice", self._test_invoice(customer["Id"], name))
        except LedgerError:
            self.cleanup_test_documents(result)
            raise
        result.created.append(("invoice", invoice["Id"], invoice.get("DocNumber") or name))
        return result

    def _test_invoice(self, customer_id: str, name: str) -> dict[str, Any]:
        items = self._select("Item", "Type = 'Service'")
        if not items:
            raise Rejected("QuickBooks has no active service item for a test invoice line", provider=self.provider)
        detail: dict[str, Any] = {"ItemRef": {"value": items[0]["Id"]}, "Qty": 1, "UnitPrice": 0}
        if (self.company_info().country or "US") != "US":
            # Non-US lines need a real tax code (§6); the first active one does for a 0 amount.
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
        return [self._reference_item(kind, row) for row in self._select(entity, *conditions)]

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
        details = {k: row[k] for k in _DETAILS if k in row}
        if row.get("ParentRef"):
            details["ParentRef"] = row["ParentRef"].get("value")
        return ReferenceItem(
            kind=kind,
            id=str(row["Id"]),
            code=str(row.get("Sku") or row.get("AcctNum") or row["Id"]),
            name=row.get("FullyQualifiedName") or row.get("Name") or "",
            active=row.get("Active", True),
            details=details,
        )

    def find_customers(self, query: CustomerQuery) -> list[LedgerCustomer]:
        """Look customers up by Id, DisplayName or e-mail, inactive ones included (§6)."""
        if query.by not in _CUSTOMER_FIELDS:
            raise NotSupported(f"QuickBooks customers cannot be looked up by {query.by!r}", provider=self.provider)
        field = _CUSTOMER_FIELDS[query.by]
        if field == "PrimaryEmailAddr":
            # Not filterable on the server, and seeded e-mails are messy (" COOL@cars.test ",
            # two addresses in one field): compare normalised addresses locally.
            wanted = query.value.strip().lower()
            found = [c for c in self._select("Customer", "Active IN (true, false)") if wanted in _emails(c)]
        else:
            value = qbo_literal(query.value.strip())
            found = self._select("Customer", f"{field} = {value}", "Active IN (true, false)")
        return [self._customer(row) for row in found]

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
        """Create a customer; its DisplayName must be unique across customers, vendors, employees."""
        payload: dict[str, Any] = {"DisplayName": draft.name.replace(":", " ")}
        if draft.email:
            payload["PrimaryEmailAddr"] = {"Address": draft.email}
        address = {
            k: v
            for k, v in {
                "Line1": draft.address_lines[0] if draft.address_lines else None,
                "City": draft.city,
                "PostalCode": draft.postcode,
                "Country": draft.country,
            }.items()
            if v
        }
        if address:
            payload["BillAddr"] = address
        return self._customer(self._write("Customer", payload))

    def iter_customers(self, page_size: int | None = None) -> Iterator[LedgerCustomer]:
        """Yield every customer, inactive ones included, by STARTPOSITION / MAXRESULTS pages (§2.2).

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

    def find_by_reference(self, kind: str, reference: str) -> PushResult | None:
        """Return the invoice or credit memo whose DocNumber is our reference (§6), or None."""
        entity = {"invoice": "Invoice", "credit_note": "CreditMemo"}.get(kind)
        if entity is None:
            raise self._not_yet(f"QuickBooks look-up of {kind!r} by reference")
        found = self._select(entity, f"DocNumber = {qbo_literal(reference)}")
        if not found:
            return None
        return PushResult(str(found[0]["Id"]), found[0].get("DocNumber"), created=False)

    # -- not yet ----------------------------------------------------------------------------------

    def push_invoice(self, draft: DocumentDraft) -> PushResult:
        """Create an invoice with DocNumber = our number and requestid = our reference (§2.4, §6).

        A lookup by DocNumber first makes a re-run after an unknown outcome create nothing twice.
        """
        existing = self.find_by_reference("invoice", draft.number)
        if existing is not None:
            return existing
        lines = []
        for line in draft.lines:
            detail: dict[str, Any] = {"Qty": float(line.quantity), "UnitPrice": float(line.unit_price)}
            for key, value in (
                ("ItemRef", line.item),
                ("TaxCodeRef", line.tax_code),
                ("ClassRef", line.class_ref),
            ):
                if value:
                    detail[key] = {"value": value}
            amount = (line.quantity * line.unit_price).quantize(Decimal("0.01"))
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
        if draft.due_date:
            payload["DueDate"] = draft.due_date.isoformat()
        if draft.payment_condition:
            payload["SalesTermRef"] = {"value": draft.payment_condition}
        if draft.memo:
            payload["PrivateNote"] = draft.memo
        # requestid is at most 50 characters (§2.4); the reference is stable across retries.
        created = self._write("Invoice", payload, requestid=draft.reference[:50])
        return PushResult(str(created["Id"]), created.get("DocNumber"))

    def payment_status(self, external_id: str) -> PaymentStatus:
        """Return the invoice's open balance (Balance) against its total (TotalAmt)."""
        invoice = self._call("GET", self._url(f"invoice/{external_id}"))["Invoice"]
        balance = Decimal(str(invoice.get("Balance", 0)))
        total = Decimal(str(invoice.get("TotalAmt", 0)))
        state = "paid" if balance == 0 else ("partial" if balance < total else "open")
        return PaymentStatus(str(external_id), balance == 0, balance, total, state)

    def push_credit_note(self, draft: DocumentDraft) -> PushResult:
        raise self._not_yet("Pushing QuickBooks credit memos")

    def finalize_invoice(
        self, external_id: str, *, send: bool, email: str | None = None, message: str | None = None
    ) -> str | None:
        raise self._not_yet("Finalizing and sending QuickBooks invoices")

    def push_payment(self, draft: PaymentDraft) -> PushResult:
        raise self._not_yet("Pushing QuickBooks payments")


def _emails(customer: Mapping[str, Any]) -> list[str]:
    address = (customer.get("PrimaryEmailAddr") or {}).get("Address") or ""
    return [part.strip().lower() for part in address.split(",") if part.strip()]


def _numbering(preferences: Mapping[str, Any]) -> str:
    if (preferences.get("SalesFormsPrefs") or {}).get("CustomTxnNumbers"):
        return "Custom transaction numbers are on: invoices keep the numbers Ledgerlink sends"
    return (
        "Custom transaction numbers are off: QuickBooks numbers invoices itself when no number is "
        "sent; Ledgerlink always sends its own"
    )
