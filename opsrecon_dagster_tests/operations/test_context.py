"""The evidence schema keeps secrets, payloads and prose out of stored decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from opsrecon_dagster.enums import Actor, RunOutcome
from opsrecon_dagster.operations.context import MAX_LISTED_IDS, Decision, Evidence, RunContext


def test_token_like_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Evidence.model_validate({"access_token": "eyJhbGciOiJIUzI1NiJ9.payload.sig"})


def test_token_in_an_allowed_string_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="pattern"):
        Evidence.model_validate({"dagster_run_status": "Bearer eyJhbGciOiJIUzI1NiJ9"})


def test_over_long_string_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Evidence.model_validate({"artifact_kind": "a" * 500})
    with pytest.raises(ValidationError):
        Evidence.model_validate({"considered_ids": list(range(1, MAX_LISTED_IDS + 2))})


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Evidence.model_validate({"workspace_id": 1, "note": "hello"})


def test_raw_payload_blob_is_rejected() -> None:
    payload = {"id": "abc", "displayName": "Policy", "settings": [{"value": "x"}]}
    with pytest.raises(ValidationError):
        Evidence.model_validate({"counts": {"items": payload}})
    with pytest.raises(ValidationError):
        Evidence.model_validate({"artifact_statuses": [str(payload)]})


def _failed(reason_code: str = "stale_without_proof", **fields: object) -> Decision:
    """A failed decision of the inventory adapter (``fields``: more of its fields)."""
    return Decision.model_validate(
        {
            "outcome": RunOutcome.FAILED,
            "reason_code": reason_code,
            "adapter": "inventory_sync",
            "decided_by": Actor.JOB,
            "decided_at": datetime.now(UTC),
            **fields,
        }
    )


def test_exception_text_cannot_be_a_reason_code() -> None:
    with pytest.raises(ValidationError):
        _failed("HTTPError: 403 Forbidden for url https://graph/...?token=abc")


def test_safe_evidence_round_trips_through_context() -> None:
    evidence = Evidence(
        workspace_id=1,
        managed_environment_id=2,
        artifact_kind="backup_set",
        artifact_ids=[7],
        counts={"items_captured": 3, "items_failed": 1},
        fingerprint_prefix="ab12cd34",
        dagster_run_id="0f3c2b1a-aaaa-bbbb-cccc-000000000001",
        dagster_run_status="SUCCESS",
    )
    d = Decision(
        outcome=RunOutcome.PARTIALLY_SUCCEEDED,
        reason_code="backup_some_items_failed",
        adapter="backup_schedule_execute",
        decided_by=Actor.RECONCILER,
        decided_at=datetime.now(UTC),
        evidence=evidence,
    )
    stored = RunContext(decision=d).dump()
    assert RunContext.load(stored).decision == d


@pytest.mark.parametrize(
    "raw", [None, "", "not json", "[1]", '{"inputs": {"unknown": 1}}', "[" * 100 + "]" * 100]
)
def test_parse_stored_text_refuses_what_from_stored_text_refuses(raw: str | None) -> None:
    assert RunContext.parse_stored_text(raw) is None
    assert RunContext.from_stored_text(raw) is None


def test_parse_stored_text_returns_the_context_and_the_json_it_validated() -> None:
    stored = RunContext(reconciliation_attempts=2).dump()
    parsed = RunContext.parse_stored_text(json.dumps(stored))
    assert parsed is not None
    ctx, data = parsed
    assert ctx == RunContext.from_stored_text(json.dumps(stored))
    assert data == stored
    assert RunContext.load(data) == ctx


@pytest.mark.parametrize(
    "update",
    [
        {"dagster_run_status": "not a status"},
        {"claimed_outcome": "Token abc123"},
        {"counts": {"Raw Payload": 1}},
        {"artifact_ids": list(range(1, MAX_LISTED_IDS + 2))},
    ],
)
def test_evidence_derived_by_copy_is_validated_when_it_enters_a_decision(
    update: dict[str, object],
) -> None:
    """``model_copy`` does not validate; the decision that records the copy does, so no
    unbounded value reaches a stored decision whichever way its evidence was built."""
    derived = Evidence(workspace_id=1).model_copy(update=update)
    with pytest.raises(ValidationError):
        _failed(evidence=derived)
