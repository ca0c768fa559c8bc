"""The JSON API with every route on its blueprint: the app registers :data:`bp` from here."""

from __future__ import annotations

from . import ingest, ledger_status, openapi, views
from .blueprint import bp

__all__ = ["bp", "ingest", "ledger_status", "openapi", "views"]
