"""Sensor ticks that fail visibly but safely: exception text may carry SQL or provider
detail, so an unexpected error fails the tick with a message that names only what failed
and the error's type (a failed tick, never a skipped one: nothing that failed looks fine)."""

from collections.abc import Callable
from typing import TypeVar

import dagster as dg

T = TypeVar("T")


class SensorTickError(Exception):
    """A tick failed; the message names what failed and the error type, nothing more."""


def sanitized_failure(what: str, exc: Exception) -> SensorTickError:
    """The error to raise instead of ``exc`` (whose text is never shown)."""
    return SensorTickError(f"{what} failed ({type(exc).__name__}); the next tick retries")


def guarded_tick(context: dg.SensorEvaluationContext, what: str, body: Callable[[], T]) -> T:
    """Run one tick body; an unexpected error fails the tick with a sanitized message (the
    batch committed nothing, and the next tick retries)."""
    try:
        return body()
    except Exception as exc:
        error = sanitized_failure(what, exc)
        context.log.error(str(error))
        # ``from None``: the original error (and its text) is not chained into the tick.
        raise error from None
