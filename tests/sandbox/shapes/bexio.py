"""What api.bexio.com and auth.bexio.com answer, endpoint by endpoint (types, not values).

Learnt from real responses recorded against a test company (Mustermann AG, de-CH, CHF) and
bexio's API documentation:

- Every api.bexio.com answer passes bexio's gateway: the rate-limit headers (``ratelimit-limit``,
  ``-remaining``, ``-reset`` and the ``x-ratelimit-*-minute`` pair), ``Cache-Control: no-store``,
  ``pragma: no-cache``, ``vary: Origin`` and ``access-control-allow-origin:
  https://office.bexio.com``. The limit is per route group: 1000 a minute, 250 for searches and
  PDFs, 400 for articles.
- Single-entity answers carry an ``etag``; only some 3.0 lists (bank accounts, currencies, users)
  carry ``x-total-count``, ``x-limit`` and ``x-offset``.
- Amounts are decimal *strings*: on create bexio echoes what was sent (``"100"``), on a later read
  it writes six decimals (``"100.000000"``). ``updated_at`` is local time (Europe/Zurich) without
  zone, ``"2026-06-18 14:55:15"``; dates are ``"2026-06-18"``.
- Actions (issue, cancel, delete, restore) answer ``{"success": true}``; a refused delete is a 409
  ``{"error_code": 409, "message": …}``.
- An invoice's ``positions`` mix types, told apart by ``type`` (``KbPositionText``,
  ``KbPositionCustom``, ``KbPositionArticle`` …).

Where every recording held null, the type given is the one bexio documents for that field.
"""

from __future__ import annotations

from . import (
    BOOL,
    DATE,
    DEC,
    DIGITS,
    INT,
    LOCAL_DATETIME,
    NUM,
    STR,
    URL,
    Answer,
    Const,
    Maybe,
    OneOf,
    Tagged,
)

#: The gateway's rate-limit headers, on every api.bexio.com answer.
RATE_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit-minute",
    "x-ratelimit-remaining-minute",
)
#: The gateway's fixed headers, on every api.bexio.com answer.
GATEWAY = {
    "Cache-Control": "no-store",
    "pragma": "no-cache",
    "vary": "Origin",
    "access-control-allow-origin": "https://office.bexio.com",
}
PAGE_HEADERS = ("x-total-count", "x-limit", "x-offset")
#: Per-minute limit of each route group.
LIMIT = {"default": "1000", "search": "250", "pdf": "250", "article": "400"}


def api(status: int, body, *, group: str = "default", etag: bool = False, paged: bool = False) -> Answer:
    """An api.bexio.com answer through the gateway."""
    return Answer(
        status,
        body,
        headers=RATE_HEADERS + (("etag",) if etag else ()) + (PAGE_HEADERS if paged else ()),
        header_values={**GATEWAY, "ratelimit-limit": LIMIT[group]},
        absent=() if paged else PAGE_HEADERS,
    )


SUCCESS = {"success": Const(True)}
ERROR = {"error_code": INT, "message": STR}

ACCOUNT = {
    "id": INT,
    "uuid": STR,
    "account_no": DIGITS,
    "name": STR,
    "account_type": INT,
    "tax_id": Maybe(INT),
    "fibu_account_group_id": INT,
    "is_active": BOOL,
    "is_locked": BOOL,
}
BANK_ACCOUNT = {
    "id": INT,
    "uuid": STR,
    "name": STR,
    "owner": STR,
    "owner_address": STR,
    "owner_house_number": STR,
    "owner_zip": STR,
    "owner_city": STR,
    "owner_country_code": STR,
    "bc_nr": STR,
    "bank_name": STR,
    "bank_account_nr": STR,
    "iban_nr": STR,
    "currency_id": INT,
    "account_id": INT,
    "remarks": STR,
    "is_esr": BOOL,
    "esr_besr_id": STR,
    "esr_bottom_line_include_amount": BOOL,
    "esr_post_account_nr": STR,
    "esr_payment_for_text": STR,
    "esr_in_favour_of_text": STR,
    "invoice_mode": STR,
    "qr_invoice_iban": Maybe(STR),
    "type": STR,
    "bank_nr": STR,
}
COMPANY_PROFILE = {
    "id": INT,
    "name": STR,
    **dict.fromkeys(("address", "address_nr", "postcode", "city"), Maybe(STR)),
    "country_id": INT,
    "legal_form": STR,
    "country_name": STR,
    "mail": Maybe(STR),
    "phone_fixed": Maybe(STR),
    **dict.fromkeys(("phone_mobile", "fax", "url", "skype_name", "facebook_name", "twitter_name"), Maybe(STR)),
    **dict.fromkeys(("description", "ust_id_nr", "mwst_nr", "trade_register_nr"), Maybe(STR)),
    "has_own_logo": BOOL,
    **dict.fromkeys(
        (
            "is_public_profile",
            "is_logo_public",
            "is_address_public",
            "is_phone_public",
            "is_mobile_public",
            "is_fax_public",
            "is_mail_public",
            "is_url_public",
            "is_skype_public",
        ),
        BOOL,
    ),
    "logo_base64": Maybe(STR),  # null without a logo
}
#: A contact as lists and searches show it.
CONTACT_ROW = {
    "id": INT,
    "nr": Maybe(STR),
    "contact_type_id": INT,
    "name_1": STR,
    "name_2": Maybe(STR),
    "salutation_id": Maybe(INT),
    "salutation_form": Maybe(INT),
    "title_id": Maybe(INT),
    "birthday": Maybe(DATE),
    **dict.fromkeys(("address", "street_name", "house_number", "address_addition", "postcode", "city"), Maybe(STR)),
    "country_id": Maybe(INT),
    **dict.fromkeys(("mail", "mail_second", "phone_fixed", "phone_fixed_second", "phone_mobile"), Maybe(STR)),
    **dict.fromkeys(("fax", "url", "skype_name", "remarks"), Maybe(STR)),
    "language_id": Maybe(INT),
    "is_lead": BOOL,
    "contact_group_ids": Maybe(STR),
    "contact_branch_ids": Maybe(STR),
    "user_id": INT,
    "owner_id": INT,
    "updated_at": LOCAL_DATETIME,
}
#: A single contact (read, create, edit) adds its profile image.
CONTACT = {**CONTACT_ROW, "profile_image": STR}
COUNTRY = {"id": INT, "name": STR, "name_short": STR, "iso_3166_alpha2": STR}
CURRENCY = {"id": INT, "name": STR, "round_factor": NUM}
LANGUAGE = {
    "id": INT,
    "name": STR,
    "decimal_point": STR,
    "thousands_separator": STR,
    "date_format_id": INT,
    "date_format": STR,
    "iso_639_1": STR,
}
NAMED = {"id": INT, "name": STR}
USER = {
    "id": INT,
    "salutation_type": STR,
    "firstname": STR,
    "lastname": STR,
    "email": STR,
    "is_superadmin": BOOL,
    "is_accountant": BOOL,
}
TAX = {
    "id": INT,
    "uuid": STR,
    "name": STR,
    "code": STR,
    "digit": Maybe(STR),
    "type": STR,
    "account_id": Maybe(INT),
    "tax_settlement_type": STR,
    "value": NUM,
    "net_tax_value": Maybe(NUM),
    "start_year": Maybe(INT),
    "end_year": Maybe(INT),
    "is_active": BOOL,
    "display_name": STR,
    "start_month": Maybe(INT),
    "end_month": Maybe(INT),
}
#: Stock counters: integers in lists; in single answers integers or their digits as strings.
STOCK_COUNT = OneOf((INT, DIGITS))
ARTICLE = {
    "id": INT,
    "user_id": INT,
    "article_type_id": INT,
    "contact_id": Maybe(INT),
    **dict.fromkeys(("deliverer_code", "deliverer_name", "deliverer_description"), Maybe(STR)),
    **dict.fromkeys(("intern_code", "intern_name", "intern_description"), Maybe(STR)),
    **dict.fromkeys(("purchase_price", "sale_price", "purchase_total", "sale_total"), Maybe(DEC)),
    "currency_id": Maybe(INT),
    **dict.fromkeys(("tax_income_id", "tax_id", "tax_expense_id", "unit_id"), Maybe(INT)),
    "is_stock": BOOL,
    "stock_id": Maybe(INT),
    "stock_place_id": Maybe(INT),
    **dict.fromkeys(
        (
            "stock_nr",
            "stock_min_nr",
            "stock_reserved_nr",
            "stock_available_nr",
            "stock_picked_nr",
            "stock_disposed_nr",
            "stock_ordered_nr",
        ),
        STOCK_COUNT,
    ),
    **dict.fromkeys(("width", "height", "weight", "volume"), Maybe(NUM)),
    "html_text": Maybe(STR),
    "remarks": Maybe(STR),
    "delivery_price": Maybe(DEC),
    "article_group_id": Maybe(INT),
    "account_id": Maybe(INT),
    "expense_account_id": Maybe(INT),
}

# -- invoices ---------------------------------------------------------------------------------
_POSITION_COMMON = {"id": INT, "type": STR, "pos": Maybe(DIGITS), "internal_pos": INT, "parent_id": Maybe(INT)}
POSITION_TEXT = {**_POSITION_COMMON, "text": STR, "show_pos_nr": BOOL, "is_optional": BOOL}
POSITION_CUSTOM = {
    **_POSITION_COMMON,
    "amount": DEC,
    "amount_reserved": Maybe(DEC),
    "amount_open": Maybe(DEC),
    "amount_completed": Maybe(DEC),
    "unit_id": Maybe(INT),
    "account_id": Maybe(INT),
    "unit_name": Maybe(STR),
    "tax_id": Maybe(INT),
    "tax_value": Maybe(DEC),
    "text": Maybe(STR),
    "unit_price": DEC,
    "discount_in_percent": Maybe(DEC),
    "position_total": DEC,
    "is_optional": BOOL,
}
POSITIONS = Tagged("type", {"KbPositionText": POSITION_TEXT, "KbPositionCustom": POSITION_CUSTOM})
#: An invoice as lists and searches show it (no positions).
INVOICE_ROW = {
    "id": INT,
    "document_nr": STR,
    "title": Maybe(STR),
    "contact_id": INT,
    "contact_sub_id": Maybe(INT),
    "user_id": INT,
    "project_id": Maybe(INT),
    "logopaper_id": INT,
    "language_id": INT,
    "bank_account_id": INT,
    "currency_id": INT,
    "payment_type_id": INT,
    "header": STR,
    "footer": STR,
    **dict.fromkeys(
        (
            "total_gross",
            "total_net",
            "total_taxes",
            "total_received_payments",
            "total_credit_vouchers",
            "total_remaining_payments",
            "total",
        ),
        DEC,
    ),
    "total_rounding_difference": NUM,
    "mwst_type": INT,
    "mwst_is_net": BOOL,
    "show_position_taxes": BOOL,
    "is_valid_from": DATE,
    "is_valid_to": DATE,
    "contact_address": STR,
    "kb_item_status_id": INT,
    "reference": Maybe(STR),
    "api_reference": Maybe(STR),
    "viewed_by_client_at": Maybe(LOCAL_DATETIME),
    "updated_at": LOCAL_DATETIME,
    "esr_id": INT,
    "qr_invoice_id": INT,
    "template_slug": STR,
    "taxs": [{"percentage": DEC, "value": DEC}],
    "network_link": STR,
}
INVOICE = {**INVOICE_ROW, "positions": [POSITIONS]}
PAYMENT = {
    "id": INT,
    "date": DATE,
    "value": DEC,
    "bank_account_id": Maybe(INT),
    "title": STR,
    "payment_service_id": Maybe(INT),
    "is_client_account_redemption": BOOL,
    "is_cash_discount": BOOL,
    "kb_invoice_id": INT,
    "kb_credit_voucher_id": Maybe(INT),
    "kb_credit_voucher_text": STR,
    "kb_bill_id": Maybe(INT),
}
PDF = {"name": STR, "size": INT, "mime": Const("application/pdf"), "content": STR}

# -- auth.bexio.com (Keycloak realm "bexio") ----------------------------------------------------
#: The OpenID configuration lists endpoints as URLs and capabilities as lists of names.
_OIDC_URLS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "introspection_endpoint",
    "userinfo_endpoint",
    "end_session_endpoint",
    "jwks_uri",
    "check_session_iframe",
    "registration_endpoint",
    "revocation_endpoint",
    "backchannel_authentication_endpoint",
    "pushed_authorization_request_endpoint",
)
_OIDC_LISTS = (
    "grant_types_supported",
    "acr_values_supported",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
    "id_token_encryption_alg_values_supported",
    "id_token_encryption_enc_values_supported",
    "userinfo_signing_alg_values_supported",
    "userinfo_encryption_alg_values_supported",
    "userinfo_encryption_enc_values_supported",
    "request_object_signing_alg_values_supported",
    "request_object_encryption_alg_values_supported",
    "request_object_encryption_enc_values_supported",
    "response_modes_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "authorization_signing_alg_values_supported",
    "authorization_encryption_alg_values_supported",
    "authorization_encryption_enc_values_supported",
    "claims_supported",
    "claim_types_supported",
    "scopes_supported",
    "code_challenge_methods_supported",
    "revocation_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "backchannel_token_delivery_modes_supported",
    "backchannel_authentication_request_signing_alg_values_supported",
)
_OIDC_FLAGS = (
    "frontchannel_logout_session_supported",
    "frontchannel_logout_supported",
    "claims_parameter_supported",
    "request_parameter_supported",
    "request_uri_parameter_supported",
    "require_request_uri_registration",
    "tls_client_certificate_bound_access_tokens",
    "backchannel_logout_supported",
    "backchannel_logout_session_supported",
    "require_pushed_authorization_requests",
    "authorization_response_iss_parameter_supported",
)
OPENID_CONFIGURATION = {
    **dict.fromkeys(_OIDC_URLS, URL),
    **{key: [STR] for key in _OIDC_LISTS},
    **dict.fromkeys(_OIDC_FLAGS, BOOL),
    "mtls_endpoint_aliases": dict.fromkeys(
        (
            "token_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
            "registration_endpoint",
            "userinfo_endpoint",
            "pushed_authorization_request_endpoint",
            "backchannel_authentication_endpoint",
        ),
        URL,
    ),
}
#: The userinfo answer, keys in bexio's order (clients that print it show them so).
USERINFO_KEYS = (
    "sub",
    "email_verified",
    "gender",
    "company_id",
    "shard_id",
    "company_name",
    "locale",
    "given_name",
    "company_user_id",
    "family_name",
    "email",
)
USERINFO = {
    **dict.fromkeys(USERINFO_KEYS, STR),
    "email_verified": BOOL,
    "company_user_id": INT,
}
#: Keycloak's security headers on auth.bexio.com answers.
AUTH_SECURITY = {
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
}


# -- the endpoints -----------------------------------------------------------------------------
ENDPOINTS: dict[str, Answer] = {
    # master data
    "GET /2.0/accounts": api(200, [ACCOUNT]),
    "POST /2.0/accounts/search": api(200, [ACCOUNT]),
    "GET /3.0/banking/accounts": api(200, [BANK_ACCOUNT], paged=True),
    "GET /3.0/banking/accounts/{id}": api(200, BANK_ACCOUNT, etag=True),
    "GET /2.0/company_profile": api(200, [COMPANY_PROFILE]),
    "GET /2.0/company_profile/{id}": api(200, COMPANY_PROFILE, etag=True),
    "GET /2.0/country": api(200, [COUNTRY]),
    "GET /2.0/country/{id}": api(200, COUNTRY),
    "GET /3.0/currencies": api(200, [CURRENCY], paged=True),
    "GET /3.0/currencies/{id}": api(200, CURRENCY, etag=True),
    "GET /3.0/currencies/codes": api(200, [STR]),
    "GET /2.0/language": api(200, [LANGUAGE]),
    "GET /2.0/payment_type": api(200, [NAMED]),
    "GET /2.0/unit": api(200, [NAMED]),
    "GET /3.0/users": api(200, [USER], paged=True),
    "GET /3.0/users/me": api(200, USER),
    "GET /3.0/taxes": api(200, [TAX]),
    "GET /3.0/taxes/{id}": api(200, TAX, etag=True),
    "DELETE /3.0/taxes/{id} (in use)": api(409, ERROR),
    # contacts
    "GET /2.0/contact": api(200, [CONTACT_ROW]),
    "GET /2.0/contact/{id}": api(200, CONTACT, etag=True),
    "POST /2.0/contact": api(201, CONTACT, etag=True),
    "POST /2.0/contact/{id}": api(200, CONTACT, etag=True),
    "DELETE /2.0/contact/{id}": api(200, SUCCESS),
    "PATCH /2.0/contact/{id}/restore": api(200, SUCCESS),
    "POST /2.0/contact/search": api(200, [CONTACT_ROW], group="search"),
    # articles
    "GET /2.0/article": api(200, [ARTICLE], group="article"),
    "GET /2.0/article/{id}": api(200, ARTICLE, group="article"),
    "POST /2.0/article": api(201, ARTICLE, group="article"),
    "POST /2.0/article/{id}": api(200, ARTICLE, group="article"),
    "POST /2.0/article/search": api(200, [ARTICLE], group="search"),
    "DELETE /2.0/article/{id}": api(200, SUCCESS, group="article"),
    # invoices
    "POST /2.0/kb_invoice": api(201, INVOICE, etag=True),
    "GET /2.0/kb_invoice/{id}": api(200, INVOICE, etag=True),
    "POST /2.0/kb_invoice/{id}": api(200, INVOICE, etag=True),
    "POST /2.0/kb_invoice/{id}/copy": api(201, INVOICE, etag=True),
    "GET /2.0/kb_invoice": api(200, [INVOICE_ROW]),
    "POST /2.0/kb_invoice/search": api(200, [INVOICE_ROW], group="search"),
    "GET /2.0/kb_invoice/{id}/pdf": api(200, PDF, group="pdf"),
    "POST /2.0/kb_invoice/{id}/kb_position_custom": api(201, POSITION_CUSTOM),
    "POST /2.0/kb_invoice/{id}/issue": api(200, SUCCESS),
    "POST /2.0/kb_invoice/{id}/revert_issue": api(200, SUCCESS),
    "POST /2.0/kb_invoice/{id}/cancel": api(200, SUCCESS),
    "DELETE /2.0/kb_invoice/{id}": api(200, SUCCESS),
    # payments on an invoice
    "GET /2.0/kb_invoice/{id}/payment": api(200, [PAYMENT]),
    "POST /2.0/kb_invoice/{id}/payment": api(201, PAYMENT, etag=True),
    "GET /2.0/kb_invoice/{id}/payment/{payment_id}": api(200, PAYMENT, etag=True),
    # auth.bexio.com
    "GET /realms/bexio/.well-known/openid-configuration": Answer(
        200, OPENID_CONFIGURATION, content_type="application/json", header_values=AUTH_SECURITY
    ),
    "GET /realms/bexio/protocol/openid-connect/userinfo": Answer(
        200, USERINFO, header_values={"Cache-Control": "no-cache"}
    ),
    "GET /realms/bexio/protocol/openid-connect/logout": Answer(200, None, content_type="text/html"),
}
