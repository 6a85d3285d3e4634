"""Fixture provider: deterministic fake tenants with injectable faults, behind ``TenantProvider``.

A product feature, not a test double: the demo runs against it, and so do the tests of
everything above the provider boundary. Plain Python on pydantic (no Dagster import).

Every object is derived from ``(seed, partition_key, policy_type, index)``, so the same
configuration always yields the same ids, names and content hashes, while a different seed or
a different environment yields different ones. Faults are configured per environment (keyed by
``EnvironmentRef.partition_key``) and surface exactly as the HTTP provider would report them:
as ``ProviderError`` with a reason code, the policy type and an HTTP-like status.

Two faults act on the process instead: ``crash_at`` (a real SIGKILL) and ``pause_at`` (a wait
at a file gate). Both name a point in the provider's *own* calls, a ``CallPoint`` such as
``{"call": "list_policies", "number": 2}``: just before the provider serves the second
``list_policies`` call for that environment. Jobs know nothing about them; the provider
fires them from its fixture data alone, so production code carries no fault hooks.

Every call of a ``TenantProvider`` method is counted, so a test can prove that a code path
never talks to the provider (the guard that status and render paths make zero calls):

- in memory, per provider object: ``FixtureTenantProvider.calls``;
- across processes, when the configuration names a ``call_log`` file: each call appends one
  line ``<method>\t<partition key>`` to it before the call does anything else. A command line
  or a daemon whose ``OPSRECON_FIXTURE_PATH`` names such a fixture file thus leaves a trace
  of every provider call it made, and an absent or empty log proves it made none
  (``read_call_log``). A listing counts when its first page is asked for, as an HTTP listing
  sends its first request then. A log that cannot be written fails the call (``OSError``):
  a lost line would make a call look like none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opsrecon_dagster.providers.base import (
    EnvironmentRef,
    PolicyObject,
    ProviderError,
    ProviderErrorKind,
    policy_from_payload,
)
from opsrecon_dagster.providers.redaction import Redactor

logger = logging.getLogger(__name__)

# Fixtures are generated in memory; a typo such as 1000000 must fail at load, not eat the RAM.
MAX_ITEMS_PER_TYPE = 10_000

DEFAULT_FIXTURE_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "tenants.json"

PolicyTypeName = Annotated[str, Field(min_length=1, max_length=128)]
ItemCount = Annotated[int, Field(ge=0, le=MAX_ITEMS_PER_TYPE)]
CallName = Literal["list_policies", "fetch_policy"]
"""The ``TenantProvider`` methods the provider counts, i.e. where a fault can fire."""

# Values the generated "settings" of an object are drawn from; arbitrary but fixed forever,
# since changing them would change every content hash.
_CHANNELS = ("stable", "preview", "beta", "pilot")
_LEVELS = ("low", "medium", "high")
_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[_\-\s]+")


class FixtureConfigError(ValueError):
    """A fixture file that cannot be read, is not JSON, or does not match the schema.

    The message names the file and the first problem, and nothing else.
    """


class _Model(BaseModel):
    # Frozen so the provider can cache generated objects without the config changing under it;
    # extra="forbid" so a misspelled fault name fails loudly instead of silently doing nothing.
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallPoint(_Model):
    """A point in the fixture provider's own calls: just before it serves call number
    ``number`` of ``call`` for one environment.

    Calls are counted per provider instance and per environment (``FixtureTenantProvider.calls``;
    a job builds its own provider, so in practice: per job execution). The call has been counted
    (and logged to ``call_log``) when the fault fires, but nothing has been served yet: for a
    listing, not even its first page. So ``{"call": "list_policies", "number": 2}`` in an
    inventory sync is "after the first type was listed, before the second one is", and
    ``{"call": "fetch_policy", "number": 2}`` in a backup is "after the first item was captured".

    Its string form ``<call>#<number>`` (``list_policies#2``, see ``parse``) is file-name safe
    and names the point in gate files.
    """

    call: CallName
    number: int = Field(ge=1, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: Any) -> Any:
        # Before the provider had call points, faults named job checkpoints (strings).
        if isinstance(data, str):
            raise ValueError(
                'a call point is an object such as {"call": "list_policies", "number": 2} '
                "(call: list_policies or fetch_policy, number: 1 or more), not a string"
            )
        return data

    @classmethod
    def parse(cls, text: str) -> CallPoint:
        """The point of a string form ``<call>#<number>``; raises ``ValueError`` otherwise."""
        call, sep, number = text.partition("#")
        if sep and number.isdecimal() and number.isascii():
            try:
                return cls.model_validate({"call": call, "number": int(number)})
            except ValidationError:
                pass
        raise ValueError(
            f"not a call point: {text!r} (expected <call>#<number>, call list_policies or "
            "fetch_policy, number 1 or more)"
        )

    def is_call(self, call: str, number: int) -> bool:
        """True for call number ``number`` of ``call``."""
        return (self.call, self.number) == (call, number)

    def __str__(self) -> str:
        return f"{self.call}#{self.number}"


class FixtureFaults(_Model):
    """Faults injected into one environment."""

    consent_missing: bool = False
    """Every list/fetch for the environment raises ``CONSENT_MISSING`` (HTTP 401)."""
    permission_missing_types: list[PolicyTypeName] = Field(default_factory=list)
    """List/fetch of these policy types raise ``PERMISSION_MISSING`` (HTTP 403)."""
    throttled_types: list[PolicyTypeName] = Field(default_factory=list)
    """Listing these types raises ``THROTTLED`` (HTTP 429) after yielding the first page."""
    failing_items: int = Field(default=0, ge=0)
    """``fetch_policy`` raises ``UNAVAILABLE`` for the first N objects of each type."""
    slow_page_seconds: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    """Seconds slept before each page of a listing is served."""
    crash_at: CallPoint | None = None
    """At this point of the provider's calls (see ``CallPoint``) the provider SIGKILLs its own
    process: a real worker death, with no exception, no cleanup and no ``finally``."""
    pause_at: CallPoint | None = None
    """At this point of the provider's calls the provider waits at a file gate (see
    ``gate_dir``); when both name the same point, it waits first, then is killed."""


class FixtureEnvironment(_Model):
    """One fake environment: which objects it holds and which faults it shows."""

    policy_types: dict[PolicyTypeName, ItemCount] | None = None
    """Policy type → number of objects; ``None`` means the config's ``default_policy_types``."""
    duplicate_display_names: dict[PolicyTypeName, ItemCount] = Field(default_factory=dict)
    """Per type: N extra objects whose displayName equals that of object #0 (ambiguous names)."""
    faults: FixtureFaults = Field(default_factory=FixtureFaults)


class FixtureConfig(_Model):
    """The whole fixture: a seed, the page size and the environments that differ from default."""

    seed: int = 7
    page_size: int = Field(default=5, ge=1)
    default_policy_types: dict[PolicyTypeName, ItemCount] = Field(
        default_factory=lambda: {
            "deviceConfigurations": 6,
            "compliancePolicies": 4,
            "appProtectionPolicies": 3,
        }
    )
    environments: dict[str, FixtureEnvironment] = Field(default_factory=dict)
    """Keyed by ``EnvironmentRef.partition_key``; others get the defaults and no faults."""
    gate_dir: str | None = None
    """Folder of the ``pause_at`` gates: a paused worker creates ``<partition>.<point>.reached``
    there (``<point>`` is the string form of the ``CallPoint``, e.g.
    ``globex.stark.list_policies#2.reached``) and goes on once ``<partition>.<point>.release``
    exists, so a demo or a test can act while the worker is provably mid-run (files, not
    sleeps); ``FileGate`` is the other side. Unset: ``pause_at`` does not wait."""
    gate_timeout_seconds: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    """A gate nobody opens lets the worker go on after this long (it never hangs forever)."""
    call_log: str | None = Field(default=None, min_length=1)
    """File every provider call appends one line ``<method>\t<partition key>`` to (its folder
    is created); unset: calls are counted in memory only. Relative paths are relative to the
    working directory of the process that calls, so give an absolute one."""

    @model_validator(mode="after")
    def _duplicates_need_an_original(self) -> Self:
        # A duplicate of object #0 is only meaningful (ambiguous) when object #0 exists.
        for key, env in self.environments.items():
            counts = self.policy_types_of(env)
            for policy_type, extra in env.duplicate_display_names.items():
                if extra and counts.get(policy_type, 0) < 1:
                    raise ValueError(
                        f"environment {key!r}: duplicate_display_names names {policy_type!r}, "
                        "which has no objects to duplicate"
                    )
        return self

    def policy_types_of(self, env: FixtureEnvironment) -> dict[str, int]:
        """The effective policy type → object count of ``env`` (defaults applied)."""
        chosen = env.policy_types if env.policy_types is not None else self.default_policy_types
        return dict(chosen)


@dataclass(frozen=True)
class _TypeObjects:
    """The generated objects of one (environment, policy type), in listing order, and how
    many fields of each lost content to redaction (counted each time it is served)."""

    objects: tuple[PolicyObject, ...]
    positions: dict[str, int]
    redacted: tuple[int, ...]


class FixtureTenantProvider:
    """``TenantProvider`` over deterministic fake tenants, with faults injected per environment.

    Listings are served in pages of ``page_size``; object #i of a type has the 2-digit number
    i+1 in its displayName. Duplicate-name objects (``duplicate_display_names``) come after the
    regular ones. An unknown policy type has zero objects (not an error).

    Fault precedence for a call: consent (401), then permission (403), then the fault specific
    to the call (throttling for listings; not-found and failing items for fetches).

    Instances are safe to share between threads: the mutable state is a cache of generated
    objects (filling it twice is harmless) and the ``calls`` counter (updated under a lock).
    Every call of ``list_policies`` and ``fetch_policy`` is counted there and, when the
    configuration names a ``call_log``, appended to that file (see the module docstring).
    That count is what ``crash_at`` and ``pause_at`` (``CallPoint``) refer to: an environment's
    faults fire just before its Nth call of a method is served.

    Every generated payload passes the same redaction step as the HTTP provider's answers
    (``providers/redaction.py``) before it is hashed; ``redacted_fields`` counts the fields
    that lost content in the objects served.
    """

    def __init__(
        self,
        config: FixtureConfig | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        secrets: Iterable[str] = (),
    ) -> None:
        """Serve ``config`` (default: ``FixtureConfig()``); ``sleep`` is used for slow pages;
        ``secrets`` are credentials redacted from the payloads (shapes of bearer tokens and
        JWTs are redacted without any)."""
        # Deep copy: the caller's config object may hold mutable lists; ours must not change.
        self._config = (config if config is not None else FixtureConfig()).model_copy(deep=True)
        self._sleep = sleep
        self._cache: dict[tuple[str, str], _TypeObjects] = {}
        # (partition key, call name) -> number of calls: lets a test prove that a worker
        # made no provider call at all (e.g. when its guard refused the run), and is what the
        # call points of crash_at/pause_at count.
        self.calls: Counter[tuple[str, str]] = Counter()
        self._calls_lock = threading.Lock()
        self._call_log = Path(self._config.call_log) if self._config.call_log else None
        self._redactor = Redactor(secrets)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> FixtureTenantProvider:
        """Load a JSON fixture file; raises ``FixtureConfigError`` naming the first problem."""
        return cls(load_fixture_config(path), sleep=sleep)

    @classmethod
    def default(cls, *, sleep: Callable[[float], None] = time.sleep) -> FixtureTenantProvider:
        """The provider over the packaged ``opsrecon_dagster/fixtures/tenants.json``."""
        return cls.from_file(DEFAULT_FIXTURE_FILE, sleep=sleep)

    @property
    def config(self) -> FixtureConfig:
        """The (frozen) configuration this provider serves."""
        return self._config

    def environment_config(self, partition_key: str) -> FixtureEnvironment:
        """The configuration of one environment; unlisted environments get the defaults."""
        env = self._config.environments.get(partition_key)
        return env if env is not None else FixtureEnvironment()

    def policy_types(self, partition_key: str) -> dict[str, int]:
        """Policy type → number of regular objects in the environment (without duplicates)."""
        return self._config.policy_types_of(self.environment_config(partition_key))

    # -- TenantProvider ---------------------------------------------------------------------

    @property
    def redacted_fields(self) -> int:
        """Fields of the objects served so far that lost content to redaction."""
        return self._redactor.redacted_fields

    def list_policies(self, env: EnvironmentRef, policy_type: str) -> Iterator[PolicyObject]:
        """Yield every object of ``policy_type``, page by page.

        Sleeps ``slow_page_seconds`` before each page. A throttled type raises ``THROTTLED``
        once its first page has been yielded, even when that page held everything: the fault is
        meant to show partial data, so it must fire whatever the object count.
        """
        faults = self._serve(env, "list_policies")
        self._check_access(faults, policy_type)
        generated = self._objects(env.partition_key, policy_type)
        objects = generated.objects
        page_size = self._config.page_size
        # max(..., 1): an empty listing is still one (empty) page, as from a real service.
        for start in range(0, max(len(objects), 1), page_size):
            if faults.slow_page_seconds > 0:
                self._sleep(faults.slow_page_seconds)
            self._redactor.record(sum(generated.redacted[start : start + page_size]))
            yield from objects[start : start + page_size]
            if policy_type in faults.throttled_types:
                _fail(ProviderErrorKind.THROTTLED, policy_type, 429)

    def fetch_policy(self, env: EnvironmentRef, policy_type: str, external_id: str) -> PolicyObject:
        """Return the object with ``external_id``, identical to the one the listing yields.

        Raises ``NOT_FOUND`` (404) for an unknown id and ``UNAVAILABLE`` (503) for the first
        ``failing_items`` objects of the type in listing order.
        """
        faults = self._serve(env, "fetch_policy")
        self._check_access(faults, policy_type)
        generated = self._objects(env.partition_key, policy_type)
        position = generated.positions.get(external_id)
        if position is None:
            _fail(ProviderErrorKind.NOT_FOUND, policy_type, 404)
        if position < faults.failing_items:
            _fail(ProviderErrorKind.UNAVAILABLE, policy_type, 503)
        self._redactor.record(generated.redacted[position])
        return generated.objects[position]

    # -- internals --------------------------------------------------------------------------

    def _serve(self, env: EnvironmentRef, method: CallName) -> FixtureFaults:
        """Start serving one call: count it, then fire the environment's ``pause_at`` and
        ``crash_at`` when they name this call; the environment's faults for the rest."""
        number = self._record(env, method)
        faults = self.environment_config(env.partition_key).faults
        if faults.pause_at is not None and faults.pause_at.is_call(method, number):
            self._wait_at_gate(env, faults.pause_at)
        if faults.crash_at is not None and faults.crash_at.is_call(method, number):
            logger.warning(
                "fixture fault: killing process %d before %s of %s",
                os.getpid(),
                faults.crash_at,
                env.partition_key,
            )
            # A real death: no exception, no cleanup, no ``finally``, so recovery code is
            # exercised against what actually happens when a worker is killed.
            os.kill(os.getpid(), signal.SIGKILL)
        return faults

    def _record(self, env: EnvironmentRef, method: CallName) -> int:
        """Count one provider call, in memory and in the call log when one is configured;
        return its number among this environment's calls of ``method`` (1 for the first)."""
        with self._calls_lock:
            self.calls[(env.partition_key, method)] += 1
            number = self.calls[(env.partition_key, method)]
        if self._call_log is not None:
            self._call_log.parent.mkdir(parents=True, exist_ok=True)
            # One short write in append mode: lines of concurrent processes do not interleave.
            with self._call_log.open("a", encoding="utf-8") as log:
                log.write(f"{method}\t{env.partition_key}\n")
        return number

    def _wait_at_gate(self, env: EnvironmentRef, point: CallPoint) -> None:
        if self._config.gate_dir is None:
            return
        gates = Path(self._config.gate_dir)
        gates.mkdir(parents=True, exist_ok=True)
        stem = _gate_stem(env.partition_key, point)
        (gates / f"{stem}.reached").write_text(str(os.getpid()))
        release = gates / f"{stem}.release"
        deadline = time.monotonic() + self._config.gate_timeout_seconds
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _check_access(self, faults: FixtureFaults, policy_type: str) -> None:
        if faults.consent_missing:
            _fail(ProviderErrorKind.CONSENT_MISSING, policy_type, 401)
        if policy_type in faults.permission_missing_types:
            _fail(ProviderErrorKind.PERMISSION_MISSING, policy_type, 403)

    def _objects(self, partition_key: str, policy_type: str) -> _TypeObjects:
        key = (partition_key, policy_type)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        generated = self._generate(partition_key, policy_type)
        # Unknown types are not cached: their names come from callers and could be unbounded.
        if generated.objects:
            self._cache[key] = generated
        return generated

    def _generate(self, partition_key: str, policy_type: str) -> _TypeObjects:
        env = self.environment_config(partition_key)
        count = self._config.policy_types_of(env).get(policy_type, 0)
        if count == 0:
            return _TypeObjects((), {}, ())
        extra = env.duplicate_display_names.get(policy_type, 0)
        seed = self._config.seed
        redacted = [
            self._redactor.redact(
                _payload(
                    seed,
                    partition_key,
                    policy_type,
                    index,
                    # Duplicates reuse object #0's name, so matching by name is ambiguous.
                    name_index=index if index < count else 0,
                )
            )
            for index in range(count + extra)
        ]
        objects = tuple(policy_from_payload(policy_type, payload) for payload, _ in redacted)
        positions = {obj.external_id: position for position, obj in enumerate(objects)}
        # 48 bits of hash per id: a collision is practically impossible, but would silently
        # make fetch_policy return the wrong object, so refuse rather than guess.
        if len(positions) != len(objects):
            raise RuntimeError(f"fixture id collision for {policy_type} in {partition_key}")
        return _TypeObjects(objects, positions, tuple(fields for _, fields in redacted))


def _gate_stem(partition_key: str, point: CallPoint | str) -> str:
    """``<partition>.<point>``, the name of a gate's files without their suffix."""
    return f"{partition_key}.{point}"


@dataclass(frozen=True)
class FileGate:
    """The other side of a ``pause_at`` gate: wait until a worker reached it, then open it.

    ``point`` is the environment's ``pause_at``: a ``CallPoint`` or its string form
    (``"list_policies#2"``), which is parsed here, so a mistyped point fails at once (a
    ``ValueError``) instead of waiting for a gate no worker will ever reach.
    """

    gate_dir: Path
    partition_key: str
    point: CallPoint | str

    def __post_init__(self) -> None:
        if isinstance(self.point, str):
            object.__setattr__(self, "point", CallPoint.parse(self.point))

    def _path(self, suffix: str) -> Path:
        # After __post_init__, ``point`` is a CallPoint: its str() is the canonical form.
        return self.gate_dir / f"{_gate_stem(self.partition_key, self.point)}.{suffix}"

    @property
    def reached_file(self) -> Path:
        """The file a worker creates when it waits at the gate; it holds its process id."""
        return self._path("reached")

    def wait_reached(self, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
        """True once a worker waits at the gate; False on timeout or when ``alive`` says the
        worker is gone (checked between polls)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if self.reached_file.exists():
                return True
            time.sleep(0.05)
        return self.reached_file.exists()

    def release(self) -> None:
        """Let the waiting worker go on."""
        self.gate_dir.mkdir(parents=True, exist_ok=True)
        self._path("release").write_text("go")


@dataclass(frozen=True)
class ProviderCall:
    """One line of a call log: which provider method was called for which environment."""

    method: str
    partition_key: str


def read_call_log(path: str | os.PathLike[str]) -> list[ProviderCall]:
    """The calls a ``call_log`` file recorded, in order; none when the file does not exist."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    calls = []
    for line in text.splitlines():
        method, _tab, partition_key = line.partition("\t")
        calls.append(ProviderCall(method, partition_key))
    return calls


def load_fixture_config(path: str | os.PathLike[str]) -> FixtureConfig:
    """Read and validate a fixture file; raises ``FixtureConfigError`` naming the first problem.

    Errors are raised ``from None``: the message is the whole story, a chained traceback would
    only add noise (and file contents) to a CLI error.
    """
    name = os.fspath(path)
    problem: str | None = None
    data: Any = None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"cannot read the file ({exc.strerror or type(exc).__name__})"
    except UnicodeDecodeError:
        problem = "the file is not UTF-8 text"
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        except RecursionError:
            problem = "not valid JSON (nested too deeply)"
    if problem is not None:
        raise FixtureConfigError(f"fixture file {name}: {problem}") from None
    try:
        return FixtureConfig.model_validate(data)
    except ValidationError as exc:
        problem = _first_validation_problem(exc)
    raise FixtureConfigError(f"fixture file {name}: {problem}") from None


def _first_validation_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "top level"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}{more}"


def _fail(kind: ProviderErrorKind, policy_type: str, status_code: int) -> NoReturn:
    raise ProviderError(kind, policy_type=policy_type, status_code=status_code)


def _digest(*parts: str | int) -> bytes:
    # JSON-encode the parts so ("a.b", "c") and ("a", "b.c") cannot hash alike.
    return hashlib.sha256(json.dumps(parts).encode()).digest()


def _human_name(policy_type: str) -> str:
    """``deviceConfigurations`` → ``Device Configurations``."""
    words = [word for word in _WORD_BOUNDARY.split(policy_type) if word]
    return " ".join(word[0].upper() + word[1:] for word in words) or policy_type


def _payload(
    seed: int, partition_key: str, policy_type: str, index: int, *, name_index: int
) -> dict[str, Any]:
    digest = _digest(seed, partition_key, policy_type, index)
    return {
        "id": f"{policy_type[:3].lower()}-{digest.hex()[:12]}",
        "displayName": f"{_human_name(policy_type)} {name_index + 1:02d}",
        "version": 1 + digest[6] % 9,
        "settings": {
            "enabled": digest[7] % 4 != 0,
            "channel": _CHANNELS[digest[8] % len(_CHANNELS)],
            "level": _LEVELS[digest[9] % len(_LEVELS)],
            "retryCount": digest[10] % 6,
        },
    }
