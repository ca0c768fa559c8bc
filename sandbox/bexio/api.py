"""api.bexio.com: the REST API 2.0/3.0 routes the adapter uses, mounted at ``/bexio/api``.

Every request passes one gate (``before_request``): Content-Length (411), bearer token (401),
the per-minute quota (429), injected faults, and Accept (415). Every response gets the
gateway's headers (bexio.md §2.2, §5). Errors are ``{"error_code", "message"}`` (§4).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, g, jsonify, request

from . import search
from .store import ApiError, Company, invalid, not_found

if TYPE_CHECKING:
    from ..core.faults import Fault
    from . import BexioEmulator

#: Per-minute limits per route group, as the recorded ``ratelimit-limit`` headers show (bexio.md §5):
#: searches and PDFs 250, articles 400, everything else 1000.
LIMITS = {"default": 1000, "search": 250, "pdf": 250, "article": 400}
WINDOW = 60

#: Gateway headers on every api.bexio.com response (recorded in codebar-ag/laravel-bexio's fixtures).
STATIC_HEADERS = {
    "Cache-Control": "no-store",
    "pragma": "no-cache",
    "vary": "Origin",
    "access-control-allow-origin": "https://office.bexio.com",
}

CONTACT_SEARCH = (
    "id",
    "name_1",
    "name_2",
    "nr",
    "address",
    "mail",
    "mail_second",
    "postcode",
    "city",
    "country_id",
    "contact_group_ids",
    "contact_type_id",
    "updated_at",
    "user_id",
    "phone_fixed",
    "phone_mobile",
    "fax",
)
INVOICE_SEARCH = (
    "id",
    "kb_item_status_id",
    "document_nr",
    "title",
    "api_reference",
    "contact_id",
    "contact_sub_id",
    "user_id",
    "currency_id",
    "total_gross",
    "total_net",
    "total",
    "is_valid_from",
    "is_valid_to",
    "updated_at",
)
ACCOUNT_SEARCH = ("account_no", "fibu_account_group_id", "name", "account_type")
ARTICLE_SEARCH = ("id", "intern_name", "intern_code", "article_type_id", "contact_id", "updated_at")

CONTACT_ORDER = ("id", "nr", "name_1", "updated_at")
INVOICE_ORDER = ("id", "total", "total_net", "total_gross", "updated_at")
ARTICLE_ORDER = ("id", "intern_name", "intern_code")
ACCOUNT_ORDER = ("id", "account_no", "name")

SUCCESS = {"success": True}


def error_response(status: int, message: str, errors: list[str] | None = None) -> Response:
    """Return bexio's JSON error body with ``status``."""
    resp = jsonify(ApiError(status, message, errors).body())
    resp.status_code = status
    return resp


def limit_group(path: str) -> str:
    """Return the quota group of an API path (bexio.md §5: limits differ per route)."""
    # Account and country searches answer with the general limit (recorded: search-countries 1000).
    if path.endswith("/search") and "/2.0/accounts/" not in path and "/2.0/country/" not in path:
        return "search"
    if path.endswith("/pdf"):
        return "pdf"
    if "/2.0/article" in path:
        return "article"
    return "default"


def paging(default_limit: int = 500) -> tuple[int, int]:
    """Read ``limit`` (max 2000) and ``offset`` (bexio.md §2.3).

    :raise ApiError: 400 when they are not in range.
    """
    try:
        limit = int(request.args.get("limit", default_limit))
        offset = int(request.args.get("offset", 0))
    except ValueError as exc:
        raise ApiError(400, "Parameters are invalid") from exc
    if not 0 <= limit <= 2000 or offset < 0:
        raise ApiError(400, "Parameters are invalid")
    return limit, offset


def ordered(records: list[dict], allowed: tuple[str, ...], key_of=None) -> list[dict]:
    """Sort by ``order_by`` (``field[_asc|_desc]``, comma-combinable, bexio.md §2.3).

    :raise ApiError: 400 for an unknown field.
    """
    spec = request.args.get("order_by")
    if not spec:
        return records
    keys = []
    for part in spec.split(","):
        part = part.strip()
        desc = part.endswith("_desc")
        name = part.removesuffix("_desc").removesuffix("_asc")
        if name not in allowed:
            raise ApiError(400, "Parameters are invalid")
        keys.append((name, desc))
    for name, desc in reversed(keys):
        records = sorted(
            records,
            key=lambda r, n=name: (r.get(n) is None, key_of(r, n) if key_of else r.get(n) or 0),
            reverse=desc,
        )
    return records


def create_blueprint(emu: BexioEmulator) -> Blueprint:
    """Build the api.bexio.com blueprint bound to ``emu``."""
    bp = Blueprint("bexio_api", __name__, url_prefix="/bexio/api")
    ctx = emu.ctx

    # -- the gate ---------------------------------------------------------------------------
    def render_error(fault: Fault) -> Response:
        messages = {
            500: "An unexpected error occurred",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }
        return error_response(fault.status, messages.get(fault.status, "Service Unavailable"))

    def render_rate_limited(_fault: Fault | None = None) -> Response:
        # [U] body text (bexio.md §5); headers come from after_request with remaining 0.
        g.bexio_limited = True
        return error_response(429, "Too many requests")

    @bp.before_request
    def gate():
        g.bexio_company_id = None
        if (
            request.method in ("POST", "PUT", "PATCH")
            and request.headers.get("Content-Length") is None
            and "chunked" not in request.headers.get("Transfer-Encoding", "").lower()
        ):
            # Content-Length is mandatory on writes (bexio.md §2.2, LEGACY).
            return error_response(411, "Length Required")
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with emu.lock:
            grant = emu.grant_for(token) if token else None
        if grant is None:
            return error_response(401, "Invalid access token")
        g.bexio_grant = grant
        g.bexio_company_id = grant.company_id
        group = limit_group(request.path)
        now = ctx.clock.time()
        state = ctx.windows.hit(
            ("bexio", grant.company_id, group), window=WINDOW, limit=ctx.scaled(LIMITS[group]), now=now
        )
        g.bexio_quota = state
        if not state.allowed and ctx.quotas_enabled:
            return render_rate_limited()
        injected = emu.inject_before(grant.company_id, render_error, render_rate_limited)
        if injected is not None:
            return injected
        accept = request.headers.get("Accept", "")
        if not accept or not any(t in accept for t in ("application/json", "*/*", "application/*")):
            # Accept: application/json is required on every endpoint (bexio.md §2.2); status table: 415.
            return error_response(415, "Could not process data: Accept must be application/json")
        return None

    @bp.after_request
    def decorate(resp: Response) -> Response:
        state = g.get("bexio_quota")
        if state is not None:
            remaining = 0 if g.get("bexio_limited") else state.remaining
            reset = max(1, math.ceil(state.reset_at - ctx.clock.time()))
            resp.headers["x-ratelimit-remaining-minute"] = str(remaining)
            resp.headers["ratelimit-limit"] = str(state.limit)
            resp.headers["ratelimit-remaining"] = str(remaining)
            resp.headers["ratelimit-reset"] = str(reset)
            resp.headers["x-ratelimit-limit-minute"] = str(state.limit)
        resp.headers.update(STATIC_HEADERS)
        if g.get("bexio_etag") and resp.status_code in (200, 201):
            resp.headers["etag"] = hashlib.md5(resp.get_data(), usedforsecurity=False).hexdigest()
        if request.method != "GET" and 200 <= resp.status_code < 300:
            resp = emu.inject_after_commit(g.get("bexio_company_id"), resp)
        return resp

    @bp.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.errors)

    @bp.errorhandler(Exception)
    def unexpected(exc: Exception):
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return error_response(exc.code or 500, exc.name)
        import logging

        logging.getLogger(__name__).exception("bexio emulator error")
        return error_response(500, "An unexpected error occurred")

    # -- helpers ----------------------------------------------------------------------------
    def need(module: str, write: bool = False) -> Company:
        """Check the token's scope and the user's rights for ``module``; return the company.

        :raise ApiError: 403 when either is missing (two-level authorization, bexio.md §1.2).
        """
        grant = g.bexio_grant
        scopes = grant.scopes
        if module == "accounting":
            ok = "accounting" in scopes
        elif module == "general":
            ok = True
        else:
            ok = f"{module}_edit" in scopes or (not write and f"{module}_show" in scopes)
        company = emu.companies_by_id[grant.company_id]
        if not ok or module in company.denied.get(grant.company_user_id, ()):
            raise ApiError(403, "Forbidden")
        return company

    def body_object() -> dict:
        """Parse the JSON object body.

        :raise ApiError: 400 when it is not JSON or not an object.
        """
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "Parameters are invalid") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Parameters are invalid")
        return body

    def body_conditions(fields: tuple[str, ...]) -> list[search.Condition]:
        raw = request.get_data(cache=True)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            raise ApiError(400, "Parameters are invalid") from exc
        try:
            return search.parse(body, fields)
        except search.SearchError as exc:
            raise invalid(str(exc)) from exc

    def single(obj: dict, status: int = 200) -> Response:
        g.bexio_etag = True
        resp = jsonify(obj)
        resp.status_code = status
        return resp

    def listing(items: list, *, total_headers: int | None = None) -> Response:
        limit, offset = paging(total_headers or 500)
        page = items[offset : offset + limit]
        resp = jsonify(page)
        if total_headers is not None:
            # Only some 3.0 endpoints send the count headers (bexio.md §2.3).
            resp.headers["x-total-count"] = str(len(items))
            resp.headers["x-limit"] = str(limit)
            resp.headers["x-offset"] = str(offset)
        return resp

    def no_body_action() -> None:
        """Refuse a body (even ``{}``) on body-less action POSTs (415, bexio.md §2.2, ELX 0.6.3)."""
        if request.get_data(cache=True).strip():
            raise ApiError(415, "Could not process data")

    # -- users --------------------------------------------------------------------------------
    @bp.get("/3.0/users/me")
    def show_me():
        company = need("general")
        with emu.lock:
            return single(company.user_json(g.bexio_grant.company_user_id))

    @bp.get("/3.0/users")
    def list_users():
        company = need("general")
        with emu.lock:
            users = [company.user_json(uid) for uid in sorted(company.users)]
        return listing(users, total_headers=500)

    @bp.get("/3.0/users/<int:user_id>")
    def show_user(user_id: int):
        company = need("general")
        if user_id not in company.users:
            raise not_found("User")
        return single(company.user_json(user_id))

    # -- contacts -------------------------------------------------------------------------
    @bp.get("/2.0/contact")
    def list_contacts():
        company = need("contact")
        with emu.lock:
            items = [company.contact_json(c, with_image=False) for c in company.contacts.values() if not c["deleted"]]
        return listing(ordered(items, CONTACT_ORDER))

    @bp.post("/2.0/contact")
    def create_contact():
        company = need("contact", write=True)
        body = body_object()
        with emu.lock:
            return single(company.contact_json(company.create_contact(body), with_image=True), 201)

    @bp.post("/2.0/contact/_bulk_create")
    def bulk_create_contacts():
        company = need("contact", write=True)
        raw = request.get_data(cache=True)
        try:
            items = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "Parameters are invalid") from exc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ApiError(400, "Parameters are invalid")
        with emu.lock:
            errors: list[str] = []
            for index, item in enumerate(items):
                probe: list[str] = []
                company._contact_values(item, probe, None)
                errors += [f"[{index}] {e}" for e in probe]
            if errors:
                raise invalid(*errors)
            created = [company.contact_json(company.create_contact(i), with_image=False) for i in items]
        resp = jsonify(created)
        resp.status_code = 201
        return resp

    @bp.get("/2.0/contact/<int:contact_id>")
    def show_contact(contact_id: int):
        company = need("contact")
        with emu.lock:
            return single(company.contact_json(company.contact(contact_id), with_image=True))

    @bp.post("/2.0/contact/<int:contact_id>")
    def edit_contact(contact_id: int):
        company = need("contact", write=True)
        body = body_object()
        with emu.lock:
            return single(company.contact_json(company.edit_contact(contact_id, body), with_image=True))

    @bp.delete("/2.0/contact/<int:contact_id>")
    def delete_contact(contact_id: int):
        company = need("contact", write=True)
        with emu.lock:
            contact = company.contact(contact_id)
            # Deleting only marks the contact; PATCH …/restore brings it back (bexio.md §3.1).
            contact["deleted"] = True
            contact["updated_at"] = company.stamp()
        return jsonify(SUCCESS)

    @bp.patch("/2.0/contact/<int:contact_id>/restore")
    def restore_contact(contact_id: int):
        company = need("contact", write=True)
        with emu.lock:
            contact = company.contact(contact_id, include_deleted=True)
            contact["deleted"] = False
            contact["updated_at"] = company.stamp()
        return jsonify(SUCCESS)

    @bp.post("/2.0/contact/search")
    def search_contacts():
        company = need("contact")
        conditions = body_conditions(CONTACT_SEARCH)
        test = search.matcher(conditions)
        with emu.lock:
            items = [
                company.contact_json(c, with_image=False)
                for c in company.contacts.values()
                if not c["deleted"] and test(c)
            ]
        return listing(ordered(items, CONTACT_ORDER))

    # -- invoices ---------------------------------------------------------------------------
    def invoice_key(record: dict, name: str) -> Any:
        value = record.get(name)
        if name in ("total", "total_net", "total_gross"):
            from decimal import Decimal

            return Decimal(value)
        return value

    @bp.get("/2.0/kb_invoice")
    def list_invoices():
        company = need("kb_invoice")
        limit, offset = paging()
        with emu.lock:
            invoices = list(company.invoices.values())
            if request.args.get("order_by"):
                items = [company.invoice_json(i, positions=False) for i in invoices]
                items = ordered(items, INVOICE_ORDER, invoice_key)[offset : offset + limit]
            else:
                items = [company.invoice_json(i, positions=False) for i in invoices[offset : offset + limit]]
        return jsonify(items)

    @bp.post("/2.0/kb_invoice")
    def create_invoice():
        company = need("kb_invoice", write=True)
        body = body_object()
        with emu.lock:
            invoice = company.create_invoice(body)
            return single(company.invoice_json(invoice, echo=True), 201)

    @bp.post("/2.0/kb_invoice/search")
    def search_invoices():
        company = need("kb_invoice")
        conditions = body_conditions(INVOICE_SEARCH)
        limit, offset = paging()
        with emu.lock:
            candidates = company.invoices.values()
            # The idempotency lookup by api_reference (bexio.md §7.13) uses the index instead of a scan.
            for cond in conditions:
                if cond.field == "api_reference" and cond.op == "=":
                    ids = company.by_api_reference.get(cond.value, set())
                    candidates = [company.invoices[i] for i in sorted(ids) if i in company.invoices]
                    break
            test = search.matcher(conditions)
            found = [i for i in candidates if test(company.invoice_search_record(i))]
            items = [company.invoice_json(i, positions=False) for i in found]
        items = ordered(items, INVOICE_ORDER, invoice_key)
        return jsonify(items[offset : offset + limit])

    @bp.get("/2.0/kb_invoice/<int:invoice_id>")
    def show_invoice(invoice_id: int):
        company = need("kb_invoice")
        with emu.lock:
            return single(company.invoice_json(company.invoice(invoice_id)))

    @bp.post("/2.0/kb_invoice/<int:invoice_id>")
    def edit_invoice(invoice_id: int):
        company = need("kb_invoice", write=True)
        body = body_object()
        with emu.lock:
            invoice = company.edit_invoice(invoice_id, body)
            out = company.invoice_json(invoice)
            # The recorded edit response echoes the headline totals unnormalised (bexio.md §3.2).
            echo = company.invoice_json(invoice, echo=True)
            for key in ("total_gross", "total_net", "total"):
                out[key] = echo[key]
            return single(out)

    @bp.route("/2.0/kb_invoice/<int:invoice_id>", methods=["PUT"])
    def put_invoice(invoice_id: int):
        need("kb_invoice", write=True)
        # PUT is not a route; bexio answers an uninformative 422 (bexio.md §2.1, PP #19).
        raise ApiError(422, "The form could not be saved due to the following errors:.", [])

    @bp.delete("/2.0/kb_invoice/<int:invoice_id>")
    def delete_invoice(invoice_id: int):
        company = need("kb_invoice", write=True)
        with emu.lock:
            company.delete_invoice(invoice_id)
        return jsonify(SUCCESS)

    def action(invoice_id: int, name: str) -> Response:
        company = need("kb_invoice", write=True)
        no_body_action()
        with emu.lock:
            getattr(company, name)(invoice_id)
        return jsonify(SUCCESS)

    @bp.post("/2.0/kb_invoice/<int:invoice_id>/issue")
    def issue_invoice(invoice_id: int):
        return action(invoice_id, "issue")

    @bp.post("/2.0/kb_invoice/<int:invoice_id>/revert_issue")
    def revert_issue_invoice(invoice_id: int):
        return action(invoice_id, "revert_issue")

    @bp.post("/2.0/kb_invoice/<int:invoice_id>/mark_as_sent")
    def mark_invoice_sent(invoice_id: int):
        return action(invoice_id, "mark_as_sent")

    @bp.post("/2.0/kb_invoice/<int:invoice_id>/cancel")
    def cancel_invoice(invoice_id: int):
        return action(invoice_id, "cancel")

    @bp.post("/2.0/kb_invoice/<int:invoice_id>/send")
    def send_invoice(invoice_id: int):
        company = need("kb_invoice", write=True)
        body = body_object()
        with emu.lock:
            owner = company.users[g.bexio_grant.company_user_id]["email"]
            company.send(invoice_id, body, owner)
        return jsonify(SUCCESS)

    @bp.post("/2.0/kb_invoice/<int:invoice_id>/copy")
    def copy_invoice(invoice_id: int):
        company = need("kb_invoice", write=True)
        body = body_object()
        with emu.lock:
            invoice = company.copy_invoice(invoice_id, body)
            return single(company.invoice_json(invoice, echo=True), 201)

    @bp.get("/2.0/kb_invoice/<int:invoice_id>/pdf")
    def invoice_pdf(invoice_id: int):
        company = need("kb_invoice")
        with emu.lock:
            return jsonify(company.pdf(invoice_id))

    @bp.get("/2.0/kb_invoice/<int:invoice_id>/payment")
    def list_payments(invoice_id: int):
        company = need("kb_invoice")
        with emu.lock:
            items = [company.payment_json(p) for p in company.invoice(invoice_id)["payments"]]
        return listing(items)

    @bp.post("/2.0/kb_invoice/<int:invoice_id>/payment")
    def create_payment(invoice_id: int):
        company = need("kb_invoice", write=True)
        body = body_object()
        with emu.lock:
            return single(company.payment_json(company.add_payment(invoice_id, body), echo=True), 201)

    @bp.get("/2.0/kb_invoice/<int:invoice_id>/payment/<int:payment_id>")
    def show_payment(invoice_id: int, payment_id: int):
        company = need("kb_invoice")
        with emu.lock:
            return single(company.payment_json(company.payment(invoice_id, payment_id)))

    @bp.delete("/2.0/kb_invoice/<int:invoice_id>/payment/<int:payment_id>")
    def delete_payment(invoice_id: int, payment_id: int):
        company = need("kb_invoice", write=True)
        with emu.lock:
            company.delete_payment(invoice_id, payment_id)
        return jsonify(SUCCESS)

    def position_kind(segment: str) -> str:
        from .store import POSITION_PATHS

        kind = POSITION_PATHS.get(segment)
        if kind is None:
            raise ApiError(404, "Not found")
        return kind

    @bp.get("/2.0/kb_invoice/<int:invoice_id>/<segment>")
    def list_positions(invoice_id: int, segment: str):
        kind = position_kind(segment)
        company = need("kb_invoice")
        with emu.lock:
            items = [company.position_json(p) for p in company.invoice(invoice_id)["positions"] if p["type"] == kind]
        return listing(items)

    @bp.post("/2.0/kb_invoice/<int:invoice_id>/<segment>")
    def create_position(invoice_id: int, segment: str):
        kind = position_kind(segment)
        company = need("kb_invoice", write=True)
        body = body_object()
        with emu.lock:
            return single(company.position_json(company.add_position(invoice_id, kind, body), echo=True), 201)

    @bp.get("/2.0/kb_invoice/<int:invoice_id>/<segment>/<int:position_id>")
    def show_position(invoice_id: int, segment: str, position_id: int):
        kind = position_kind(segment)
        company = need("kb_invoice")
        with emu.lock:
            return single(company.position_json(company.position(invoice_id, kind, position_id)))

    @bp.delete("/2.0/kb_invoice/<int:invoice_id>/<segment>/<int:position_id>")
    def delete_position(invoice_id: int, segment: str, position_id: int):
        kind = position_kind(segment)
        company = need("kb_invoice", write=True)
        with emu.lock:
            company.delete_position(invoice_id, kind, position_id)
        return jsonify(SUCCESS)

    # -- articles -----------------------------------------------------------------------------
    @bp.get("/2.0/article")
    def list_articles():
        company = need("article")
        with emu.lock:
            items = [dict(a) for a in company.articles.values()]
        return listing(ordered(items, ARTICLE_ORDER))

    @bp.post("/2.0/article")
    def create_article():
        company = need("article", write=True)
        body = body_object()
        with emu.lock:
            out = dict(company.create_article(body))
        # Recorded quirk: create echoes the stock counters as strings, except available (bexio.md §3.7).
        for key in (
            "stock_nr",
            "stock_min_nr",
            "stock_reserved_nr",
            "stock_picked_nr",
            "stock_disposed_nr",
            "stock_ordered_nr",
        ):
            out[key] = str(out[key])
        return single(out, 201)

    @bp.get("/2.0/article/<int:article_id>")
    def show_article(article_id: int):
        company = need("article")
        with emu.lock:
            return single(dict(company.article(article_id)))

    @bp.post("/2.0/article/<int:article_id>")
    def edit_article(article_id: int):
        company = need("article", write=True)
        body = body_object()
        with emu.lock:
            out = dict(company.edit_article(article_id, body))
        # Recorded quirk: edit echoes stock_nr and stock_min_nr as strings (Items/edit-an-item.json).
        out["stock_nr"], out["stock_min_nr"] = str(out["stock_nr"]), str(out["stock_min_nr"])
        return single(out)

    @bp.delete("/2.0/article/<int:article_id>")
    def delete_article(article_id: int):
        company = need("article", write=True)
        with emu.lock:
            company.article(article_id)
            del company.articles[article_id]
        return jsonify(SUCCESS)

    @bp.post("/2.0/article/search")
    def search_articles():
        company = need("article")
        test = search.matcher(body_conditions(ARTICLE_SEARCH))
        with emu.lock:
            items = [dict(a) for a in company.articles.values() if test(a)]
        return listing(ordered(items, ARTICLE_ORDER))

    # -- accounting master data ------------------------------------------------------------------
    @bp.get("/2.0/accounts")
    def list_accounts():
        company = need("accounting")
        return listing(ordered(list(company.accounts.values()), ACCOUNT_ORDER))

    @bp.post("/2.0/accounts/search")
    def search_accounts():
        company = need("accounting")
        test = search.matcher(body_conditions(ACCOUNT_SEARCH))
        return listing([a for a in company.accounts.values() if test(a)])

    def tax_valid_on(tax: dict, day: date) -> bool:
        start = (tax["start_year"] or 0, tax["start_month"] or 1)
        end = (tax["end_year"] or 9999, tax["end_month"] or 12)
        return start <= (day.year, day.month) <= end

    @bp.get("/3.0/taxes")
    def list_taxes():
        company = need("accounting")
        scope, types, on = request.args.get("scope"), request.args.get("types"), request.args.get("date")
        if scope not in (None, "active", "inactive"):
            raise ApiError(400, "Parameters are invalid")
        try:
            day = date.fromisoformat(on) if on else None
        except ValueError as exc:
            raise ApiError(400, "Parameters are invalid") from exc
        wanted = set(types.split(",")) if types else None
        with emu.lock:
            items = [
                dict(t)
                for t in company.taxes.values()
                if (scope is None or t["is_active"] == (scope == "active"))
                and (wanted is None or t["type"] in wanted)
                and (day is None or tax_valid_on(t, day))
            ]
        return listing(items)

    @bp.get("/3.0/taxes/<int:tax_id>")
    def show_tax(tax_id: int):
        company = need("accounting")
        tax = company.taxes.get(tax_id)
        if tax is None:
            raise not_found("Tax")
        return single(dict(tax))

    @bp.delete("/3.0/taxes/<int:tax_id>")
    def delete_tax(tax_id: int):
        company = need("accounting")
        with emu.lock:
            if tax_id not in company.taxes:
                raise not_found("Tax")
            in_use = any(
                p.get("tax_id") == tax_id for inv in company.invoices.values() for p in inv["positions"]
            ) or any(a["tax_income_id"] == tax_id for a in company.articles.values())
            if in_use:
                # Recorded: Taxes/delete-a-tax.json.
                raise ApiError(409, "tax can not be deleted")
            del company.taxes[tax_id]
        return jsonify(SUCCESS)

    @bp.get("/3.0/currencies")
    def list_currencies():
        company = need("accounting")
        return listing(list(company.currencies.values()), total_headers=2000)

    @bp.get("/3.0/currencies/codes")
    def currency_codes():
        need("accounting")
        return jsonify(["AUD", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "JPY", "NOK", "SEK", "USD"])

    @bp.get("/3.0/currencies/<int:currency_id>")
    def show_currency(currency_id: int):
        company = need("accounting")
        currency = company.currencies.get(currency_id)
        if currency is None:
            raise not_found("Currency")
        return single(dict(currency))

    # -- general master data ------------------------------------------------------------------
    @bp.get("/3.0/banking/accounts")
    def list_bank_accounts():
        company = need("bank_account")
        return listing(list(company.bank_accounts.values()), total_headers=500)

    @bp.get("/3.0/banking/accounts/<int:account_id>")
    def show_bank_account(account_id: int):
        company = need("bank_account")
        account = company.bank_accounts.get(account_id)
        if account is None:
            raise not_found("Bank account")
        return single(dict(account))

    @bp.get("/2.0/language")
    def list_languages():
        return listing(list(need("general").languages.values()))

    @bp.get("/2.0/payment_type")
    def list_payment_types():
        return listing(list(need("general").payment_types.values()))

    @bp.get("/2.0/unit")
    def list_units():
        return listing(list(need("general").units.values()))

    @bp.get("/2.0/country")
    def list_countries():
        return listing(list(need("general").countries.values()))

    @bp.get("/2.0/country/<int:country_id>")
    def show_country(country_id: int):
        country = need("general").countries.get(country_id)
        if country is None:
            raise not_found("Country")
        return single(dict(country))

    @bp.get("/2.0/company_profile")
    def list_company_profiles():
        return jsonify([need("general").profile()])

    @bp.get("/2.0/company_profile/<int:profile_id>")
    def show_company_profile(profile_id: int):
        company = need("general")
        if profile_id != 1:
            raise not_found("Company profile")
        return single(company.profile())

    # -- everything else, including kb_credit_voucher (no public API, bexio.md §3.6) -------------
    @bp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown_route(rest: str):
        raise ApiError(404, "Not found")

    return bp
