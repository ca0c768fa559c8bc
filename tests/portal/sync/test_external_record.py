"""ExternalRecord's life cycle: one transition function that refuses illegal moves."""

from __future__ import annotations

import pytest

from portal.models import ExternalRecord, IllegalTransition, RecordState


def test_pushed_is_final_and_errors_clear_once_pushed():
    record = ExternalRecord(state=RecordState.pending)
    record.transition(RecordState.failed, error_class="validation", error_text="refused")
    assert (record.last_error_class, record.last_error_text) == ("validation", "refused")
    record.transition(RecordState.pending)
    record.transition(RecordState.pushed)
    assert record.pushed_at is not None and record.last_error_class is None and record.last_error_text is None
    with pytest.raises(IllegalTransition):
        record.transition(RecordState.pending)


@pytest.mark.parametrize("held", [RecordState.failed, RecordState.skipped, RecordState.needs_action])
def test_held_records_only_go_back_to_pending(held):
    record = ExternalRecord(state=held)
    with pytest.raises(IllegalTransition):
        record.transition(RecordState.pushed)
    record.transition(RecordState.pending)
    assert record.state is RecordState.pending


@pytest.mark.parametrize("held", [RecordState.failed, RecordState.skipped, RecordState.needs_action])
def test_a_held_record_is_dismissed_with_a_resolution_and_can_be_taken_back(held):
    from portal.models.external_record import Resolution

    record = ExternalRecord(state=held)
    with pytest.raises(ValueError, match="resolution"):
        record.transition(RecordState.dismissed)
    record.transition(RecordState.dismissed, resolution=Resolution.resolved_manually, note="Booked by hand")
    assert (record.state, record.resolution, record.resolution_note) == (
        RecordState.dismissed,
        Resolution.resolved_manually,
        "Booked by hand",
    )
    assert record.resolved_at is not None
    with pytest.raises(IllegalTransition):
        record.transition(RecordState.pushed)
    record.transition(RecordState.pending)
    assert record.resolution is None and record.resolved_at is None and record.resolution_note is None


@pytest.mark.parametrize("state", [RecordState.pending, RecordState.pushed])
def test_only_held_records_can_be_dismissed(state):
    record = ExternalRecord(state=state)
    with pytest.raises(IllegalTransition):
        record.transition(RecordState.dismissed, resolution="ignored")
