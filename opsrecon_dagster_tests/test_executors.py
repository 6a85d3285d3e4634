"""The executor is chosen by configuration when definitions load, and wrong settings fail
there with a message naming the variable (never at the first run)."""

from __future__ import annotations

import pytest

from opsrecon_dagster.executors import (
    BROKER_VAR,
    EXECUTOR_VAR,
    VISIBILITY_VAR,
    ExecutorConfigError,
    celery_settings,
    configured_executor,
)


def test_the_default_is_dagsters_executor() -> None:
    assert configured_executor({}) is None
    assert configured_executor({EXECUTOR_VAR: "multiprocess"}) is None


def test_celery_is_configured_by_variable_names_only() -> None:
    executor = configured_executor({EXECUTOR_VAR: "celery", BROKER_VAR: "redis://secret@h/0"})
    assert executor is not None and executor.name == "celery"
    assert "secret" not in repr(executor.config_schema)  # the URL is resolved in the worker


def test_lost_steps_are_redelivered_and_workers_reserve_one_step() -> None:
    settings = celery_settings({VISIBILITY_VAR: "600"})
    assert settings["task_acks_late"] and settings["task_reject_on_worker_lost"]
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["broker_transport_options"]["visibility_timeout"] == 600


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({EXECUTOR_VAR: "k8s"}, "OPSRECON_EXECUTOR must be one of multiprocess, celery"),
        ({EXECUTOR_VAR: "celery"}, "needs OPSRECON_CELERY_BROKER_URL"),
        (
            {EXECUTOR_VAR: "celery", BROKER_VAR: "redis://h/0", VISIBILITY_VAR: "5"},
            "VISIBILITY_TIMEOUT_SECONDS must be a whole number of seconds >= 60",
        ),
    ],
)
def test_wrong_settings_fail_when_definitions_load(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ExecutorConfigError, match=message):
        configured_executor(environ)
