"""Provider facts as data and the host map that is the only production/sandbox difference."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.integrations import specs

SANDBOX = "http://127.0.0.1:5050"
HOSTS = specs.base_urls(specs.sandbox_host_map(SANDBOX))


def test_exact_has_seven_regions_on_their_own_hosts():
    exact = specs.get_spec("exact-online")
    hosts = {key: region.api_base for key, region in exact.regions.items()}
    assert hosts == {
        "nl": "https://start.exactonline.nl/api/v1",
        "be": "https://start.exactonline.be/api/v1",
        "de": "https://start.exactonline.de/api/v1",
        "uk": "https://start.exactonline.co.uk/api/v1",
        "us": "https://start.exactonline.com/api/v1",
        "es": "https://start.exactonline.es/api/v1",
        "fr": "https://start.exactonline.fr/api/v1",
    }
    be = exact.region("be")
    assert be.authorize_url == "https://start.exactonline.be/api/oauth2/auth"
    assert be.token_url == "https://start.exactonline.be/api/oauth2/token"
    assert be.revoke_url is None
    assert exact.region().key == "nl"


def test_exact_token_rules_quotas_and_pages():
    exact = specs.EXACT_ONLINE_SPEC
    assert exact.tokens.access_ttl.total_seconds() == 600
    assert exact.tokens.expires_in_is_string
    assert exact.tokens.refresh_not_before.total_seconds() == 570
    assert exact.tokens.refresh_rotation == "every_refresh"
    assert exact.tokens.refresh_idle_expiry.days == 30
    assert (exact.quotas.per, exact.quotas.per_minute, exact.quotas.per_day) == ("division", 60, 5000)
    assert exact.quotas.minute_headers.reset == "X-RateLimit-Minutely-Reset"
    assert exact.quotas.day_headers.reset_unit == "epoch_ms"
    assert (exact.page_size, exact.bulk_page_size) == (60, 1000)


def test_quickbooks_endpoints_limits_and_capabilities():
    qbo = specs.QUICKBOOKS_SPEC
    region = qbo.region()
    assert region.authorize_url == "https://appcenter.intuit.com/connect/oauth2"
    assert region.token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert region.revoke_url == "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
    assert region.api_base.format(company="42") == "https://quickbooks.api.intuit.com/v3/company/42"
    assert qbo.scope == "com.intuit.quickbooks.accounting"
    assert (qbo.quotas.per_minute, qbo.quotas.concurrent) == (500, 10)
    assert qbo.capabilities.batch_size == 30
    assert qbo.api_params["minorversion"] == "75"
    assert qbo.tokens.client_auth == "basic"


def test_bexio_oidc_pkce_and_no_credit_notes():
    bexio = specs.BEXIO_SPEC
    region = bexio.region()
    oidc = "https://auth.bexio.com/realms/bexio/protocol/openid-connect"
    assert (region.authorize_url, region.token_url, region.revoke_url) == (
        f"{oidc}/auth",
        f"{oidc}/token",
        f"{oidc}/revoke",
    )
    assert region.api_base == "https://api.bexio.com"
    assert {"offline_access", "contact_edit", "kb_invoice_edit", "accounting"} <= set(bexio.scopes)
    assert bexio.capabilities.pkce and bexio.tokens.pkce
    assert bexio.capabilities.credit_notes is False
    assert bexio.tokens.refresh_rotation == "every_refresh"
    assert bexio.quotas.minute_headers.reset == "ratelimit-reset"
    assert bexio.quotas.minute_headers.reset_unit == "seconds"


def test_specs_are_immutable_data():
    with pytest.raises(FrozenInstanceError):
        specs.BEXIO_SPEC.page_size = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        specs.PROVIDERS["other"] = specs.BEXIO_SPEC  # type: ignore[index]


def test_unknown_provider_and_region_raise_clearly():
    with pytest.raises(specs.UnknownProvider, match="xero"):
        specs.get_spec("xero")
    with pytest.raises(specs.UnknownRegion, match="exact-online has no region 'ch'"):
        specs.EXACT_ONLINE_SPEC.region("ch")


def test_sandbox_host_map_covers_every_real_host():
    hosts = specs.sandbox_host_map(SANDBOX + "/")
    assert hosts["https://start.exactonline.co.uk"] == f"{SANDBOX}/exact-online/uk"
    assert hosts["https://start.exactonline.com"] == f"{SANDBOX}/exact-online/us"
    assert hosts["https://quickbooks.api.intuit.com"] == f"{SANDBOX}/quickbooks/api"
    assert hosts["https://sandbox-quickbooks.api.intuit.com"] == f"{SANDBOX}/quickbooks/api"
    assert hosts["https://oauth.platform.intuit.com"] == f"{SANDBOX}/quickbooks/oauth"
    assert hosts["https://appcenter.intuit.com"] == f"{SANDBOX}/quickbooks/appcenter"
    assert hosts["https://developer.api.intuit.com"] == f"{SANDBOX}/quickbooks/developer"
    assert hosts["https://auth.bexio.com"] == f"{SANDBOX}/bexio/auth"
    assert hosts["https://api.bexio.com"] == f"{SANDBOX}/bexio/api"
    for spec in specs.PROVIDERS.values():
        for region in spec.regions.values():
            for url in (region.authorize_url, region.token_url, region.revoke_url, region.api_base):
                if url:
                    assert HOSTS.resolve(url).startswith(SANDBOX + "/"), url


def test_config_without_sandbox_means_real_hosts():
    hosts = specs.host_map_from_config({"SANDBOX_URL": ""})
    url = "https://api.bexio.com/2.0/contact?limit=5"
    assert hosts.resolve(url) == url
    assert (
        specs.host_map_from_config({"SANDBOX_URL": SANDBOX}).resolve(url) == f"{SANDBOX}/bexio/api/2.0/contact?limit=5"
    )


def test_host_map_keys_must_be_https_origins():
    with pytest.raises(ValueError, match="bare https origins"):
        specs.base_urls({"https://api.bexio.com/2.0": SANDBOX})
    with pytest.raises(ValueError, match="bare https origins"):
        specs.base_urls({"http://api.bexio.com": SANDBOX})


# -- property tests of the rewriting ----------------------------------------------------------

origins = st.sampled_from(sorted(HOSTS.bases))
segments = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~()'", min_size=1, max_size=12
)
paths = st.lists(segments, max_size=5).map(lambda parts: "".join("/" + p for p in parts))
queries = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz$", min_size=1, max_size=8), st.text(max_size=12), max_size=3
).map(lambda q: ("?" + urlencode(q)) if q else "")


@given(origin=origins, path=paths, query=queries)
def test_resolve_swaps_only_the_origin(origin, path, query):
    url = origin + path + query
    resolved = HOSTS.resolve(url)
    assert resolved == HOSTS.bases[origin] + path + query
    # Aliases (two real hosts on one sandbox prefix) map back to one real host of the same base.
    back = HOSTS.to_real(resolved)
    assert HOSTS.resolve(back) == resolved
    assert back.endswith(path + query)


@given(origin=origins, path=paths, query=queries)
def test_an_empty_map_is_the_identity(origin, path, query):
    url = origin + path + query
    assert specs.base_urls(None).resolve(url) == url
    assert specs.resolve(url) == url


@given(origin=origins, path=paths, suffix=st.sampled_from([".evil.test", "x", ":8443", "-staging"]))
def test_lookalike_hosts_are_never_rewritten(origin, path, suffix):
    url = origin + suffix + path
    assert HOSTS.resolve(url) == url
    assert HOSTS.resolve(url.replace("https://", "http://", 1)) == url.replace("https://", "http://", 1)


@given(path=paths)
def test_host_matching_ignores_case_but_prefixes_do_not_overlap(path):
    assert HOSTS.resolve("https://START.ExactOnline.COM" + path) == f"{SANDBOX}/exact-online/us{path}"
    assert HOSTS.to_real(f"{SANDBOX}/exact-online/uk{path}") == "https://start.exactonline.co.uk" + path
