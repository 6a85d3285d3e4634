"""Post JSON to a webhook (a Slack incoming webhook, or anything that takes JSON).

The URL of a Slack webhook is itself the secret: it is never logged, put into an error or
shown. A failure says only whether the receiver answered, and with which HTTP status.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

import requests


class WebhookError(Exception):
    """The webhook did not take a post: ``status`` is its HTTP status, or None when it
    could not be reached (the request's own exception text, with the URL, is not kept)."""

    def __init__(self, status: int | None) -> None:
        self.status = status
        super().__init__(f"webhook answered HTTP {status}" if status else "webhook unreachable")


class Webhook:
    """One webhook URL. Redirects are not followed (the post goes where it was configured)."""

    def __init__(self, url: str, *, timeout_seconds: float = 10.0) -> None:
        """Raises ``ValueError`` (never echoing the URL) unless it is an absolute http(s)
        URL and the timeout is positive."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the alert webhook URL must be an absolute http(s) URL")
        if not (math.isfinite(timeout_seconds) and timeout_seconds > 0):
            raise ValueError("the alert webhook timeout must be a positive number")
        self._url = url
        self._timeout = timeout_seconds
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url=<hidden>, timeout_seconds={self._timeout!r})"

    def post(self, payload: dict[str, Any], *, idempotency_key: str) -> None:
        """POST ``payload`` as JSON; raises ``WebhookError`` unless the answer is 2xx."""
        status: int | None = None
        try:
            response = self._session.post(
                self._url,
                json=payload,
                timeout=self._timeout,
                allow_redirects=False,
                headers={"Idempotency-Key": idempotency_key},
            )
            status = response.status_code
            response.close()
        except requests.RequestException:
            pass
        # Raised outside the except block: the requests exception (its text names the URL)
        # is neither chained nor attached as context.
        if status is None or not 200 <= status < 300:
            raise WebhookError(status)

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()
