"""The blueprint of the JSON API v1: the route modules (views, ingest, ledger_status, openapi) add to it."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
