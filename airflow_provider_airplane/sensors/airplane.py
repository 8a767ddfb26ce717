"""Wait for an Airplane run that something else started."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    conf,
)

from airflow_provider_airplane._deferral import backstop, validate_event
from airflow_provider_airplane._openlineage import AirplaneLineageMixin
from airflow_provider_airplane._outage import DEFAULT_MAX_OUTAGE, check_max_outage
from airflow_provider_airplane._outcome import raise_for_run
from airflow_provider_airplane._run_logs import RunLogReader
from airflow_provider_airplane._validation import validate_run_id
from airflow_provider_airplane.exceptions import AirplaneError, AirplaneOutageError, AirplaneRunError
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.links.airplane import AirplaneRunLink, push_run_xcoms
from airflow_provider_airplane.models import RunStatus

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_airplane.models import AirplaneRun


class AirplaneRunSensor(AirplaneLineageMixin, BaseSensorOperator):
    """True once the run Succeeded; a Failed or Cancelled run fails the task.

    Works in ``poke``, ``reschedule`` and deferrable mode. The sensor watches a run it does not own, so it
    never cancels it, not even when it times out (``timeout`` is BaseSensorOperator's, deferred too).
    With ``soft_fail`` or ``never_fail`` a Failed or Cancelled run skips the task, in every mode and
    whether the run ended before the sensor started or while it waited.
    It writes none of the run's log lines while waiting; a failed run's last lines (up to 20) go into
    its error, as the execute operator's do.

    :param run_id: the Airplane run to watch (templated).
    :param env_slug: the run's environment, overriding the connection's (templated).
    :param airplane_conn_id: the Airplane connection.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param max_outage: seconds (or a ``timedelta``) the API may be out of reach in a row (no answer,
        429, 5xx, an answer that is not its JSON) before the sensor fails with
        :class:`AirplaneOutageError`; default 30 minutes, None: any length (up to ``timeout``). Within
        it a poke waits for the API to answer again (in ``reschedule`` mode too, holding its slot for
        the outage only); deferred, the trigger rides it out.
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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.env_slug = env_slug
        self.airplane_conn_id = airplane_conn_id
        self.deferrable = deferrable
        self.max_outage = check_max_outage(max_outage)
        # Poke mode: when the sensor's timeout passes (monotonic), so a poke rides an outage no longer.
        self._poke_deadline: float | None = None

    def _hook(self, max_outage: float | Literal["default"] | None = "default") -> AirplaneHook:
        """A hook for one ``execute``, ``poke`` or resume: used in a ``with``, so a sensor poking a
        thousand times in one worker process holds no socket between pokes."""
        hook = AirplaneHook(self.airplane_conn_id, env_slug=self.env_slug or None)
        return hook.ride_outages(self.max_outage if max_outage == "default" else max_outage)

    def _judge(self, hook: AirplaneHook, run: AirplaneRun, run_url: str) -> None:
        """The one verdict on a finished run for every path: the run's error, or a skip when
        ``soft_fail``/``never_fail`` (BaseSensorOperator would treat the two errors apart, and the
        paths that do not go through ``poke`` not at all)."""
        try:
            with self._verdict_on(hook, run):
                self._raise_for_run(hook, run, run_url)
        except AirplaneRunError as err:
            if self.soft_fail or self.never_fail:
                flag = "soft_fail" if self.soft_fail else "never_fail"
                raise AirflowSkipException(f"{err} Skipping: {flag} is set.") from err
            raise

    def execute(self, context: Context) -> Any:
        started_at = time.time()
        run_id = validate_run_id(self.run_id)
        with self._hook() as hook:
            run_url = push_run_xcoms(context, hook, run_id)
            self.log.info("Watching Airplane run %s: %s", run_id, run_url)
            run = hook.get_run(run_id) if self.deferrable else None
            if run is not None and run.is_terminal:
                self.log.info("Airplane run %s already ended %s; not deferring", run_id, run.status)
                self._judge(hook, run, run_url)
                return None
        if not self.deferrable:
            if not self.reschedule:  # a poke must not ride an outage past the sensor's timeout
                self._poke_deadline = time.monotonic() + self.timeout
            return super().execute(context)  # each poke opens and closes its own hook
        from airflow_provider_airplane.triggers.airplane import AirplaneRunTrigger

        # BaseSensorOperator allows a poke_interval of 0, which would make the trigger spin.
        poll_interval = self.poke_interval if self.poke_interval > 0 else 1.0
        now = time.time()
        end_time = now + self.timeout
        if self.execution_timeout is not None:
            end_time = min(end_time, started_at + self.execution_timeout.total_seconds())
        self.defer(
            trigger=AirplaneRunTrigger(
                run_id=run_id,
                airplane_conn_id=self.airplane_conn_id,
                poll_interval=poll_interval,
                end_time=end_time,
                cancel_on_kill=False,
                env_slug=self.env_slug or None,
                max_outage=self.max_outage,
            ),
            method_name="execute_complete",
            timeout=backstop(end_time, now, poll_interval),
        )

    def poke(self, context: Context) -> bool:
        run_id = validate_run_id(self.run_id)
        left = None if self._poke_deadline is None else max(0.001, self._poke_deadline - time.monotonic())
        by_deadline = left is not None and (self.max_outage is None or left < self.max_outage)
        with self._hook(left if by_deadline else "default") as hook:
            try:
                run = hook.get_run(run_id)
            except AirplaneOutageError as err:
                if not by_deadline:
                    raise
                raise AirflowSensorTimeout(
                    f"The sensor's timeout ({self.timeout:g} s) passed while the Airplane API was not "
                    f"answering about run {run_id}; the run was left as it is. {err}"
                ) from err
            if not run.is_terminal:
                self.log.info("Airplane run %s is %s", run_id, run.status)
                return False
            self._judge(hook, run, hook.get_run_url(run_id))
        return True

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger; the verdict comes from the run itself, as on every other path."""
        status, run_id, message = validate_event(event)
        with self._hook() as hook:
            run_url = push_run_xcoms(context, hook, run_id)
            if status == "timeout":
                raise AirflowSensorTimeout(
                    f"Airplane run {run_id} did not finish before the sensor's deadline "
                    f"(timeout={self.timeout:g} s, execution_timeout={self.execution_timeout}); "
                    f"it was left running. See {run_url}"
                )
            if status == "error":
                raise AirplaneError(
                    f"Lost track of Airplane run {run_id} while deferred: {message}. See {run_url}"
                )
            self._judge(hook, hook.get_run(run_id), run_url)
        self.log.info("Airplane run %s succeeded", run_id)

    def _raise_for_run(self, hook: AirplaneHook, run: AirplaneRun, run_url: str) -> None:
        """As the operator: a failed run's error carries its last log lines (read only then)."""
        tail: list[str] = []
        if run.status == RunStatus.FAILED:
            reader = RunLogReader(
                hook, run.id, log=self.log, run_url=run_url, max_wait=max(self.poke_interval, 1.0), echo=False
            )
            reader.drain(run.last_change)
            tail = list(reader.tail)
        raise_for_run(hook, run, run_url=run_url, log_tail=tail)
