"""The failure queue: held records grouped by cause, and the held records of a group."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    func,
    select,
)

from ...extensions import db
from ...models import (
    BusinessUnit,
    Connection,
    ExternalRecord,
    Organization,
    RecordState,
)
from .cache import held_cached, held_fingerprint
from .common import HELD, aware, join_owners, matches, waiting_since, with_connection

# -- failures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureFilters:
    """Which held records a failure list shows."""

    error_class: str = ""
    provider: str = ""
    #: The exact last error text (a group's key); "" for any.
    text: str | None = None
    q: str = ""
    state: RecordState | None = None

    def args(self) -> dict[str, str]:
        """Return the filters as query arguments."""
        raw = {
            "error_class": self.error_class,
            "provider": self.provider,
            "text": self.text or "",
            "q": self.q,
            "state": self.state.value if self.state else "",
        }
        return {k: v for k, v in raw.items() if v}


@dataclass
class FailureGroup:
    """Held records sharing a cause: error class, provider and the error's words."""

    error_class: str
    provider: str
    text: str
    records: int
    organizations: int
    connections: int
    oldest: datetime | None
    #: One connection and organization of the group (the only ones when ``connections`` is 1).
    connection_id: int | None = None
    organization_id: int | None = None


@dataclass
class ErrorClassGroup:
    """One error class with its groups."""

    error_class: str
    records: int = 0
    groups: list[FailureGroup] = field(default_factory=list)
    organization_ids: set = field(default_factory=set)


def _held_where(f: FailureFilters) -> list:
    conditions: list[ColumnElement[bool]] = (
        [ExternalRecord.state == f.state] if f.state else [ExternalRecord.state.in_(HELD)]
    )
    if f.error_class:
        conditions.append(
            ExternalRecord.last_error_class.is_(None)
            if f.error_class == "unclassified"
            else ExternalRecord.last_error_class == f.error_class
        )
    if f.provider:
        conditions.append(Connection.provider == f.provider)
    if f.text is not None and f.text != "":
        conditions.append(ExternalRecord.last_error_text == f.text)
    if f.q:
        conditions.append(
            matches(
                f.q,
                Organization.name,
                Connection.external_company_name,
                Connection.external_company_id,
                ExternalRecord.last_error_text,
                ExternalRecord.reference,
            )
        )
    return conditions


def _failure_groups(f: FailureFilters, limit: int = 500) -> tuple[list[ErrorClassGroup], dict[str, int]]:
    """Return held records grouped by error class, then by provider and error text, and how many
    organizations each error class shown touches (one query).

    The held records are counted once per (error class, text, connection), in a common table read by
    both the groups and the organizations per class, so the records are read once and the joins to
    connections and units meet one row per connection and cause instead of one per record. On
    PostgreSQL the texts are grouped by their MD5 digest and each group's text is read from one
    sample record at the end, so the sorts and hashes carry 32 characters instead of the whole
    provider text.
    """
    error_class = ExternalRecord.last_error_class
    digest = db.session.get_bind().dialect.name == "postgresql"
    text_key = func.md5(ExternalRecord.last_error_text) if digest else ExternalRecord.last_error_text
    per_connection = select(
        error_class.label("error_class"),
        text_key.label("text_key"),
        ExternalRecord.connection_id.label("connection_id"),
        func.count().label("n"),
        func.min(waiting_since()).label("oldest"),
        func.min(ExternalRecord.id).label("sample_id"),
    ).select_from(ExternalRecord)
    if f.provider or f.q:
        per_connection = join_owners(per_connection, ExternalRecord.connection_id).join(
            Organization, BusinessUnit.organization_id == Organization.id
        )
    grouped = (
        per_connection.where(*_held_where(f))
        .group_by(error_class, text_key, ExternalRecord.connection_id)
        .cte("per_connection")
    )
    base = join_owners(select().select_from(grouped), grouped.c.connection_id)
    records = func.sum(grouped.c.n)
    groups = (
        base.add_columns(
            grouped.c.error_class.label("error_class"),
            Connection.provider.label("provider"),
            records.label("records"),
            func.count(func.distinct(BusinessUnit.organization_id)).label("organizations"),
            func.count(func.distinct(Connection.id)).label("connections"),
            func.min(grouped.c.oldest).label("oldest"),
            func.min(Connection.id).label("connection_id"),
            func.min(BusinessUnit.organization_id).label("organization_id"),
            func.min(grouped.c.sample_id).label("sample_id"),
        )
        .group_by(grouped.c.error_class, Connection.provider, grouped.c.text_key)
        .order_by(records.desc(), grouped.c.error_class, Connection.provider, grouped.c.text_key)
        .limit(limit)
        .subquery("groups")
    )
    per_class = (
        base.add_columns(
            grouped.c.error_class.label("error_class"),
            func.count(func.distinct(BusinessUnit.organization_id)).label("organizations"),
        )
        .group_by(grouped.c.error_class)
        .subquery("per_class")
    )
    sample = ExternalRecord.__table__.alias("sample")
    rows = db.session.execute(
        select(
            groups.c.error_class,
            groups.c.provider,
            sample.c.last_error_text,
            groups.c.records,
            groups.c.organizations,
            groups.c.connections,
            groups.c.oldest,
            groups.c.connection_id,
            groups.c.organization_id,
            per_class.c.organizations,
        )
        .join(sample, sample.c.id == groups.c.sample_id)
        .join(per_class, per_class.c.error_class.is_not_distinct_from(groups.c.error_class))
    ).all()
    classes: dict[str, ErrorClassGroup] = {}
    touched: dict[str, int] = {}
    rows = sorted(rows, key=lambda r: (-int(r[3]), r[0] or "", r[1], r[2] or ""))
    for cls, provider, words, n, orgs, conns, oldest, connection_id, org_id, class_orgs in rows:
        cls, words, n = cls or "unclassified", words or "", int(n)
        group = classes.setdefault(cls, ErrorClassGroup(cls))
        group.records += n
        group.groups.append(FailureGroup(cls, provider, words, n, orgs, conns, aware(oldest), connection_id, org_id))
        touched[cls] = class_orgs
    ordered = sorted(classes.values(), key=lambda g: (-g.records, g.error_class))
    return ordered, touched


def failure_groups(f: FailureFilters, limit: int = 500) -> tuple[list[ErrorClassGroup], dict[str, int]]:
    """Return held records grouped by error class, then by provider and error text, and how many
    organizations each error class touches.

    The groups are kept in Redis for as long as the held records stay the same (see
    :func:`held_fingerprint`): one query when nothing changed, two when something did.
    """
    return held_cached(
        "groups",
        held_fingerprint(),
        {**f.args(), "text": f.text, "limit": limit},
        lambda: _failure_groups(f, limit),
        _encode_groups,
        _decode_groups,
    )


def _encode_groups(value: tuple[list[ErrorClassGroup], dict[str, int]]) -> dict:
    classes, touched = value
    return {
        "classes": [
            {
                "error_class": c.error_class,
                "records": c.records,
                "groups": [{**g.__dict__, "oldest": g.oldest.isoformat() if g.oldest else None} for g in c.groups],
            }
            for c in classes
        ],
        "touched": touched,
    }


def _decode_groups(raw: dict) -> tuple[list[ErrorClassGroup], dict[str, int]]:
    classes = [
        ErrorClassGroup(
            c["error_class"],
            c["records"],
            [FailureGroup(**{**g, "oldest": aware(g["oldest"])}) for g in c["groups"]],
        )
        for c in raw["classes"]
    ]
    return classes, raw["touched"]


def held_records_query(f: FailureFilters) -> Select:
    """Return held records matching ``f`` with connection, unit and organization, oldest first."""
    return with_connection().where(*_held_where(f)).order_by(waiting_since(), ExternalRecord.id)


def held_ids_query(f: FailureFilters) -> Select:
    """Return the ids of the held records matching ``f`` (for bulk actions on a whole group)."""
    return (
        join_owners(select(ExternalRecord), ExternalRecord.connection_id)
        .join(Organization, BusinessUnit.organization_id == Organization.id)
        .where(*_held_where(f))
        .order_by(ExternalRecord.id)
    )
