"""How the audit trail words mapping and settings changes: a first value is "set", not a change from None."""

from __future__ import annotations

from portal import audit
from portal.models import AuditEvent

from .conftest import GOOD_DEFAULTS


def _summaries(db, connection_id: int, kind: str) -> list[str]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            db.select(AuditEvent.summary)
            .where(AuditEvent.subject_id == connection_id, AuditEvent.kind == kind)
            .order_by(AuditEvent.id)
        )
    )


def test_change_words_say_set_cleared_or_changed():
    assert audit.change_words("qbo tax mode", None, "non_us") == "qbo tax mode set to non_us"
    assert audit.change_words("Item", "", "4000") == "Item set to 4000"
    assert audit.change_words("due days", 14, None) == "due days cleared (was 14)"
    assert audit.change_words("qbo tax mode", "non_us", "us") == "qbo tax mode non_us → us"
    assert audit.change_words("auto send", False, True) == "auto send off → on"
    assert (
        audit.describe_changes({"a_b": None, "same": 1, "c": 2}, {"a_b": "x", "same": 1, "c": 3})
        == "a b set to x, c 2 → 3"
    )


def test_saving_quickbooks_defaults_the_first_time_reads_as_set(db, connect):
    mapper = connect("quickbooks")
    saved = mapper.save_defaults(**GOOD_DEFAULTS["quickbooks"], qbo_tax_mode="non_us", due_days="14")
    assert saved.status_code == 302, saved.get_data(as_text=True)

    (settings,) = _summaries(db, mapper.id, "mapping.settings_changed")
    assert "qbo tax mode set to non_us" in settings and "due days set to 14" in settings
    assert "None" not in settings and "→" not in settings
    (codes,) = _summaries(db, mapper.id, "mapping.changed")
    assert "set to 1" in codes and "—" not in codes and "None" not in codes

    # A real change still shows both sides.
    mapper.save_defaults(**GOOD_DEFAULTS["quickbooks"], qbo_tax_mode="us", due_days="14")
    latest = _summaries(db, mapper.id, "mapping.settings_changed")[-1]
    assert "qbo tax mode non_us → us" in latest and "due days" not in latest


def test_the_audit_log_shows_a_first_value_as_set():
    from portal.opsviews.auditlog import change_text

    assert change_text({"qbo_tax_mode": None}, {"qbo_tax_mode": "non_us"}) == "qbo_tax_mode: set to non_us"
    assert change_text({}, {"due_days": 14}) == "due_days: set to 14"
    assert change_text({"item": "OLD"}, {"item": None}) == "item: cleared (was OLD)"
    assert change_text({"item": "OLD"}, {"item": "NEW"}) == "item: OLD → NEW"
