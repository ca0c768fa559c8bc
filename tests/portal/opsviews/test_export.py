"""CSV cells: no spreadsheet formula survives, and nothing else is changed."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from portal.csvfiles import cell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


@given(st.text())
def test_no_text_cell_starts_a_formula_and_the_text_is_kept(text):
    shown = cell(text)
    assert not shown.startswith(FORMULA_STARTS)
    assert shown == text or (shown == "'" + text and text.lstrip("'").startswith(FORMULA_STARTS))
    from portal.csvfiles import uncell

    assert uncell(shown) == text


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_a_row_reads_back_as_written_but_for_the_guard(values):
    buffer = io.StringIO()
    csv.writer(buffer).writerow([cell(v) for v in values])
    (row,) = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert row == [cell(v) for v in values]


def test_numbers_dates_and_flags_are_written_plainly():
    assert cell(Decimal("-25.80")) == "-25.80"
    assert cell(-3) == "-3"
    assert cell(datetime(2026, 11, 22, 5, 4, 3, tzinfo=UTC)) == "2026-11-22 05:04:03"
    assert cell(date(2026, 11, 22)) == "2026-11-22"
    assert cell(True) == "yes" and cell(None) == ""
