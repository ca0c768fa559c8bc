"""The Accounting API blueprint: ``/quickbooks/api/v3/company/<realmId>/…`` (quickbooks.api.intuit.com)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from flask import Blueprint, Response, g, request

from . import faults as F
from . import ops
from . import query as Q
from .catalog import BY_LOWER, unemulated
from .faults import QBOFault
from .ledger import ENTITY_PATHS, NAME_LISTS, ORDER_DEFAULT, QUERYABLE, Realm
from .oauth import ACCOUNTING

if TYPE_CHECKING:
    from . import QuickBooksEmulator

QBO_VERSION = "1988.128"
_REALM_PATH = re.compile(r"/v3/company/([^/]+)")
_ID = re.compile(r"^\d+$")
#: Real QBO entities the sandbox does not emulate: a company without any of them (catalog.py).
UNEMULATED = unemulated(set(QUERYABLE.values()))
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
PDF_TEMPLATE = (
    "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    "3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R"
    "/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    "4 0 obj<</Length {length}>>stream\n{stream}\nendstream endobj\n"
    "5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _pdf(lines: list[str]) -> bytes:
    safe = [re.sub(r"[()\\]", "", line) for line in lines]
    stream = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({t}) Tj 0 -16 Td" for t in safe) + " ET"
    return PDF_TEMPLATE.format(length=len(stream), stream=stream).encode("latin-1", "replace")


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[dict, bytes]]:
    """Split a multipart body into {name: (headers, content)}; tolerate LF-only and base64 parts.

    python-quickbooks sends bare ``\\n`` line endings and base64 content (quickbooks-online.md §7).
    """
    m = _BOUNDARY.search(content_type or "")
    if not m:
        return {}
    delimiter = b"--" + m.group(1).encode()
    parts: dict[str, tuple[dict, bytes]] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.lstrip(b"\r\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        headers = {}
        for raw in head.replace(b"\r\n", b"\n").split(b"\n"):
            key, _, value = raw.decode("latin-1").partition(":")
            if key.strip():
                headers[key.strip().lower()] = value.strip()
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        if headers.get("content-transfer-encoding", "").lower() == "base64":
            with contextlib.suppress(ValueError):
                content = base64.b64decode(content)
        name = re.search(r'name="([^"]+)"', headers.get("content-disposition", ""))
        if name:
            parts[name.group(1)] = (headers, content)
    return parts


def build(emu: QuickBooksEmulator) -> Blueprint:
    """Return the API blueprint bound to ``emu``."""
    bp = Blueprint("quickbooks_api", __name__, url_prefix="/quickbooks/api")

    # -- response helpers -------------------------------------------------------------------
    def now() -> float:
        return emu.ctx.clock.time()

    def json_response(body: dict, status: int = 200, *, fault: bool = False) -> Response:
        data = json.dumps(body, separators=(",", ":"))
        # Successes say ``application/json;charset=utf-8``; faults plain ``application/json``.
        ctype = "application/json" if fault else "application/json;charset=utf-8"
        return Response(data, status=status, content_type=ctype)

    def realm_time(realm: Realm | None) -> str:
        ts = now()
        return (
            realm.time_text(ts) if realm else datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")
        )

    def fault_response(fault: QBOFault, realm: Realm | None = None) -> Response:
        body = {"Fault": fault.body()}
        if fault.code != "2030":
            body["time"] = realm_time(realm)
        return json_response(body, fault.status, fault=True)

    def gateway(status: int, code: str, message: str, detail: str, fault_type: str) -> Response:
        body = F.gateway_fault_body(code, message, detail, fault_type, int(now() * 1000))
        resp = json_response(body, status, fault=True)
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="Intuit", error="invalid_token"'
        return resp

    def throttled(_fault=None) -> Response:
        realm = getattr(g, "qbo_realm", None)
        return Response(F.throttle_xml(realm_time(realm)), status=429, content_type="application/xml")

    def injected_error(fault) -> Response:
        if fault.status == 500:
            return fault_response(F.system_fault(), getattr(g, "qbo_realm", None))
        text = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}.get(fault.status, "Error")
        return Response(
            f"<html><body><h1>{fault.status} {text}</h1></body></html>",
            status=fault.status,
            mimetype="text/html",
        )

    def ok(realm: Realm, key: str, value) -> Response:
        return json_response({key: value, "time": realm.time_text(now())})

    # -- gateway: faults, auth, quotas ---------------------------------------------------------
    @bp.before_request
    def gate():
        g.qbo_started = time.perf_counter()
        g.qbo_tid = f"1-{int(now()):x}-{secrets.token_hex(12)}"
        m = _REALM_PATH.search(request.path)
        realm_id = m.group(1) if m else None
        g.qbo_realm = emu.realms.get(realm_id) if realm_id else None
        g.qbo_slot = None
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return gateway(
                401,
                "3200",
                "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "Token invalid",
                "AUTHENTICATION",
            )
        token = header[7:].strip()
        if len(token) < 20 or len(token) > 4000:
            return gateway(
                401,
                "3200",
                "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "Malformed bearer token: too short or too long",
                "AUTHENTICATION",
            )
        state, grant = emu.tokens.check_access(token, now())
        if state == "expired":
            return gateway(
                401,
                "3200",
                "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                f"Token expired: {token[:40]}",
                "AUTHENTICATION",
            )
        if state != "ok" or grant is None:
            return gateway(
                401,
                "3200",
                "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "Token invalid",
                "AUTHENTICATION",
            )
        if ACCOUNTING not in grant.scopes or (realm_id is not None and grant.realm_id != realm_id):
            return gateway(
                403,
                "3100",
                "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                "",
                "AUTHORIZATION",
            )
        if g.qbo_realm is None:
            return None  # unknown realm with a valid token: the route answers (Unsupported Operation)
        g.qbo_client = grant.client_id
        blocked = emu.check_quotas(realm_id, grant.client_id, throttled)
        if blocked is not None:
            return blocked
        # Faults run inside the concurrency slot, so injected latency holds it like a slow server.
        return emu.inject_before(realm_id, injected_error, throttled)

    @bp.after_request
    def stamp(resp: Response) -> Response:
        tid = g.get("qbo_tid", "")
        # One extend instead of many set() calls: the headers are new, and this is the hot path.
        extra = [
            ("intuit_tid", tid),
            ("Intuit-Tid", tid),
            ("X-Spanid", str(uuid.uuid4())),
            ("Strict-Transport-Security", "max-age=31536000"),
        ]
        if resp.status_code < 400:
            elapsed = int((time.perf_counter() - g.get("qbo_started", time.perf_counter())) * 1000)
            extra += [
                ("Qbo-Version", QBO_VERSION),
                ("Service-Time", f"total={elapsed}, db={elapsed // 2}"),
                ("Expires", "0"),
                ("Cache-Control", "max-age=0, no-cache, no-store, must-revalidate, private"),
            ]
        resp.headers.extend(extra)
        realm = g.get("qbo_realm")
        is_write = request.method == "POST" and not request.path.endswith("/query")
        if is_write and resp.status_code == 200 and realm is not None:
            resp = emu.inject_after_commit(realm.id, resp)
        return resp

    @bp.teardown_request
    def release(_exc=None):
        slot = g.pop("qbo_slot", None)
        if slot is not None:
            emu.ctx.concurrency.leave(slot)

    @bp.errorhandler(QBOFault)
    def on_fault(fault: QBOFault):
        return fault_response(fault, g.get("qbo_realm"))

    @bp.errorhandler(404)
    @bp.errorhandler(405)
    def on_unrouted(_exc):
        return unsupported()

    def unsupported() -> Response:
        relative = request.path.removeprefix("/quickbooks/api")
        return fault_response(
            F.unsupported_operation(
                f"Operation Could not find resource for relative : {relative} of full path: "
                f"{request.base_url} is not supported."
            ),
            g.get("qbo_realm"),
        )

    def realm_or_fail() -> Realm:
        realm = g.get("qbo_realm")
        if realm is None:
            raise F.QBOFault(
                "3100",
                "ApplicationAuthorizationFailed",
                "Unknown realm",
                status=403,
                fault_type="AuthorizationFault",
            )
        return realm

    def entity_for(segment: str) -> str:
        entity = ENTITY_PATHS.get(segment)
        if entity is None:
            raise F.unsupported_operation(
                "Operation Could not find resource for relative : "
                f"{request.path.removeprefix('/quickbooks/api')} "
                f"of full path: {request.base_url} is not supported."
            )
        return entity

    def json_body() -> dict:
        try:
            body = json.loads(request.get_data(as_text=True) or "null")
        except ValueError as exc:
            raise QBOFault(
                "2010",
                "Request has invalid or unsupported property",
                f"Property Name:Unexpected character: {str(exc)[:120]} specified is unsupported or invalid",
                element=None,
            ) from exc
        if not isinstance(body, dict):
            raise QBOFault(
                "2010",
                "Request has invalid or unsupported property",
                "Property Name:The request body must be a JSON object specified is unsupported or invalid",
                element=None,
            )
        return body

    # -- requestid replay (quickbooks-online.md §2.4) ---------------------------------------
    def replayed(realm: Realm, limit: int = 50) -> tuple[str | None, Response | None]:
        rid = request.args.get("requestid")
        if not rid:
            return None, None
        if len(rid) > limit:
            raise F.business(
                f"You cannot enter more than {limit} characters in the request_id field. You tried entering "
                f"{rid[:10]}..., which is {len(rid)} characters."
            )
        with realm.lock:
            cached = realm.request_ids.get(rid)
        if cached is None:
            return rid, None
        return rid, Response(cached[1], status=cached[0], content_type="application/json;charset=utf-8")

    def remember(realm: Realm, rid: str | None, resp: Response) -> Response:
        if rid and resp.status_code == 200:
            with realm.lock:
                realm.request_ids[rid] = (resp.status_code, resp.get_data())
        return resp

    # -- routes -------------------------------------------------------------------------------
    @bp.route("/v3/company/<realm_id>/query", methods=["GET", "POST"])
    def run_query(realm_id: str):
        realm = realm_or_fail()
        text = request.args.get("query") if request.method == "GET" else request.get_data(as_text=True)
        return json_response({"QueryResponse": execute_query(realm, text or ""), "time": realm.time_text(now())})

    def execute_query(realm: Realm, text: str) -> dict:
        parsed = Q.parse(text)
        entity = QUERYABLE.get(parsed.entity.lower())
        if entity is None and BY_LOWER.get(parsed.entity.lower()) in UNEMULATED:
            # A real entity the sandbox does not keep: the company has none of it.
            return {"totalCount": 0} if parsed.count else {}
        if entity is None:
            raise F.invalid_query(f"QueryValidationError: invalid context declaration: {parsed.entity}")
        for cond in parsed.conditions:
            if entity == "Payment" and cond.prop.lower() == "docnumber":
                raise F.invalid_query("QueryValidationError: property 'DocNumber' is not queryable")
        with realm.lock:
            if entity == "CompanyInfo":
                rows = [realm.company_info]
            elif entity == "Preferences":
                rows = [realm.preferences]
            else:
                rows = list(realm.entities[entity].values())
            if realm.batch_hidden:
                rows = [r for r in rows if (entity, r.get("Id")) not in realm.batch_hidden]
            active_filtered = any(c.prop.lower() == "active" for c in parsed.conditions)
            if entity in NAME_LISTS and not active_filtered:
                rows = [r for r in rows if r.get("Active", True)]
            for cond in parsed.conditions:
                rows = [r for r in rows if Q.matches(r, cond)]
            if parsed.count:
                return {"totalCount": len(rows)}
            order = parsed.order or [(ORDER_DEFAULT.get(entity, "Id"), False)]
            for prop, desc in reversed(order):
                rows.sort(key=Q.sort_key(prop), reverse=desc)
            # Projections are not supported: every property comes back whatever the select list
            # names (data-queries page, "The response set always returns all properties").
            page = [dict(r) for r in rows[parsed.start - 1 : parsed.start - 1 + parsed.max_results]]
        if not page:
            return {}
        return {entity: page, "startPosition": parsed.start, "maxResults": len(page)}

    @bp.get("/v3/company/<realm_id>/companyinfo/<company_id>")
    def read_company_info(realm_id: str, company_id: str):
        realm = realm_or_fail()
        if company_id != realm.id:
            raise F.not_found()
        return ok(realm, "CompanyInfo", realm.company_info)

    @bp.route("/v3/company/<realm_id>/preferences", methods=["GET", "POST"])
    def preferences(realm_id: str):
        realm = realm_or_fail()
        if request.method == "GET":
            return ok(realm, "Preferences", realm.preferences)
        body = json_body()
        with realm.lock:
            current = realm.preferences
            if "SyncToken" not in body:
                raise F.required("SyncToken")
            if str(body["SyncToken"]) != current["SyncToken"]:
                raise F.stale_object(realm.last_writer)
            for section, values in body.items():
                if isinstance(values, dict) and isinstance(current.get(section), dict):
                    current[section].update(values)
            current["SyncToken"] = str(int(current["SyncToken"]) + 1)
            current["MetaData"] = realm.meta(now(), current if "MetaData" in current else None)
            return ok(realm, "Preferences", current)

    @bp.get("/v3/company/<realm_id>/<segment>/<obj_id>")
    def read_entity(realm_id: str, segment: str, obj_id: str):
        realm = realm_or_fail()
        if segment not in ENTITY_PATHS and BY_LOWER.get(segment) in UNEMULATED and _ID.match(obj_id):
            raise F.not_found()  # none exists in the company (catalog.py)
        entity = entity_for(segment)
        if not _ID.match(obj_id):
            raise QBOFault("2030", "Invalid ID", f"Id should be a valid number. Supplied value:{obj_id}", element="Id")
        with realm.lock:
            obj = realm.get(entity, obj_id)
            if obj is None:
                raise F.not_found()
            return ok(realm, entity, obj)

    @bp.post("/v3/company/<realm_id>/<segment>")
    def write_entity(realm_id: str, segment: str):
        realm = realm_or_fail()
        entity = entity_for(segment)
        rid, cached = replayed(realm)
        if cached is not None:
            return cached
        body = json_body()
        operation = request.args.get("operation", "").lower()
        include = request.args.get("include", "").lower()
        with realm.lock:
            ts = now()
            if operation == "delete":
                result = ops.delete(realm, entity, body, ts)
            elif operation == "void" or (operation == "update" and include == "void"):
                result = ops.void(realm, entity, body, ts)
            elif operation in ("", "update", "create"):
                if operation == "update" and "Id" not in body:
                    raise F.required("Id")
                result = ops.save(realm, entity, body, ts, params=request.args)
            else:
                raise F.unsupported_operation(f"Operation {operation} is not supported.")
            resp = ok(realm, entity, result)
        return remember(realm, rid, resp)

    @bp.post("/v3/company/<realm_id>/<segment>/<obj_id>/send")
    def send_entity(realm_id: str, segment: str, obj_id: str):
        realm = realm_or_fail()
        entity = entity_for(segment)
        if entity not in ("Invoice", "CreditMemo", "Estimate", "SalesReceipt"):
            return unsupported()
        rid, cached = replayed(realm)
        if cached is not None:
            return cached
        with realm.lock:
            obj = ops.send(realm, entity, obj_id, request.args.get("sendTo"), now())
            resp = ok(realm, entity, obj)
        return remember(realm, rid, resp)

    @bp.get("/v3/company/<realm_id>/<segment>/<obj_id>/pdf")
    def entity_pdf(realm_id: str, segment: str, obj_id: str):
        realm = realm_or_fail()
        entity = entity_for(segment)
        if entity not in ("Invoice", "CreditMemo", "Estimate", "SalesReceipt"):
            return unsupported()
        with realm.lock:
            obj = realm.get(entity, obj_id)
            if obj is None:
                raise F.not_found()
            lines = [
                f"{realm.name}",
                f"{entity} {obj.get('DocNumber', obj['Id'])}",
                f"Date {obj['TxnDate']}",
                f"Customer {obj.get('CustomerRef', {}).get('name', '')}",
            ]
            lines += [f"{ln.get('Description', '')} {ln['Amount']}" for ln in obj["Line"] if "Id" in ln]
            lines.append(f"Total {obj['TotalAmt']}")
        return Response(_pdf(lines), status=200, content_type="application/pdf")

    @bp.get("/v3/company/<realm_id>/cdc")
    def change_data_capture(realm_id: str):
        realm = realm_or_fail()
        return json_response(
            {
                "CDCResponse": [run_cdc(realm, request.args.get("entities", ""), request.args.get("changedSince", ""))],
                "time": realm.time_text(now()),
            }
        )

    def run_cdc(realm: Realm, entities_arg: str, since_arg: str) -> dict:
        names = [n.strip() for n in entities_arg.split(",") if n.strip()]
        if not names:
            raise F.required("entities")
        try:
            since = datetime.fromisoformat(since_arg.replace("Z", "+00:00").replace(" ", "+"))
        except ValueError as exc:
            raise QBOFault(
                "2010",
                "Request has invalid or unsupported property",
                f"Property Name:changedSince value {since_arg} is invalid",
                element="changedSince",
            ) from exc
        if since.tzinfo is None:
            since = since.replace(tzinfo=realm.tz)
        since_ts = since.timestamp()
        if since_ts < now() - 30 * 86400:
            # CDC looks back at most 30 days (quickbooks-online.md §2.5); the wording QBO answers with
            # (QuickBooksSharp#19), as an "Unsupported Operation" fault.
            raise F.unsupported_operation(
                f"Operation cdc with changedSince date {since_arg} which is older than fixed days is not supported."
            )
        out: list[dict] = []
        total = 0
        with realm.lock:
            for name in names:
                entity = QUERYABLE.get(name.lower())
                if entity is None and BY_LOWER.get(name.lower()) in UNEMULATED:
                    out.append({})  # none of it changed: the company has none
                    continue
                if entity is None or entity in ("CompanyInfo", "Preferences"):
                    raise F.invalid_query(f"QueryValidationError: invalid context declaration: {name}")
                rows = [realm.entities[entity][i] for i, t in realm.changed[entity].items() if t >= since_ts]
                rows += [stub for t, stub in realm.deleted[entity].values() if t >= since_ts]
                rows = rows[: max(0, 1000 - total)]
                total += len(rows)
                block = {entity: [dict(r) for r in rows], "startPosition": 1, "maxResults": len(rows)} if rows else {}
                out.append(block)
        return {"QueryResponse": out}

    @bp.post("/v3/company/<realm_id>/batch")
    def run_batch(realm_id: str):
        realm = realm_or_fail()
        rid, cached = replayed(realm, limit=36)
        if cached is not None:
            return cached
        blocked = emu.check_batch_quota(realm.id, g.get("qbo_client", ""), throttled)
        if blocked is not None:
            return blocked
        body = json_body()
        items = body.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            raise F.required("BatchItemRequest")
        if len(items) > emu.limits["batch_items"]:
            raise F.business(
                f"The number of batch items ({len(items)}) exceeds the maximum allowed ({emu.limits['batch_items']})."
            )
        results = []
        with realm.lock:
            realm.batch_hidden = set()
            try:
                for item in items:
                    results.append(run_batch_item(realm, item, bool(rid)))
            finally:
                realm.batch_hidden = None
            resp = json_response({"BatchItemResponse": results, "time": realm.time_text(now())})
        return remember(realm, rid, resp)

    def run_batch_item(realm: Realm, item: dict, with_rid: bool) -> dict:
        bid = item.get("bId") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict):
                raise F.required("BatchItemRequest")
            if with_rid and bid and len(str(bid)) > 10:
                raise F.business("The bId cannot be longer than 10 characters when a requestid is used.")
            if "Query" in item:
                return {"QueryResponse": execute_query(realm, str(item["Query"])), "bId": bid}
            if "CDCQuery" in item:
                spec = item["CDCQuery"] or {}
                return {
                    "CDCResponse": [run_cdc(realm, str(spec.get("Entities", "")), str(spec.get("ChangedSince", "")))],
                    "bId": bid,
                }
            keys = [k for k in item if k not in ("bId", "operation", "optionsData")]
            if len(keys) != 1 or keys[0] not in ENTITY_PATHS.values():
                raise F.unsupported_operation(f"Operation on {keys} is not supported in a batch.")
            entity, payload = keys[0], item[keys[0]]
            operation = (item.get("operation") or "").lower()
            ts = now()
            if operation == "create":
                if isinstance(payload, dict) and "Id" in payload:
                    raise F.business("Id must not be given on create.")
                result = ops.save(realm, entity, payload, ts, params={})
            elif operation == "update":
                if not isinstance(payload, dict) or "Id" not in payload:
                    raise F.required("Id")
                result = ops.save(realm, entity, payload, ts, params={})
            elif operation == "delete":
                result = ops.delete(realm, entity, payload, ts)
            elif operation == "void":
                result = ops.void(realm, entity, payload, ts)
            elif operation == "send":
                result = ops.send(realm, entity, str((payload or {}).get("Id", "")), None, ts)
            else:
                raise F.required("operation")
            return {entity: result, "bId": bid}
        except QBOFault as fault:
            return {"Fault": fault.body(), "bId": bid}

    @bp.post("/v3/company/<realm_id>/upload")
    def upload(realm_id: str):
        realm = realm_or_fail()
        rid, cached = replayed(realm)
        if cached is not None:
            return cached
        parts = parse_multipart(request.get_data(), request.headers.get("Content-Type", ""))
        metas = sorted(k for k in parts if k.startswith("file_metadata_"))
        contents = sorted(k for k in parts if k.startswith("file_content_"))
        if not metas and not contents:
            raise F.required("file_content_01")
        results = []
        with realm.lock:
            for name in contents:
                suffix = name.removeprefix("file_content_")
                headers, content = parts[name]
                meta: dict = {}
                if f"file_metadata_{suffix}" in parts:
                    try:
                        meta = json.loads(parts[f"file_metadata_{suffix}"][1] or b"{}")
                    except ValueError:
                        meta = {}
                try:
                    results.append({"Attachable": store_upload(realm, meta, headers, content)})
                except QBOFault as fault:
                    # Upload faults are embedded in a 200 (attachment/error_estimate.yml).
                    results.append({"Fault": fault.body()})
            resp = json_response({"AttachableResponse": results, "time": realm.time_text(now())})
        return remember(realm, rid, resp)

    def store_upload(realm: Realm, meta: dict, headers: dict, content: bytes) -> dict:
        ts = now()
        ops.check_attachable_refs(realm, meta.get("AttachableRef"))
        obj_id = str(5000000000000000000 + int(realm.new_id("Attachable")))
        fname = meta.get("FileName") or re.search(r'filename="([^"]*)"', headers.get("content-disposition", ""))
        fname = fname if isinstance(fname, str) else (fname.group(1) if fname else "attachment")
        expires = (datetime.fromtimestamp(ts) + timedelta(minutes=15)).strftime("%Y%m%dT%H%M%SZ")
        file = {
            "_id": obj_id,
            "FileName": fname,
            "FileAccessUri": f"/v3/company/{realm.id}/download/{obj_id}",
            "TempDownloadUri": f"{request.url_root}quickbooks/api/v3/company/{realm.id}/download/{obj_id}"
            f"?X-Amz-Expires=900&X-Amz-Date={expires}",
            "Size": len(content),
            "ContentType": meta.get("ContentType") or headers.get("content-type", "application/octet-stream"),
        }
        obj = ops.save_note(realm, meta, ts, update=False, file=file)
        realm.attachments[obj_id] = content
        return obj

    @bp.get("/v3/company/<realm_id>/download/<obj_id>")
    def download(realm_id: str, obj_id: str):
        realm = realm_or_fail()
        with realm.lock:
            obj = realm.get("Attachable", obj_id)
            content = realm.attachments.get(obj_id)
        if obj is None or content is None:
            raise F.not_found()
        return Response(content, status=200, content_type=obj.get("ContentType", "application/octet-stream"))

    @bp.route("/<path:_rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def catch_all(_rest: str):
        return unsupported()

    return bp
