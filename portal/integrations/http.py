"""The one HTTP layer of the adapters: timeouts, safe retries, redacted logs, typed errors.

Every provider call goes through :class:`LedgerHttp`. It resolves real URLs through the host
map (the only production/sandbox difference), retries *safe* calls only (a POST that timed out
may have been carried out: the caller looks it up by reference instead, DESIGN.md "Jobs"),
logs requests and responses with secrets and personal data masked, and turns every failure into
one of the typed errors of :mod:`.base` in :func:`map_error`, with the provider's own code and
text. An ``on_response`` hook sees every response, so a rate limiter can read quota headers, and
a ``before_request`` hook sees every attempt before it is sent, so the limiter can pace it.
"""

from __future__ import annotations

import functools
import json as jsonlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from . import specs
from .base import (
    AuthExpired,
    Forbidden,
    LedgerError,
    NeedsReauthorization,
    NotFound,
    RateLimited,
    Rejected,
    Unavailable,
)

logger = logging.getLogger(__name__)

#: Methods that may be repeated without risk of doing the work twice.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

MASK = "***"


# -- redaction ------------------------------------------------------------------------------------

#: Key fragments whose values are secrets or personal data wherever they appear (JSON, form, query).
_SENSITIVE_FRAGMENTS = (
    "token",
    "secret",
    "password",
    "authorization",
    "verifier",
    "signature",
    # Personal data of the customers: how to reach them, where they live, who they are to the tax office.
    "mail",
    "phone",
    "sendto",
    "street",
    "address",
    "line1",
    "line2",
    "line3",
    "postcode",
    "postal",
    "zip",
    "vatnumber",
    "vat_number",
    "vatidentifier",
    "vat_identifier",
    "taxidentifier",
)
#: Keys that are secrets only in forms and query strings (an OAuth ``code``), not in JSON,
#: where Exact's account ``Code`` and QBO's error ``code`` are useful and harmless.
_FORM_ONLY_KEYS = frozenset({"code", "assertion", "session_state"})
_HEADER_SECRETS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Long runs of token alphabet (Exact tokens carry "!", JWTs dots): a 32+ character run in a log
# line is a token or base64 payload far more often than anything a reader needs.
_TOKENISH = re.compile(r"[A-Za-z0-9_\-!~.+/=]{32,}")
_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")


# The same few dozen field names come back in every body a log entry redacts: answered once each.
@functools.lru_cache(maxsize=4096)
def _sensitive_key(key: str, *, form: bool) -> bool:
    lowered = key.lower().replace("-", "_")
    if form and lowered in _FORM_ONLY_KEYS:
        return True
    return any(fragment in lowered for fragment in _SENSITIVE_FRAGMENTS)


_URL = re.compile(r"https?://[^\s\"'<>\\]+")


def _mask_run(match: re.Match) -> str:
    return match.group(0) if _GUID.fullmatch(match.group(0)) else MASK


def _url_kept(url: str) -> str:
    """Return a URL with secret query values and token-like path segments masked; scheme, host and port kept."""
    parts = urlsplit(redact_url(url))
    path = "/".join(_TOKENISH.sub(_mask_run, segment) for segment in parts.path.split("/"))
    return urlunsplit(parts._replace(path=path))


def scrub_runs(text: str) -> str:
    """Return ``text`` with token-like runs masked, URLs readable (host:port and path kept, secrets masked)."""
    if "://" not in text:
        return _TOKENISH.sub(_mask_run, text)
    pieces, last = [], 0
    for match in _URL.finditer(text):
        pieces.append(_TOKENISH.sub(_mask_run, text[last : match.start()]))
        pieces.append(_url_kept(match.group(0)))
        last = match.end()
    pieces.append(_TOKENISH.sub(_mask_run, text[last:]))
    return "".join(pieces)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with known secrets, token-like runs and e-mail addresses masked (URLs kept readable)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return _EMAIL.sub(MASK, scrub_runs(text))


def redact_data(value: Any, *, form: bool = False) -> Any:
    """Return a copy of JSON-like data with secret and personal-data values masked."""
    if isinstance(value, Mapping):
        return {k: (MASK if _sensitive_key(str(k), form=form) else redact_data(v, form=form)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v, form=form) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def redact_url(url: str) -> str:
    """Return ``url`` with secret query values (codes, tokens, e-mail addresses) masked."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, MASK if _sensitive_key(k, form=True) else scrub(v))
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="$'(), ")))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return headers with credentials masked (the scheme of Authorization kept)."""
    clean = {}
    for name, value in headers.items():
        if name.lower() in _HEADER_SECRETS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            clean[name] = f"{scheme} {MASK}".strip()
        else:
            clean[name] = value
    return clean


def _redacted_body(body: Any, *, form: bool, limit: int = 2000) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes | bytearray):
        return f"<{len(body)} bytes>"
    if isinstance(body, str):
        return scrub(body)[:limit]
    return jsonlib.dumps(redact_data(body, form=form), default=str)[:limit]


# -- quotas ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaWindow:
    """One quota window as reported by response headers."""

    limit: int | None
    remaining: int | None
    reset_at: datetime | None


@dataclass(frozen=True)
class QuotaSnapshot:
    """The quota windows a response reported (either may be absent, exact-online.md §5)."""

    minute: QuotaWindow | None
    day: QuotaWindow | None

    @property
    def exhausted(self) -> QuotaWindow | None:
        """Return the window with nothing left (the day before the minute), or None."""
        for window in (self.day, self.minute):
            if window is not None and window.remaining == 0:
                return window
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _read_window(names: specs.QuotaHeaders | None, headers: Mapping[str, str], now: datetime) -> QuotaWindow | None:
    if names is None:
        return None
    limit, remaining, reset = (_int(headers.get(n)) for n in (names.limit, names.remaining, names.reset))
    if limit is None and remaining is None and reset is None:
        return None
    reset_at = None
    if reset is not None:
        if names.reset_unit == "epoch_ms":
            reset_at = datetime.fromtimestamp(reset / 1000, UTC)
        else:
            reset_at = now + timedelta(seconds=reset)
    return QuotaWindow(limit, remaining, reset_at)


def read_quota(
    spec: specs.ProviderSpec, headers: Mapping[str, str], now: datetime | None = None
) -> QuotaSnapshot | None:
    """Return the quota state a response's headers report, or None when it reports none."""
    now = now or datetime.now(UTC)
    minute = _read_window(spec.quotas.minute_headers, headers, now)
    day = _read_window(spec.quotas.day_headers, headers, now)
    return QuotaSnapshot(minute, day) if minute or day else None


def retry_at_for(spec: specs.ProviderSpec, response: requests.Response, now: datetime) -> datetime:
    """Return when a rate-limited call may be repeated, from the provider's own headers."""
    quota = read_quota(spec, response.headers, now)
    window = quota.exhausted if quota else None
    if window is None and quota is not None:
        window = quota.minute or quota.day
    if window is not None and window.reset_at is not None:
        return max(window.reset_at, now)
    retry_after = _int(response.headers.get("Retry-After"))
    if retry_after is not None:
        return now + timedelta(seconds=retry_after)
    return now + spec.quotas.default_retry_after


# -- error bodies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderError:
    """A provider's error body reduced to code and text; ``oauth`` for token-endpoint errors."""

    code: str | None
    text: str | None
    oauth: bool = False
    details: tuple[str, ...] = ()


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _oauth_error(body: Any) -> ProviderError | None:
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        return ProviderError(body["error"], body.get("error_description") or None, oauth=True)
    return None


def _plain_text(response: requests.Response, limit: int = 300) -> str | None:
    text = re.sub(r"<[^>]+>", " ", response.text or "")
    text = " ".join(unescape(text).split())
    return text[:limit] or None


def parse_exact_error(response: requests.Response) -> ProviderError:
    """Read Exact's OData error body and ``Reason`` header (exact-online.md §4.1)."""
    body = _json_body(response)
    reason = response.headers.get("Reason") or None
    oauth = _oauth_error(body)
    if oauth is not None:
        return ProviderError(oauth.code, oauth.text or reason, oauth=True)
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
        message = error.get("message")
        text = message.get("value") if isinstance(message, Mapping) else message
        # code is observed empty (exact-online.md §4.1); the Reason header names 403 causes (§2).
        return ProviderError(error.get("code") or reason, text or reason)
    return ProviderError(reason, _plain_text(response) or reason)


_XML_ERROR = re.compile(r"<(?:\w+:)?Error\b[^>]*\bcode=\"([^\"]*)\"[^>]*>(.*?)</(?:\w+:)?Error>", re.S)
_XML_FIELD = r"<(?:\w+:)?{0}>(.*?)</(?:\w+:)?{0}>"


def qbo_fault_errors(body: Any) -> list[dict[str, str]]:
    """Return the Error entries of a QBO Fault (``Fault`` or gateway ``fault``), possibly empty."""
    if not isinstance(body, Mapping):
        return []
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, Mapping):
        return []
    errors = fault.get("Error") or fault.get("error") or []
    return [
        {
            "code": str(e.get("code") or ""),
            "message": e.get("Message") or e.get("message") or "",
            "detail": e.get("Detail") or e.get("detail") or "",
            "element": e.get("element") or "",
        }
        for e in errors
        if isinstance(e, Mapping)
    ]


def _qbo_xml_errors(text: str) -> list[dict[str, str]]:
    # The throttle fault is XML even to JSON clients (quickbooks-online.md §4). A regex reads
    # these three fields without handing provider XML to a parser (no entity expansion).
    errors = []
    for code, inner in _XML_ERROR.findall(text):
        fields = {}
        for name in ("Message", "Detail"):
            match = re.search(_XML_FIELD.format(name), inner, re.S)
            fields[name.lower()] = unescape(match.group(1).strip()) if match else ""
        errors.append({"code": code, "element": "", **fields})
    return errors


def parse_qbo_error(response: requests.Response) -> ProviderError:
    """Read a QBO Fault: JSON, gateway lowercase JSON, or the XML throttle body (quickbooks-online.md §4)."""
    body = _json_body(response)
    oauth = _oauth_error(body)
    if oauth is not None:
        return oauth
    errors = qbo_fault_errors(body) if body is not None else _qbo_xml_errors(response.text or "")
    if not errors:
        return ProviderError(None, _plain_text(response))
    first = errors[0]
    details = tuple(f"{e['code']}: {e['detail'] or e['message']}" for e in errors[1:])
    return ProviderError(first["code"] or None, first["detail"] or first["message"] or None, details=details)


def parse_bexio_error(response: requests.Response) -> ProviderError:
    """Read bexio's ``{"error_code", "message", "errors"}`` body (bexio.md §4)."""
    body = _json_body(response)
    oauth = _oauth_error(body)
    if oauth is not None:
        return oauth
    if isinstance(body, Mapping) and ("error_code" in body or "message" in body):
        errors = body.get("errors") or ()
        if isinstance(errors, Mapping):
            errors = [f"{k} {v}" for k, v in errors.items()]
        elif isinstance(errors, str):
            errors = [errors]
        details = tuple(str(e) for e in errors)
        text = " ".join([str(body.get("message") or ""), *details]).strip()
        code = body.get("error_code")
        return ProviderError(str(code) if code is not None else None, text or None, details=details)
    return ProviderError(None, _plain_text(response))


PARSERS: Mapping[str, Callable[[requests.Response], ProviderError]] = {
    specs.EXACT_ONLINE: parse_exact_error,
    specs.QUICKBOOKS: parse_qbo_error,
    specs.BEXIO: parse_bexio_error,
}

#: Exact's texts for server trouble, as opposed to business rules it also sends as 500 (exact-online.md §4.2).
_EXACT_SERVER_TEXTS = frozenset(
    {
        "",
        "an error has occurred.",
        "service unavailable",
        "bad gateway",
        "gateway timeout",
        "internal server error",
    }
)
_REFRESH_TOKEN_DEAD = re.compile(r"refresh token (?:expired|used)|old refresh token|chainid|not active", re.I)


def map_error(
    spec: specs.ProviderSpec,
    response: requests.Response,
    *,
    method: str,
    now: datetime | None = None,
    secrets: Iterable[str] = (),
) -> LedgerError:
    """Turn a failed response into the typed error, with the provider's own code and text."""
    now = now or datetime.now(UTC)
    status = response.status_code
    parsed = PARSERS[spec.key](response)
    text = scrub(parsed.text, secrets) if parsed.text else None
    facts: _Facts = {
        "provider": spec.key,
        "status": status,
        "provider_code": parsed.code,
        "provider_text": text,
        "request_id": response.headers.get("intuit_tid"),
    }
    summary = f"{spec.name} answered {status}" + (f": {text}" if text else "")
    unknown = method.upper() not in SAFE_METHODS

    if status == 429:
        return RateLimited(summary, retry_at=retry_at_for(spec, response, now), **facts)
    if parsed.oauth:
        return _map_oauth_error(parsed, summary, facts, spec, response, now)
    if status == 401:
        return AuthExpired(summary, **facts)
    if status == 403:
        if spec.key == specs.QUICKBOOKS and parsed.code == "3100":
            # Token of another realm or without the accounting scope (quickbooks-online.md §4): new consent.
            return NeedsReauthorization(summary, reason="ApplicationAuthorizationFailed", **facts)
        return Forbidden(summary, **facts)
    if status == 404 or (spec.key == specs.QUICKBOOKS and parsed.code == "610"):
        return NotFound(summary, **facts)
    if status == 408:
        return Unavailable(summary, outcome_unknown=unknown, **facts)
    if status >= 500:
        if spec.key == specs.EXACT_ONLINE and status == 500 and (text or "").strip().lower() not in _EXACT_SERVER_TEXTS:
            # Exact reports business-rule failures as 500 with a message (exact-online.md §4.2): not an outage.
            return Rejected(summary, **facts)
        return Unavailable(summary, outcome_unknown=unknown, **facts)
    return Rejected(summary, **facts)


class _Facts(TypedDict):
    """What every typed error of a failed response carries (the keyword arguments of LedgerError)."""

    provider: str
    status: int
    provider_code: str | None
    provider_text: str | None
    request_id: str | None


def _map_oauth_error(
    parsed: ProviderError,
    summary: str,
    facts: _Facts,
    spec: specs.ProviderSpec,
    response: requests.Response,
    now: datetime,
) -> LedgerError:
    code, text = parsed.code or "", parsed.text or ""
    if response.status_code >= 500:
        return Unavailable(summary, **facts)
    if "not expired" in text.lower():
        # Exact refuses a refresh inside 570 s (exact-online.md §1.5); the vault must wait.
        return Rejected(summary, **facts)
    if code in ("invalid_grant", "unauthorized_client", "invalid_scope") or _REFRESH_TOKEN_DEAD.search(text):
        return NeedsReauthorization(summary, reason=text or code, **facts)
    return Rejected(summary, **facts)


# -- the session ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently safe calls are repeated after an ``Unavailable``."""

    attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0

    def delay(self, attempt: int) -> float:
        """Return the pause before attempt ``attempt + 1`` (exponential, with jitter)."""
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class ResponseInfo:
    """What the ``on_response`` hook learns about each response."""

    provider: str
    company: str | None
    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    quota: QuotaSnapshot | None
    elapsed: float


ResponseHook = Callable[[ResponseInfo], None]


@dataclass(frozen=True)
class RequestInfo:
    """What the ``before_request`` hook learns about each attempt before it is sent."""

    provider: str
    company: str | None
    method: str
    url: str


#: Called before every attempt; it may sleep (pacing) or raise a LedgerError (the call is not sent).
RequestHook = Callable[[RequestInfo], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LedgerHttp:
    """One provider's HTTP session: build real URLs, this resolves, sends, logs and maps errors."""

    def __init__(
        self,
        spec: specs.ProviderSpec,
        *,
        host_map: specs.HostMap | Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        timeouts: specs.Timeouts | None = None,
        retry: RetryPolicy | None = None,
        on_response: ResponseHook | None = None,
        before_request: RequestHook | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.spec = spec
        self.hosts = host_map if isinstance(host_map, specs.HostMap) else specs.base_urls(host_map)
        self.timeouts = timeouts or spec.timeouts
        self.retry = retry or RetryPolicy()
        self.on_response = on_response
        self.before_request = before_request
        self._sleep = sleep
        self._now = now
        self._owns_session = session is not None
        if session is None:
            self.session = pooled_session()
        else:
            self.session = session
            _mount_without_retries(session)
        self._api_origins = {urlsplit(region.api_base).netloc for region in spec.regions.values()}

    @classmethod
    def from_config(cls, provider: str, config: Mapping, **options: Any) -> LedgerHttp:
        """Build the session for ``provider`` from an app config (``SANDBOX_URL`` → sandbox hosts)."""
        return cls(specs.get_spec(provider), host_map=specs.host_map_from_config(config), **options)

    def __repr__(self) -> str:
        return f"<LedgerHttp {self.spec.key}>"

    def close(self) -> None:
        """Close a session given to this instance; the thread's shared connections stay open for the next adapter."""
        if self._owns_session:
            self.session.close()

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """GET ``url``; see :meth:`request`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """POST to ``url`` (never retried); see :meth:`request`."""
        return self.request("POST", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        *,
        company: str | None = None,
        token: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: specs.Timeouts | None = None,
    ) -> requests.Response:
        """Send one call to a real provider ``url`` and return the successful response.

        :raise LedgerError: a typed subclass for every failure (see :mod:`.base`).
        """
        method = method.upper()
        target = self.hosts.resolve(url)
        query = dict(params or {})
        sent_headers = {"Accept": "application/json", **(headers or {})}
        if urlsplit(url).netloc in self._api_origins:
            query = {**self.spec.api_params, **query}
            sent_headers.update(self.spec.api_headers)
        if token:
            sent_headers["Authorization"] = f"Bearer {token}"
        secrets = self._secrets(token, data, json, auth)
        attempts = self.retry.attempts if method in SAFE_METHODS else 1
        for attempt in range(attempts):
            try:
                return self._send_once(method, target, company, query, json, data, sent_headers, auth, timeout, secrets)
            except Unavailable as exc:
                if attempt + 1 >= attempts:
                    raise
                delay = self.retry.delay(attempt)
                logger.warning(
                    "%s %s %s unavailable (%s); retry %d/%d in %.2fs",
                    self.spec.key,
                    method,
                    redact_url(target),
                    exc.provider_text or exc.status or "no answer",
                    attempt + 1,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- internals ------------------------------------------------------------------------------

    @staticmethod
    def _secrets(token: str | None, data: Any, json: Any, auth: tuple[str, str] | None) -> list[str]:
        values = [token or ""]
        if auth:
            values.append(auth[1])
        for body, form in ((data, True), (json, False)):
            if isinstance(body, Mapping):
                values.extend(str(v) for k, v in body.items() if _sensitive_key(str(k), form=form) and v)
        return [v for v in values if v]

    def _send_once(
        self,
        method: str,
        url: str,
        company: str | None,
        params: Mapping[str, Any],
        json: Any,
        data: Any,
        headers: Mapping[str, str],
        auth: tuple[str, str] | None,
        timeout: specs.Timeouts | None,
        secrets: list[str],
    ) -> requests.Response:
        # Redacting is the costly part of logging a call: only done for records that are emitted.
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug(
                "%s request %s %s headers=%s body=%s",
                self.spec.key,
                method,
                self._shown_url(url, params),
                redact_headers(headers),
                _redacted_body(json if json is not None else data, form=json is None),
            )
        if self.before_request is not None:
            self.before_request(RequestInfo(provider=self.spec.key, company=company, method=method, url=url))
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                params=params or None,
                json=json,
                data=data,
                headers=dict(headers),
                auth=auth,
                timeout=(timeout or self.timeouts).as_tuple(),
            )
        except requests.RequestException as exc:
            elapsed = time.monotonic() - started
            # Not connected means not sent; anything later may have reached the provider.
            not_sent = isinstance(exc, requests.ConnectTimeout) or (
                isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc)
            )
            logger.warning(
                "%s %s %s failed after %.0f ms: %s",
                self.spec.key,
                method,
                self._shown_url(url, params),
                elapsed * 1000,
                type(exc).__name__,
            )
            raise Unavailable(
                f"{self.spec.name} could not be reached: {type(exc).__name__}",
                provider=self.spec.key,
                provider_text=type(exc).__name__,
                outcome_unknown=method not in SAFE_METHODS and not not_sent,
            ) from None
        elapsed = time.monotonic() - started
        now = self._now()
        # Every call is kept in the connection's operation log; the process log says only what went wrong.
        level = logging.DEBUG if response.ok else logging.WARNING
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "%s %s %s -> %d in %.0f ms",
                self.spec.key,
                method,
                self._shown_url(url, params),
                response.status_code,
                elapsed * 1000,
            )
        if debug:
            logger.debug(
                "%s response %d body=%s",
                self.spec.key,
                response.status_code,
                self._shown_response(response, secrets),
            )
        self._notify(company, method, url, response, now, elapsed)
        if response.ok:
            return response
        raise map_error(self.spec, response, method=method, now=now, secrets=secrets)

    @staticmethod
    def _shown_url(url: str, params: Mapping[str, Any]) -> str:
        return redact_url(url + ("?" + urlencode(params) if params else ""))

    @staticmethod
    def _shown_response(response: requests.Response, secrets: list[str]) -> str:
        content_type = response.headers.get("Content-Type", "")
        if "json" in content_type:
            body = _json_body(response)
            if body is not None:
                return scrub(_redacted_body(body, form=False), secrets)
        if content_type.startswith(("text/", "application/xml")):
            return scrub(response.text[:1000], secrets)
        return f"<{len(response.content)} bytes {content_type}>"

    def _notify(
        self,
        company: str | None,
        method: str,
        url: str,
        response: requests.Response,
        now: datetime,
        elapsed: float,
    ) -> None:
        if self.on_response is None:
            return
        info = ResponseInfo(
            provider=self.spec.key,
            company=company,
            method=method,
            url=url,
            status=response.status_code,
            headers=response.headers,
            quota=read_quota(self.spec, response.headers, now),
            elapsed=elapsed,
        )
        try:
            self.on_response(info)
        except Exception:
            # The hook feeds an advisory limiter; its failure must not fail the ledger call.
            logger.exception("%s on_response hook failed", self.spec.key)


_pool = threading.local()
# A forked child (an RQ work horse) must not share its parent's sockets: it opens its own.
os.register_at_fork(after_in_child=lambda: _pool.__dict__.clear())


def pooled_session() -> requests.Session:
    """Return a new session that sends through this thread's kept-alive connections.

    Every adapter a thread builds (one per job, refresh or page) gets a session of its own (its
    hooks, such as the operation log's, are its own) over connection pools the thread shares, so
    connections to a ledger are reused across connections and jobs instead of one pool per adapter
    left open until garbage collection. It keeps no cookies: nothing carries over from one
    customer's call to another's.
    """
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    if not _environment_configures_requests():
        # Nothing in the environment for requests to read per call (proxies, .netrc): skip its
        # per-call environment lookup, keeping the CA bundle the environment names, if any.
        session.trust_env = False
        session.verify = _environment_ca_bundle() or True
    pools = getattr(_pool, "adapters", None)
    if pools is None:
        _mount_without_retries(session)
        pools = _pool.adapters = session.adapters
    session.adapters = pools
    return session


def _mount_without_retries(session: requests.Session) -> None:
    # Retries are ours (typed, safe methods only); urllib3 must not repeat anything itself.
    session.mount("https://", HTTPAdapter(max_retries=0))
    session.mount("http://", HTTPAdapter(max_retries=0))


def _environment_configures_requests() -> bool:
    """Say whether proxies or a .netrc file would change what requests sends (each call looks them up).

    A CA bundle named in the environment is read once instead (:func:`_environment_ca_bundle`).
    """
    names = {name.lower() for name in os.environ}
    if any(name.endswith("_proxy") for name in names) or "netrc" in names:
        return True
    return Path("~/.netrc").expanduser().exists() or Path("~/_netrc").expanduser().exists()


def _environment_ca_bundle() -> str | None:
    """Return the CA bundle the environment names for requests, as requests itself reads it, or None."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
