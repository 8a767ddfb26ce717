"""Which run a try of ``AirplaneExecuteTaskOperator`` waits for: one an earlier try started and that is
still in progress (re-attach), or a new one.

Every try first sends the task instance's own ``Idempotency-Key``, so within the API's hour the server
answers with an earlier try's run; on Airflow 3.3+ the run id is also kept in the ``task_state_store``,
which covers older runs. The task_state_store is used directly rather than through ``ResumableJobMixin``:
the mixin's ``execute_resumable`` covers only a blocking wait (not deferral), and its stand-in below
Airflow 3.3 forces ``durable=False``, which would also turn off the re-attach by idempotency key that
works on every version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_airplane._validation import check_reference, for_task
from airflow_provider_airplane.exceptions import AirplaneNotFoundError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_airplane.hooks._exchange import Log
    from airflow_provider_airplane.hooks.airplane import AirplaneHook
    from airflow_provider_airplane.models import AirplaneRun

# Where a try records its run for later tries in Airflow 3.3's task_state_store. Renaming it breaks
# re-attach for tries in flight during an upgrade.
STATE_STORE_KEY = "airplane_run_id"
# A run created less than this before the try started counts as the try's own (clock skew, rounding).
CLOCK_SLACK_SECONDS = 1.0


def idempotency_key(context: Context, *, try_number: int | None = None) -> str:
    """The ``Idempotency-Key`` that starts this task instance's run.

    Derived from (dag_id, task_id, run_id, map_index): every try of the task instance sends the same key
    first, so within the API's hour a retry gets the run an earlier try started (re-attach). With
    ``try_number`` it is that try's own key, used to start a new run after an earlier one finished.
    """
    ti = context["ti"]
    ident = f"{ti.dag_id}\x1f{ti.task_id}\x1f{ti.run_id}\x1f{ti.map_index}"
    base = "airflow-" + hashlib.sha256(ident.encode()).hexdigest()[:40]
    return base if try_number is None else try_key(base, try_number)


def try_key(base: str, try_number: int) -> str:
    """The key of one try, made from a task instance's key (derived or the user's)."""
    return f"{base}-try{try_number}"


def start_or_reattach(
    context: Context,
    hook: AirplaneHook,
    start: Callable[[str], str],
    *,
    started_at: float,
    durable: bool,
    user_key: Any,
    log: Log,
) -> str:
    """The run this try waits for; see ``durable`` and ``idempotency_key`` of the operator for the rules.

    ``start`` starts a run with the given key; ``user_key`` is the operator's rendered ``idempotency_key``.
    """
    number = _try_number(context)
    base = (
        idempotency_key(context)
        if user_key is None
        else for_task(check_reference, user_key, "idempotency_key")
    )
    if not durable:
        return start(try_key(base, number))
    store = _state_store(context)
    if number > 1 and store is not None:
        remembered = _remembered_run(store, hook, log)
        if remembered is not None and not remembered.is_terminal:
            _log_reattached(remembered, log)
            return remembered.id
        if remembered is not None:
            return _start_after(remembered, start, try_key(base, number), store, log)
    run_id = start(base)
    if number > 1:
        run = hook.get_run(run_id)
        if _created_before(run, started_at):
            if not run.is_terminal:
                _log_reattached(run, log)
                _remember(store, run_id, log)
                return run_id
            return _start_after(run, start, try_key(base, number), store, log)
    log.info("Started Airplane run %s", run_id)
    _remember(store, run_id, log)
    return run_id


def _remembered_run(store: Any, hook: AirplaneHook, log: Log) -> AirplaneRun | None:
    """The run an earlier try recorded in the task state store (Airflow 3.3+), if it still exists."""
    try:
        run_id = store.get(STATE_STORE_KEY)
    except Exception as err:
        log.warning("Could not read the task state store, relying on the idempotency key: %s", err)
        return None
    if not isinstance(run_id, str) or not run_id:
        return None
    try:
        return hook.get_run(run_id)
    except AirplaneNotFoundError:
        log.warning("Airplane run %s recorded by an earlier try no longer exists", run_id)
        return None


def _log_reattached(run: AirplaneRun, log: Log) -> None:
    log.info("Re-attached to run %s started by an earlier try (it is %s)", run.id, run.status)


def _start_after(earlier: AirplaneRun, start: Callable[[str], str], key: str, store: Any, log: Log) -> str:
    run_id = start(key)
    log.info(
        "Airplane run %s of an earlier try already ended %s; started run %s",
        earlier.id,
        earlier.status,
        run_id,
    )
    _remember(store, run_id, log)
    return run_id


def _try_number(context: Context) -> int:
    number = getattr(context["ti"], "try_number", None)
    return number if isinstance(number, int) and number > 0 else 1


def _state_store(context: Context) -> Any:
    """Airflow 3.3's ``task_state_store`` (durable execution, AIP-103), or None before 3.3."""
    getter = getattr(context, "get", None)
    return getter("task_state_store") if getter is not None else None


def _remember(store: Any, run_id: str, log: Log) -> None:
    """Record the run for later tries (best effort: the idempotency key still covers an hour)."""
    if store is None:
        return
    try:
        store.set(STATE_STORE_KEY, run_id)
    except Exception as err:
        log.warning("Could not record Airplane run %s in the task state store: %s", run_id, err)


def _created_before(run: AirplaneRun, started_at: float) -> bool:
    """Whether ``run`` existed before this try started (an earlier try's run the API handed back).

    A run without ``createdAt`` counts as earlier. Compares Airplane's clock with ours, within a second.
    """
    if run.created_at is None:
        return True
    return run.created_at.timestamp() < started_at - CLOCK_SLACK_SECONDS
