"""A text saved on the mappings page under its former key reaches the push after the upgrade, nothing lost."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from portal.models import Connection
from portal.sync import push

MIGRATION = next(Path(__file__).resolve().parents[3].glob("migrations/versions/a3c5e7f9b1d2_*.py"))


def _migration():
    spec = importlib.util.spec_from_file_location("email_text_migration", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _upgrade_with(app, db, cid: int, settings: dict) -> Connection:
    """Give the connection these settings, run the migration's data move, return it as stored then."""
    with app.app_context():
        connection = db.session.get(Connection, cid)
        connection.settings = {**(connection.settings or {}), **settings}
        db.session.commit()
        with db.engine.begin() as bind:
            assert _migration().move_email_texts(bind) >= 1
        db.session.expire_all()
        return db.session.get(Connection, cid)


def test_a_mappings_page_text_becomes_the_connection_text_unless_it_has_its_own(app, db, connect):
    cid = connect("bexio", refresh=False).id

    moved = _upgrade_with(app, db, cid, {"invoice_email_text": "Hello [Network Link]", "email_message": None})
    assert push.email_message(moved) == "Hello [Network Link]"
    assert "invoice_email_text" not in moved.settings

    kept = _upgrade_with(app, db, cid, {"invoice_email_text": "Old [Network Link]"})
    assert push.email_message(kept) == "Hello [Network Link]"  # the connection's own text wins
    assert "invoice_email_text" not in kept.settings
