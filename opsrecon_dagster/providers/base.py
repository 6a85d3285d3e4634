"""The provider boundary: the remote management API that only jobs (assets) talk to.

Two implementations stand behind ``TenantProvider``: the fixture provider (deterministic fake
tenants with injectable faults, a product feature for demos and tests) and the HTTP provider
(Graph-style REST). Errors cross this boundary only as ``ProviderError`` with a reason code;
raw response bodies, tokens and exception text stay behind it.

Every value a provider returns passes one redaction step first (``providers/redaction.py``):
its own credentials and anything shaped like a bearer token or a JWT become ``[redacted]``
before an object is reduced to a ``PolicyObject`` (so before it is hashed or stored), and
the provider counts the fields that lost content (``redacted_fields``).

The protocol has no fault hook: the fixture provider fires its faults from its own calls
(``CallPoint`` in ``providers/fixture.py``), so jobs never call anything test-only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class ProviderErrorKind(StrEnum):
    """Classified provider failures; the value is the reason code stored with a run."""

    THROTTLED = "provider_throttled"
    CONSENT_MISSING = "provider_consent_missing"
    PERMISSION_MISSING = "provider_permission_missing"
    TIMEOUT = "provider_timeout"
    UNAVAILABLE = "provider_unavailable"
    BAD_RESPONSE = "provider_bad_response"
    NOT_FOUND = "provider_item_not_found"

    @property
    def is_precondition(self) -> bool:
        """Failures that need operator action (consent/permission), i.e. ``blocked`` material."""
        return self in (ProviderErrorKind.CONSENT_MISSING, ProviderErrorKind.PERMISSION_MISSING)


class ProviderError(Exception):
    """A classified provider failure. Its text is the reason code and safe ids only."""

    def __init__(
        self,
        kind: ProviderErrorKind,
        *,
        policy_type: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.kind = kind
        self.policy_type = policy_type
        self.status_code = status_code
        where = f" for {policy_type}" if policy_type else ""
        code = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{kind.value}{where}{code}")

    @property
    def reason_code(self) -> str:
        return self.kind.value

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the fields, not the message, so the error survives process boundaries.
        return (
            _rebuild_provider_error,
            (self.kind.value, self.policy_type, self.status_code),
        )


def _rebuild_provider_error(
    kind: str, policy_type: str | None, status_code: int | None
) -> ProviderError:
    return ProviderError(ProviderErrorKind(kind), policy_type=policy_type, status_code=status_code)


@dataclass(frozen=True)
class EnvironmentRef:
    """What a provider needs to address one managed environment (no secrets)."""

    workspace_slug: str
    environment_slug: str
    partition_key: str


@dataclass(frozen=True)
class PolicyObject:
    """One policy object as the product keeps it: identifiers and a content hash, no payload."""

    policy_type: str
    external_id: str
    display_name: str
    content_hash: str


def content_hash(payload: Mapping[str, Any]) -> str:
    """Stable hash of a provider payload (key order does not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def policy_from_payload(policy_type: str, payload: Mapping[str, Any]) -> PolicyObject:
    """Reduce a Graph-style object (``id``, ``displayName``) to a ``PolicyObject``.

    ``payload`` must have passed the provider's ``Redactor`` already: this is where it is
    hashed and where the stored fields are taken from.

    Raises ``ProviderError(BAD_RESPONSE)`` when the object has no usable id.
    """
    external_id = payload.get("id")
    if not isinstance(external_id, str) or not external_id or len(external_id) > 128:
        raise ProviderError(ProviderErrorKind.BAD_RESPONSE, policy_type=policy_type)
    name = payload.get("displayName")
    display_name = name[:256] if isinstance(name, str) and name else external_id
    return PolicyObject(policy_type, external_id, display_name, content_hash(payload))


@runtime_checkable
class TenantProvider(Protocol):
    """Read access to one tenant's management API."""

    def list_policies(self, env: EnvironmentRef, policy_type: str) -> Iterator[PolicyObject]:
        """Yield every object of ``policy_type``, page by page.

        Raises ``ProviderError`` (possibly after yielding some objects).
        """
        ...

    def fetch_policy(self, env: EnvironmentRef, policy_type: str, external_id: str) -> PolicyObject:
        """Fetch one object's current version (for backups). Raises ``ProviderError``."""
        ...

    @property
    def redacted_fields(self) -> int:
        """How many fields of the values this provider returned so far lost content to its
        redaction step (``providers/redaction.py``); a count, never what they held."""
        ...
