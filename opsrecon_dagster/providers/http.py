"""HTTP provider: a Microsoft-Graph-style REST API behind ``TenantProvider``.

Plain Python on ``requests`` (no Dagster import), so it can be used and tested on its own.

Layout of the remote API::

    GET {base_url}/tenants/{partition_key}/policies/{policy_type}
        -> {"value": [{"id": ..., "displayName": ..., ...}, ...], "@odata.nextLink": "<url>"}
    GET {base_url}/tenants/{partition_key}/policies/{policy_type}/{external_id}
        -> {"id": ..., "displayName": ..., ...}

Every decoded answer passes the provider's ``Redactor`` before anything reads it (page
objects, fetched objects and ``@odata.nextLink`` alike): the token, any other configured
secret and anything shaped like a bearer token or a JWT become ``[redacted]``.

Everything that leaves this module as an error is a ``ProviderError`` carrying a reason code,
the policy type and the HTTP status only. Response bodies, URLs, the bearer token and the text
of ``requests`` exceptions are never logged, put into an error, or chained onto one.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NoReturn, Self
from urllib.parse import quote, urlsplit

import requests
import requests.adapters
import urllib3.exceptions
import urllib3.util

from opsrecon_dagster.providers.base import (
    EnvironmentRef,
    PolicyObject,
    ProviderError,
    ProviderErrorKind,
    policy_from_payload,
)
from opsrecon_dagster.providers.redaction import Redactor

logger = logging.getLogger(__name__)

# A service that keeps handing out nextLinks must not keep a job busy forever.
MAX_PAGES = 10_000
# Used when a 429/503 carries no (or an unreadable) Retry-After header.
DEFAULT_RETRY_AFTER_SECONDS = 1.0
# First back-off step for 5xx answers without Retry-After; doubled per retry.
BASE_BACKOFF_SECONDS = 0.5
# Bodies are read into memory to parse them; a hostile or broken server must not exhaust it.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

_READ_CHUNK_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Printable ASCII minus whitespace and backslash: URL parsers disagree on the rest, and such
# disagreement is how a "same host" check gets fooled.
_URL_SAFE_CHARS = frozenset(string.printable) - frozenset(string.whitespace) - {"\\"}
# RFC 6750 b64token plus a few harmless extras; anything else (CR/LF, spaces) could break or
# inject headers, and requests would echo the offending value in its exception text.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-._~+/=:")

_Origin = tuple[str, str, int]


class HttpTenantProvider:
    """``TenantProvider`` over a Graph-style REST API, authenticated with a bearer token.

    Throttling (429, and 503 with ``Retry-After``) is retried up to ``max_retries`` times per
    request, sleeping for ``Retry-After`` seconds capped at ``max_retry_after_seconds``; other
    5xx answers are retried with a capped exponential back-off. Transport timeouts and
    connection failures are not retried here: the job that called us decides about re-running.

    Redirects are never followed and ``@odata.nextLink`` must point at the origin (scheme, host,
    port) of ``base_url``, so the token is only ever sent to that origin.

    One instance holds one ``requests.Session``; use an instance from one thread at a time.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_seconds: float = 10.0,
        max_retries: int = 3,
        max_retry_after_seconds: float = 30.0,
        page_size: int | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        secrets: Iterable[str] = (),
    ) -> None:
        """Configure the provider; raises ``ValueError`` (never echoing the token) on bad input.

        ``timeout_seconds`` applies to connecting and to each socket read. ``page_size`` asks
        the service for ``$top`` objects per page; ``None`` leaves it to the service.
        ``secrets`` are further credentials of this provider (a client secret): redacted
        from its answers like the token.
        """
        base = base_url.rstrip("/")
        _check_settings(
            base,
            token,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            max_retry_after_seconds=max_retry_after_seconds,
            page_size=page_size,
            max_response_bytes=max_response_bytes,
        )
        self._base_url = base
        self._origin = _origin(base)
        self._timeout = float(timeout_seconds)
        self._max_retries = max_retries
        self._max_retry_after = float(max_retry_after_seconds)
        self._page_size = page_size
        self._max_response_bytes = max_response_bytes
        self._sleep = sleep
        # Retries are urllib3's (counting, which answers, draining the retried response);
        # only the waits are ours (Retry-After capped, back-off, the injectable sleep).
        retry = _ProviderRetry(max_retries, pause=sleep, max_retry_after=self._max_retry_after)
        self._session = _authorized_session(token, retry)
        self._redactor = Redactor([token, *secrets])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, "
            f"timeout_seconds={self._timeout!r}, max_retries={self._max_retries!r})"
        )

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- TenantProvider ---------------------------------------------------------------------

    @property
    def redacted_fields(self) -> int:
        """Fields of this provider's answers that lost content to redaction so far."""
        return self._redactor.redacted_fields

    def list_policies(self, env: EnvironmentRef, policy_type: str) -> Iterator[PolicyObject]:
        """Yield every object of ``policy_type``, following ``@odata.nextLink`` page by page.

        Each page is validated as a whole before any of its objects is yielded. A 404 on a
        listing means a wrong tenant or policy type (not a missing item), so it is reported as
        ``BAD_RESPONSE``. Raises ``ProviderError``, possibly after yielding earlier pages.
        """
        url = self._policy_url(env, policy_type)
        if self._page_size is not None:
            url = f"{url}?$top={self._page_size}"
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            seen.add(url)
            body = self._get_json(url, policy_type, not_found=ProviderErrorKind.BAD_RESPONSE)
            objects, next_link = _parse_page(body, policy_type)
            yield from objects
            if next_link is None:
                return
            # Following a link elsewhere would hand our token to whoever wrote the response.
            if _origin(next_link) != self._origin or next_link in seen:
                _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)
            url = next_link
        _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)

    def fetch_policy(self, env: EnvironmentRef, policy_type: str, external_id: str) -> PolicyObject:
        """Fetch one object's current version. Raises ``ProviderError`` (404 → ``NOT_FOUND``).

        An answer whose ``id`` differs from ``external_id`` is ``BAD_RESPONSE``: storing it as
        a backup of the requested object would be wrong.
        """
        url = f"{self._policy_url(env, policy_type)}/{_segment(external_id)}"
        body = self._get_json(url, policy_type, not_found=ProviderErrorKind.NOT_FOUND)
        if not isinstance(body, dict):
            _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)
        obj = policy_from_payload(policy_type, body)
        if obj.external_id != external_id:
            _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)
        return obj

    # -- internals --------------------------------------------------------------------------

    def _policy_url(self, env: EnvironmentRef, policy_type: str) -> str:
        return (
            f"{self._base_url}/tenants/{_segment(env.partition_key)}"
            f"/policies/{_segment(policy_type)}"
        )

    def _get_json(self, url: str, policy_type: str, *, not_found: ProviderErrorKind) -> Any:
        """GET ``url`` (urllib3 retries throttling and 5xx) and return the decoded JSON body,
        redacted, or raise ProviderError for the final answer."""
        status, body = self._send(url, policy_type)
        if body is None:
            _fail(_classify(status, not_found), policy_type, status)
        return self._redact(_decode_json(body, policy_type), policy_type)

    def _redact(self, value: Any, policy_type: str) -> Any:
        """The answer with this provider's credentials redacted (the one redaction step)."""
        ok = True
        try:
            cleaned = self._redactor.clean(value)
        except RecursionError:  # nested deeper than redaction can walk: not a usable answer
            ok = False
        if not ok:
            _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)
        return cleaned

    def _send(self, url: str, policy_type: str) -> tuple[int, bytes | None]:
        """One GET, retried by urllib3: (final status, body for 2xx else None).

        Error bodies are never read: nothing in them is needed and they may hold secrets.
        """
        failure = ProviderErrorKind.UNAVAILABLE
        try:
            # No redirects: the origin check on nextLink must not be bypassable via Location.
            with self._session.get(
                url, timeout=self._timeout, allow_redirects=False, stream=True
            ) as response:
                status = response.status_code
                if not 200 <= status < 300:
                    return status, None
                return status, self._read_body(response, policy_type)
        except requests.RequestException as exc:
            failure = _transport_failure(exc)
        # Raised outside the except block so the requests exception (its text holds the URL
        # and possibly more) is neither chained as __cause__ nor attached as __context__.
        _fail(failure, policy_type)

    def _read_body(self, response: requests.Response, policy_type: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(chunk_size=_READ_CHUNK_BYTES):
            body += chunk
            if len(body) > self._max_response_bytes:
                _fail(ProviderErrorKind.BAD_RESPONSE, policy_type, response.status_code)
        return bytes(body)


def _check_settings(
    base: str,
    token: str,
    *,
    timeout_seconds: float,
    max_retries: int,
    max_retry_after_seconds: float,
    page_size: int | None,
    max_response_bytes: int,
) -> None:
    """Raise ``ValueError`` for the first unusable setting; no message echoes the token."""
    parts = urlsplit(base)
    if _origin(base) is None or parts.query or parts.fragment:
        raise ValueError("base_url must be an absolute http(s) URL without credentials")
    if not token or not set(token) <= _TOKEN_CHARS:
        # Deliberately vague: the message must not contain any part of the token.
        raise ValueError("token is empty or contains characters not allowed in a header")
    if not (math.isfinite(timeout_seconds) and timeout_seconds > 0):
        raise ValueError("timeout_seconds must be a positive number")
    if max_retries < 0:
        raise ValueError("max_retries must be >= 0")
    if not (math.isfinite(max_retry_after_seconds) and max_retry_after_seconds >= 0):
        raise ValueError("max_retry_after_seconds must be a non-negative number")
    if page_size is not None and page_size <= 0:
        raise ValueError("page_size must be positive")
    if max_response_bytes <= 0:
        raise ValueError("max_response_bytes must be positive")


def _authorized_session(token: str, retry: urllib3.util.Retry) -> requests.Session:
    """A session that retries through ``retry`` and sends the bearer token with every GET."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # The token lives only in the session headers, never in an attribute repr() would show.
    session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
    return session


def _retry_delay(status: int, retry_after: str | None, retries: int, cap: float) -> float:
    """Seconds to wait before retry number ``retries + 1`` of an answer urllib3 retries."""
    if status == 429 or (status == 503 and retry_after is not None):
        delay = _parse_retry_after(retry_after)
    else:
        delay = BASE_BACKOFF_SECONDS * 2.0**retries
    return min(delay, cap)


class _ProviderRetry(urllib3.util.Retry):
    """urllib3's ``Retry`` for GETs answered 429 or 5xx, up to ``total`` retries; the final
    answer is returned, not raised (its status is classified by the provider). Transport
    errors are not retried. The wait is ours: ``Retry-After`` (seconds, fractional, or an
    HTTP date; unreadable means 1 s) capped at ``max_retry_after``, else a doubling back-off,
    through ``pause`` (tests pass a recorder)."""

    def __init__(
        self,
        total: int,
        *,
        pause: Callable[[float], None] = time.sleep,
        max_retry_after: float = 30.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("connect", 0)
        kwargs.setdefault("read", False)
        kwargs.setdefault("redirect", False)
        kwargs.setdefault("other", 0)
        kwargs.setdefault("allowed_methods", frozenset({"GET"}))
        kwargs.setdefault("status_forcelist", frozenset({429, *range(500, 600)}))
        kwargs.setdefault("raise_on_status", False)
        kwargs.setdefault("raise_on_redirect", False)
        super().__init__(total=total, **kwargs)
        self._pause = pause
        self._max_retry_after = max_retry_after

    def new(self, **kw: Any) -> Self:
        # urllib3 makes a new Retry per attempt; the waits' settings go along.
        retry = super().new(**kw)
        retry._pause = self._pause
        retry._max_retry_after = self._max_retry_after
        return retry

    def sleep(self, response: urllib3.BaseHTTPResponse | None = None) -> None:
        if response is None:  # not reached: transport errors are not retried
            return
        done = len(self.history)  # this answer included
        delay = _retry_delay(
            response.status, response.headers.get("Retry-After"), done - 1, self._max_retry_after
        )
        logger.warning("provider answered HTTP %d; retry %d in %.1fs", response.status, done, delay)
        self._pause(delay)


def _fail(kind: ProviderErrorKind, policy_type: str, status_code: int | None = None) -> NoReturn:
    """Raise a ProviderError with only safe fields; ``from None`` hides any handled exception."""
    raise ProviderError(kind, policy_type=policy_type, status_code=status_code) from None


def _transport_failure(exc: requests.RequestException) -> ProviderErrorKind:
    if isinstance(exc, requests.Timeout):
        return ProviderErrorKind.TIMEOUT
    # A read timeout while streaming the body surfaces as ConnectionError(ReadTimeoutError).
    if isinstance(exc, requests.ConnectionError) and any(
        isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args
    ):
        return ProviderErrorKind.TIMEOUT
    return ProviderErrorKind.UNAVAILABLE


def _classify(status: int, not_found: ProviderErrorKind) -> ProviderErrorKind:
    if status == 401:
        return ProviderErrorKind.CONSENT_MISSING
    if status == 403:
        return ProviderErrorKind.PERMISSION_MISSING
    if status == 404:
        return not_found
    if status == 408:
        return ProviderErrorKind.TIMEOUT
    if status == 429:  # still throttled after every retry
        return ProviderErrorKind.THROTTLED
    if 500 <= status < 600:
        return ProviderErrorKind.UNAVAILABLE
    # Redirects and other 4xx: nothing we can act on, and the answer is not what we asked for.
    return ProviderErrorKind.BAD_RESPONSE


def _decode_json(body: bytes, policy_type: str) -> Any:
    ok = True
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and over-long integers.
        ok = False
    if not ok:
        _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)
    return value


def _parse_page(body: Any, policy_type: str) -> tuple[list[PolicyObject], str | None]:
    if not isinstance(body, dict):
        _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)
    items = body.get("value")
    next_link = body.get("@odata.nextLink")
    if not isinstance(items, list) or not (next_link is None or isinstance(next_link, str)):
        _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)
    objects: list[PolicyObject] = []
    for item in items:
        if not isinstance(item, Mapping):
            _fail(ProviderErrorKind.BAD_RESPONSE, policy_type)
        objects.append(policy_from_payload(policy_type, item))
    return objects, next_link


def _parse_retry_after(value: str | None) -> float:
    """Retry-After as delta-seconds or HTTP-date; missing or unreadable → the default."""
    if value is None:
        return DEFAULT_RETRY_AFTER_SECONDS
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_SECONDS
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
        return max(seconds, 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        return DEFAULT_RETRY_AFTER_SECONDS
    return seconds


def _segment(value: str) -> str:
    """Quote one path segment; reject values that would change the path's shape."""
    if not value or value in (".", ".."):
        raise ValueError("empty or relative path segment")
    return quote(value, safe="")


def _origin(url: str) -> _Origin | None:
    """(scheme, host, port) of an absolute http(s) URL without credentials, else None.

    The URL is parsed by both urllib.parse and urllib3 (which requests uses to connect); they
    must agree, so a crafted URL cannot pass the check with one parser and connect with the
    other.
    """
    if not url or not set(url) <= _URL_SAFE_CHARS:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
        other = urllib3.util.parse_url(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").strip("[]").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if (
        (other.scheme or "").lower() != scheme
        or (other.host or "").strip("[]").lower() != host
        or other.port != port
        or other.auth is not None
    ):
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]
