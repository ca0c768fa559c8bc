"""bexio adapter: only what differs from the other ledgers (bexio.md, cited §n).

A token belongs to one bexio company; its ``company_id`` and ``company_user_id`` travel in the
access token's claims (bexio.md §1.5). PKCE (S256) is always used; refresh tokens rotate on every
refresh (bexio.md §1.3). There is no public credit-note API (§3.6).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date
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
    LedgerDocument,
    LedgerError,
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
    pkce_challenge,
    register,
    test_label,
)
from .totals import Totals

API = "https://api.bexio.com"
#: Scopes our calls need beyond OIDC (bexio.md §1.2): without them bexio answers 403.
REQUIRED_SCOPES = ("contact_edit", "kb_invoice_edit", "accounting")
#: Reference kind → list path (bexio.md §3.7).
_REFERENCE = {
    "items": "2.0/article",
    "tax_codes": "3.0/taxes",
    "gl_accounts": "2.0/accounts",
    "currencies": "3.0/currencies",
    "bank_accounts": "3.0/banking/accounts",
    "payment_conditions": "2.0/payment_type",
    "languages": "2.0/language",
    # Every account and every tax (inactive ones too) with their types, so a mapping to the
    # wrong type or to a tax retired by a rate change can be named as such.
    "all_accounts": "2.0/accounts",
    "all_taxes": "3.0/taxes",
}
_CUSTOMER_FIELDS = {"code": "nr", "email": "mail", "name": "name_1"}
#: kb_item_status_id of invoices (bexio.md §3.4).
_STATUS = {7: "draft", 8: "open", 9: "paid", 16: "partial", 19: "cancelled", 31: "overdue"}
DRAFT, PAID, CANCELLED = 7, 9, 19
#: The placeholder bexio requires in a sent invoice's message and replaces with the invoice link (bexio.md §3.4).
NETWORK_LINK = "[Network Link]"
#: Search field and value strings are limited to 255 characters (bexio.md §2.4).
SEARCH_VALUE_MAX = 255
#: Rows one search page answers at most (bexio.md §2.3).
SEARCH_LIMIT = 2000
CENT = Decimal("0.01")


def token_claims(access_token: str) -> dict[str, Any]:
    """Return the claims of a JWT access token without verifying it, or {} for opaque tokens.

    Only used to learn which company the token belongs to; bexio itself verifies every call.
    """
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


@register(specs.BEXIO)
class BexioAdapter(LedgerAdapter):
    """bexio; ``company_id`` is the opaque bexio company id (e.g. "q69vysq7fkzl")."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        #: Invoice id → the invoice as bexio answered its creation (a draft, never sent), for
        #: invoices this adapter created and has not finalized yet: issuing one needs no read first.
        self._drafts: dict[str, dict[str, Any]] = {}

    def share_state(self, other: LedgerAdapter) -> None:
        """Share ``other``'s grant and the drafts it created (an invoice it created, issued by this one)."""
        super().share_state(other)
        if isinstance(other, BexioAdapter):
            self._drafts = other._drafts

    # -- OAuth (bexio.md §1) ----------------------------------------------------------------------

    def authorization_url(self, *, redirect_uri: str, state: str, code_verifier: str | None = None) -> str:
        """Return the Keycloak consent URL with our scopes and a PKCE S256 challenge.

        :raise ValueError: without ``code_verifier`` (bexio connections always use PKCE).
        """
        if not code_verifier:
            raise ValueError("bexio needs a PKCE code_verifier (43-128 characters) from the caller")
        query = {
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": self.spec.scope,
            "state": state,
            "code_challenge": pkce_challenge(code_verifier),
            "code_challenge_method": "S256",
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
        """Trade the code (60 s, single use) with the PKCE verifier; pin the token's company."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form["code_verifier"] = code_verifier
        tokens = self._token_call(form)
        if not self.company_id:
            self.company_id = token_claims(tokens.access_token).get("company_id") or None
        return tokens

    def refresh(self) -> TokenSet:
        """Refresh; the old refresh token dies at once, so the new one is persisted first (bexio.md §1.3)."""
        return self._refresh_grant()

    def revoke(self) -> bool:
        """Revoke the refresh token, which ends its session and every token of it (RFC 7009)."""
        if self.tokens is None:
            return False
        token = self.tokens.refresh_token or self.tokens.access_token
        hint = "refresh_token" if self.tokens.refresh_token else "access_token"
        self.http.post(
            self.region.revoke_url,
            data={
                "token": token,
                "token_type_hint": hint,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            company=self.company_id,
        )
        return True

    # -- plumbing ---------------------------------------------------------------------------------

    def _claims(self) -> dict[str, Any]:
        return token_claims(self._access_token())

    def _list(self, path: str, params: Mapping[str, str] | None = None) -> list[dict]:
        """GET a bare-array list page by page until a short page (bexio.md §2.3)."""
        size = self.spec.page_size
        found: list[dict] = []
        offset = 0
        while True:
            page = self._call("GET", f"{API}/{path}", params={**(params or {}), "limit": size, "offset": offset})
            found.extend(page or [])
            if len(page or []) < size:
                return found
            offset += size

    def _search(self, path: str, criteria: list[dict[str, Any]]) -> list[dict]:
        return self._call("POST", f"{API}/{path}/search", json=criteria) or []

    def _currency_id(self, code: str) -> int:
        """Return bexio's id of the currency ``code`` (``/3.0/currencies``, read once per adapter).

        :raise Rejected: when the company has no such currency, naming the fix (before anything is created).
        """
        known = getattr(self, "_currencies", None)
        if known is None:
            known = {str(c["name"]).upper(): int(c["id"]) for c in self._list("3.0/currencies")}
            self._currencies = known
        found = known.get(code.upper())
        if found is None:
            raise Rejected(
                f"bexio has no currency {code} in this company ({', '.join(sorted(known)) or 'none'}): add it in "
                "bexio → Settings → Currencies, then retry",
                provider=self.provider,
            )
        return found

    def _user_id(self) -> int:
        user = self._claims().get("company_user_id")
        if user is None:
            user = self._call("GET", f"{API}/3.0/users/me")["id"]
        return int(user)

    # -- companies --------------------------------------------------------------------------------

    def list_companies(self) -> list[Company]:
        """Return the one company the token belongs to."""
        return [self.company_info()]

    def company_info(self) -> Company:
        """Return the token's company: id from the claims, name and country from company_profile."""
        claims = self._claims()
        company_id = self.company_id or claims.get("company_id")
        profiles = self._call("GET", f"{API}/2.0/company_profile") or []
        profile = profiles[0] if profiles else {}
        country = None
        if profile.get("country_id"):
            found = self._call("GET", f"{API}/2.0/country/{profile['country_id']}")
            country = found.get("iso_3166_alpha2") or found.get("name_short")
        return Company(
            id=str(company_id),
            name=profile.get("name") or claims.get("company_name") or str(company_id),
            number=str(profile["id"]) if profile.get("id") is not None else None,
            country=country,
        )

    # -- preflight --------------------------------------------------------------------------------

    def preflight(self) -> list[Check]:
        """Check read-only: company, scopes, the user's invoice rights, a sales tax, a revenue account."""
        company = self._check("company", self._probe_company)
        if not company.ok:
            return [company]
        return [
            company,
            self._check("scopes", self._probe_scopes),
            self._check("create_invoices", self._probe_rights),
            self._check("sales_tax", self._probe_tax),
            self._check("revenue_account", self._probe_account),
        ]

    def _probe_company(self) -> tuple[bool, str]:
        company = self.company_info()
        return True, f"{company.name} ({company.id}) is reachable"

    def _probe_scopes(self) -> tuple[bool, str]:
        granted = set((self._claims().get("scope") or (self.tokens.scope if self.tokens else "")).split())
        missing = [s for s in REQUIRED_SCOPES if s not in granted]
        if missing:
            return False, "Consent lacks the scope(s) " + ", ".join(missing) + ": reconnect to grant them"
        return True, "Consent granted " + ", ".join(REQUIRED_SCOPES)

    def _probe_rights(self) -> tuple[bool, str]:
        # Scopes and the user's own rights must both allow a call (bexio.md §1.2): reading the modules
        # proves the rights without writing anything.
        me = self._call("GET", f"{API}/3.0/users/me")
        self._call("GET", f"{API}/2.0/kb_invoice", params={"limit": 1})
        self._call("GET", f"{API}/2.0/contact", params={"limit": 1})
        role = "an administrator" if me.get("is_superadmin") else "a user"
        return True, f"The connected bexio user ({role}) may use invoices and contacts"

    def _sales_taxes(self) -> list[ReferenceItem]:
        return [t for t in self.reference_data("tax_codes") if t.active]

    def _revenue_accounts(self) -> list[ReferenceItem]:
        return [a for a in self.reference_data("gl_accounts") if a.active]

    def _probe_tax(self) -> tuple[bool, str]:
        taxes = self._sales_taxes()
        if taxes:
            return True, f"{len(taxes)} active sales tax(es): " + ", ".join(t.code for t in taxes[:5])
        return False, "No active sales tax exists: invoice positions need one"

    def _probe_account(self) -> tuple[bool, str]:
        accounts = self._revenue_accounts()
        if accounts:
            return True, f"{len(accounts)} revenue account(s), e.g. {accounts[0].code} {accounts[0].name}"
        return False, "No active revenue account (type 1) exists: invoice positions need one"

    # -- connection test --------------------------------------------------------------------------

    def create_test_documents(self, draft: DocumentDraft | None = None) -> TestResult:
        """Create a test contact and a draft invoice on it (never issued or sent).

        bexio numbers an invoice when it is created: the test invoice takes the next number, and
        deleting it leaves a gap in the numbering (the connection page says so before the click).
        With ``draft`` (the mappings' test invoice) the positions are the ones a push would send.
        """
        name = test_label()
        user = self._user_id()
        contact = self._call(
            "POST",
            f"{API}/2.0/contact",
            json={"contact_type_id": 1, "name_1": name, "user_id": user, "owner_id": user},
        )
        result = TestResult(created=[("customer", str(contact["id"]), contact.get("nr") or name)])
        reference = f"ledgerlink-test-{name[-7:-1]}"
        try:
            if draft is not None:
                body = self._invoice_payload(
                    replace(draft, customer_id=str(contact["id"]), reference=reference, memo=name)
                )
            else:
                body = self._simplest_test_invoice(contact["id"], user, name, reference)
            invoice = self._call("POST", f"{API}/2.0/kb_invoice", json=body)
        except LedgerError:
            self.cleanup_test_documents(result)
            raise
        result.created.append(("invoice", str(invoice["id"]), invoice.get("document_nr") or name))
        return replace(result, totals=_totals(invoice))

    def _simplest_test_invoice(self, contact_id: Any, user: int, name: str, reference: str) -> dict[str, Any]:
        taxes, accounts = self._sales_taxes(), self._revenue_accounts()
        if not taxes or not accounts:
            raise Rejected(
                "bexio has no active sales tax or revenue account for a test position", provider=self.provider
            )
        return {
            "title": name,
            "contact_id": contact_id,
            "user_id": user,
            "api_reference": reference,
            "mwst_type": 0,
            "mwst_is_net": True,
            "positions": [
                {
                    "type": "KbPositionCustom",
                    "amount": "1",
                    "unit_price": "0",
                    "tax_id": int(taxes[0].id),
                    "account_id": int(accounts[0].id),
                    "text": name,
                }
            ],
        }

    def _delete_test_document(self, kind: str, external_id: str, label: str | None) -> str | None:
        path = "kb_invoice" if kind == "invoice" else "contact"
        self._call("DELETE", f"{API}/2.0/{path}/{external_id}")
        return None

    def _manual_cleanup_step(self, kind: str, external_id: str, label: str | None, error: LedgerError) -> str:
        where = "Sales → Invoices" if kind == "invoice" else "Contacts"
        return f"Delete {kind} {label!r} in bexio → {where} (bexio refused: {error.provider_text or error})."

    # -- reference data and customers -------------------------------------------------------------

    def reference_data(self, kind: str) -> list[ReferenceItem]:
        """Return articles, active sales taxes, revenue accounts, currencies, banks, payment types or languages.

        ``all_accounts`` and ``all_taxes`` list every account and tax, inactive ones included.
        """
        if kind not in _REFERENCE:
            raise NotSupported(f"bexio has no {kind!r} reference data", provider=self.provider)
        params = {"types": "sales_tax", "scope": "active"} if kind == "tax_codes" else None
        items = [self._reference_item(kind, row) for row in self._list(_REFERENCE[kind], params)]
        if kind == "gl_accounts":
            # Positions need an earning account (account_type 1, bexio.md §3.3).
            items = [i for i in items if i.details.get("account_type") == 1]
        return items

    @staticmethod
    def _reference_item(kind: str, row: Mapping[str, Any]) -> ReferenceItem:
        code = row.get("code") or row.get("account_no") or row.get("intern_code") or row.get("name") or row["id"]
        name = row.get("display_name") or row.get("intern_name") or row.get("name") or str(code)
        details = {
            k: row[k]
            for k in ("value", "account_type", "round_factor", "currency_id", "sale_price", "type", "iso_639_1")
            if k in row
        }
        return ReferenceItem(
            kind=kind,
            id=str(row["id"]),
            code=str(code),
            name=str(name),
            active=bool(row.get("is_active", True)),
            details=details,
        )

    def find_customers(self, query: CustomerQuery) -> list[LedgerCustomer]:
        """Look contacts up by id, number (nr), e-mail or name; bexio contacts carry no VAT field.

        A name is looked up as :func:`clean_name` gives it, the form contacts are created under.
        """
        if query.by == "id":
            return [self._customer(self._call("GET", f"{API}/2.0/contact/{int(query.value)}"))]
        if query.by not in _CUSTOMER_FIELDS:
            raise NotSupported(f"bexio contacts cannot be looked up by {query.by!r}", provider=self.provider)
        value = clean_name(query.value) if query.by == "name" else query.value.strip()
        found = self._search("2.0/contact", [{"field": _CUSTOMER_FIELDS[query.by], "value": value, "criteria": "="}])
        return [self._customer(row) for row in found]

    @staticmethod
    def _customer(row: Mapping[str, Any]) -> LedgerCustomer:
        name = (
            " ".join(part for part in (row.get("name_2"), row.get("name_1")) if part)
            if row.get("contact_type_id") == 2
            else (row.get("name_1") or "")
        )
        return LedgerCustomer(
            id=str(row["id"]),
            name=name.strip(),
            code=row.get("nr"),
            email=(row.get("mail") or "").strip() or None,
        )

    def create_customer(self, draft: CustomerDraft) -> LedgerCustomer:
        """Create a contact (company or person) whose ``nr`` carries our reference (:func:`customer_code`,
        bexio.md §3.1)."""
        user = self._user_id()
        body: dict[str, Any] = {
            "contact_type_id": 2 if draft.is_person else 1,
            "nr": customer_code(draft.reference),
            "name_1": clean_name(draft.name),
            "user_id": user,
            "owner_id": user,
        }
        body.update({k: v for k, v in _contact_fields(draft, _CONTACT_UPDATES).items() if v})
        return self._customer(self._call("POST", f"{API}/2.0/contact", json=body))

    def find_customer_by_reference(self, draft: CustomerDraft) -> LedgerCustomer | None:
        """Return the contact whose ``nr`` is the draft's :func:`customer_code` (indexed search,
        bexio.md §2.4), or None."""
        found = self.find_customers(CustomerQuery("code", customer_code(draft.reference)))
        return found[0] if found else None

    def update_customer(self, external_id: str, draft: CustomerDraft, fields: Collection[str]) -> None:
        """Edit the contact with the changed fields: ``POST /2.0/contact/{id}`` (bexio.md §2.1, edits are POSTs).

        bexio contacts keep no VAT or company number, and their country is a bexio id: those
        fields are left out.
        """
        body = _contact_fields(draft, {f: _CONTACT_UPDATES[f] for f in fields if f in _CONTACT_UPDATES})
        if body:
            self._call("POST", f"{API}/2.0/contact/{int(external_id)}", json=body)

    def iter_customers(self, page_size: int | None = None) -> Iterator[LedgerCustomer]:
        """Yield every contact by ``limit`` / ``offset`` pages until a short page (bexio.md §2.3).

        Deleted contacts are not listed (bexio deletes softly and hides them): a linked contact
        that disappears reads as deleted.
        """
        size = min(page_size or self.spec.page_size, 2000)
        offset = 0
        while True:
            page = (
                self._call("GET", f"{API}/2.0/contact", params={"limit": size, "offset": offset, "order_by": "id"})
                or []
            )
            yield from (self._customer(row) for row in page)
            if len(page) < size:
                return
            offset += size

    def find_by_reference(self, kind: str, reference: str) -> PushResult | None:
        """Return the invoice whose ``api_reference`` is our reference (indexed search, bexio.md §3.2).

        :raise NotSupported: for credit notes (none in bexio, bexio.md §3.6) and payments, which carry no
            free reference in bexio (bexio.md §3.5): use :meth:`find_payment`, which matches by date and amount.
        """
        if kind == "payment":
            raise NotSupported(
                "bexio payments carry no reference of ours: look them up with find_payment (date and amount)",
                provider=self.provider,
            )
        if kind != "invoice":
            raise NotSupported(f"bexio has no {kind!r} documents to look up", provider=self.provider)
        found = self._search("2.0/kb_invoice", [{"field": "api_reference", "value": reference, "criteria": "="}])
        if not found:
            return None
        return PushResult(str(found[0]["id"]), found[0].get("document_nr"), created=False, totals=_totals(found[0]))

    def find_by_references(self, kind: str, references: Sequence[str]) -> dict[str, PushResult]:
        """Return the invoices with these ``api_reference`` values: one ``in`` search per page of them (bexio.md §2.4).

        Each page's joined references stay within the 255 characters bexio allows for a search
        value; of several invoices with one reference, the oldest (lowest id) is returned, as
        :meth:`find_by_reference` does.
        """
        if kind != "invoice":
            return super().find_by_references(kind, references)
        wanted = set(references)
        found: dict[str, PushResult] = {}
        for chunk in _chunks(list(dict.fromkeys(references)), SEARCH_VALUE_MAX):
            rows = self._call(
                "POST",
                f"{API}/2.0/kb_invoice/search",
                params={"order_by": "id", "limit": SEARCH_LIMIT, "offset": 0},
                json=[{"field": "api_reference", "value": chunk, "criteria": "in"}],
            )
            for row in sorted(rows or [], key=lambda r: int(r["id"])):
                reference = row.get("api_reference")
                if reference in wanted and reference not in found:
                    found[reference] = PushResult(str(row["id"]), row.get("document_nr"), False, totals=_totals(row))
        return found

    def push_credit_note(self, draft: DocumentDraft) -> PushResult:
        """Refuse: bexio has no public credit-note API (bexio.md §3.6).

        :raise NotSupported: always, with the manual step in bexio's own screens.
        """
        invoice = f" (bexio invoice id {draft.corrects_id})" if draft.corrects_id else ""
        raise NotSupported(
            f"bexio has no API for credit notes: create credit note {draft.number} by hand in bexio → "
            f"Sales → Invoices: open the invoice it corrects{invoice} and create a credit note "
            "(Gutschrift) from it, or cancel the invoice there",
            provider=self.provider,
        )

    def attach_pdf(self, external_id: str, *, filename: str, content: bytes) -> str | None:
        """Refuse: bexio renders each invoice's PDF itself from the invoice (``GET …/{id}/pdf``, bexio.md §3.4).

        Its documented API offers no way to put a file on a ``kb_invoice``: the invoice routes
        (issue, send, pdf, payments, positions…) have no attachment resource, and no other route
        links a file to an invoice. The SaaS's PDF therefore stays with the SaaS; bexio's own PDF
        (and its network link) is what the customer receives.

        :raise NotSupported: always.
        """
        raise NotSupported(
            "bexio renders its own invoice PDF and has no API to attach a file to an invoice",
            provider=self.provider,
        )

    # -- invoices ---------------------------------------------------------------------------------

    def push_invoice(self, draft: DocumentDraft, *, looked_up: bool = False) -> PushResult:
        """Create a draft invoice with ``api_reference`` = our reference (custom positions, bexio.md §3.2).

        Unless ``looked_up``, an invoice with that reference already there is returned instead.

        Lines carry the mapped sales tax id and revenue account id; net prices, tax added.
        ``is_valid_to`` is the draft's due date: bexio's documentation gives no rule for an
        invoice without one and no payment term to derive it from, so it is always sent (bexio.md §3.2).

        :raise Rejected: when the draft has no due date (before creating anything), naming the fix.
        """
        existing = None if looked_up else self.find_by_reference("invoice", draft.reference)
        if existing is not None:
            return existing
        if draft.due_date is None:
            raise Rejected(
                f"Invoice {draft.number} has no due date and bexio needs one (is_valid_to): "
                "set Due days on the mappings page of this connection, or send the invoice with a due_date",
                provider=self.provider,
            )
        created = self._call("POST", f"{API}/2.0/kb_invoice", json=self._invoice_payload(draft))
        if created.get("kb_item_status_id") == DRAFT:
            self._drafts[str(created["id"])] = created
        return PushResult(str(created["id"]), created.get("document_nr"), totals=_totals(created))

    def _invoice_payload(self, draft: DocumentDraft) -> dict[str, Any]:
        """Return the kb_invoice body of a draft: custom positions with the mapped tax and account ids."""
        positions = []
        for line in draft.lines:
            position: dict[str, Any] = {
                "type": "KbPositionCustom",
                "amount": str(line.quantity),
                "unit_price": str(line.unit_price),
                "text": line.description,
            }
            if line.tax_code:
                position["tax_id"] = int(line.tax_code)
            if line.gl_account:
                position["account_id"] = int(line.gl_account)
            positions.append(position)
        body: dict[str, Any] = {
            "title": draft.memo or draft.number,
            "contact_id": int(draft.customer_id),
            "user_id": self._user_id(),
            "api_reference": draft.reference,
            "mwst_type": 0,
            "mwst_is_net": True,
            # In the SaaS's currency: bexio otherwise books the company's own (and rounds CHF to 0.05).
            "currency_id": self._currency_id(draft.currency),
            "is_valid_from": draft.issue_date.isoformat(),
            "positions": positions,
        }
        if draft.due_date is not None:
            body["is_valid_to"] = draft.due_date.isoformat()
        if draft.payment_condition:
            body["payment_type_id"] = int(draft.payment_condition)
        return body

    def finalize_invoice(
        self, external_id: str, *, send: bool, email: str | None = None, message: str | None = None
    ) -> str | None:
        """Issue the invoice (draft → open) and, when ``send``, have bexio e-mail it (bexio.md §3.4).

        The recipient is ``email``, else the contact's e-mail. The message must hold bexio's
        ``[Network Link]`` placeholder (bexio puts the invoice link there); without ``message``
        a short default with it is sent. Each step is skipped when bexio shows it done: an
        invoice past draft (``kb_item_status_id`` ≠ 7) is issued, and one with a
        ``network_link`` has been sent by e-mail, so a retry never issues or sends twice.

        :return: the invoice's ``document_nr``.
        :raise Rejected: when ``message`` lacks ``[Network Link]`` (before any call), or when the
            invoice is cancelled.
        :raise NotSent: when the issued invoice could not be e-mailed: no recipient e-mail (the
            fix names the contact), or bexio refused the send (its own text, e.g. a trial
            company sending to another address). The invoice keeps its number.
        """
        if send and message is not None and NETWORK_LINK not in message:
            raise Rejected(
                f"The e-mail message for bexio must contain the placeholder {NETWORK_LINK} "
                "(bexio replaces it with the invoice link): add [Network Link] to the message",
                provider=self.provider,
            )
        url = f"{API}/2.0/kb_invoice/{int(external_id)}"
        # An invoice this adapter created is a draft bexio has not sent: its creation answered
        # what is needed. Any other (or this one again) is read first.
        invoice = self._drafts.pop(str(int(external_id)), None) or self._call("GET", url)
        number = invoice.get("document_nr")
        status = invoice.get("kb_item_status_id")
        if status == CANCELLED:
            raise Rejected(
                f"bexio invoice {number or external_id} is cancelled: it cannot be issued or sent",
                provider=self.provider,
            )
        if status == DRAFT:
            self._call("POST", f"{url}/issue")
        if not send or invoice.get("network_link"):
            return number
        try:
            recipient = (email or "").strip() or self._contact_email(invoice.get("contact_id"), number or external_id)
            self._call(
                "POST",
                f"{url}/send",
                json={
                    "recipient_email": recipient,
                    "subject": f"Invoice {number}" if number else "Invoice",
                    "message": message if message is not None else default_message(number),
                    "mark_as_open": True,
                },
            )
        except Rejected as exc:
            raise NotSent(
                str(exc.args[0])
                if exc.args and not exc.provider_text
                else f"bexio issued invoice {number} but did not e-mail it; fix the cause, then choose Send again",
                provider=self.provider,
                provider_code=exc.provider_code,
                provider_text=exc.provider_text,
                number=number,
            ) from None
        return number

    def _contact_email(self, contact_id: Any, invoice_label: str) -> str:
        """Return the invoice contact's e-mail (``mail``, else ``mail_second``).

        :raise Rejected: when the contact has none, naming the contact to fix.
        """
        contact = self._call("GET", f"{API}/2.0/contact/{int(contact_id)}") if contact_id else {}
        for key in ("mail", "mail_second"):
            address = (contact.get(key) or "").strip()
            if address:
                return address
        who = self._customer(contact) if contact else None
        label = " ".join(filter(None, ["contact", who.code, repr(who.name)])) if who else "the invoice's contact"
        raise Rejected(
            f"Cannot e-mail bexio invoice {invoice_label}: {label} has no e-mail address. Add one to the "
            "contact in bexio → Contacts, or give a recipient e-mail in the connection's sending settings",
            provider=self.provider,
        )

    # -- payments ---------------------------------------------------------------------------------

    def payment_status(self, external_id: str) -> PaymentStatus:
        """Return the invoice's remaining amount; status 9 is paid, 16 partly paid (bexio.md §3.4)."""
        return self._payment_status(self._call("GET", f"{API}/2.0/kb_invoice/{int(external_id)}"))

    @staticmethod
    def _payment_status(invoice: Mapping[str, Any]) -> PaymentStatus:
        total = Decimal(str(invoice.get("total") or 0))
        remaining = Decimal(str(invoice.get("total_remaining_payments") or 0))
        status = invoice.get("kb_item_status_id")
        state = _STATUS.get(status, str(status)) if isinstance(status, int) else str(status)
        return PaymentStatus(str(invoice["id"]), status == PAID, remaining, total, state)

    def payment_statuses(self, external_ids: Sequence[str]) -> dict[str, PaymentStatus]:
        """Return the status of many invoices with one ``id in (…)`` search per chunk (bexio.md §2.4).

        Chunks keep the joined ids within the 255 characters bexio allows for a search value.
        Invoices bexio no longer has are left out.
        """
        ids = list(dict.fromkeys(str(int(i)) for i in external_ids))
        found: dict[str, PaymentStatus] = {}
        for chunk in _chunks(ids, SEARCH_VALUE_MAX):
            rows = self._call(
                "POST",
                f"{API}/2.0/kb_invoice/search",
                params={"limit": len(chunk), "offset": 0},
                json=[{"field": "id", "value": chunk, "criteria": "in"}],
            )
            for row in rows or []:
                status = self._payment_status(row)
                found[status.external_id] = status
        return found

    def push_payment(self, draft: PaymentDraft) -> PushResult:
        """Book a payment on the invoice: ``POST /2.0/kb_invoice/{id}/payment`` (bexio.md §3.5).

        Sends ``date``, ``value`` and, when the connection names one, ``bank_account_id``. bexio
        keeps no reference of ours on a payment: after an unknown outcome, look it up with
        :meth:`find_payment` before pushing again. The result's id is bexio's payment id.

        :raise Rejected: for an amount that is not positive (before calling bexio); bexio refuses
            payments on drafts and cancelled invoices.
        """
        if draft.amount <= 0:
            raise Rejected(
                f"Payment {draft.reference}: bexio only takes positive payment amounts (got {draft.amount})",
                provider=self.provider,
            )
        body: dict[str, Any] = {"date": draft.paid_on.isoformat(), "value": _money(draft.amount)}
        if draft.bank_account:
            body["bank_account_id"] = int(draft.bank_account)
        created = self._call("POST", f"{API}/2.0/kb_invoice/{int(draft.invoice_id)}/payment", json=body)
        return PushResult(str(created["id"]))

    def find_payment(self, draft: PaymentDraft, *, exclude: Collection[str] = ()) -> PushResult | None:
        """Return the invoice's payment with the draft's date and amount, or None.

        bexio payments carry no free reference (bexio.md §3.5), so the rule is: among the payments of
        ``draft.invoice_id`` that do not come from a credit voucher, the first (lowest id) with
        the same ``date`` and the same ``value`` to the cent, skipping ids in ``exclude`` (the
        payments already recorded for other local payments of that invoice, so two equal
        instalments on one day are told apart).
        """
        wanted = draft.amount.quantize(CENT)
        payments = self._list(f"2.0/kb_invoice/{int(draft.invoice_id)}/payment")
        for row in sorted(payments, key=lambda r: int(r["id"])):
            if row.get("kb_credit_voucher_id") or str(row["id"]) in exclude:
                continue
            if str(row.get("date") or "")[:10] != draft.paid_on.isoformat():
                continue
            if Decimal(str(row.get("value") or 0)).quantize(CENT) == wanted:
                return PushResult(str(row["id"]), created=False)
        return None

    # -- reconciliation ---------------------------------------------------------------------------

    def iter_documents(self, kind: str, date_from: date, date_to: date) -> Iterator[LedgerDocument]:
        """Yield the invoices dated (``is_valid_from``) within the range, every status, by id.

        One invoice search per ``limit``/``offset`` page until a short page (bexio.md §2.3, §2.4); the
        reference is the ``api_reference`` (None for invoices made in bexio), the open amount
        ``total_remaining_payments``.

        :raise NotSupported: for credit notes, which bexio's API does not have (bexio.md §3.6).
        """
        if kind != "invoice":
            raise NotSupported(
                f"bexio cannot list {kind}s: it has no credit-note API (credit notes are kept in bexio only)",
                provider=self.provider,
            )
        size = self.spec.page_size
        criteria = [
            {"field": "is_valid_from", "value": date_from.isoformat(), "criteria": ">="},
            {"field": "is_valid_from", "value": date_to.isoformat(), "criteria": "<="},
        ]
        currencies: dict[int, str] | None = None
        offset = 0
        while True:
            page = (
                self._call(
                    "POST",
                    f"{API}/2.0/kb_invoice/search",
                    params={"order_by": "id", "limit": size, "offset": offset},
                    json=criteria,
                )
                or []
            )
            if page and currencies is None:
                currencies = {int(c["id"]): c["name"] for c in self._list("3.0/currencies")}
            for row in page:
                yield self._document(row, currencies or {})
            if len(page) < size:
                return
            offset += size

    @staticmethod
    def _document(row: Mapping[str, Any], currencies: Mapping[int, str]) -> LedgerDocument:
        currency_id = row.get("currency_id")
        return LedgerDocument(
            external_id=str(row["id"]),
            reference=row.get("api_reference") or None,
            number=row.get("document_nr"),
            issue_date=date.fromisoformat(str(row["is_valid_from"])[:10]),
            total=Decimal(str(row.get("total") or 0)),
            currency=currencies.get(currency_id, str(currency_id)) if currency_id is not None else "",
            amount_open=Decimal(str(row.get("total_remaining_payments") or 0)),
            customer_id=str(row["contact_id"]) if row.get("contact_id") is not None else None,
        )


#: CustomerDraft field → contact fields an update sets (bexio.md §3.1: street_name is written, address is read-only).
_CONTACT_UPDATES = {
    "name": ("name_1",),
    "email": ("mail",),
    "address_lines": ("street_name",),
    "postcode": ("postcode",),
    "city": ("city",),
}


def _contact_fields(draft: CustomerDraft, wanted: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """Return the contact fields of ``wanted`` draft fields; an emptied one is sent as an empty string."""
    values = {
        "name_1": clean_name(draft.name),
        "mail": draft.email or "",
        "street_name": draft.address_lines[0] if draft.address_lines else "",
        "postcode": draft.postcode or "",
        "city": draft.city or "",
    }
    body = {field: values[field] for fields in wanted.values() for field in fields}
    if "name_1" in body and not body["name_1"]:
        body.pop("name_1")  # required: never blanked
    return body


def default_message(number: str | None) -> str:
    """Return the e-mail text sent with an invoice when none is configured (holds [Network Link])."""
    invoice = f"invoice {number}" if number else "your invoice"
    return f"Hello,\n\nplease find {invoice} here: {NETWORK_LINK}\n\nKind regards"


def _totals(invoice: Mapping[str, Any]) -> Totals | None:
    """Return an invoice's totals as bexio answers them: total_net, total_taxes (4 decimals) and the
    total rounded to the currency's factor (bexio.md §3.2)."""
    if invoice.get("total") in (None, ""):
        return None
    return Totals(
        Decimal(str(invoice.get("total_net") or 0)),
        Decimal(str(invoice.get("total_taxes") or 0)),
        Decimal(str(invoice["total"])),
    )


def _money(amount: Decimal) -> str:
    """Return an amount as bexio's decimal string, unrounded and without exponent ("100.00")."""
    return format(amount, "f")


def _chunks(ids: Sequence[str], max_chars: int) -> Iterator[list[str]]:
    """Split ids into lists whose comma-joined form stays within ``max_chars``."""
    chunk: list[str] = []
    used = 0
    for external_id in ids:
        extra = len(external_id) + (1 if chunk else 0)
        if chunk and used + extra > max_chars:
            yield chunk
            chunk, used, extra = [], 0, len(external_id)
        chunk.append(external_id)
        used += extra
    if chunk:
        yield chunk
