"""Where the asset jobs' steps run: in processes of the run worker (the default), or on
Celery workers fed through a Redis broker, chosen by configuration when definitions load.

Celery is set up so that a worker that dies mid-step loses nothing and holds nothing back:

- a worker reserves only the step it runs (a prefetch of one), and ``task_acks_late`` with
  ``task_reject_on_worker_lost`` keep a step whose worker died with the broker (Celery's
  settings for that; with ``--pool solo`` on Redis the redelivery is seen without them too);
- the lost step is handed out again once the broker's ``visibility_timeout`` has passed. It
  is set well above the longest running threshold, so the reconciler has decided the run
  from its stale heartbeat by then; the redelivered step finds its row final, does no work,
  and ends the Dagster run worker that was still waiting for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_celery import celery_executor

EXECUTOR_VAR = "OPSRECON_EXECUTOR"  # multiprocess (default) | celery
BROKER_VAR = "OPSRECON_CELERY_BROKER_URL"  # e.g. redis://redis.internal:6379/0
BACKEND_VAR = "OPSRECON_CELERY_BACKEND_URL"  # default: the broker
VISIBILITY_VAR = "OPSRECON_CELERY_VISIBILITY_TIMEOUT_SECONDS"
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 900
EXECUTORS = ("multiprocess", "celery")


class ExecutorConfigError(ValueError):
    """A setting of the executor variables that cannot work (the message names the fix)."""


def celery_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The Celery app settings shared by the run worker (which submits steps) and the Celery
    workers (which run them)."""
    raw = environ.get(VISIBILITY_VAR) or str(DEFAULT_VISIBILITY_TIMEOUT_SECONDS)
    if not raw.isdigit() or int(raw) < 60:
        raise ExecutorConfigError(f"{VISIBILITY_VAR} must be a whole number of seconds >= 60")
    transport = {
        "visibility_timeout": int(raw),
        # Connection retries (values from dagster-celery's defaults).
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    }
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": int(raw)},
        "broker_connection_retry_on_startup": True,
    }


def broker_urls(environ: Mapping[str, str]) -> tuple[str, str]:
    """The broker's and the result backend's URL (the backend defaults to the broker)."""
    broker = environ.get(BROKER_VAR)
    if not broker:
        raise ExecutorConfigError(f"{EXECUTOR_VAR}=celery needs {BROKER_VAR} (redis://...)")
    return broker, environ.get(BACKEND_VAR) or broker


def configured_executor(environ: Mapping[str, str]) -> dg.ExecutorDefinition | None:
    """The executor named by ``OPSRECON_EXECUTOR``; ``None`` keeps Dagster's default."""
    kind = (environ.get(EXECUTOR_VAR) or "multiprocess").strip().lower()
    if kind not in EXECUTORS:
        raise ExecutorConfigError(f"{EXECUTOR_VAR} must be one of {', '.join(EXECUTORS)}")
    if kind == "multiprocess":
        return None
    broker_urls(environ)  # fail when definitions load, not at the first run
    return celery_executor.configured(
        {
            # Resolved in the run worker's environment; only the names are stored.
            "broker": {"env": BROKER_VAR},
            "backend": {"env": BACKEND_VAR if environ.get(BACKEND_VAR) else BROKER_VAR},
            "config_source": celery_settings(environ),
        },
        name="celery",
    )
