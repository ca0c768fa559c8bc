"""Default demo data: two bexio companies, their users and master data (see README.md)."""

from __future__ import annotations

#: Demo people who can sign in on the consent page. ``companies`` maps company_id to the
#: person's bexio user id in that company (``company_user_id`` in userinfo, bexio.md §1.5).
USERS = [
    {
        "sub": "c5798551-d986-4c57-8c57-1365f667f43d",
        "username": "max.mustermann",
        "email": "max.mustermann@mustermann-ag.example",
        "given_name": "Mustermann",
        "family_name": "Maxmilian",
        "gender": "male",
        "salutation_type": "male",
        "locale": "de-CH",
        "companies": {"q69vysq7fkzl": 1, "b7xk2m4pq9rt": 1},
        "superadmin": {"q69vysq7fkzl": True, "b7xk2m4pq9rt": True},
    },
    {
        "sub": "4f2a9c1e-7d3b-4e8a-b6f5-2c9d1e0a7b3c",
        "username": "sophie.keller",
        "email": "sophie.keller@mustermann-ag.example",
        "given_name": "Sophie",
        "family_name": "Keller",
        "gender": "female",
        "salutation_type": "female",
        "locale": "de-CH",
        "companies": {"q69vysq7fkzl": 2},
        "superadmin": {"q69vysq7fkzl": False},
    },
]

COMPANIES = [
    {
        "company_id": "q69vysq7fkzl",
        "name": "Mustermann AG",
        "shard_id": "5f89516f-ff9f-4e3f-b49e-b51507ef9b84",
        "legal_form": "corporation",
        "address": "Musterstrasse",
        "address_nr": "1",
        "postcode": "4010",
        "city": "Basel",
        "phone_fixed": "0041612345678",
        "mail": "info@mustermann-ag.example",
        "mwst_nr": "CHE-123.456.789 MWST",
    },
    {
        "company_id": "b7xk2m4pq9rt",
        "name": "Alpenblick Treuhand GmbH",
        "shard_id": "0b6e3c2a-9f4d-4a7e-8c1b-5d2f6e9a3b70",
        "legal_form": "limited_liability_company",
        "address": "Seestrasse",
        "address_nr": "12",
        "postcode": "6003",
        "city": "Luzern",
        "phone_fixed": "0041411234567",
        "mail": "kontakt@alpenblick.example",
        "mwst_nr": None,
    },
]

LANGUAGES = [
    (1, "Deutsch", "de"),
    (2, "Französisch", "fr"),
    (3, "Italienisch", "it"),
    (4, "Englisch", "en"),
]

#: (id, code, round_factor): CHF rounds to 5 Rappen (bexio.md §3.7).
CURRENCIES = [(1, "CHF", 0.05), (2, "EUR", 0.01), (3, "USD", 0.01), (4, "GBP", 0.01)]

PAYMENT_TYPES = [
    (1, "Vorauszahlung"),
    (2, "Barzahlung"),
    (3, "EC Karte"),
    (4, "Rechnung"),
    (5, "Nachnahme"),
    (6, "Kreditkarte"),
    (7, "Bankeinzug/LSV"),
]

UNITS = [(1, "Stk"), (2, "h"), (3, "Pauschal"), (4, "Tag")]

COUNTRIES = [(1, "Schweiz", "CH"), (2, "Deutschland", "DE"), (3, "Österreich", "AT"), (4, "Frankreich", "FR")]

#: (id, account_no, name, account_type, fibu_account_group_id). account_type 1 earnings,
#: 2 expenditures, 3 assets, 4 liabilities, 5 closing (bexio.md §3.7).
ACCOUNTS = [
    (77, "1020", "Bankguthaben", 3, 10),
    (78, "1100", "Forderungen aus Lieferungen und Leistungen (Debitoren)", 3, 11),
    (79, "2000", "Verbindlichkeiten aus Lieferungen und Leistungen (Kreditoren)", 4, 20),
    (80, "2200", "Geschuldete MWST (Umsatzsteuer)", 4, 22),
    (81, "3000", "Produktionserlöse", 1, 30),
    (95, "3200", "Handelserlöse", 1, 32),
    (96, "3400", "Dienstleistungserlöse", 1, 34),
    (97, "3600", "Übrige Erlöse aus Lieferungen und Leistungen", 1, 36),
    (98, "3800", "Erlösminderungen", 1, 38),
    (99, "4000", "Materialaufwand", 2, 40),
    (100, "6500", "Verwaltungsaufwand", 2, 65),
    (101, "9200", "Jahresgewinn oder Jahresverlust", 5, 68),
]

#: Swiss VAT codes including the 2024 rate change 7.7 → 8.1, so inactive sales taxes exist
#: (bexio.md §7.11). (id, code, digit, type, value, start_year, end_year, is_active, label).
TAXES = [
    (3, "UN77", "302", "sales_tax", 7.7, 2018, 2023, False, "Revenue (NS) 7.70%"),
    (4, "UR25", "312", "sales_tax", 2.5, 2018, 2023, False, "Revenue (RS) 2.50%"),
    (5, "US37", "342", "sales_tax", 3.7, 2018, 2023, False, "Revenue (SR) 3.70%"),
    (6, "ULA", "221", "not_taxable_turnover", 0, None, None, False, "Leistungen im Ausland 0.00%"),
    (7, "V00", "000", "pre_tax_investment", 0, None, None, True, "No VAT 0.00%"),
    (8, "U00", "000", "sales_tax", 0, None, None, True, "No VAT 0.00%"),
    (9, "VM81", "400", "pre_tax_material", 8.1, 2024, None, True, "Input tax (material) 8.10%"),
    (14, "UN81", "303", "sales_tax", 8.1, 2024, None, True, "Revenue (NS) 8.10%"),
    (15, "UR26", "313", "sales_tax", 2.6, 2024, None, True, "Revenue (RS) 2.60%"),
    (16, "US38", "343", "sales_tax", 3.8, 2024, None, True, "Revenue (SR) 3.80%"),
]

#: Deliberately messy contacts: legal forms, accents, shared e-mail domains, a person.
CONTACTS = [
    {
        "contact_type_id": 1,
        "name_1": "bexio AG",
        "street_name": "Alte Jonastrasse",
        "house_number": "24",
        "postcode": "8640",
        "city": "Rapperswil",
        "country_id": 1,
        "url": "https://www.bexio.com",
        "contact_group_ids": "1",
    },
    {
        "contact_type_id": 1,
        "name_1": "Müller & Söhne GmbH",
        "street_name": "Bahnhofstrasse",
        "house_number": "7a",
        "postcode": "8001",
        "city": "Zürich",
        "country_id": 1,
        "mail": "buchhaltung@mueller-soehne.example",
        "language_id": 1,
    },
    {
        "contact_type_id": 1,
        "name_1": "Société Générale de Genève SA",
        "street_name": "Rue du Rhône",
        "house_number": "42",
        "postcode": "1204",
        "city": "Genève",
        "country_id": 1,
        "mail": "compta@sgg.example",
        "language_id": 2,
    },
    {
        "contact_type_id": 1,
        "name_1": "Meier Treuhand AG",
        "postcode": "3011",
        "city": "Bern",
        "country_id": 1,
        "mail": "info@meier-treuhand.example",
        "language_id": 1,
    },
    {
        "contact_type_id": 2,
        "name_1": "Meier",
        "name_2": "Anna",
        "salutation_id": 2,
        "postcode": "3011",
        "city": "Bern",
        "country_id": 1,
        "mail": "anna.meier@meier-treuhand.example",
        "language_id": 1,
    },
    {
        "contact_type_id": 1,
        "name_1": "Café Élan Sàrl",
        "street_name": "Place de la Gare",
        "house_number": "3",
        "postcode": "2000",
        "city": "Neuchâtel",
        "country_id": 1,
        "mail": "bonjour@cafe-elan.example",
        "language_id": 2,
    },
    {
        "contact_type_id": 1,
        "name_1": "Huber Informatik GmbH ",
        "name_2": "z.Hd. Peter Huber",
        "postcode": "9000",
        "city": "St. Gallen",
        "country_id": 1,
        "mail": "PETER@huber-it.example",
    },
]

ARTICLES = [
    # (intern_code, intern_name, article_type_id, sale_price, unit_id, tax_income_id, account_id)
    ("BER-H", "Beratung (Stunde)", 2, "160.000000", 2, 14, 96),
    ("LIZ-01", "Software-Lizenz Jahresabo", 1, "490.000000", 1, 14, 95),
    ("SUP-P", "Support-Pauschale", 2, "95.000000", 3, 14, 96),
]
