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
