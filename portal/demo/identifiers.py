"""Generators of valid tax and company numbers per country, for realistic demo data.

Every VAT number produced here passes python-stdnum's validation for its country; the demo
seed then writes some of them the way users do (spaces, no prefix, lower case).
"""

from __future__ import annotations

import random

from stdnum import luhn
from stdnum.ch import uid as ch_uid
from stdnum.es import cif as es_cif
from stdnum.iso7064 import mod_11_10


def _digits(rng: random.Random, n: int, first_nonzero: bool = False) -> str:
    first = str(rng.randint(1, 9)) if first_nonzero else str(rng.randint(0, 9))
    return first + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


def nl_vat(rng: random.Random) -> str:
    """Return an NL VAT number (BTW-id): 9 digits passing the 11-test, then B01."""
    while True:
        head = _digits(rng, 8, first_nonzero=True)
        check = sum((9 - i) * int(d) for i, d in enumerate(head)) % 11
        if check < 10:
            return f"NL{head}{check}B01"


def be_vat(rng: random.Random) -> str:
    """Return a BE VAT number: 0 + 7 digits + mod-97 check."""
    head = "0" + _digits(rng, 7, first_nonzero=True)
    return f"BE{head}{97 - int(head) % 97:02d}"


def de_vat(rng: random.Random) -> str:
    """Return a DE USt-IdNr: 8 digits + ISO 7064 mod 11,10 check digit."""
    head = _digits(rng, 8, first_nonzero=True)
    return f"DE{head}{mod_11_10.calc_check_digit(head)}"


def gb_vat(rng: random.Random) -> str:
    """Return a GB VAT number: 7 digits + 2 check digits (weighted mod 97)."""
    head = _digits(rng, 7, first_nonzero=True)
    total = sum(w * int(d) for w, d in zip((8, 7, 6, 5, 4, 3, 2), head, strict=True))
    return f"GB{head}{(-total) % 97:02d}"


def es_vat(rng: random.Random) -> str:
    """Return an ES VAT number of a company (CIF of an S.L., letter B, numeric check)."""
    head = "B" + _digits(rng, 7)
    return f"ES{head}{es_cif.calc_check_digits(head)[0]}"


def fr_siren(rng: random.Random) -> str:
    """Return a SIREN company number (8 digits + Luhn)."""
    head = _digits(rng, 8, first_nonzero=True)
    return head + luhn.calc_check_digit(head)


def fr_vat(rng: random.Random, siren: str | None = None) -> str:
    """Return an FR TVA number: 2-digit key + SIREN."""
    siren = siren or fr_siren(rng)
    return f"FR{int(siren + '12') % 97:02d}{siren}"


def ch_uid_number(rng: random.Random) -> str:
    """Return a Swiss UID (CHE-123.456.789) with a valid check digit."""
    while True:
        head = _digits(rng, 8, first_nonzero=True)
        check = ch_uid.calc_check_digit(head)
        if check != "10":
            d = head + check
            return f"CHE-{d[0:3]}.{d[3:6]}.{d[6:9]}"


def ch_vat(rng: random.Random, uid: str | None = None) -> str:
    """Return a Swiss VAT number: the UID followed by MWST."""
    return f"{uid or ch_uid_number(rng)} MWST"


def us_ein(rng: random.Random) -> str:
    """Return a US Employer Identification Number with an assigned campus prefix."""
    return f"{rng.choice(['12', '20', '27', '45', '46', '81', '84', '94'])}-{_digits(rng, 7)}"


VAT_GENERATORS = {
    "NL": nl_vat,
    "BE": be_vat,
    "DE": de_vat,
    "GB": gb_vat,
    "ES": es_vat,
    "FR": fr_vat,
    "CH": ch_vat,
}


def company_number(rng: random.Random, country: str, vat: str | None) -> str | None:
    """Return a chamber-of-commerce / registry number, consistent with ``vat`` where they share digits."""
    if country == "NL":
        return _digits(rng, 8, first_nonzero=True)  # KvK-nummer
    if country == "BE" and vat:
        d = vat[2:]
        return f"{d[0:4]}.{d[4:7]}.{d[7:10]}"  # KBO/BCE number = VAT digits
    if country == "DE":
        return f"HRB {rng.randint(1000, 250000)}"
    if country == "GB":
        return _digits(rng, 8)  # Companies House
    if country == "FR" and vat:
        return vat[4:]  # SIREN
    if country == "ES" and vat:
        return vat[2:]  # CIF
    if country == "CH" and vat:
        return vat.removesuffix(" MWST")  # UID
    if country == "US":
        return us_ein(rng)
    return None


def messy(rng: random.Random, vat: str) -> str:
    """Write a VAT number the way people type it: spaces, dots, no prefix or lower case."""
    style = rng.random()
    if style < 0.55 or vat.startswith("CHE"):
        return vat
    if style < 0.7:
        return f"{vat[:2]} {vat[2:6]} {vat[6:]}"
    if style < 0.82:
        return vat[2:]
    if style < 0.92:
        return vat.lower()
    if vat.startswith("BE"):  # Belgians write the enterprise number with dots
        return f"{vat[:2]} {vat[2:6]}.{vat[6:9]}.{vat[9:]}"
    return vat
