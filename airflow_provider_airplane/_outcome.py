"""The one place that decides what a finished run means for the Airflow task.

The operator's wait loop, its deferred ``execute_complete``, its already-finished-before-defer path and
the sensor all call :func:`raise_for_run`, so a Failed or Cancelled run can never end as a success on
one path and a failure on another.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_airplane.exceptions import (
    AirplaneApiError,
    AirplaneError,
    AirplaneRunCancelledError,
    AirplaneRunFailedError,
)
from airflow_provider_airplane.models import RunStatus

if TYPE_CHECKING:
    from airflow_provider_airplane.hooks.airplane import AirplaneHook
    from airflow_provider_airplane.models import AirplaneRun

log = logging.getLogger(__name__)

# The run's own error text goes into the exception message; keep a runaway one readable.
MAX_ERROR_CHARS = 2000
MAX_TAIL_LINE_CHARS = 500


def raise_for_run(
    hook: AirplaneHook, run: AirplaneRun, *, run_url: str, log_tail: Sequence[str] = ()
) -> None:
    """Return when ``run`` Succeeded; otherwise raise the exception that says how it ended.

    Failed -> :class:`AirplaneRunFailedError` with the run's ``error`` output and URL, then ``log_tail``
    (the run's last log lines);
    Cancelled -> :class:`AirplaneRunCancelledError` (not retried by Airflow);
    not finished -> :class:`AirplaneError` (callers only pass runs they believe finished).
    """
    if run.status == RunStatus.SUCCEEDED:
        return
    if run.status == RunStatus.FAILED:
        raise AirplaneRunFailedError(
            run,
            f"Airplane run {run.id} failed: {_error_text(hook, run)}. See {run_url}" + _tail_text(log_tail),
        )
    if run.status == RunStatus.CANCELLED:
        by = f" by {run.cancelled_by}" if run.cancelled_by else ""
        raise AirplaneRunCancelledError(run, f"Airplane run {run.id} was cancelled{by}. See {run_url}")
    raise AirplaneError(f"Airplane run {run.id} has not finished (status {run.status}). See {run_url}")


def _error_text(hook: AirplaneHook, run: AirplaneRun) -> str:
    """The ``error`` output Airplane writes for a failed run, or why there is none."""
    if run.zone_id:
        return f"its outputs are kept in storage zone {run.zone_id}, which the API does not serve"
    try:
        outputs: Any = hook.get_run_outputs(run)
    except AirplaneApiError as err:
        # The failure is what matters; an unreadable detail must not replace it.
        log.warning("Could not read the outputs of failed Airplane run %s: %s", run.id, err)
        return "its error output could not be read"
    error = outputs.get("error") if isinstance(outputs, dict) else None
    if error is None or error == "":
        return "it reported no error output"
    text = error if isinstance(error, str) else repr(error)
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + f"... ({len(text) - MAX_ERROR_CHARS} more characters)"
    return text


def _tail_text(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    shown = [
        line if len(line) <= MAX_TAIL_LINE_CHARS else line[:MAX_TAIL_LINE_CHARS] + "..." for line in lines
    ]
    return f"\nLast {len(shown)} lines of the run's log:\n" + "\n".join(f"  {line}" for line in shown)
