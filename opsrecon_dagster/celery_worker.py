"""The Celery app that workers run for ``OPSRECON_EXECUTOR=celery``:

    celery -A opsrecon_dagster.celery_worker worker --pool solo -Q dagster --hostname w1@%h

A worker needs the same environment as the run workers (``OPSRECON_DATABASE_URL``, the
provider's variables and the ``OPSRECON_CELERY_*`` ones): each step runs inside it, with the
heartbeat thread that tells the reconciler the step is alive. ``--pool solo`` runs the step
in the worker process itself, so one worker process is one step at a time.
"""

from __future__ import annotations

import os

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from opsrecon_dagster.executors import broker_urls, celery_settings

# Read when the worker imports this module: it is the worker process's entry point.
# (dagster-celery's functions carry no annotations, hence the ignores.)
_broker, _backend = broker_urls(os.environ)
_executor = CeleryExecutor.for_cli(  # type: ignore[no-untyped-call]
    broker=_broker, backend=_backend, config_source=celery_settings(os.environ)
)
app = make_app(_executor.app_args())  # type: ignore[no-untyped-call]
execute_plan = create_task(app)  # type: ignore[no-untyped-call]
