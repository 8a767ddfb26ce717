"""Which run a try of ``AirplaneExecuteTaskOperator`` waits for: one an earlier try started and that is
still in progress (re-attach), one that Succeeded after its try died (adopt), or a new one. The rules
are the table in docs/retries.md; :func:`verdict` is that table.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_airplane import _metrics
from airflow_provider_airplane._validation import check_reference, for_task
from airflow_provider_airplane.exceptions import AirplaneNotFoundError
from airflow_provider_airplane.hooks._exchange import Log
from airflow_provider_airplane.models import RunStatus

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_airplane.hooks.airplane import AirplaneHook
    from airflow_provider_airplane.models import AirplaneRun


class OperatorLog(Log, Protocol):
    """The operator's ``self.log``: an undeliverable cancel is an error a person must act on."""

    def error(self, msg: str, /, *args: Any) -> object: ...


# Where a try records its run for later tries in Airflow 3.3's task_state_store: ``{"run_id", "phase"}``
# (a plain run id string, as older versions wrote, reads as phase "started"). Renaming it breaks
# re-attach for tries in flight during an upgrade.
STATE_STORE_KEY = "airplane_run_id"
# What the try that wrote the record was doing with the run:
STARTED = "started"  # waiting for it in the worker
DEFERRED = "deferred"  # waiting in the triggerer, whose on_kill cancels it if the task is cleared/killed
CANCELLING = "cancelling"  # asked Airplane to cancel it (timeout, execution_timeout, on_kill, an error)
# Returned the run's outputs, or (wait_for_completion=False) handed its id downstream: the task instance
# is done with this run, and a cleared task starts a new one.
CONSUMED = "consumed"
REATTACH, ADOPT, NEW = "re-attach", "adopt", "new run"


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


def task_key(context: Context, user_key: Any) -> str:
    """The key every try of this task instance sends first: the derived one, or the user's. A mapped task
    instance adds its map index to the user's key (``<key>-map<index>``), so each index starts its own
    run instead of all sharing the first one's."""
    if user_key is None:
        return idempotency_key(context)
    key = for_task(check_reference, user_key, "idempotency_key")
    map_index = getattr(context["ti"], "map_index", None)
    if isinstance(map_index, int) and map_index >= 0:
        return f"{key}-map{map_index}"
    return key


def try_key(base: str, try_number: int) -> str:
    """The key of one try, made from a task instance's key (derived or the user's)."""
    return f"{base}-try{try_number}"


def verdict(run: AirplaneRun, phase: str | None, *, has_store: bool) -> str:
    """What a retry does with the run of an earlier try: ``REATTACH``, ``ADOPT`` or ``NEW``.

    ``phase`` is what the task state store says of this run (None: it does not know it); ``has_store``
    is whether there is a store at all (Airflow 3.3+). A consumed run (its outputs returned, or its id
    handed downstream by ``wait_for_completion=False``) is never taken again. A run an earlier try was
    cancelling, or left deferred with a trigger that cancels on kill, may still read Active (cancel is
    asynchronous) and is finished for us. A Succeeded run is adopted when the store shows no try consumed
    it (that try died); the store knows nothing below 3.3, where adopting is the safe choice: a second
    run of a task that sends invoices is worse than a cleared task returning the outputs of its run from
    within the hour.
    """
    if phase == CONSUMED:
        return NEW
    if not run.is_terminal:
        return NEW if phase in (CANCELLING, DEFERRED) else REATTACH
    if run.status == RunStatus.SUCCEEDED:
        if not has_store:
            return ADOPT
        # A cancel that lost the race to the run's end leaves a success nobody consumed: adopt it too.
        return ADOPT if phase in (STARTED, DEFERRED, CANCELLING) else NEW
    return NEW


@dataclass
class RunRecord:
    """This task instance's record in the task state store (Airflow 3.3+); every method is a no-op
    without a store, and best effort with one (the idempotency key still covers an hour)."""

    store: Any
    log: Log

    @classmethod
    def of(cls, context: Context, log: Log) -> RunRecord:
        getter = getattr(context, "get", None)
        return cls(getter("task_state_store") if getter is not None else None, log)

    def read(self) -> tuple[str, str] | None:
        """``(run_id, phase)`` an earlier try wrote, if any."""
        if self.store is None:
            return None
        try:
            value = self.store.get(STATE_STORE_KEY)
        except Exception as err:
            self.log.warning("Could not read the task state store, relying on the idempotency key: %s", err)
            return None
        if isinstance(value, str) and value:
            return value, STARTED
        if isinstance(value, dict) and isinstance(value.get("run_id"), str) and value["run_id"]:
            phase = value.get("phase")
            return value["run_id"], phase if isinstance(phase, str) else STARTED
        return None

    def write(self, run_id: str, phase: str) -> None:
        if self.store is None:
            return
        try:
            self.store.set(STATE_STORE_KEY, {"run_id": run_id, "phase": phase})
        except Exception as err:
            self.log.warning("Could not record Airplane run %s in the task state store: %s", run_id, err)


def start_or_reattach(
    context: Context,
    hook: AirplaneHook,
    start: Callable[[str], str],
    *,
    durable: bool,
    user_key: Any,
    slug: str | None,
    task_id: str | None,
    record: RunRecord,
    log: OperatorLog,
) -> str:
    """The run this try waits for (or whose outputs it returns); see :func:`verdict` for the rules.

    ``start`` starts a run with the given key (and makes it the try's at once, so a failure right after
    is handled as any other); ``user_key`` is the operator's rendered ``idempotency_key``; ``slug`` or
    ``task_id`` name the Airplane task.
    """
    number = _try_number(context)
    base = task_key(context, user_key)
    if not durable:
        return _new_run(start(try_key(base, number)))

    def follow(earlier: AirplaneRun, phase: str | None) -> str:
        decision = verdict(earlier, phase, has_store=record.store is not None)
        if decision != NEW:
            return _keep(earlier, decision, log)
        return _start_after(earlier, phase, start, try_key(base, number), hook, log)

    if number == 1:
        run_id = start(base)
        if user_key is None:  # else the key may name a run another task instance started
            log.info("Started Airplane run %s", run_id)
        return _new_run(run_id)
    remembered = _remembered_run(record, hook, log)
    if remembered is not None:
        return follow(*remembered)
    # Whether the key hands back an earlier try's run or starts this one is told by the server's answers
    # alone (the listing and its Date before the start), never by Airplane's clock against ours.
    before = hook.runs_snapshot(task_id=task_id, task_slug=slug)
    run_id = start(base)
    run = hook.get_run(run_id)
    if before.had(run):
        return follow(run, None)
    log.info("Started Airplane run %s", run_id)
    return _new_run(run_id)


def _remembered_run(record: RunRecord, hook: AirplaneHook, log: Log) -> tuple[AirplaneRun, str] | None:
    """The run an earlier try recorded in the task state store (Airflow 3.3+), if it still exists."""
    found = record.read()
    if found is None:
        return None
    run_id, phase = found
    try:
        return hook.get_run(run_id), phase
    except AirplaneNotFoundError:
        log.warning("Airplane run %s recorded by an earlier try no longer exists", run_id)
        return None


def _keep(run: AirplaneRun, decision: str, log: Log) -> str:
    if decision == ADOPT:
        log.info("Adopted Airplane run %s of an earlier try, which already ended %s", run.id, run.status)
    else:
        log.info("Re-attached to Airplane run %s started by an earlier try (it is %s)", run.id, run.status)
    _metrics.run_started("adopted" if decision == ADOPT else "reattached")
    return run.id


def _start_after(
    earlier: AirplaneRun,
    phase: str | None,
    start: Callable[[str], str],
    key: str,
    hook: AirplaneHook,
    log: OperatorLog,
) -> str:
    if phase == CONSUMED:
        why = f"is {earlier.status} and a try already returned it (the task was cleared)"
    elif earlier.is_terminal:
        why = f"already ended {earlier.status}"
        if earlier.status == RunStatus.SUCCEEDED:
            why += " and a try returned its outputs (the task was cleared)"
    else:
        # An earlier try asked to cancel it (or its trigger does); ask again in case that request was lost.
        why = f"is {earlier.status} but an earlier try was cancelling it"
        try:
            hook.cancel_run(earlier.id)
        except Exception as err:
            log.error(
                "Could not cancel Airplane run %s of an earlier try (%s); cancel it by hand: %s",
                earlier.id,
                err,
                hook.get_run_url(earlier.id),
            )
    run_id = start(key)
    log.info("Airplane run %s of an earlier try %s; started run %s", earlier.id, why, run_id)
    return _new_run(run_id)


def _new_run(run_id: str) -> str:
    _metrics.run_started("started")
    return run_id


def _try_number(context: Context) -> int:
    number = getattr(context["ti"], "try_number", None)
    return number if isinstance(number, int) and number > 0 else 1
