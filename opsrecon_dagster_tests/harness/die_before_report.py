"""The ``opsrecon`` CLI in a process that SIGKILLs itself instead of completing a run.

``python -m opsrecon_dagster_tests.harness.die_before_report <opsrecon arguments>`` runs the
CLI's own ``main`` with those arguments, after one change: ``OperationRunService.complete``,
the job's terminal write of its ``operation_runs`` row (``artifacts/execution.py``
``_complete``), is replaced by a function that sends SIGKILL to this process.

What is real: the process, the command (e.g. ``operations launch --in-process <id>``, which
executes the Dagster job in this process), the job's provider calls, its artifacts, committed
in their own transaction to the real database (``OPSRECON_DATABASE_URL``: SQLite or
PostgreSQL), its proof read back from them, the Dagster run record in ``$DAGSTER_HOME``, and
the death: a SIGKILL the kernel delivers, with no exception, no cleanup, no ``finally``.

What the harness does: it only chooses the moment, one that no provider call marks (so the
fixture provider's ``crash_at`` cannot name it): artifacts committed, the row still
``running``, no materialization reported to Dagster. Production code has no hook for this;
the replacement is made here, in the test process's own copy of the class.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn

from opsrecon_dagster.cli.main import main
from opsrecon_dagster.operations.context import Decision
from opsrecon_dagster.operations.lifecycle import OperationRunService

KILL_MESSAGE = "harness: killing process {pid} instead of completing operation run {run_id}"


def kill_self(said: str) -> NoReturn:
    """Say why on stderr, then SIGKILL this process: no exception, no cleanup."""
    print(said, file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("not reached: SIGKILL cannot be caught")  # pragma: no cover


def _die_instead_of_completing(
    service: OperationRunService, run_id: int, decision: Decision, *_args: Any, **_kwargs: Any
) -> NoReturn:
    """Stands in for ``OperationRunService.complete``: the row is never completed."""
    kill_self(KILL_MESSAGE.format(pid=os.getpid(), run_id=run_id))


def install() -> None:
    """Make every ``complete`` in this process kill it instead."""
    OperationRunService.complete = _die_instead_of_completing  # type: ignore[method-assign,assignment]


if __name__ == "__main__":
    install()
    main()
