"""The ``opsrecon`` CLI in a process that SIGKILLs itself right after a job's decision
commits, before the worker reports it to Dagster.

``python -m opsrecon_dagster_tests.harness.die_after_commit <opsrecon arguments>`` runs the
CLI's own ``main`` after one change: ``OperationRunService.complete`` (the job's terminal
write, with its outbox entry in the same transaction) runs for real and then sends SIGKILL
to this process. The row is final and its outbox entry committed; no materialization, check
evaluation or run end reaches Dagster from the worker. As in ``die_before_report``, only the
moment is chosen here; everything else is the real command, job and database.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

from opsrecon_dagster.cli.main import main
from opsrecon_dagster.operations.lifecycle import OperationRunService
from opsrecon_dagster_tests.harness.die_before_report import kill_self

KILL_MESSAGE = "harness: killing process {pid} after completing operation run {run_id}"
_complete = OperationRunService.complete


def _complete_then_die(
    service: OperationRunService, run_id: int, *args: Any, **kwargs: Any
) -> NoReturn:
    _complete(service, run_id, *args, **kwargs)
    kill_self(KILL_MESSAGE.format(pid=os.getpid(), run_id=run_id))


def install() -> None:
    """Make every ``complete`` in this process commit and then kill it."""
    OperationRunService.complete = _complete_then_die  # type: ignore[method-assign,assignment]


if __name__ == "__main__":
    install()
    main()
