"""Normalisers (property tests) and the indexed matcher on messy data; pure functions, no database."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.customers import matching
from portal.customers.matching import (
    LedgerIndex,
    Party,
    email_domain,
    normalise_coc,
    normalise_emails,
    normalise_name,
    normalise_vat,
    suggest,
)
from portal.demo.identifiers import VAT_GENERATORS

COUNTRIES = sorted(VAT_GENERATORS)


def _canonical(vat: str) -> str:
    return vat.removesuffix(" MWST").replace("-", "").replace(".", "") if vat.startswith("CHE") else vat


@st.composite
def valid_vats(draw) -> tuple[str, str]:
    country = draw(st.sampled_from(COUNTRIES))
    return country, VAT_GENERATORS[country](random.Random(draw(st.integers(0, 2**32))))


@given(valid_vats(), st.data())
def test_a_valid_vat_written_any_way_round_trips_to_its_canonical_form(pair, data):
    country, vat = pair
    canonical = _canonical(vat)
    assert normalise_vat(vat) == canonical
    prefix, digits = (canonical[:3], canonical[3:]) if canonical.startswith("CHE") else (canonical[:2], canonical[2:])
    sep = data.draw(st.sampled_from(["", " ", ".", "-", "  "]))
    spaced = sep.join(digits[i : i + 3] for i in range(0, len(digits), 3))
    variants = [
        canonical.lower(),
        f" {prefix} {spaced} ",
        prefix.lower() + spaced,
    ]
    for written in variants:
        assert normalise_vat(written) == canonical, written
    # Without its prefix it is read as a number of the customer's country.
    assert normalise_vat(spaced, country) == canonical
    if country == "CH":
        assert normalise_vat(vat.replace("MWST", "TVA")) == canonical


@given(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=3)))
@settings(max_examples=300)
def test_vat_normaliser_never_crashes_on_junk(value, country):
    result = normalise_vat(value, country)
    assert result is None or (result.isalnum() and result == result.upper())


def test_invalid_checksums_and_unprefixed_numbers_without_country_do_not_normalise():
    assert normalise_vat("NL123456789B01") is None  # fails the 11-test
    assert normalise_vat("123456782B01") is None  # no prefix, no country
    assert normalise_vat("123456782B01", "NL") == "NL123456782B01"
    assert normalise_vat("EL094259216") == normalise_vat("094259216", "GR") == "EL094259216"
    assert normalise_vat("BE 0403.019.261") == "BE0403019261"
    assert normalise_vat(None) is None and normalise_vat("") is None


@given(st.text(max_size=60))
def test_name_normaliser_is_idempotent_and_never_crashes(name):
    once = normalise_name(name)
    assert normalise_name(once) == once
    assert once == once.strip() and "  " not in once


@given(
    st.sampled_from(["Jansen", "Müller & Söhne", "Société Générale de Genève", "O'Neill & Sons", "Café Élan"]),
    st.sampled_from(["B.V.", "BV", "GmbH", "GmbH & Co. KG", "Ltd", "Ltd.", "SA", "S.A.", "Sàrl", "Inc.", "N.V.", "AG"]),
    st.sampled_from(["", " ", "  "]),
)
def test_legal_forms_case_and_accents_do_not_change_a_name(base, form, pad):
    assert normalise_name(f"{pad}{base} {form}{pad}") == normalise_name(base.upper()) == normalise_name(base)
    assert normalise_name(base).isascii()


def test_name_examples():
    assert normalise_name("Müller & Söhne GmbH") == normalise_name("Müller und Söhne") == "muller sohne"
    assert normalise_name("Société Générale de Genève SA") == "societe generale de geneve"
    assert normalise_name("S.A.") == "sa"  # nothing but a legal form: kept rather than emptied


@given(st.emails())
def test_email_domain_is_the_lower_case_domain_unless_free_mail(address):
    domain = address.rsplit("@", 1)[1].lower()
    found = email_domain(address.upper())
    if normalise_emails(address):
        assert found == (None if domain in matching.FREE_MAIL_DOMAINS else domain)


def test_email_fields_with_two_addresses_and_blanks():
    assert normalise_emails(" COOL@cars.test ") == ("cool@cars.test",)
    assert normalise_emails("a@x.example, B@y.example") == ("a@x.example", "b@y.example")
    assert normalise_emails("not an address") == ()
    assert email_domain("jane@gmail.com") is None and email_domain("Jane@Acme.example") == "acme.example"


def test_company_numbers_lose_blanks_and_punctuation():
    assert normalise_coc("HRB 12345") == normalise_coc("hrb12345") == "HRB12345"
    assert normalise_coc("0403.019.261") == "0403019261"
    assert normalise_coc("12") is None


# -- the matcher ----------------------------------------------------------------------------------


def _one(customers, ledger, **kw):
    return {s.customer_id: s for s in suggest(customers, LedgerIndex(ledger), **kw)}


def test_vat_beats_a_closer_name():
    found = _one(
        [Party("c1", "Acme Trading B.V.", vat="nl 1234.56.782 b01", country="NL")],
        [
            Party("L-name", "Acme Trading BV"),
            Party("L-vat", "ACME Holding", vat="NL123456782B01"),
        ],
    )
    s = found["c1"]
    assert not s.ambiguous and s.best.external_id == "L-vat" and s.best.method == "vat" and s.best.score == 100
    vat = next(e for e in s.best.evidence if e["kind"] == "vat")
    assert vat["saas"] == "nl 1234.56.782 b01" and vat["ledger"] == "NL123456782B01"


def test_a_different_vat_outweighs_an_identical_name():
    found = _one(
        [Party("c1", "Acme BV", vat="NL123456782B01")],
        [Party("L1", "Acme B.V.", vat="BE0403019261")],
    )
    assert "c1" not in found


def test_two_good_candidates_are_marked_ambiguous_not_picked():
    found = _one(
        [Party("c1", "Bakkerij Jansen", email="info@jansen.example")],
        [Party("L1", "Bakkerij Jansen B.V."), Party("L2", "Bakkerij Jansen VOF")],
    )
    s = found["c1"]
    assert s.ambiguous and {c.external_id for c in s.candidates} == {"L1", "L2"}


def test_free_mail_domains_never_count_as_a_company_domain():
    found = _one(
        [Party("c1", "Jan Pietersen", email="jan.pietersen@gmail.com")],
        [Party("L1", "Totally Different Company", email="someone@gmail.com")],
    )
    assert found == {}
    found = _one(
        [Party("c1", "Meier Treuhand", email="anna@meier-treuhand.example")],
        [
            Party("L1", "Meier Treuhand AG", email="info@meier-treuhand.example"),
            Party("L2", "Anna Meier", email="anna.m@gmail.com"),
        ],
    )
    assert found["c1"].best.external_id == "L1" and {e["kind"] for e in found["c1"].best.evidence} >= {
        "email_domain",
        "name",
    }


def test_shared_company_domain_with_different_names_is_ambiguous():
    found = _one(
        [Party("c1", "Helpdesk", email="helpdesk@bigcorp.example")],
        [
            Party("L1", "BigCorp Sales", email="sales@bigcorp.example"),
            Party("L2", "BigCorp Support", email="support@bigcorp.example"),
        ],
    )
    assert found["c1"].ambiguous and found["c1"].best.method == "email_domain"


def test_archived_ledger_customers_are_flagged_and_an_active_twin_wins():
    found = _one(
        [Party("c1", "Zed Holdings Ltd", coc="01234567")],
        [
            Party("L-old", "Zed Holdings", coc="0123 4567", active=False),
            Party("L-new", "Zed Holdings Limited", coc="01234567"),
        ],
    )
    s = found["c1"]
    assert s.best.external_id == "L-new" and not s.best.archived
    only_archived = _one([Party("c1", "Zed Holdings Ltd")], [Party("L-old", "Zed Holdings", active=False)])["c1"]
    assert only_archived.best.archived and any(e["kind"] == "archived" for e in only_archived.best.evidence)


def test_accents_and_typos_still_match_by_name_but_taken_ledger_customers_are_not_offered():
    ledger = [Party("L1", "Café Élan Sàrl"), Party("L2", "Müller & Söhne GmbH")]
    found = _one([Party("c1", "Cafe Elan"), Party("c2", "Mueller und Soehne"), Party("c3", "Muller Bakery")], ledger)
    assert found["c1"].best.external_id == "L1" and found["c1"].best.method == "name"
    assert found["c2"].best.external_id == "L2"  # "ue" spelling, "und" for "&": still the same firm
    assert "c3" not in found
    assert _one([Party("c1", "Cafe Elan")], ledger, taken={"L1"}) == {}


def test_fuzzy_scoring_runs_only_on_blocked_candidates(monkeypatch):
    calls = []
    real = matching.score_pair
    monkeypatch.setattr(matching, "score_pair", lambda *args: calls.append(args) or real(*args))
    ledger = [Party(f"L{i}", f"Company {i:05d} Unrelated") for i in range(2000)] + [Party("Lx", "Zwart Logistiek")]
    found = _one([Party("c1", "Zwart Logistiek B.V.")], ledger)
    assert found["c1"].best.external_id == "Lx"
    assert len(calls) < 10  # "comp" is a key of 2000 names: too common to block on


def test_progress_is_reported():
    seen = []
    suggest([Party(i, f"N{i}") for i in range(1200)], LedgerIndex([]), progress=seen.append, every=500)
    assert seen == [500, 1000, 1200]
