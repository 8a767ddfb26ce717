"""Operators that start Airplane runs, read their outputs and cancel them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, TaskDeferred, conf

from airflow_provider_airplane._deferral import backstop, validate_event
from airflow_provider_airplane._openlineage import AirplaneLineageMixin
from airflow_provider_airplane._outage import DEFAULT_MAX_OUTAGE, check_max_outage, describe_seconds
from airflow_provider_airplane._outcome import raise_for_run
from airflow_provider_airplane._run_logs import DEFAULT_LOG_MAX_LINES, RunLogReader, check_log_max_lines
from airflow_provider_airplane._validation import for_task, json_value, validate_run_id
from airflow_provider_airplane.exceptions import (
    AirplaneError,
    AirplaneOutageError,
    AirplaneOutputTooLargeError,
    AirplaneRunTimeoutError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.links.airplane import AirplaneRunLink, push_run_xcoms
from airflow_provider_airplane.models import RunStatus
from airflow_provider_airplane.operators._reattach import (
    CANCELLING,
    CONSUMED,
    DEFERRED,
    STARTED,
    RunRecord,
    start_or_reattach,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_airplane.models import AirplaneRun

DEFAULT_OUTPUT_MAX_BYTES = 1_048_576
# How long a best-effort cancel waits to see Cancelled. Short: on SIGTERM the supervisor kills the
# process about 5 s later, and the POST that asks for the cancel is what matters.
CANCEL_CONFIRM_SECONDS = 3.0


def check_output_size(outputs: Any, *, max_bytes: int, run_id: str) -> None:
    """Refuse outputs whose JSON is larger than ``max_bytes`` before anything is pushed to XCom."""
    size = len(json.dumps(outputs, separators=(",", ":")).encode("utf-8"))
    if size > max_bytes:
        raise AirplaneOutputTooLargeError(
            f"The outputs of Airplane run {run_id} are {size} bytes of JSON, more than "
            f"output_max_bytes={max_bytes}. Raise output_max_bytes (mind your XCom backend's limit), "
            "or set do_xcom_push=False to not push them; the run id and URL stay in XCom "
            "('airplane_run_id', 'airplane_run_url')."
        )


def _check_output_max_bytes(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"output_max_bytes must be a positive int, got {value!r}")


def _positive_seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(seconds)


def _cancel_and_wait(
    hook: AirplaneHook, run_id: str, wait_seconds: float, requested: Callable[[], None] | None = None
) -> AirplaneRun:
    """Ask Airplane to cancel, then poll up to ``wait_seconds`` (cancel is asynchronous); last run seen.

    ``requested`` is called once the API accepted the request.
    """
    run = hook.cancel_run(run_id)
    if requested is not None:
        requested()
    deadline = time.monotonic() + wait_seconds
    while not run.is_terminal and time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        run = hook.get_run(run_id)
    return run


class AirplaneExecuteTaskOperator(AirplaneLineageMixin, BaseOperator):
    """Start a run of an Airplane task, wait for it (in the worker or deferred) and return its outputs.

    :param slug: slug of the Airplane task (exactly one of ``slug`` / ``airplane_task_id``).
    :param airplane_task_id: id of the Airplane task (``tsk...``).
    :param param_values: the run's parameters, any JSON values.
    :param airplane_resources: resource alias -> resource id for the run.
    :param env_slug: environment for this task, overriding the connection's.
    :param airplane_conn_id: the Airplane connection.
    :param wait_for_completion: False returns the run id as soon as the run exists.
    :param poll_interval: seconds between status checks (worker and trigger).
    :param timeout: seconds to wait for the run; when it passes the run is cancelled and
        :class:`AirplaneRunTimeoutError` raised. Must be at least ``poll_interval`` (an error, not a
        silent clamp: a timeout shorter than one poll cannot be honoured).
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param cancel_on_kill: cancel the run when the task ends without success while the run is in
        progress (``execution_timeout``, marked failed or cleared, any error after the run started),
        except after an API outage longer than ``max_outage``: then its state is unknown, and the run is
        kept for a retry to re-attach to.
    :param durable: when a retry finds the run an earlier try started still in progress (the worker
        was killed, ran out of memory...), wait for that run instead of starting another. Every try
        first sends the task instance's own ``Idempotency-Key`` (the same for every try), so within the
        API's one hour the server answers with the earlier try's run; on Airflow 3.3+ the run id is
        also kept in the ``task_state_store``, which covers runs older than an hour. A run that already
        finished is not re-used: the try starts a new one with a try-specific key. ``False``: every
        try starts its own run (try-specific key from the start).
    :param idempotency_key: the ``Idempotency-Key`` to start the run with, instead of the one derived
        from (dag_id, task_id, run_id, map_index); templated. Runs started with the same key within the
        API's hour are one run. A retry after a finished run sends ``<key>-try<N>``, and with
        ``durable=False`` every try does. A mapped task instance sends ``<key>-map<index>``, so each map
        index starts its own run.
    :param output_max_bytes: largest JSON size of the outputs pushed to XCom (not checked with
        ``do_xcom_push=False``).
    :param show_logs: write the run's log lines into the task log as ``[airplane] <text>``: on each poll
        while waiting in a worker, all at once when a deferred task resumes; a failed run's last lines
        also go into the error. ``False`` makes no log request at all.
    :param log_max_lines: most run log lines one task writes; past it, one line says how many were left
        out and links the run.
    :param max_outage: seconds (or a ``timedelta``) the API may be unreachable in a row while the task
        waits for the run or reads its logs and outputs (no answer, 429, 5xx, an answer that is not the
        API's JSON); default 30 minutes. Within it the task neither fails nor cancels the run; past it
        the task fails with :class:`AirplaneOutageError` and leaves the run as it is (a retry
        re-attaches to it). None waits through any outage, up to ``timeout``/``execution_timeout``.
    """

    template_fields: Sequence[str] = (
        "slug",
        "airplane_task_id",
        "param_values",
        "airplane_resources",
        "env_slug",
        "idempotency_key",
    )
    template_fields_renderers = {"param_values": "json", "airplane_resources": "json"}
    operator_extra_links = (AirplaneRunLink(),)
    ui_color = "#d9e6ff"

    def __init__(
        self,
        *,
        slug: str | None = None,
        airplane_task_id: str | None = None,
        param_values: dict[str, Any] | None = None,
        airplane_resources: dict[str, str] | None = None,
        env_slug: str | None = None,
        airplane_conn_id: str = "airplane_default",
        wait_for_completion: bool = True,
        poll_interval: float = 10.0,
        timeout: float | timedelta | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        durable: bool = True,
        output_max_bytes: int = DEFAULT_OUTPUT_MAX_BYTES,
        idempotency_key: str | None = None,
        show_logs: bool = True,
        log_max_lines: int = DEFAULT_LOG_MAX_LINES,
        max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.slug = slug
        self.airplane_task_id = airplane_task_id
        self.param_values = param_values
        self.airplane_resources = airplane_resources
        self.env_slug = env_slug
        self.airplane_conn_id = airplane_conn_id
        self.wait_for_completion = wait_for_completion
        self.poll_interval = _positive_seconds(poll_interval, "poll_interval")
        self.timeout = None if timeout is None else _positive_seconds(timeout, "timeout")
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.durable = durable
        self.idempotency_key = idempotency_key
        _check_output_max_bytes(output_max_bytes)
        self.output_max_bytes = output_max_bytes
        self.show_logs = show_logs
        self.log_max_lines = check_log_max_lines(log_max_lines)
        self.max_outage = check_max_outage(max_outage)
        if self.timeout is not None and self.timeout < self.poll_interval:
            raise ValueError(
                f"timeout ({self.timeout:g} s) is shorter than poll_interval ({self.poll_interval:g} s); "
                "lower poll_interval or raise timeout"
            )
        # Parse-time check where the values are known; templates, XComArgs and mapped values are
        # checked again once rendered, before any run starts.
        if slug is None and airplane_task_id is None:
            raise ValueError("Give the Airplane task as slug= or airplane_task_id=")
        if _is_literal(slug) and _is_literal(airplane_task_id):
            raise ValueError("Give either slug= or airplane_task_id=, not both")
        _check_params(_known_now(param_values), "param_values")
        _check_resources(_known_now(airplane_resources), "airplane_resources")
        # Set once the run exists, so on_kill (SIGTERM, execution_timeout) knows what to cancel;
        # _run_released once it is not this task's to cancel any more (finished, or handed over).
        self._run_id: str | None = None
        self._run_released = False
        self._cancel_requested = False
        self._run_log: RunLogReader | None = None
        # The task state store record (Airflow 3.3+) that tells later tries what became of the run.
        self._record: RunRecord | None = None

    def _hook(self) -> AirplaneHook:
        """Reads ride API outages up to ``max_outage``; starting a run keeps its bounded retries."""
        return AirplaneHook(self.airplane_conn_id, env_slug=self.env_slug or None).ride_outages(
            self.max_outage
        )

    def _note(self, run_id: str, phase: str) -> None:
        if self._record is not None:
            self._record.write(run_id, phase)

    def execute(self, context: Context) -> Any:
        with self._hook() as hook:
            return self._execute(context, hook)

    def _execute(self, context: Context, hook: AirplaneHook) -> Any:
        started_at = time.time()
        self._record = RunRecord.of(context, self.log) if self.durable else None
        slug, task_id = self._task_reference()
        param_values = self._checked_param_values()
        resources = self._checked_resources()

        def start(key: str) -> str:
            run_id = hook.execute_task(
                slug, task_id=task_id, param_values=param_values, resources=resources, idempotency_key=key
            )
            self._hold(context, hook, run_id)
            return run_id

        try:
            run_id = start_or_reattach(
                context,
                hook,
                start,
                durable=self.durable,
                user_key=self.idempotency_key,
                slug=slug,
                task_id=task_id,
                record=self._record or RunRecord(None, self.log),
                log=self.log,
            )
            run_url = self._hold(context, hook, run_id)
            self.log.info("Airplane run %s of %s: %s", run_id, slug or task_id, run_url)
            if not self.wait_for_completion:
                # Whoever reads airplane_run_id owns the run now: a cleared task starts a new one.
                self._note(run_id, CONSUMED)
                self._run_released = True
                return run_id
            if self.deferrable:
                run = hook.get_run(run_id)
                if not run.is_terminal:
                    self._defer(run_id, started_at)
                self.log.info("Airplane run %s already ended %s; not deferring", run_id, run.status)
            else:
                run = hook.wait_for_run(
                    run_id,
                    poll_interval=self.poll_interval,
                    timeout=self.timeout,
                    on_poll=self._follow_logs(hook, run_id, run_url),
                    max_outage=self.max_outage,
                )
            return self._finish(hook, run, run_url)
        except TaskDeferred:
            raise
        except AirplaneRunTimeoutError as err:
            return self._on_timeout(hook, err.run, hook.get_run_url(err.run.id))
        except BaseException as err:
            self._after_error(err)
            raise

    def _hold(self, context: Context, hook: AirplaneHook, run_id: str) -> str:
        """Make ``run_id`` this try's run the moment it is known (XCom, task state store, ``on_kill``),
        so every failure after it reaches :meth:`_after_error`. Returns the run's URL."""
        if run_id != self._run_id:
            self._run_id = run_id
            self._see_run(hook, run_id)
            push_run_xcoms(context, hook, run_id)
            self._note(run_id, STARTED)
        return hook.get_run_url(run_id)

    def _defer(self, run_id: str, started_at: float) -> NoReturn:
        """Hand the wait to the triggerer.

        The trigger owns every deadline, so a timeout comes back to ``execute_complete``, which cancels.
        """
        from airflow_provider_airplane.triggers.airplane import AirplaneRunTrigger

        now = time.time()
        deadlines: list[float] = []
        if self.timeout is not None:
            deadlines.append(now + self.timeout)
        if self.execution_timeout is not None:
            deadlines.append(started_at + self.execution_timeout.total_seconds())
        end_time = min(deadlines) if deadlines else None
        if end_time is None:
            self.log.info("Deferring until Airplane run %s finishes", run_id)
        else:
            self.log.info("Deferring until Airplane run %s finishes, at most %.0f s", run_id, end_time - now)
        # If this try ends while deferred (cleared, marked failed), the trigger cancels the run, and a
        # later try must not re-attach to it: the triggerer cannot write the task state store.
        self._note(run_id, DEFERRED if self.cancel_on_kill else STARTED)
        self.defer(
            trigger=AirplaneRunTrigger(
                run_id=run_id,
                airplane_conn_id=self.airplane_conn_id,
                poll_interval=self.poll_interval,
                end_time=end_time,
                cancel_on_kill=self.cancel_on_kill,
                env_slug=self.env_slug or None,
                max_outage=self.max_outage,
            ),
            method_name="execute_complete",
            timeout=backstop(end_time, now, self.poll_interval),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: the same XComs, return value and errors as the worker path."""
        with self._hook() as hook:
            return self._resume(context, event, hook)

    def _resume(self, context: Context, event: dict[str, Any] | None, hook: AirplaneHook) -> Any:
        status, run_id, message = validate_event(event)
        self._run_id = run_id
        self._record = RunRecord.of(context, self.log) if self.durable else None
        self._note(run_id, STARTED)  # back in a worker: nothing cancels the run behind this try's back
        run_url = push_run_xcoms(context, hook, run_id)
        self._see_run(hook, run_id)
        if status == "timeout":
            return self._on_timeout(hook, hook.get_run(run_id), run_url)
        if status == "error":
            raise AirplaneError(
                f"Lost track of Airplane run {run_id} while deferred: {message}. "
                f"The run was not cancelled; see {run_url}"
            )
        return self._finish(hook, hook.get_run(run_id), run_url)

    def _log_reader(self, hook: AirplaneHook, run_id: str, run_url: str) -> RunLogReader | None:
        """This try's reader of the run's log (None with ``show_logs=False``); a resume starts anew."""
        if self.show_logs and self._run_log is None:
            self._run_log = RunLogReader(
                hook,
                run_id,
                log=self.log,
                run_url=run_url,
                max_wait=self.poll_interval,
                max_lines=self.log_max_lines,
            )
        return self._run_log

    def _follow_logs(
        self, hook: AirplaneHook, run_id: str, run_url: str
    ) -> Callable[[AirplaneRun], None] | None:
        """What each poll in the worker does for logs: read the new lines while the run is in progress
        (the read after it ended is ``_finish``'s)."""
        reader = self._log_reader(hook, run_id, run_url)
        if reader is None:
            return None

        def on_poll(run: AirplaneRun) -> None:
            if not run.is_terminal:
                reader.follow()

        return on_poll

    def _read_remaining_logs(self, hook: AirplaneHook, run: AirplaneRun, run_url: str) -> list[str]:
        """After the run ended: the lines not written yet, then the last lines for a failure's error."""
        reader = self._log_reader(hook, run.id, run_url)
        if reader is None:
            return []
        reader.drain(run.last_change if run.is_terminal else None)
        return list(reader.tail)

    def _finish(self, hook: AirplaneHook, run: AirplaneRun, run_url: str) -> Any:
        """The one ending for a finished run on every path: outputs, or the error that says how it ended."""
        self._run_released = run.is_terminal
        tail = self._read_remaining_logs(hook, run, run_url)
        with self._verdict_on(hook, run):
            raise_for_run(hook, run, run_url=run_url, log_tail=tail)
        outputs = hook.get_run_outputs(run)  # None, with a warning, for a run in a storage zone
        if self.do_xcom_push:
            check_output_size(outputs, max_bytes=self.output_max_bytes, run_id=run.id)
        self.log.info("Airplane run %s succeeded", run.id)
        self._note(run.id, CONSUMED)
        return outputs

    def _on_timeout(self, hook: AirplaneHook, run: AirplaneRun, run_url: str) -> Any:
        """The wait's deadline passed: cancel, and fail unless the run finished in the meantime."""
        if not run.is_terminal:
            # The timeout cancels even with cancel_on_kill=False: that is what timeout= means.
            run = self._cancel_quietly("its timeout passed", always=True) or run
        if run.is_terminal and run.status != RunStatus.CANCELLED:
            self.log.info("Airplane run %s ended %s as the deadline passed", run.id, run.status)
            return self._finish(hook, run, run_url)
        self._run_released = run.is_terminal
        self._read_remaining_logs(hook, run, run_url)
        raise AirplaneRunTimeoutError(
            run,
            f"Airplane run {run.id} did not finish before its deadline (timeout={self.timeout}, "
            f"execution_timeout={self.execution_timeout}); status now {run.status}. See {run_url}",
        )

    def _leave_run(self, reason: str) -> None:
        """The run's state is unknown (the API is out of reach): keep it for a retry to re-attach to."""
        self._run_released = True
        self.log.warning(
            "Leaving Airplane run %s as it is (%s); a retry of this task re-attaches to it",
            self._run_id,
            reason,
        )

    def _after_error(self, err: BaseException) -> None:
        """The one decision on what a failure after the run exists does to it: cancel it (with
        ``cancel_on_kill``), except after an API outage longer than ``max_outage``, when its state is
        unknown and it is kept for a retry to re-attach to."""
        if self._run_log is not None:
            self._run_log.flush()  # where the run had got to: what a person reads first
        if self._run_id is None or self._run_released:
            return
        if isinstance(err, AirplaneOutageError):
            self._leave_run(
                f"the Airplane API was unreachable for {describe_seconds(err.seconds)}, longer than "
                "max_outage, so its state is unknown"
            )
        else:
            self._cancel_quietly(f"the task stopped with {type(err).__name__} while the run was in progress")

    def _cancel_quietly(self, reason: str, *, always: bool = False) -> AirplaneRun | None:
        """Best-effort cancel of the run this task started.

        Logs and never raises, so the error that ended the task stays the one reported.
        """
        if self._run_id is None or self._run_released or self._cancel_requested:
            return None
        if not (self.cancel_on_kill or always):
            self.log.warning(
                "Leaving Airplane run %s running (%s; cancel_on_kill=False)", self._run_id, reason
            )
            return None
        self._cancel_requested = True
        self.log.warning("Cancelling Airplane run %s: %s", self._run_id, reason)
        run_id = self._run_id
        with AirplaneHook(self.airplane_conn_id, env_slug=self.env_slug or None) as hook:  # no outage riding
            try:
                # Recorded once Airplane accepted the cancel (a refused one leaves a run to re-attach to),
                # before the wait: the next try may start before the cancel lands.
                run = _cancel_and_wait(
                    hook, run_id, CANCEL_CONFIRM_SECONDS, lambda: self._note(run_id, CANCELLING)
                )
            except Exception as err:
                self.log.error(
                    "Could not cancel Airplane run %s (%s): it may still be running; cancel it by hand at %s",
                    run_id,
                    err,
                    _link_or_id(hook, run_id),
                )
                return None
            if run.status == RunStatus.CANCELLED:
                self.log.info("Airplane run %s is Cancelled", run.id)
            else:
                self.log.warning("Airplane run %s is %s after the cancel request", run.id, run.status)
            return run

    def on_kill(self) -> None:
        """SIGTERM (marked failed, cleared) or ``execution_timeout``: cancel the run this task started."""
        if self._run_log is not None:
            self._run_log.flush()
        self._cancel_quietly("the task was killed")

    def _task_reference(self) -> tuple[str | None, str | None]:
        slug = self.slug or None
        task_id = self.airplane_task_id or None
        if (slug is None) == (task_id is None):
            raise AirflowFailException(
                "Give exactly one of slug= and airplane_task_id= "
                f"(rendered: slug={self.slug!r}, airplane_task_id={self.airplane_task_id!r})"
            )
        for name, value in (("slug", slug), ("airplane_task_id", task_id)):
            if value is not None and not isinstance(value, str):
                raise AirflowFailException(f"{name} must be a string, got {type(value).__name__}")
        return slug, task_id

    def _checked_param_values(self) -> dict[str, Any] | None:
        return for_task(_check_params, self.param_values, "param_values")

    def _checked_resources(self) -> dict[str, str] | None:
        return for_task(_check_resources, self.airplane_resources, "airplane_resources")


class AirplaneGetRunOutputsOperator(AirplaneLineageMixin, BaseOperator):
    """Return the outputs of a finished Airplane run (e.g. one started with ``wait_for_completion=False``).

    :param run_id: the run (templated).
    :param env_slug: the run's environment, overriding the connection's (templated).
    """

    template_fields: Sequence[str] = ("run_id", "env_slug")
    operator_extra_links = (AirplaneRunLink(),)
    ui_color = "#d9e6ff"

    def __init__(
        self,
        *,
        run_id: str,
        env_slug: str | None = None,
        airplane_conn_id: str = "airplane_default",
        output_max_bytes: int = DEFAULT_OUTPUT_MAX_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_output_max_bytes(output_max_bytes)
        self.run_id = run_id
        self.env_slug = env_slug
        self.airplane_conn_id = airplane_conn_id
        self.output_max_bytes = output_max_bytes

    def execute(self, context: Context) -> Any:
        run_id = validate_run_id(self.run_id)
        # Reads ride an API outage for the default max_outage, as the execute operator's do.
        with AirplaneHook(self.airplane_conn_id, env_slug=self.env_slug or None).ride_outages() as hook:
            run_url = push_run_xcoms(context, hook, run_id)
            run = hook.get_run(run_id)
            self._see_run(hook, run_id, run)
            if not run.is_terminal:
                raise AirplaneError(
                    f"Airplane run {run_id} is still {run.status}: outputs are read once it has finished. "
                    f"Wait for it first (AirplaneRunSensor). See {run_url}"
                )
            outputs = hook.get_run_outputs(run)
            if self.do_xcom_push:
                check_output_size(outputs, max_bytes=self.output_max_bytes, run_id=run_id)
            return outputs


class AirplaneCancelRunOperator(AirplaneLineageMixin, BaseOperator):
    """Cancel an Airplane run; return the terminal status it reached (``"Cancelled"`` or the one it had).

    :param run_id: the run (templated).
    :param env_slug: the run's environment, overriding the connection's (templated).
    """

    template_fields: Sequence[str] = ("run_id", "env_slug")
    operator_extra_links = (AirplaneRunLink(),)
    ui_color = "#ffe0d9"

    def __init__(
        self,
        *,
        run_id: str,
        env_slug: str | None = None,
        airplane_conn_id: str = "airplane_default",
        wait_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(wait_timeout, bool) or not isinstance(wait_timeout, int | float) or wait_timeout < 0:
            raise ValueError(f"wait_timeout must be a non-negative number of seconds, got {wait_timeout!r}")
        self.run_id = run_id
        self.env_slug = env_slug
        self.airplane_conn_id = airplane_conn_id
        self.wait_timeout = float(wait_timeout)

    def execute(self, context: Context) -> str:
        run_id = validate_run_id(self.run_id)
        with AirplaneHook(self.airplane_conn_id, env_slug=self.env_slug or None) as hook:
            run_url = push_run_xcoms(context, hook, run_id)
            self.log.info("Cancelling Airplane run %s: %s", run_id, run_url)
            run = _cancel_and_wait(hook, run_id, self.wait_timeout)
            self._see_run(hook, run_id, run)
            if not run.is_terminal:
                raise AirplaneError(
                    f"Airplane run {run_id} is still {run.status} {self.wait_timeout:g} s after the cancel "
                    f"request (wait_timeout). See {run_url}"
                )
            if run.status != RunStatus.CANCELLED:
                self.log.info("Airplane run %s had already ended %s", run_id, run.status)
            return str(run.status)


def _link_or_id(hook: AirplaneHook, run_id: str) -> str:
    """The run's page for a person to act on, or its id when even the connection cannot be read."""
    try:
        return hook.get_run_url(run_id)
    except Exception:
        return f"Airplane (run id {run_id})"


def _check_params(values: Any, what: str) -> dict[str, Any] | None:
    if values is None:
        return None
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be a dict, got {type(values).__name__}")
    for key in values:
        if not isinstance(key, str):
            raise ValueError(f"{what} keys must be strings, got {key!r}")
    json_value(values, what)
    return values


def _check_resources(resources: Any, what: str) -> dict[str, str] | None:
    if resources is not None and not (
        isinstance(resources, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in resources.items())
    ):
        raise ValueError(f"{what} must map resource aliases to resource ids (strings), got {resources!r}")
    return resources


def _known_now(value: Any) -> Any:
    """What of a templated argument rendering cannot change, so it can be checked when the DAG is parsed.

    A dict keeps its entries that hold no template, XComArg or templated object (those are checked once
    rendered); any other value that holds one is None (nothing to check yet).
    """
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if not _rendered_later(item)}
    return None if _rendered_later(value) else value


def _rendered_later(value: Any) -> bool:
    """Whether Airflow's rendering may replace (part of) ``value``: the cases of ``render_template``."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_rendered_later(item) for item in value.values())
    if isinstance(value, list | tuple | set):
        return any(_rendered_later(item) for item in value)
    return (hasattr(value, "resolve") and not isinstance(value, os.PathLike)) or hasattr(
        value, "template_fields"
    )


def _is_literal(value: Any) -> bool:
    """A plain string known at parse time (not a template, XComArg or mapped value)."""
    return isinstance(value, str) and bool(value) and "{{" not in value and "{%" not in value
