"""An operation run's stored fields as plain values: what the decision path reads.

The proof rules, the staleness rule and the lifecycle service's batch writes read a run
through ``RunRecord``: an ``OperationRun`` row (the jobs, the CLI) or a ``RunRow``. The
reconciler reads its candidates as ``RunRow``s, not ORM rows: a batch of 1,000 needs no
identity map, no instrumented attribute reads (about a hundred per run across the
decision) and no ORM state to mirror its writes on (``benchmarks/reconcile_backlog.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class RunRecord(Protocol):
    """The columns of ``operation_runs`` the decision path reads (read-only here)."""

    @property
    def id(self) -> int: ...
    @property
    def workspace_id(self) -> int: ...
    @property
    def managed_environment_id(self) -> int | None: ...
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def reason_code(self) -> str | None: ...
    @property
    def input_hash(self) -> str: ...
    @property
    def identity_key(self) -> str: ...
    @property
    def once_key(self) -> str | None: ...
    @property
    def context(self) -> dict[str, Any]: ...
    @property
    def dagster_run_id(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def last_heartbeat_at(self) -> datetime | None: ...
    @property
    def last_progress_at(self) -> datetime: ...
    @property
    def stale_at(self) -> datetime | None: ...
    @property
    def completed_at(self) -> datetime | None: ...


@dataclass(slots=True, kw_only=True)
class RunRow:
    """One ``operation_runs`` row as checked values (``reconciliation/stored.py``), without
    ORM state; what a batch writes is set on it directly."""

    id: int
    status: str
    workspace_id: int
    type: str
    input_hash: str
    identity_key: str
    created_at: datetime
    last_progress_at: datetime
    managed_environment_id: int | None = None
    outcome: str | None = None
    reason_code: str | None = None
    once_key: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    dagster_run_id: str | None = None
    started_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    stale_at: datetime | None = None
    completed_at: datetime | None = None
