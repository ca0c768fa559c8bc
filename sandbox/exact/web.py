"""Exact Online's HTTP surface: OAuth (consent page, token endpoint) and the REST API.

Each regional host is the prefix ``/exact-online/<region>`` (nl, be, de, uk, us, es, fr);
below it paths are the real ones: ``/api/oauth2/auth``, ``/api/oauth2/token``, ``/api/v1/...``.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, g, jsonify, render_template_string, request, url_for

from . import atom, ops, schema
from .messages import ExactError
from .odata import (
    ODataError,
    ms_to_wire,
    parse_count,
    parse_date_in,
    parse_filter,
    parse_orderby,
    parse_select,
    parse_skiptoken,
    parse_sync_skiptoken,
    sort_records,
)
from .state import REGIONS, AccessToken, AuthCode, Chain, Division, User, new_guid

if TYPE_CHECKING:
    from . import ExactOnlineEmulator

bp = Blueprint("exact", __name__, url_prefix="/exact-online/<region>")

_RESOURCE = re.compile(r"^(?P<set>[A-Za-z/]+)(?:\((?P<key>[^)]*)\)(?:/(?P<nav>[A-Za-z]+))?)?$")
_GUID_KEY = re.compile(r"^guid'([0-9a-fA-F-]{36})'$")
_DIVISION_PATH = re.compile(r"^(\d+)/(.+)$")


def _emulator() -> ExactOnlineEmulator:
    return current_app.extensions["sandbox"].providers["exact-online"]


@bp.url_value_preprocessor
def pull_region(endpoint, values):
    region = (values or {}).pop("region", None)
    if region not in REGIONS:
        raise ExactError(404, f"Unknown Exact Online site '{region}'.")
    g.exact_region = region


@bp.url_defaults
def add_region(endpoint, values):
    values.setdefault("region", g.get("exact_region"))


@bp.errorhandler(ExactError)
def exact_error(exc: ExactError):
    response = jsonify(exc.body())
    response.status_code = exc.status
    if exc.reason:
        response.headers["Reason"] = exc.reason
    return response


@bp.errorhandler(ODataError)
def odata_error(exc: ODataError):
    return exact_error(ExactError(exc.status, exc.message))


# ============================================================================================
# OAuth: consent page and token endpoint (exact-online.md §1)
# ============================================================================================
CONSENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Exact Online - Authorize {{ client_name }}</title>
<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto}fieldset{margin:1rem 0}
.error{color:#b00}label{display:block;margin:.3rem 0}</style></head>
<body>
<h1>Exact Online ({{ host }})</h1>
<p>The application <strong>{{ client_name }}</strong> asks for access to your Exact Online divisions.</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
  {% for name, value in hidden %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <label for="user">Sign in as</label>
  <select id="user" name="user">
    {% for user in users %}<option value="{{ user.username }}"
      {%- if user.username == selected %} selected{% endif %}>
      {{ user.full_name }} ({{ user.username }})</option>{% endfor %}
  </select>
  {% for user in users %}
  <fieldset>
    <legend>Divisions to grant for {{ user.full_name }}</legend>
    {% for division in user_divisions[user.username] %}
    <label><input type="checkbox" name="division" value="{{ division.code }}"
      {% if division.grantable %}checked{% else %}disabled{% endif %}>
      {{ division.code }} - {{ division.description }}{% if not division.grantable %}
      (no rights: managed by your accountant){% endif %}</label>
    {% endfor %}
  </fieldset>
  {% endfor %}
  <button type="submit" name="decision" value="approve">Approve</button>
  <button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>
"""


def _auth_page_error(message: str, status: int = 400) -> Response:
    html = render_template_string(
        "<!doctype html><html><head><title>Exact Online - Error</title></head>"
        "<body><h1>Error</h1><p>{{ message }}</p></body></html>",
        message=message,
    )
    return Response(html, status=status, mimetype="text/html")


def _with_query(uri: str, params: dict) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


@bp.route("/api/oauth2/auth", methods=["GET", "POST"])
def authorize():
    """Show the consent page, or act on its Approve/Deny button."""
    params = request.values
    emulator = _emulator()
    client = emulator.ctx.clients.get(emulator.name, params.get("client_id"))
    if client is None:
        return _auth_page_error("The client_id is unknown.")
    redirect_uri = params.get("redirect_uri")
    if not client.allows_redirect(redirect_uri):
        return _auth_page_error("The redirect_uri does not match the registered callback URL.")
    if params.get("response_type", "code") != "code":
        return _auth_page_error("Only response_type=code is supported.")
    if request.method == "POST" and params.get("decision") in ("approve", "deny"):
        try:
            url = emulator.decide(
                region=g.exact_region,
                client_id=client.client_id,
                redirect_uri=redirect_uri,
                state=params.get("state"),
                user_ref=params.get("user"),
                divisions=params.getlist("division"),
                approve=params.get("decision") == "approve",
            )
        except ExactError as exc:
            return _consent_page(client.client_id, exc.message, 400)
        return Response(status=302, headers={"Location": url})
    return _consent_page(client.client_id)


def _consent_page(client_id: str, error: str | None = None, status: int = 200) -> Response:
    emulator = _emulator()
    region = g.exact_region
    with emulator.state.lock:
        users = [u for u in emulator.state.users.values() if u.region == region]
        user_divisions = {
            u.username: [
                {
                    "code": code,
                    "description": emulator.state.divisions[code].description,
                    "grantable": code in u.rights,
                }
                for code in u.divisions
            ]
            for u in users
        }
    hidden = [
        (name, request.values.get(name))
        for name in ("client_id", "redirect_uri", "response_type", "state", "force_login")
        if request.values.get(name) is not None
    ]
    html = render_template_string(
        CONSENT_PAGE,
        host=REGIONS[region].host,
        client_name=client_id,
        users=users,
        user_divisions=user_divisions,
        selected=request.values.get("user") or (users[0].username if users else ""),
        hidden=hidden,
        action=url_for("exact.authorize"),
        error=error,
    )
    return Response(html, status=status, mimetype="text/html")


def _oauth_error(status: int, error: str, description: str, reason: str | None = None) -> Response:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if reason:
        response.headers["Reason"] = reason
    return response


def _exact_time(ts: float) -> str:
    # Exact prints US-style timestamps: "10/11/2022 9:18:20 PM" (websmurf/laravel-exact-online#23).
    when = datetime.fromtimestamp(ts, tz=UTC)
    hour = when.hour % 12 or 12
    return f"{when.month}/{when.day}/{when.year} {hour}:{when:%M:%S} {'AM' if when.hour < 12 else 'PM'}"


CHAIN_ERROR = "Token is not allowed, because of invalid or empty chainId"


@bp.post("/api/oauth2/token")
def token():
    """Exchange a code or a refresh token (form body, client credentials in the body, exact-online.md §1.4).

    Exact reads ``client_id`` and ``client_secret`` from the form body only: credentials sent
    solely in an HTTP Basic ``Authorization`` header (RFC 6749 §2.3.1) leave the client
    unauthenticated (400 ``invalid_client``), and a header beside body credentials is ignored.
    """
    emulator = _emulator()
    state, ctx, region = emulator.state, emulator.ctx, g.exact_region
    form = request.form
    client = ctx.clients.authenticate(emulator.name, form.get("client_id"), form.get("client_secret"))
    if client is None:
        return _oauth_error(400, "invalid_client", "Invalid client credentials.")
    grant_type = form.get("grant_type")
    now = ctx.clock.time()
    with state.lock:
        if grant_type == "authorization_code":
            code = state.codes.get(form.get("code") or "")
            if code is None or code.used or code.client_id != client.client_id or code.region != region:
                # Re-used or unknown code: 400 (PQ README "Authentication error"; picqer#573).
                return _oauth_error(400, "invalid_grant", CHAIN_ERROR, reason=f"Unknown: {CHAIN_ERROR}")
            if now > code.expires_at:
                code.used = True
                return _oauth_error(400, "invalid_grant", CHAIN_ERROR, reason=f"Unknown: {CHAIN_ERROR}")
            if form.get("redirect_uri") != code.redirect_uri:
                return _oauth_error(400, "invalid_grant", "The redirect_uri does not match.")
            refused = emulator.count_token_call(client.client_id, code.user_id)
            if refused is not None:
                return refused
            code.used = True
            chain = Chain(
                id=new_guid(),
                client_id=client.client_id,
                user_id=code.user_id,
                region=region,
                refresh_token="",
                refresh_expires_at=0,
                access_issued_at=now,
            )
            state.chains[chain.id] = chain
            return _issue(emulator, chain, now)
        if grant_type == "refresh_token":
            presented = form.get("refresh_token") or ""
            chain = state.chains.get(state.refresh_tokens.get(presented, ""))
            if chain is None or chain.region != region or chain.revoked or chain.client_id != client.client_id:
                return _oauth_error(400, "invalid_grant", CHAIN_ERROR, reason=f"Unknown: {CHAIN_ERROR}")
            if presented != chain.refresh_token:
                # Rotation: every refresh invalidates the previous token (exact-online.md §1.5, picqer#300).
                return _oauth_error(401, "unauthorized_client", "Old refresh token used.")
            if now > chain.refresh_expires_at:
                return _oauth_error(
                    400,
                    "invalid_request",
                    f"The refresh token expired at {_exact_time(chain.refresh_expires_at)} "
                    f"and it is now {_exact_time(now)}.",
                )
            if now - chain.access_issued_at < state.refresh_min_age:
                # A new access token only 9.5 min after the previous one (exact-online.md §1.5, OS autorefresh.py).
                return _oauth_error(
                    401, "invalid_request", "Access Token not expired", reason="Access Token not expired"
                )
            refused = emulator.count_token_call(client.client_id, chain.user_id)
            if refused is not None:
                return refused
            chain.old_refresh_tokens.add(chain.refresh_token)
            return _issue(emulator, chain, now)
    return _oauth_error(400, "unsupported_grant_type", "The grant_type is not supported.")


def _issue(emulator: ExactOnlineEmulator, chain: Chain, now: float) -> Response:
    state = emulator.state
    # Opaque tokens with URL-unsafe characters, like Exact's ("AAEA...", "__1P!I...", exact-online.md §1.4).
    access = "AAEAA" + secrets.token_urlsafe(96).replace("-", "!")
    refresh = "__1P!I" + secrets.token_urlsafe(48) + "!IAAAA" + secrets.token_urlsafe(16)
    state.access_tokens[access] = AccessToken(chain.id, now + state.access_ttl)
    state.refresh_tokens[refresh] = chain.id
    chain.refresh_token = refresh
    chain.refresh_expires_at = now + state.refresh_idle_days * 86400
    chain.access_issued_at = now
    response = jsonify(
        access_token=access,
        token_type="bearer",  # noqa: S106 - the OAuth token type, not a secret
        expires_in=str(state.access_ttl),
        refresh_token=refresh,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# ============================================================================================
# REST API (exact-online.md §2-§5)
# ============================================================================================
@bp.route("/api/v1/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "MERGE"])
def api(rest: str):
    """Serve one REST call (auth, division access, quotas and faults ran in before_request)."""
    if request.method not in ("GET", "POST", "PUT", "DELETE"):
        raise ExactError(405, f"The requested resource does not support http method '{request.method}'.")
    emulator = _emulator()
    if g.exact_division is None:
        return _me(emulator, g.exact_user)
    return _dispatch(emulator, g.exact_division_obj, g.exact_resource)


@bp.get("/docs/SysAttachment.aspx")
def download_attachment():
    """Serve an attachment's bytes (the DocumentAttachments ``Url``; exact-online.md §3.10)."""
    emulator = _emulator()
    _authenticate(emulator)
    division = request.args.get("_Division_", "")
    attachment_id = (request.args.get("ID") or "").lower()
    with emulator.state.lock:
        div = emulator.state.divisions.get(int(division)) if division.isdigit() else None
        content = div.blobs.get(attachment_id) if div else None
        record = div.table("DocumentAttachments").get(attachment_id) if div else None
    if content is None or record is None:
        raise ExactError(404, "Resource not found for the segment 'SysAttachment.aspx'.")
    return Response(
        content,
        mimetype="application/pdf" if record["FileName"].lower().endswith(".pdf") else "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{record["FileName"]}"'},
    )


def _authenticate(emulator: ExactOnlineEmulator) -> tuple[User, Chain]:
    """Return the user and chain of the bearer token.

    :raise ExactError: 401 when the token is absent, unknown, expired, revoked or from another site.
    """
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    state = emulator.state
    now = emulator.ctx.clock.time()
    # Lock-free on purpose: single dict look-ups are atomic under the GIL, and taking the state
    # lock on every call convoys waitress threads behind writers (bench/sandbox_throughput.py).
    access = state.access_tokens.get(token)
    chain = state.chains.get(access.chain_id) if access else None
    # A known chain is charged for its 401s (error budget, exact-online.md §4.2) even when it may not pass.
    g.exact_chain = chain
    user = state.users.get(chain.user_id) if chain else None
    if access is None or user is None or chain.revoked or chain.region != g.exact_region:
        raise ExactError(401, "Unauthorized")
    if now >= access.expires_at:
        raise ExactError(401, "Unauthorized", reason="Access token expired")
    return user, chain


@bp.before_request
def guard_api():
    """Authenticate, check division access, count quotas and inject faults for REST calls."""
    if request.endpoint != "exact.api":
        return None
    # Unwrap the context-local proxies once: each proxy access costs a lookup (hot path).
    req, ctx_g = request._get_current_object(), g._get_current_object()
    emulator = _emulator()
    rest = (req.view_args or {}).get("rest", "")
    division = None
    resource = rest
    if rest.lower().rstrip("/") != "current/me":
        match = _DIVISION_PATH.match(rest)
        if match is None:
            raise ExactError(404, f"Resource not found for the segment '{rest.split('/')[0]}'.")
        division, resource = int(match.group(1)), match.group(2)
    ctx_g.exact_division, ctx_g.exact_resource = division, resource
    try:
        user, chain = _authenticate(emulator)
    except ExactError:
        # A blocked key stays blocked whatever else is wrong with the call.
        blocked = emulator.error_budget_block()
        if blocked is not None:
            return blocked
        raise
    blocked = emulator.error_budget_block()
    if blocked is not None:
        return blocked
    ctx_g.exact_user, ctx_g.exact_chain = user, chain
    ctx_g.exact_lang = emulator.state.language_of(user, ctx_g.exact_region)
    if division is not None:
        # Look-ups only (atomic under the GIL): no state lock, as in _authenticate.
        div = emulator.state.divisions.get(division)
        is_system = resource[:7].lower() == "system/"
        if not is_system and not emulator.may_use(user, chain, division):
            raise ExactError(403, "Forbidden", reason="NoDivisionAccess")
        ctx_g.exact_division_obj = div
        blocked = emulator.apply_quota(chain.client_id, division)
        if blocked is not None:
            return blocked
    return emulator.inject_before(
        str(division) if division is not None else None,
        emulator.render_fault_error,
        emulator.render_rate_limited,
    )


@bp.after_request
def finish_api(response: Response) -> Response:
    """Add the rate-limit headers and apply timeout-after-commit faults to committed writes."""
    if request.endpoint != "exact.api":
        return response
    ctx_g = g._get_current_object()
    rate_headers = ctx_g.get("exact_rate_headers")
    if rate_headers:
        # Handlers never set these themselves; extend() is far cheaper than per-name setdefault().
        response.headers.extend(rate_headers)
    emulator = _emulator()
    division = ctx_g.get("exact_division")
    if division is not None and response.status_code < 300:
        response = emulator.inject_after_commit(str(division), response)
    if response.status_code >= 400:
        emulator.count_error(response.status_code)
    if response.mimetype == "application/json" and not atom.wants_json(request.headers.get("Accept")):
        response = _as_xml(response, emulator.ctx.clock.time())
    return response


def _as_xml(response: Response, now: float) -> Response:
    """Answer in Exact's default format, Atom/XML, a client that did not ask for JSON (WCF)."""
    division, resource = g.get("exact_division"), str(g.get("exact_resource") or "")
    api_root = f"{request.url_root}exact-online/{g.get('exact_region') or ''}/api/v1"
    root = f"{api_root}/" if division is None else f"{api_root}/{division}/"
    match = _RESOURCE.match(resource)
    href = match.group("set") if match else resource
    if match and match.group("key") is not None and match.group("nav"):
        href = f"{match.group('set')}({match.group('key')})/{match.group('nav')}"
    body, content_type = atom.to_xml(
        response.get_json(silent=True), base=root, title=href.rsplit("/", 1)[-1], href=href, now=now
    )
    response.set_data(body)
    response.headers["Content-Type"] = content_type
    return response


def _api_root() -> str:
    # request.url_root keeps the mount point (/sandbox under the portal); cheaper than url_for.
    return f"{request.url_root}exact-online/{g.exact_region}/api/v1"


def _key_literal(entity: schema.Entity, key: object) -> str:
    return str(key) if isinstance(key, int) else f"guid'{key}'"


def render(entity: schema.Entity, record: dict, prefix: str, select=None, expand=(), div=None) -> dict:
    """Render a record as Exact sends it: __metadata first, dates as /Date(ms)/ (exact-online.md §3.0)."""
    uri = f"{prefix}/{entity.path}({_key_literal(entity, record.get(entity.key))})"
    out: dict = {"__metadata": {"uri": uri, "type": entity.type_name}}
    for name in select or entity.names:
        if name in entity.nav:
            if name in expand and div is not None:
                child_table, _fk = entity.nav[name]
                child_entity = _CHILDREN.get(child_table)
                rows = div.child_rows(child_table, record.get(entity.key))
                out[name] = {"results": [render(child_entity, r, prefix) for r in rows] if child_entity else []}
            else:
                out[name] = {"__deferred": {"uri": f"{uri}/{name}"}}
            continue
        value = record.get(name)
        out[name] = ms_to_wire(value) if name in schema.DATE_FIELDS and value is not None else value
    if entity is schema.DOCUMENTATTACHMENT and "Url" in out:
        out["Url"] = url_for(
            "exact.download_attachment", ID=record["ID"], _Division_=record["Division"], _external=True
        )
    return out


_CHILDREN = {
    "SalesInvoiceLines": schema.SALESINVOICELINE,
    "SalesEntryLines": schema.SALESENTRYLINE,
    "BankEntryLines": schema.BANKENTRYLINE,
}


def _me(emulator: ExactOnlineEmulator, user: User) -> Response:
    with emulator.state.lock:
        current = user.current_division
        div = emulator.state.divisions.get(current)
        record = schema.ME.blank()
        record.update(
            UserID=user.id,
            AccountingDivision=current,
            CurrentDivision=current,
            DivisionCustomer=None,
            DivisionCustomerName=div.description if div else None,
            DivisionCustomerVatNumber=div.vat_number if div else None,
            Email=user.email,
            FirstName=user.first_name,
            LastName=user.last_name,
            FullName=user.full_name,
            Initials=user.first_name[:1] + ".",
            LanguageCode={"nl": "nl-NL", "en": "en-GB"}[emulator.state.language_of(user, user.region)],
            Legislation=REGIONS[user.region].legislation,
            PackageCode="ACC",
            ServerTime=int(emulator.ctx.clock.time() * 1000),
            UserName=user.username,
        )
    prefix = _api_root()
    select = parse_select(request.args.get("$select"), schema.ME_ENDPOINT.selectable, schema.ME.type_name)
    # Me is a collection envelope with one row (exact-online.md §2, DN GetCurrentDivision).
    body = render(schema.ME, record, prefix, select)
    body["__metadata"]["uri"] = f"{prefix}/current/Me(guid'{user.id}')"
    return jsonify(d={"results": [body]})


def _division_rows(emulator: ExactOnlineEmulator, every: bool) -> list[dict]:
    user: User = g.exact_user
    chain: Chain = g.exact_chain
    rows = []
    for code in user.divisions:
        if not every and not emulator.may_use(user, chain, code):
            continue
        div = emulator.state.divisions[code]
        rows.append(
            {
                **schema.DIVISION.blank(),
                "Code": code,
                "Hid": code % 100000,
                "Description": div.description,
                "Country": div.country,
                "Currency": div.currency,
                "Current": code == user.current_division,
                "IsMainDivision": div.main,
                "Legislation": REGIONS[div.region].country,
                "VATNumber": div.vat_number,
                "StartDate": div.created_ms,
                "Created": div.created_ms,
                "Modified": div.created_ms,
                "Status": 1,
                "Division": code,
            }
        )
    return rows


def _rows(emulator: ExactOnlineEmulator, endpoint: schema.Endpoint, div: Division) -> list[dict]:
    entity = endpoint.entity
    if entity is schema.DIVISION:
        return _division_rows(emulator, every=False)
    if entity is schema.ALLDIVISION:
        return _division_rows(emulator, every=True)
    if entity is schema.DELETED:
        return list(div.deleted)
    if entity is schema.SYNCSALESINVOICE:
        return _sync_invoice_rows(div)
    if entity is schema.RECEIVABLESLIST:
        return [
            {
                "HID": index,
                "AccountCode": r["AccountCode"],
                "AccountId": r["Account"],
                "AccountName": r["AccountName"],
                # The unpaid part: partial payments leave the rest outstanding (exact-online.md §3.11).
                "Amount": ops.money(r["AmountDC"] - div.paid.get(r["ID"], 0.0)),
                "AmountInTransit": 0,
                "CurrencyCode": r["Currency"],
                "Description": r["Description"],
                "DueDate": r["DueDate"],
                "EntryNumber": r["EntryNumber"],
                "Id": r["ID"],
                "InvoiceDate": r["InvoiceDate"],
                "InvoiceNumber": r["InvoiceNumber"],
                "JournalCode": r["Journal"],
                "JournalDescription": r["JournalDescription"],
                "YourRef": r["YourRef"],
            }
            for index, r in enumerate(div.table("Receivables").values(), start=1)
            if not r["IsFullyPaid"]
        ]
    if entity is schema.JOURNALSTATUS:
        return ops.journal_status_rows(div, g.exact_lang)
    return list(div.table(entity.table).values())


def _sync_invoice_rows(div: Division) -> list[dict]:
    """Return sync/SalesInvoice/SalesInvoices: one row per line with its header's fields (exact-online.md §3.12).

    Each row has its own Timestamp, its key on this endpoint (PQ SyncSalesInvoice.php): a line's
    stamp is renewed, from the division's row-version counter, whenever its invoice changed since
    the stamp was given. Callers hold the state lock.
    """
    invoices = div.table("SalesInvoices")
    rows = []
    for header in invoices.values():
        for line in div.child_rows("SalesInvoiceLines", header["InvoiceID"]):
            seen = div.line_stamps.get(line["ID"])
            if seen is None or seen[0] != header["Timestamp"]:
                seen = (header["Timestamp"], div.next_timestamp())
                div.line_stamps[line["ID"]] = seen
            rows.append({**header, **line, "Timestamp": seen[1]})
    return rows


def _collection(emulator: ExactOnlineEmulator, endpoint: schema.Endpoint, div: Division, prefix: str) -> Response:
    entity, args = endpoint.entity, request.args
    raw_filter = args.get("$filter")
    flt = parse_filter(raw_filter, endpoint.filterable, entity.type_name) if raw_filter else None
    select = parse_select(args.get("$select"), endpoint.selectable, entity.type_name)
    order = parse_orderby(args.get("$orderby"), endpoint.filterable, entity.type_name)
    top = parse_count("$top", args.get("$top"))
    skip = parse_count("$skip", args.get("$skip")) or 0
    expand = {e.strip() for e in (args.get("$expand") or "").split(",") if e.strip()}
    for name in expand:
        if name not in entity.nav:
            raise ODataError(f"No property '{name}' exists in type '{entity.type_name}' at position 0.")
    mandatory = endpoint.mandatory_filter if emulator.state.mandatory_filtering else None
    if mandatory and (flt is None or not (flt.fields & set(mandatory))):
        raise ExactError(
            400,
            "This endpoint has mandatory filtering applied. A GET request for this endpoint must have "
            "a $filter parameter with one of the following fields in the url:"
            + ",".join(endpoint.mandatory_filter)
            + ".",
        )
    if endpoint.sync and flt is not None and not flt.fields <= {"Timestamp"}:
        raise ExactError(400, "This $filter parameter is not supported for this resource")
    if endpoint.needs_select and select is None and top != 1:
        raise ExactError(400, "Please add a $select or a $top=1 statement to the query string.")
    rows = _rows(emulator, endpoint, div)
    if flt is not None:
        rows = [r for r in rows if flt.matches(r)]
    if endpoint.sync:
        # Sync rows are keyed by their Timestamp (an Edm.Int64): pages continue after the last one.
        rows.sort(key=lambda r: r["Timestamp"])
        last = parse_sync_skiptoken(args.get("$skiptoken"))
        if last is not None:
            rows = [r for r in rows if r["Timestamp"] > last]
    else:
        sort_records(rows, order, entity.key)
        after = parse_skiptoken(args.get("$skiptoken"))
        if after is not None:
            keys = [str(r.get(entity.key)) for r in rows]
            if after in keys:
                rows = rows[keys.index(after) + 1 :]
            elif not order:
                rows = [r for r in rows if str(r.get(entity.key)) > after]
    total = len(rows)
    rows = rows[skip:]
    state = emulator.state
    page_size = state.page_size if endpoint.page_size == 60 else state.bulk_page_size
    limit = page_size if top is None else min(top, page_size)
    page = rows[:limit]
    results = [render(entity, r, prefix, select, expand, div) for r in page]
    if endpoint.sync:
        for result, row in zip(results, page, strict=True):
            result["__metadata"]["uri"] = f"{prefix}/{endpoint.path}({row['Timestamp']}L)"
    envelope: dict = {"results": results}
    if args.get("$inlinecount") == "allpages":
        envelope["__count"] = str(total)
    more = len(rows) > len(page) and (top is None or top > len(page))
    if more and page:
        token = f"{page[-1]['Timestamp']}L" if endpoint.sync else f"guid'{page[-1].get(entity.key)}'"
        envelope["__next"] = _next_link(token, None if top is None else top - len(page))
    return jsonify(d=envelope)


def _next_link(skiptoken: str, top_left: int | None) -> str:
    params = [(k, v) for k, v in request.args.items(multi=True) if k not in ("$skiptoken", "$skip", "$top")]
    if top_left is not None:
        params.append(("$top", str(top_left)))
    params.append(("$skiptoken", skiptoken))
    # Exact leaves $, quotes, commas and parentheses readable in __next (DN fixture).
    query = urlencode(params, safe="$',()", quote_via=quote)
    return f"{request.base_url}?{query}"


#: endPoint values of read/sync/Sync/SyncTimestamp -> (table, date field) behind that sync API.
_SYNC_SOURCES = {
    "accounts": ("Accounts", "Modified"),
    "items": ("Items", "Modified"),
    "salesinvoices": ("SalesInvoices", "Modified"),
    "paymentterms": ("Receivables", "Modified"),
    "glaccounts": ("GLAccounts", "Modified"),
    "documents": ("Documents", "Modified"),
    "deleted": (None, "DeletedDate"),
}


def _sync_timestamp(emulator: ExactOnlineEmulator, div: Division) -> Response:
    """Return the sync Timestamp to start from for rows modified since ``modified`` (exact-online.md §3.12, picqer#689).

    ``?modified=datetime'2026-01-01'&endPoint='Accounts'``: ``Timestamp gt TimeStampAsBigInt`` on
    that sync endpoint then returns every row modified on or after that moment.
    """
    if request.method != "GET":
        raise ExactError(405, f"The requested resource does not support http method '{request.method}'.")
    args = {k.lower(): v for k, v in request.args.items()}
    modified_text, endpoint_text = args.get("modified", ""), args.get("endpoint", "")
    found = re.fullmatch(r"datetime'([^']+)'", modified_text.strip(), re.IGNORECASE)
    name = re.fullmatch(r"'([^']+)'", endpoint_text.strip())
    try:
        since = parse_date_in(found.group(1)) if found else None
    except ValueError:
        since = None
    source = _SYNC_SOURCES.get(name.group(1).split("/")[-1].lower()) if name else None
    if since is None or source is None:
        raise ExactError(400, "Bad Request - Error in query syntax.")
    table, date_field = source
    with emulator.state.lock:
        rows = div.deleted if table is None else div.table(table).values()
        stamps = [r.get("Timestamp", 0) for r in rows if (r.get(date_field) or 0) >= since]
        start = min(stamps) - 1 if stamps else div.timestamp
    root = f"{_api_root()}/{div.code}/read/sync/Sync/SyncTimestamp"
    return jsonify(
        d={
            "__metadata": {"uri": root, "type": "Exact.Web.Api.Models.Sync.SyncTimestamp"},
            "API": name.group(1),
            "Modified": ms_to_wire(since),
            "TimeStampAsBigInt": start,
        }
    )


def _dispatch(emulator: ExactOnlineEmulator, div: Division | None, resource: str) -> Response:
    match = _RESOURCE.match(resource)
    endpoint = schema.ENDPOINTS.get(match.group("set").lower().strip("/")) if match else None
    if resource.lower().startswith("users/userhasrights"):
        return jsonify(d={"UserHasRights": True})
    if div is not None and resource.lower().rstrip("/") == "read/sync/sync/synctimestamp":
        return _sync_timestamp(emulator, div)
    if endpoint is None or div is None:
        segment = resource.split("(")[0].split("/")[-1] or resource
        raise ExactError(404, f"Resource not found for the segment '{segment}'.")
    if request.method not in endpoint.methods:
        raise ExactError(405, f"The requested resource does not support http method '{request.method}'.")
    entity = endpoint.entity
    prefix = f"{_api_root()}/{div.code}"
    raw_key, nav = match.group("key"), match.group("nav")
    state, lang = emulator.state, g.exact_lang
    status = state.business_status
    now_ms = int(emulator.ctx.clock.time() * 1000)
    if raw_key is None and nav is None and request.method == "POST":
        # Parse and serialise outside the lock; hold it only to validate, insert and render.
        body = request.get_json(silent=True)
        with state.lock:
            created = _create(entity, div, body, now_ms, lang, status)
            if entity is schema.PRINTEDSALESINVOICE:
                # Printing returns the print result, not an entity with a key URL.
                out = render(entity, created, prefix)
            else:
                out = render(entity, created, prefix, expand=set(entity.nav), div=div)
        return Response(current_app.json.dumps({"d": out}), status=201, mimetype="application/json")
    with state.lock:
        if raw_key is None:
            if nav is not None:
                raise ExactError(404, f"Resource not found for the segment '{nav}'.")
            if request.method == "GET":
                return _collection(emulator, endpoint, div, prefix)
            raise ExactError(405, f"The requested resource does not support http method '{request.method}'.")
        key_match = _GUID_KEY.match(raw_key.strip())
        if key_match is None:
            raise ExactError(400, "Bad Request - Error in query syntax.")
        key = key_match.group(1).lower()
        record = div.table(entity.table).get(key)
        if record is None:
            raise ExactError(404, f"Resource not found for the segment '{entity.table}'.")
        if nav is not None:
            if nav not in entity.nav or request.method != "GET":
                raise ExactError(404, f"Resource not found for the segment '{nav}'.")
            child_table, _fk = entity.nav[nav]
            child = _CHILDREN.get(child_table)
            rows = div.child_rows(child_table, key)
            return jsonify(d={"results": [render(child, r, prefix) for r in rows] if child else []})
        if request.method == "GET":
            select = parse_select(request.args.get("$select"), endpoint.selectable, entity.type_name)
            expand = {e.strip() for e in (request.args.get("$expand") or "").split(",") if e.strip()}
            return jsonify(d=render(entity, record, prefix, select, expand, div))
        if request.method == "PUT":
            body = request.get_json(silent=True)
            _update(entity, div, record, body, now_ms, lang, status)
            return Response(status=204)
        _delete(entity, div, record, now_ms, lang, status)
        return Response(status=204)


def _create(entity: schema.Entity, div: Division, body: object, now_ms: int, lang: str, status: int) -> dict:
    creators = {
        "Accounts": ops.create_account,
        "Items": ops.create_item,
        "SalesInvoices": ops.create_sales_invoice,
        "PrintedSalesInvoices": ops.print_sales_invoice,
        "SalesEntries": ops.create_sales_entry,
        "Documents": ops.create_document,
        "DocumentAttachments": ops.create_attachment,
        "BankEntries": ops.create_bank_entry,
    }
    if not isinstance(body, dict):
        raise ExactError(400, ops.BAD_STREAM)
    return creators[entity.table](div, body, now_ms, lang, status)


def _update(entity, div, record, body, now_ms, lang, status) -> None:
    if not isinstance(body, dict):
        raise ExactError(400, ops.BAD_STREAM)
    if entity is schema.ACCOUNT:
        ops.update_account(div, record, body, now_ms, lang, status)
    elif entity is schema.SALESINVOICE:
        ops.update_sales_invoice(div, record, body, now_ms, lang, status)
    elif entity is schema.ITEM:
        ops.update_item(div, record, body, now_ms, lang, status)
    else:
        raise ExactError(405, "The requested resource does not support http method 'PUT'.")


def _delete(entity, div, record, now_ms, lang, status) -> None:
    if entity is schema.SALESINVOICE:
        ops.delete_sales_invoice(div, record, now_ms, lang, status)
    elif entity is schema.SALESENTRY:
        ops.delete_sales_entry(div, record, now_ms)
    elif entity in (schema.ACCOUNT, schema.ITEM):
        div.remove(entity, record[entity.key], now_ms, code_field="Code")
    else:
        raise ExactError(405, "The requested resource does not support http method 'DELETE'.")


__all__ = ["AuthCode", "bp", "render"]
