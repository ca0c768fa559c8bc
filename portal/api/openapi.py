"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 description, built from the validators' own field definitions."""

from __future__ import annotations

from typing import Any

from ..security import public
from . import ingest_schema as schema
from .blueprint import bp
from .views import LINK_FIELDS, REQUIRED

_JSON_TYPES = {str: "string", int: "integer", bool: "boolean", type(None): "null"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema_: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema_}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        401: "No valid API key.",
        403: "The key is revoked or lacks the scope.",
        404: "No such organization or record.",
        409: "Conflict, nothing changed: a ledger holds the record (pushed, there with other totals, made there "
        "by hand) or may hold it (a push under way or without the ledger's answer: send it again once "
        "``ledger.state`` is no longer pending), so a change cannot follow it there (the message says what to "
        "send instead); its number is used by another document of the business unit (``conflicting_id`` names "
        "it); or a concurrent request created it.",
        422: "The body has problems; each is listed with its path.",
    }
    return {str(code): _json(_ref("Error"), words[code]) for code in codes}


def _string_props(*names: str) -> dict[str, Any]:
    return {name: {"type": "string"} for name in names}


def _document_out(fields: dict[str, schema.Field], extra: dict[str, Any]) -> dict[str, Any]:
    out = schema.object_schema(fields)
    out["properties"] = {
        **{k: v for k, v in out["properties"].items() if k not in ("pdf",)},
        "id": {"type": "string"},
        **extra,
    }
    out["required"] = ["id"]
    out["additionalProperties"] = False
    return out


_LINE_OUT = {
    "type": "object",
    "properties": {
        "position": {"type": "integer"},
        "description": {"type": "string"},
        "product": {"type": ["string", "null"]},
        "tax_kind": {"type": "string", "enum": list(schema.TAX_KINDS)},
        **_string_props("quantity", "unit_price", "tax_rate", "net_amount", "tax_amount"),
    },
}

#: Resource name in the path → (schema name, field definitions, response extras, tag).
RESOURCES: dict[str, tuple[str, dict[str, schema.Field], dict[str, Any]]] = {
    "customers": ("Customer", schema.CUSTOMER_FIELDS, _string_props("created_at", "updated_at")),
    "products": ("Product", schema.PRODUCT_FIELDS, _string_props("updated_at")),
    "invoices": (
        "Invoice",
        schema.INVOICE_FIELDS,
        {
            **_string_props("status", "amount_paid", "created_at", "updated_at", "subtotal", "tax_total", "total"),
            "lines": {"type": "array", "items": _LINE_OUT},
            "pdf_bytes": {"type": ["integer", "null"]},
        },
    ),
    "credit-notes": (
        "CreditNote",
        schema.CREDIT_NOTE_FIELDS,
        {
            **_string_props("customer", "created_at", "updated_at", "subtotal", "tax_total", "total"),
            "business_unit": {"type": "integer"},
            "lines": {"type": "array", "items": _LINE_OUT},
        },
    ),
    "payments": ("Payment", schema.PAYMENT_FIELDS, _string_props("amount", "created_at")),
}


#: Resources whose GET answers the ledger status → its status schema.
STATUS_RESOURCES = {"invoices": "InvoiceLedgerStatus", "credit-notes": "LedgerStatus"}
_NULLABLE_STRING = {"type": ["string", "null"]}


def _ledger_status(*, invoice: bool) -> dict[str, Any]:
    """Return the schema of a document's ``ledger`` member (portal.api.ledger_status.ledger_json)."""
    props: dict[str, Any] = {
        "provider": {"type": "string", "enum": ["exact-online", "quickbooks", "bexio"]},
        "ledger": {"type": "string", "description": "The ledger's name."},
        "state": {
            "type": "string",
            "enum": ["waiting", "pending", "pushed", "differs", "failed", "skipped", "needs_action", "dismissed"],
            "description": "waiting: the connection is not live yet, nothing is pushed automatically until support "
            "takes it live (error says so); pending: on its way; pushed: in the ledger, its totals equal to the "
            "SaaS's; differs: in the ledger, but its totals there differ from the SaaS's (error gives both; not "
            "finalized or sent); failed / needs_action: someone must act (see error; a document at a rate without "
            "a tax code, or that the ledger would total differently, is held before anything is written, and "
            "pushed once the mapping or the document changes); skipped: the ledger cannot take it (error says "
            "the manual step); dismissed: taken off the lists by a person (resolution).",
        },
        "number": {**_NULLABLE_STRING, "description": "The ledger's document number, to show in the SaaS."},
        "external_id": {**_NULLABLE_STRING, "description": "The ledger's id of the document."},
        "error": {**_NULLABLE_STRING, "description": "Why it is not pushed, in plain words with the ledger's text."},
        "pushed_at": {**_NULLABLE_STRING, "format": "date-time"},
        "resolution": {"type": ["string", "null"], "enum": ["resolved_manually", "ignored", None]},
    }
    if invoice:
        props["pdf"] = {
            "type": "object",
            "properties": {
                "state": {"type": ["string", "null"], "enum": ["attached", "not_supported", "no_pdf", "failed", None]},
                "attachment_id": _NULLABLE_STRING,
                "error": _NULLABLE_STRING,
            },
        }
        props["finalized_at"] = {**_NULLABLE_STRING, "format": "date-time"}
        props["sent"] = {
            "type": "object",
            "description": "Whether the ledger made the invoice final and e-mailed it (ledger sending). not_sent: "
            "numbered by the ledger but not e-mailed (error says why and what fixes it); it is never reported sent "
            "until the ledger says so.",
            "properties": {
                "state": {
                    "type": ["string", "null"],
                    "enum": ["finalized", "sent", "not_sent", "not_supported", "failed", None],
                },
                "sent_at": {**_NULLABLE_STRING, "format": "date-time"},
                "error": _NULLABLE_STRING,
            },
        }
        props["paid_status"] = {"type": "string", "enum": ["open", "partially_paid", "paid"]}
        props["amount_paid"] = {"type": "string"}
    return {"type": "object", "required": ["provider", "state"], "properties": props}


def _link_input() -> dict[str, Any]:
    props = {}
    for name, types in LINK_FIELDS.items():
        names = [_JSON_TYPES[t] for t in types]
        props[name] = {"type": names[0] if len(names) == 1 else names}
    return {"type": "object", "properties": props, "required": list(REQUIRED), "additionalProperties": False}


def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of /api/v1."""
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["status", "message"],
                    "properties": {
                        "status": {"type": "integer"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                        "conflicting_id": {
                            "type": "string",
                            "description": "The SaaS id of the document that has this number already (409).",
                        },
                        "problems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["path", "message"],
                                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                            },
                        },
                    },
                }
            },
        },
        "Organization": {
            "type": "object",
            "properties": {
                **_string_props("id", "name", "country"),
                "business_units": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "integer"},
                            **_string_props("name", "country", "currency"),
                            "vat_number": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        },
        "AuthorizationLinkInput": _link_input(),
        "AuthorizationLink": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                **_string_props("status", "organization_id", "provider", "expires_at", "requested_for", "url"),
                "business_unit_id": {"type": "integer"},
                "events": {"type": "array", "items": {"type": "object"}},
            },
        },
    }
    org_param = {"name": "org_id", "in": "path", "required": True, "schema": {"type": "string"}}
    id_param = {
        "name": "external_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": schema.ID_MAX},
    }
    link_param = {"name": "link_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    ingest_security = [{"apiKey": ["ingest"]}]
    links_security = [{"apiKey": ["links"]}]
    paths: dict[str, Any] = {
        "/api/v1/organizations/{org_id}": {
            "get": {
                "operationId": "showOrganization",
                "summary": "An organization with its business units (whose ids documents name).",
                "tags": ["ingestion"],
                "security": ingest_security,
                "parameters": [org_param],
                "responses": {"200": _json(_ref("Organization"), "The organization."), **_errors(401, 403, 404)},
            }
        },
        "/api/v1/authorization-links": {
            "post": {
                "operationId": "createAuthorizationLink",
                "tags": ["authorization links"],
                "security": links_security,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("AuthorizationLinkInput")}},
                },
                "responses": {
                    "201": _json(_ref("AuthorizationLink"), "Created; the url (with its token) appears only here."),
                    **_errors(401, 403, 404, 409, 422),
                },
            }
        },
        "/api/v1/authorization-links/{link_id}": {
            "get": {
                "operationId": "showAuthorizationLink",
                "tags": ["authorization links"],
                "security": links_security,
                "parameters": [link_param],
                "responses": {"200": _json(_ref("AuthorizationLink"), "The link."), **_errors(401, 403, 404)},
            }
        },
        "/api/v1/authorization-links/{link_id}/revoke": {
            "post": {
                "operationId": "revokeAuthorizationLink",
                "tags": ["authorization links"],
                "security": links_security,
                "parameters": [link_param],
                "responses": {"200": _json(_ref("AuthorizationLink"), "Revoked."), **_errors(401, 403, 404, 409)},
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document.", "content": {"application/json": {}}}},
            }
        },
    }
    schemas["LedgerStatus"] = _ledger_status(invoice=False)
    schemas["InvoiceLedgerStatus"] = _ledger_status(invoice=True)
    for segment, (name, fields, extra) in RESOURCES.items():
        schemas[f"{name}Input"] = schema.object_schema(fields)
        schemas[name] = _document_out(fields, extra)
        path = f"/api/v1/organizations/{{org_id}}/{segment}/{{external_id}}"
        paths[path] = {
            "put": {
                "operationId": f"put{name}",
                "summary": f"Create or update a {name} by the SaaS's id (idempotent).",
                "tags": ["ingestion"],
                "security": ingest_security,
                "parameters": [org_param, id_param],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(f"{name}Input")}}},
                "responses": {
                    "200": _json(_ref(name), "Updated, or unchanged (the same body again)."),
                    "201": _json(_ref(name), "Created."),
                    **_errors(401, 403, 404, 409, 422),
                },
            }
        }
        if segment in STATUS_RESOURCES:
            status_schema = STATUS_RESOURCES[segment]
            schemas[f"{name}WithLedger"] = {
                "allOf": [
                    _ref(name),
                    {
                        "type": "object",
                        "required": ["ledger"],
                        "properties": {"ledger": {"oneOf": [_ref(status_schema), {"type": "null"}]}},
                    },
                ]
            }
            paths[path]["get"] = {
                "operationId": f"show{name}",
                "summary": f"A {name} with where it is in the ledger: state, the ledger's number, error, "
                + ("PDF, sending and payment state." if segment == "invoices" else "and id."),
                "tags": ["status"],
                "security": ingest_security,
                "parameters": [org_param, id_param],
                "responses": {
                    "200": _json(_ref(f"{name}WithLedger"), "The document; ledger is null before any push."),
                    **_errors(401, 403, 404),
                },
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ledgerlink API",
            "version": "1",
            "description": "Ingestion of the SaaS's billing records, where each document is in the ledger "
            "(its number there, errors, sending and payment state), and authorization links. "
            "Amounts are answered as decimal strings; they are accepted as JSON numbers or decimal strings.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key (llk_…)."}},
        },
    }


@bp.get("/openapi.json")
@public
def openapi_document():
    return document()
