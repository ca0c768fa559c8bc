"""Declarative base with named constraints and shared column helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, MetaData, Numeric, TypeDecorator
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
#: Tax rates in percent, e.g. 21.00.
Rate = Numeric(5, 2, asdecimal=True)

ZERO = Decimal("0.00")


class Base(DeclarativeBase):
    """Base of every model; constraint names follow NAMING_CONVENTION."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
