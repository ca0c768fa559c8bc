"""Indexes for the ops console's connection list: trigram indexes for its search, connections by unit.

The search matches its words anywhere in a name (``ILIKE '%words%'``). On PostgreSQL, GIN indexes
with ``gin_trgm_ops`` (extension pg_trgm) answer such matches without reading every row. SQLite has
no such index: there the same names get plain indexes, so the schema matches the models on both.
Connections are also indexed by business unit, for the list sorted by organization and for the
connections of the organizations and units a search found.

Revision ID: e6f1a3b5c7d9
Revises: d4a7c1e9b2f6
Create Date: 2026-11-22 07:40:00
"""

from alembic import op

revision = "e6f1a3b5c7d9"
down_revision = "d4a7c1e9b2f6"
branch_labels = None
depends_on = None

#: (index, table, column) searched by the connection list.
TRIGRAM_INDEXES = (
    ("ix_organization_name_trgm", "organization", "name"),
    ("ix_organization_external_id_trgm", "organization", "external_id"),
    ("ix_business_unit_name_trgm", "business_unit", "name"),
    ("ix_connection_company_name_trgm", "connection", "external_company_name"),
    ("ix_connection_company_number_trgm", "connection", "external_company_number"),
    ("ix_connection_company_id_trgm", "connection", "external_company_id"),
)


def upgrade():
    op.create_index("ix_connection_business_unit_id", "connection", ["business_unit_id"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in TRIGRAM_INDEXES:
        if postgresql:
            op.create_index(name, table, [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})
        else:
            op.create_index(name, table, [column])


def downgrade():
    for name, table, _ in reversed(TRIGRAM_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index("ix_connection_business_unit_id", table_name="connection")
