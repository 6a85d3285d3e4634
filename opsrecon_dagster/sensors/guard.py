"""Sensor ticks that fail safely: exception text may carry SQL or provider detail, so an
unexpected error becomes a skipped tick that names only the error's type."""

from collections.abc import Callable

import dagster as dg


def guarded_tick(
    context: dg.SensorEvaluationContext, what: str, body: Callable[[], dg.SensorResult]
) -> dg.SensorResult:
    """Run one tick body; on an unexpected error, log and skip (the next tick retries)."""
    try:
        return body()
    except Exception as exc:
        note = f"{what} failed ({type(exc).__name__}); the next tick retries"
        context.log.warning(note)
        return dg.SensorResult(skip_reason=note)
