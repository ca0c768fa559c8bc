"""The tax table on the mappings page: rows per invoiced rate, prefilled codes, codes at another rate refused."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.mappings.taxes import RateKey, percent

from .conftest import GOOD_DEFAULTS


def _rows(page: str) -> dict[str, str]:
    """Return each tax table row's state by its rate label."""
    return dict(re.findall(r'<tr id="tax-[^"]+-row" data-rate="([^"]+)" data-state="(\w+)"', page))


def test_the_table_lists_the_invoiced_rates_prefills_the_held_ones_and_maps_them(connect, db):
    from portal.models import AuditEvent, TaxMapping

    mapper = connect("exact-online")
    mapper.save_defaults(**GOOD_DEFAULTS["exact-online"])
    page = html.unescape(mapper.page())

    # The demo unit invoices at 21 and 9 % (0 % now and then): 21 % is the default VAT code's, 9 % is held.
    rows = _rows(page)
    assert (rows["21 %"], rows["9 %"]) == ("ok", "held")
    assert set(rows) <= {"21 %", "9 %", "0 % zero-rated"}
    assert re.search(
        r'<select id="tax-9.000-standard"[^>]*>.*?<option value="1" selected>1 9% btw laag \(9 %\)', page, re.S
    )
    assert '2 <small class="muted">(connection default)</small>' in page

    saved = mapper.flow.post(f"{mapper.base}/taxes", **{"tax-9.000-standard": "1", "tax-0.000-zero": "0"})
    assert saved.status_code == 302 and saved.headers["Location"].endswith("#tax-table")
    mapped = {(str(m.rate.normalize()), m.kind): m.value for m in db.session.scalars(db.select(TaxMapping))}
    assert mapped == {("9", "standard"): "1", ("0", "zero"): "0"}
    assert set(_rows(html.unescape(mapper.page())).values()) == {"ok"}
    assert "0 % zero-rated" in _rows(html.unescape(mapper.page()))  # mapped: listed, invoiced or not
    event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.kind == "mapping.changed")).all()[-1]
    assert event.summary == "Tax table changed: 0 % zero-rated set to 0, 9 % set to 1"


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"tax-9.000-standard": "2"}, "9 %: VAT code 2 21% btw hoog (21 %) is at 21 %, not 9 %: choose one at 9 %."),
        ({"tax-9.000-standard": "77"}, "VAT code “77” does not exist in Exact Online"),
        ({"new_rate": "8.875", "new_code": "1"}, "Exact Online keeps tax percentages to 2 decimals"),
        ({"new_rate": "nine", "new_code": "1"}, "must be a percentage from 0 to 100 with at most 3 decimals"),
        ({"new_rate": "-9", "new_code": "1"}, "must be a percentage from 0 to 100 with at most 3 decimals"),
        ({"new_rate": "17", "new_code": "1"}, "is at 9 %, not 17 %"),
        ({"new_rate": "12"}, "Choose the tax code for the rate to add."),
    ],
)
def test_a_code_that_cannot_book_the_rate_is_refused_and_nothing_is_saved(connect, db, form, words):
    from portal.models import TaxMapping

    mapper = connect("exact-online")
    refused = mapper.flow.post(f"{mapper.base}/taxes", **{"tax-0.000-zero": "0", **form})

    assert refused.status_code == 400
    assert words in html.unescape(refused.get_data(as_text=True))
    assert db.session.scalars(db.select(TaxMapping)).all() == []  # not even the good row


def test_quickbooks_us_maps_no_zero_rate_its_lines_go_as_non(connect):
    mapper = connect("quickbooks")
    refused = mapper.flow.post(f"{mapper.base}/taxes", **{"new_rate": "0", "new_kind": "exempt", "new_code": "2"})
    assert refused.status_code == 400
    assert "0 % lines go to QuickBooks US as NON (not taxable): there is nothing to map." in html.unescape(
        refused.get_data(as_text=True)
    )


def test_the_check_lists_every_rate_that_would_hold_documents_with_the_fix(connect, db):
    mapper = connect("exact-online")
    mapper.save_defaults(**GOOD_DEFAULTS["exact-online"])
    body = html.unescape(mapper.preflight())

    assert "Lines at 9 %; no VAT code is mapped to 9 %: map 9 % to one of Exact Online's VAT codes" in body
    assert "of the last 12 months would be held" in body
    assert f'href="/connections/{mapper.id}/mappings#tax-table">Map the rate in the tax table' in body
    mapper.flow.post(f"{mapper.base}/taxes", **{"tax-9.000-standard": "1", "tax-0.000-zero": "0"})
    again = html.unescape(mapper.preflight())
    assert "Lines at 9 %" not in again and "Lines at 0 %" not in again


@given(st.decimals(min_value=0, max_value=100, places=3), st.sampled_from(["zero", "exempt", "reverse_charge"]))
def test_a_row_key_survives_its_form_field(rate, kind):
    key = RateKey.of(rate, kind)
    assert RateKey.parse(key.field) == key
    assert key.label.startswith(f"{percent(rate)} %")
    assert (key.kind == "standard") == (rate > 0)
    assert RateKey.parse(key.field.replace("tax-", "tax-x")) is None


def test_a_rate_is_written_as_people_write_it():
    assert [percent(Decimal(r)) for r in ("21.000", "8.100", "20", "0.000", "8.875")] == [
        "21",
        "8.1",
        "20",
        "0",
        "8.875",
    ]
