"""Pydantic shapes of everything stored as JSON on an operation run.

Evidence is deliberately narrow: safe identifiers and counts only. Unknown keys are
rejected, strings are pattern-checked and length-capped, lists are capped. A provider
payload, a token or an exception message has no field to live in.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from opsrecon_dagster.enums import Actor, RunOutcome

MAX_LISTED_IDS = 20
MAX_COUNT_KEYS = 24
MAX_HISTORY = 10
# A stored context larger or deeper than this was not written by the product: it is
# rejected before parsing, so it cannot exhaust memory or the recursion limit.
MAX_CONTEXT_CHARS = 256 * 1024
MAX_CONTEXT_DEPTH = 32

# snake_case identifiers: reason codes, adapter names, count keys, artifact statuses.
SnakeCase = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
PolicyType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")]
DagsterRunId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f\-]{8,64}$")]
DagsterRunStatusName = Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,32}$")]
FingerprintPrefix = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{4,16}$")]
Count = Annotated[int, Field(ge=0, le=10_000_000)]
IdList = Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=MAX_LISTED_IDS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=128)


class Evidence(_Strict):
    """Bounded proof summary recorded with a decision (docs/decisions.md)."""

    # Evidence derived with ``model_copy`` (scope ids, a claimed outcome added) is not
    # validated by the copy: it is validated again wherever it enters a decision.
    model_config = ConfigDict(revalidate_instances="always")

    workspace_id: int | None = None
    managed_environment_id: int | None = None
    artifact_kind: SnakeCase | None = None
    artifact_ids: IdList = Field(default_factory=list)
    artifact_statuses: Annotated[list[SnakeCase], Field(max_length=MAX_LISTED_IDS)] = Field(
        default_factory=list
    )
    counts: Annotated[dict[SnakeCase, Count], Field(max_length=MAX_COUNT_KEYS)] = Field(
        default_factory=dict
    )
    fingerprint_prefix: FingerprintPrefix | None = None
    considered_ids: IdList = Field(default_factory=list)
    considered_total: Count = 0
    rejected_wrong_scope: Count = 0
    dagster_run_id: DagsterRunId | None = None
    dagster_run_status: DagsterRunStatusName | None = None
    materialization_count: Count = 0
    # A materialization naming the run claimed another outcome than its proof (the proof
    # decides): the claimed outcome, or "unrecognized"; never the raw claim.
    claimed_outcome: SnakeCase | None = None
    artifact_created_at: datetime | None = None

    @classmethod
    def capped_ids(cls, ids: list[int]) -> tuple[list[int], int]:
        """Cap a list of ids for evidence; returns the kept ids and the total."""
        return sorted(ids)[:MAX_LISTED_IDS], len(ids)


class Decision(_Strict):
    """One outcome decision on a run: by the job, the reconciler or a late correction."""

    outcome: RunOutcome
    reason_code: SnakeCase
    adapter: SnakeCase
    decided_by: Actor
    decided_at: datetime
    attempt: Annotated[int, Field(ge=1, le=1000)] = 1
    evidence: Evidence = Field(default_factory=Evidence)

    def same_decision(self, other: Decision) -> bool:
        """True when ``other`` says the same thing (timestamps and attempts aside)."""
        return (
            self.outcome == other.outcome
            and self.reason_code == other.reason_code
            and self.adapter == other.adapter
            and self.evidence == other.evidence
        )


class LateCompletion(_Strict):
    """A job's completion report that arrived after the run was already finalized."""

    reported_outcome: RunOutcome
    reason_code: SnakeCase
    reported_at: datetime
    applied: bool


class RunInputs(_Strict):
    """The inputs that define what a run is asked to do (part of its identity)."""

    policy_types: Annotated[list[PolicyType], Field(max_length=64)] = Field(default_factory=list)
    baseline_profile_id: int | None = None
    backup_schedule_id: int | None = None
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    scheduled_for: datetime | None = None
    trigger: SnakeCase = "manual"


class Progress(_Strict):
    """Last progress a running job reported through its heartbeat."""

    phase: SnakeCase
    counts: Annotated[dict[SnakeCase, Count], Field(max_length=MAX_COUNT_KEYS)] = Field(
        default_factory=dict
    )


class PreconditionCheck(_Strict):
    """What the job found before any provider call: a blocker reason, or none."""

    checked_at: datetime
    blocker: SnakeCase | None = None


class RunContext(_Strict):
    """Everything stored in ``operation_runs.context``."""

    inputs: RunInputs = Field(default_factory=RunInputs)
    precondition: PreconditionCheck | None = None
    progress: Progress | None = None
    decision: Decision | None = None
    previous_decisions: Annotated[list[Decision], Field(max_length=MAX_HISTORY)] = Field(
        default_factory=list
    )
    late_completions: Annotated[list[LateCompletion], Field(max_length=MAX_HISTORY)] = Field(
        default_factory=list
    )
    reconciliation_attempts: Annotated[int, Field(ge=0)] = 0

    @classmethod
    def load(cls, raw: dict[str, Any] | None) -> RunContext:
        """Parse a stored context; ``None`` or ``{}`` is an empty context."""
        return cls.model_validate(raw or {})

    @classmethod
    def load_or_empty(cls, raw: Any) -> RunContext:
        """Parse a stored context; a malformed one (written outside the product) reads as empty,
        so the run can still be finalized with ``run_context_invalid``."""
        return cls.load_or_none(raw) or cls()

    @classmethod
    def load_or_none(cls, raw: Any) -> RunContext | None:
        """Parse an already-decoded context; None when it is not a valid context object."""
        if not isinstance(raw, dict):
            return None
        try:
            return cls.model_validate(raw)
        except ValidationError:
            return None

    @classmethod
    def from_stored_text(cls, raw: str | None) -> RunContext | None:
        """Parse the stored JSON text of a context; None when it is not a context this
        product wrote (too large, too deep, not JSON, not an object, wrong shape)."""
        parsed = cls.parse_stored_text(raw)
        return parsed[0] if parsed is not None else None

    @classmethod
    def parse_stored_text(cls, raw: str | None) -> tuple[RunContext, dict[str, Any]] | None:
        """``from_stored_text``, with the decoded JSON object that validated as the context
        (for a caller that mirrors the stored value without dumping the model again)."""
        if raw is None or len(raw) > MAX_CONTEXT_CHARS or json_depth(raw) > MAX_CONTEXT_DEPTH:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        try:
            return cls.model_validate(data), data
        except ValidationError:
            return None

    def dump(self) -> dict[str, Any]:
        """The JSON-ready form stored in the database."""
        return self.model_dump(mode="json", exclude_none=True)


class AuditDetails(_Strict):
    """What an audit row may say beyond its columns."""

    adapter: SnakeCase | None = None
    dagster_run_id: DagsterRunId | None = None
    previous_outcome: RunOutcome | None = None
    previous_reason_code: SnakeCase | None = None
    # A late job report that was not applied (``run.late_report_ignored``): what it said.
    reported_outcome: RunOutcome | None = None
    reported_reason_code: SnakeCase | None = None
    evidence: Evidence | None = None
    # An environment readiness change its provider's answers caused
    # (``environment.readiness_changed``): the states, never the answer itself.
    previous_readiness: SnakeCase | None = None
    readiness: SnakeCase | None = None


def json_depth(raw: str) -> int:
    """Maximum nesting of arrays and objects in JSON text, counted without parsing it."""
    openers = raw.count("{") + raw.count("[")
    if openers <= MAX_CONTEXT_DEPTH:
        # No deeper than it has openers (those inside strings only count too many): the
        # common, small context needs no walk character by character.
        return openers
    depth = deepest = 0
    in_string = escaped = False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
