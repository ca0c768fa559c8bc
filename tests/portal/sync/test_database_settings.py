"""SQLite runs the pipeline with write-ahead logging and relaxed syncing; PostgreSQL is left alone."""

from __future__ import annotations

import sqlite3

from sqlalchemy import create_engine, text


def test_sqlite_files_use_wal_normal_sync_and_a_busy_timeout(tmp_path):
    import portal.database  # noqa: F401 - registers the connect listener

    engine = create_engine(f"sqlite:///{tmp_path / 'settings.sqlite'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0
    engine.dispose()


def test_a_short_lock_wait_of_its_own_is_kept(tmp_path):
    import portal.database  # noqa: F401

    # The operation log's engine waits 50 ms at most: the setting must not lengthen it.
    engine = create_engine(f"sqlite:///{tmp_path / 'short.sqlite'}", connect_args={"timeout": 0.05})
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 50
    engine.dispose()


def test_the_apps_database_gets_the_settings_when_it_is_sqlite(app):
    from portal.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        if isinstance(raw, sqlite3.Connection):
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        else:  # PostgreSQL: its own durability settings, untouched
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
