"""JSON API v1. Every route declares the scope its key needs (``api_key_required``)."""

from __future__ import annotations

import re
from typing import Any

from flask import g
from sqlalchemy import select

from ..extensions import db
from ..links import services as links
from ..links.services import LinkError
from ..models import AuthorizationLink, BusinessUnit, Organization
from . import jsonbody
from .auth import api_key_required
from .blueprint import bp
from .ingest_schema import _CONTROL_CLASS

#: Fields of POST /authorization-links and the JSON types they take.
LINK_FIELDS: dict[str, tuple[type, ...]] = {
    "organization_id": (str,),
    "business_unit_id": (int,),
    "provider": (str,),
    "region": (str, type(None)),
    "expected_company_id": (str, type(None)),
    "expires_in_days": (int,),
    "note": (str,),
    "requested_for": (str,),
    "notify_email": (str, type(None)),
    "email_to": (str, type(None)),
    "replace_existing": (bool,),
}
REQUIRED = ("organization_id", "provider", "requested_for")
TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", type(None): "null"}


_CONTROL = re.compile(_CONTROL_CLASS)


class PayloadError(Exception):
    """A request body that cannot be used; answered 422 with the field at fault."""

    def __init__(self, message: str, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


@bp.errorhandler(PayloadError)
def payload_error(exc: PayloadError):
    db.session.rollback()
    body: dict[str, Any] = {"status": exc.status, "message": exc.message}
    if exc.field:
        body["field"] = exc.field
    return {"error": body}, exc.status


def _actor() -> str:
    return f"api:{g.api_client.name}"


def _payload() -> dict[str, Any]:
    try:
        data = jsonbody.parse()
    except jsonbody.BodyError as exc:
        raise PayloadError(exc.message, None if exc.path == "(body)" else exc.path, status=exc.status) from None
    if not isinstance(data, dict):
        raise PayloadError("The body must be a JSON object (Content-Type: application/json).")
    unknown = sorted(set(data) - set(LINK_FIELDS))
    if unknown:
        raise PayloadError(f"Unknown field(s): {', '.join(unknown)}.", unknown[0])
    for name in REQUIRED:
        if data.get(name) in (None, ""):
            raise PayloadError(f"{name} is required.", name)
    for name, value in data.items():
        allowed = LINK_FIELDS[name]
        # bool is an int in Python; JSON true is not a number of days.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            wanted = " or ".join(TYPE_NAMES[t] for t in allowed)
            raise PayloadError(f"{name} must be {wanted}, not {type(value).__name__} {value!r}.", name)
        if isinstance(value, str) and _CONTROL.search(value):
            raise PayloadError(f"{name} must not contain control characters (such as NUL); remove them.", name)
    return data


def _business_unit(data: dict[str, Any]) -> BusinessUnit:
    org = db.session.scalar(select(Organization).filter_by(external_id=data["organization_id"]))
    if org is None:
        raise PayloadError(f"There is no organization with id {data['organization_id']!r}.", "organization_id")
    units = org.business_units
    wanted = data.get("business_unit_id")
    if wanted is None:
        if len(units) != 1:
            ids = ", ".join(f"{u.id} ({u.name})" for u in units)
            raise PayloadError(
                f"Organization {org.external_id} has {len(units)} business units; give business_unit_id, one of {ids}.",
                "business_unit_id",
            )
        return units[0]
    unit = next((u for u in units if u.id == wanted), None)
    if unit is None:
        raise PayloadError(
            f"Business unit {wanted} does not belong to organization {org.external_id}.", "business_unit_id"
        )
    return unit


def link_json(link: AuthorizationLink) -> dict[str, Any]:
    """Return a link as the API shows it (never its token)."""
    unit = link.business_unit
    return {
        "id": link.id,
        "status": link.shown_status.value,
        "organization_id": unit.organization.external_id,
        "business_unit_id": unit.id,
        "provider": link.provider,
        "region": link.region,
        "expected_company_id": link.expected_company_id,
        "expires_at": link.expires_at.isoformat(),
        "requested_for": link.requested_for,
        "created_via": link.created_via,
        "replace_existing": link.replace_existing,
        "connection_id": link.connection_id,
        "replaces_id": link.replaces_id,
        "events": [{"kind": e.kind.value, "at": e.at.isoformat(), "detail": e.detail} for e in link.events],
    }


def _get_link(link_id: int) -> AuthorizationLink:
    link = db.session.get(AuthorizationLink, link_id)
    if link is None:
        raise PayloadError(f"There is no authorization link {link_id}.", status=404)
    return link


# -- authorization links (scope: links) ---------------------------------------------------------
@bp.post("/authorization-links")
@api_key_required("links")
def create_authorization_link():
    data = _payload()
    unit = _business_unit(data)
    try:
        link, token = links.create_link(
            unit,
            provider=data["provider"],
            region=data.get("region"),
            expected_company_id=data.get("expected_company_id"),
            expires_in_days=data.get("expires_in_days"),
            note=data.get("note", ""),
            requested_for=data["requested_for"],
            notify_email=data.get("notify_email"),
            replace_existing=data.get("replace_existing", False),
            created_via=_actor(),
            actor=_actor(),
        )
        if data.get("email_to"):
            links.email_link(link, token, data["email_to"], actor=_actor())
    except LinkError as exc:
        raise PayloadError(exc.message, exc.field, status=exc.status) from exc
    db.session.commit()
    # The URL carries the token: this answer is the only place it appears.
    return {**link_json(link), "url": links.public_url(token)}, 201, {"Cache-Control": "no-store"}


@bp.get("/authorization-links/<int:link_id>")
@api_key_required("links")
def show_authorization_link(link_id: int):
    return link_json(_get_link(link_id))


@bp.post("/authorization-links/<int:link_id>/revoke")
@api_key_required("links")
def revoke_authorization_link(link_id: int):
    link = _get_link(link_id)
    try:
        links.revoke(link, reason=f"Revoked through the API by {g.api_client.name}", actor=_actor())
    except LinkError as exc:
        db.session.commit()
        raise PayloadError(exc.message, status=exc.status) from exc
    db.session.commit()
    return link_json(link)
