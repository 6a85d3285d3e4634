"""Which backup schedules are due: cron per schedule row, evaluated between two instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsrecon_dagster.db.models import BackupSchedule, ManagedEnvironment


@dataclass(frozen=True)
class DueBackup:
    schedule_id: int
    workspace_id: int
    environment_id: int
    partition_key: str
    tick: datetime


def valid_cron(expression: str) -> bool:
    return bool(croniter.is_valid(expression))


def due_backups(session: Session, since: datetime, now: datetime) -> tuple[list[DueBackup], int]:
    """Enabled schedules with a cron tick in ``(since, now]``; returns (due, invalid count).

    Only the latest tick counts: a scheduler that was down for a day launches one backup per
    schedule, not one per missed tick.
    """
    rows = session.execute(
        select(BackupSchedule, ManagedEnvironment.partition_key)
        .join(ManagedEnvironment, ManagedEnvironment.id == BackupSchedule.managed_environment_id)
        .where(BackupSchedule.enabled.is_(True))
        .order_by(BackupSchedule.id)
    ).all()
    due: list[DueBackup] = []
    invalid = 0
    for schedule, partition_key in rows:
        if not valid_cron(schedule.cron):
            invalid += 1
            continue
        tick: datetime = croniter(schedule.cron, now).get_prev(datetime)
        if since < tick <= now:
            due.append(
                DueBackup(
                    schedule.id,
                    schedule.workspace_id,
                    schedule.managed_environment_id,
                    partition_key,
                    tick,
                )
            )
    return due, invalid
