"""The one redaction step every value a tenant provider returns passes, before anything is
parsed, stored or hashed.

A provider answers with data its remote side wrote. A misbehaving or hostile endpoint can
put the caller's own credentials into it (a policy named ``invalid token Bearer …``, a
paging link carrying the ``Authorization`` header), and whatever the provider hands on ends
up in the artifact tables that viewers read. So both providers (``providers/fixture.py`` and
``providers/http.py``) send every decoded value through a ``Redactor`` first:

- the provider's own secrets (the bearer token, a client secret, any other configured
  secret), also percent-encoded as a URL would carry them, in any letter case;
- anything shaped like a bearer credential (``Bearer <token>``, also ``Bearer%20…`` and
  ``Bearer+…`` as a query string carries it) or a JWT (``eyJ….….…``)

are replaced by ``REDACTED``, in every string of the value: object keys and values, list
items, nested settings, paging links. Numbers, booleans and null pass unchanged.

The redactor counts the *fields* that lost content (one per string that changed, a key
included), never what they held: ``redacted_fields`` is all a run's evidence learns. Plain
Python, no Dagster import; safe to share between threads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
"""What a credential in a provider's answer is replaced with."""

# RFC 6750 b64token after "Bearer" and a space (or its URL forms %20 and +); at least 8
# characters, so prose ("bearer of") keeps its words while any real token is caught.
_BEARER = r"(?i:\bbearer(?:\s+|%20|\+)+[A-Za-z0-9\-._~+/%]{8,}=*)"
# A JWS or JWE in compact form: a base64url JSON header ('{"' encodes as "eyJ"), then two
# or four more dot-separated base64url parts (the signature of an unsigned token is empty).
_JWT = r"(?:\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*){0,2})"


def _forms(secret: str) -> set[str]:
    """The secret as a string may carry it: as is, and percent-encoded for a URL."""
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}


class Redactor:
    """Replaces credentials in provider answers by ``REDACTED`` and counts the fields that
    lost content (``redacted_fields``).

    ``secrets`` are the provider's own credentials; empty ones are ignored. Shape-based
    redaction (bearer, JWT) applies whatever the secrets are, so a redactor without any
    (the fixture provider's) still removes anything shaped like a credential.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literals = {form for secret in secrets if secret for form in _forms(secret)}
        # Longest first, so a secret that contains another is replaced whole.
        escaped = [re.escape(s) for s in sorted(literals, key=len, reverse=True)]
        alternatives = [_BEARER, _JWT, *(f"(?i:{e})" for e in escaped)]
        self._pattern = re.compile("|".join(alternatives))
        self._count = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        # Never the secrets: only how much was redacted so far.
        return f"{type(self).__name__}(redacted_fields={self._count})"

    @property
    def redacted_fields(self) -> int:
        """How many fields of the answers passed through ``clean`` (or ``record``ed) lost
        content so far."""
        return self._count

    def clean(self, value: Any) -> Any:
        """``value`` redacted, with its redacted fields counted (``redacted_fields``)."""
        cleaned, fields = self.redact(value)
        self.record(fields)
        return cleaned

    def record(self, fields: int) -> None:
        """Count ``fields`` more redacted fields (for answers redacted ahead and served later)."""
        if fields:
            with self._lock:
                self._count += fields

    def redact(self, value: Any) -> tuple[Any, int]:
        """A copy of a JSON-like ``value`` with every credential replaced, and the number of
        fields (strings, keys included) that lost content. Counts nothing itself."""
        if isinstance(value, str):
            cleaned = self.redact_text(value)
            return cleaned, int(cleaned != value)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            fields = 0
            for key, item in value.items():
                clean_key, key_fields = self.redact(key)
                clean_item, item_fields = self.redact(item)
                out[clean_key] = clean_item
                fields += key_fields + item_fields
            return out, fields
        if isinstance(value, list | tuple):
            items = [self.redact(item) for item in value]
            return [item for item, _ in items], sum(fields for _, fields in items)
        return value, 0

    def redact_text(self, text: str) -> str:
        """``text`` with every credential replaced by ``REDACTED``."""
        return self._pattern.sub(REDACTED, text)
