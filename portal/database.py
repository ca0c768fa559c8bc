"""Declarative base with named constraints, shared column helpers, and the SQLite connection settings."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, Engine, MetaData, Numeric, TypeDecorator, event
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored with its time zone on PostgreSQL and read back as aware UTC everywhere."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:  # SQLite keeps no zone
            value = value.replace(tzinfo=UTC)
        return value


#: Money: 2 decimals, amounts up to 999,999,999,999.99.
Money = Numeric(14, 2, asdecimal=True)
#: Quantities and unit prices: 4 decimals.
Quantity = Numeric(14, 4, asdecimal=True)
#: Tax rates in percent, e.g. 21.000 or 8.875 (US sales tax rates have three decimals).
Rate = Numeric(6, 3, asdecimal=True)

ZERO = Decimal("0.00")


class Base(DeclarativeBase):
    """Base of every model; constraint names follow NAMING_CONVENTION."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: Milliseconds a SQLite connection waits for another's write before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 5000


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """Tune SQLite (embedded, dev and test databases; PostgreSQL is left alone).

    Write-ahead logging lets readers (pages, the scheduler) read while a worker writes, and with
    ``synchronous=NORMAL`` a commit no longer waits for the disk: WAL keeps the database
    consistent after a crash of the process; only the last commits before a power loss can be
    lost. A connection given no lock wait by its engine waits :data:`SQLITE_BUSY_TIMEOUT_MS`; one
    given its own (the operation log's short one) keeps it.
    """
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        if cursor.execute("PRAGMA database_list").fetchone()[2]:  # a file, not :memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not cursor.execute("PRAGMA busy_timeout").fetchone()[0]:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
