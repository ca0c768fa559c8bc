"""`flask db upgrade` on an empty database gives exactly the models' schema."""

from __future__ import annotations

import uuid

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy.engine import make_url


def _empty_database(database_url: str, tmp_path) -> tuple[str, callable]:
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        return f"sqlite:///{tmp_path / 'drift.sqlite'}", lambda: None
    name = f"ledgerlink_drift_{uuid.uuid4().hex[:8]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.set(database=name).render_as_string(hide_password=False), drop


def test_upgrade_on_an_empty_database_matches_the_models(database_url, tmp_path):
    from portal import create_app
    from portal.extensions import db

    url, drop = _empty_database(database_url, tmp_path)
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "EMBEDDED_WORKER": False, "REDIS_URL": ""})
        with app.app_context():
            upgrade()
            with db.engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"compare_type": True})
                diff = compare_metadata(context, db.metadata)
            db.engine.dispose()
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        drop()


def test_connections_that_exist_before_the_go_live_gate_migrate_as_live(database_url, tmp_path):
    import sqlalchemy as sa

    from portal import create_app
    from portal.extensions import db

    url, drop = _empty_database(database_url, tmp_path)
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "EMBEDDED_WORKER": False, "REDIS_URL": ""})
        with app.app_context():
            upgrade(revision="9d3e5f7a1b2c")
            with db.engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO organization (external_id, name, country, created_at) "
                        "VALUES ('o-1', 'Old Org', 'NL', '2025-01-01 00:00:00+00:00')"
                    )
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO business_unit (organization_id, name, country, currency, created_at) "
                        "VALUES (1, 'Old Unit', 'NL', 'EUR', '2025-01-01 00:00:00+00:00')"
                    )
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO connection (business_unit_id, provider, status, status_changed_at, sync_from, "
                        "settings, created_at, connected_at) VALUES (1, 'bexio', 'connected', "
                        "'2025-02-01 00:00:00+00:00', '2025-02-01 00:00:00+00:00', '{}', "
                        "'2025-02-01 00:00:00+00:00', '2025-02-01 10:00:00+00:00')"
                    )
                )
            upgrade()
            with db.engine.connect() as conn:
                live_since = conn.execute(sa.text("SELECT live_since FROM connection")).scalar_one()
            db.engine.dispose()
        assert live_since is not None and str(live_since).startswith("2025-02-01 10:00")
    finally:
        drop()
