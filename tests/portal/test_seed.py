"""Demo data: deterministic, valid identifiers, spread over three years, every payment outcome."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import get_cc_module
from stdnum.us import ein

from portal.demo import identifiers
from portal.demo.seed import seed_demo_data

ANCHOR = date(2026, 11, 1)


def _vat_valid(country: str, number: str) -> bool:
    return get_cc_module(country.lower(), "vat").is_valid(number)


@given(st.integers(min_value=0, max_value=2**32), st.sampled_from(sorted(identifiers.VAT_GENERATORS)))
def test_generated_vat_numbers_are_valid_in_every_format_users_type(seed, country):
    rng = random.Random(seed)
    vat = identifiers.VAT_GENERATORS[country](rng)
    module_country = "gb" if country == "GB" else country
    assert _vat_valid(module_country, vat), vat
    written = identifiers.messy(rng, vat)
    compact = written if written[:2].upper() == vat[:2] else vat[:2] + written
    assert _vat_valid(module_country, compact.upper()), written


@given(st.integers(min_value=0, max_value=2**32))
def test_generated_ein_and_siren_are_valid(seed):
    from stdnum.fr import siren

    rng = random.Random(seed)
    assert ein.is_valid(identifiers.us_ein(rng))
    assert siren.is_valid(identifiers.fr_siren(rng))


def _snapshot(db):
    from portal.models import Customer, Invoice, Organization

    orgs = db.session.execute(
        db.select(Organization.name, Organization.country).order_by(Organization.external_id)
    ).all()
    customers = db.session.execute(db.select(Customer.name, Customer.vat_number).order_by(Customer.external_id)).all()
    invoices = db.session.execute(db.select(Invoice.number, Invoice.total).order_by(Invoice.external_id)).all()
    return orgs, customers, invoices


def test_same_seed_gives_the_same_data(app, db):
    seed_demo_data(orgs=8, seed=3, anchor=ANCHOR)
    first = _snapshot(db)
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()
    seed_demo_data(orgs=8, seed=3, anchor=ANCHOR)
    assert _snapshot(db) == first


def test_demo_data_is_realistic(app, db):
    from portal.models import CreditNote, Customer, Invoice, InvoiceLine, InvoiceStatus, Organization, Payment

    counts = seed_demo_data(orgs=16, seed=11, anchor=ANCHOR)
    assert counts["organizations"] == 16
    countries = set(db.session.scalars(db.select(Organization.country)))
    assert countries == {"NL", "BE", "DE", "GB", "US", "ES", "FR", "CH"}

    customers = db.session.scalars(db.select(Customer)).all()
    with_vat = [c for c in customers if c.vat_number]
    assert len(with_vat) > len(customers) / 2
    for c in with_vat:
        compact = c.vat_number.replace(" ", "").replace(".", "").upper()
        prefix = c.country if c.country != "CH" else "CHE"
        number = compact if compact.startswith(prefix[:2]) else c.country + compact
        assert _vat_valid(c.country, number), (c.country, c.vat_number)
    assert any(c.coc_number for c in customers) and any(c.email for c in customers)
    assert any(c.vat_number and " " in c.vat_number for c in customers)  # typed the way users do

    dates = list(db.session.scalars(db.select(Invoice.issue_date)))
    assert min(dates) < ANCHOR - timedelta(days=2 * 365) and max(dates) > ANCHOR - timedelta(days=60)
    assert max(dates) <= ANCHOR

    for invoice in db.session.scalars(db.select(Invoice).limit(50)):
        assert invoice.total == invoice.subtotal + invoice.tax_total
        assert invoice.subtotal == sum(line.net_amount for line in invoice.lines)
    rates = set(db.session.scalars(db.select(InvoiceLine.tax_rate)))
    assert len(rates) >= 4
    mixed = db.session.execute(
        db.select(InvoiceLine.invoice_id)
        .group_by(InvoiceLine.invoice_id)
        .having(db.func.count(db.distinct(InvoiceLine.tax_rate)) > 1)
    ).first()
    assert mixed is not None

    statuses = set(db.session.scalars(db.select(Invoice.status)))
    assert statuses == {InvoiceStatus.open, InvoiceStatus.partially_paid, InvoiceStatus.paid}
    for invoice in db.session.scalars(db.select(Invoice).where(Invoice.status != InvoiceStatus.open).limit(50)):
        assert invoice.amount_paid == sum(p.amount for p in invoice.payments)
    assert db.session.scalar(db.select(db.func.count(Payment.id))) > 0
    note = db.session.scalars(db.select(CreditNote)).first()
    assert note is not None and note.invoice.customer_id == note.customer_id


def test_seeding_the_same_seed_twice_is_refused_and_if_empty_skips(app, db):
    from portal.demo.seed import DemoSeedError

    seed_demo_data(orgs=2, seed=5, anchor=ANCHOR)
    with pytest.raises(DemoSeedError, match="seed 5 exists already"):
        seed_demo_data(orgs=2, seed=5, anchor=ANCHOR)
    assert seed_demo_data(orgs=2, seed=6, if_empty=True) is None
