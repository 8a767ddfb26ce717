"""Wait for an Airplane run in the triggerer, so a deferred task holds no worker slot while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import AsyncIterator, Hashable, Iterable
from datetime import timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_provider_airplane._outage import DEFAULT_MAX_OUTAGE, Outage, check_max_outage, is_transient
from airflow_provider_airplane._validation import check_positive, check_reference
from airflow_provider_airplane.exceptions import AirplaneOutageError
from airflow_provider_airplane.hooks._api import ApiCore
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook
from airflow_provider_airplane.models import AirplaneRun, RunStatus
from airflow_provider_airplane.triggers._events import (
    OUTAGE_PROMISE,
    OVERLAP,
    ErrorLog,
    Listing,
    Watch,
    check_statuses,
    cursor_key,
    first_look,
    list_window,
)
from airflow_provider_airplane.triggers._watcher import watch_run
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

# Bound on a cancel issued while the trigger is being torn down (on_kill has its own 30 s bound on 3.3+;
# the < 3.3 fallback runs inside the triggerer's cancellation path, which nothing else bounds).
CANCEL_TIMEOUT = 25.0

_EVENT_STATUS = {
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}


class AirplaneRunTrigger(BaseTrigger):
    """Poll one Airplane run and fire exactly one event when it ends, its deadline passes, or the API has
    been out of reach for longer than ``max_outage``.

    Event payload: ``{"status": "success" | "failed" | "cancelled" | "timeout" | "error", "run_id",
    "run_status", "message"}``. The trigger never cancels on ``timeout`` or ``error``: the operator's
    ``execute_complete`` decides what a timeout means, and a flaky API is no reason to stop a run.

    With ``cancel_on_kill`` the run is cancelled when a user marks the deferred task failed or success, or
    clears it: through ``on_kill`` on Airflow 3.3+, and below 3.3 when the trigger is cancelled while its
    task instance is no longer DEFERRED. A triggerer restart or redistribution leaves the TI DEFERRED, and
    then nothing is cancelled.

    :param run_id: the Airplane run to watch.
    :param airplane_conn_id: the Airplane connection (the API key stays there, never in these kwargs).
    :param poll_interval: seconds between polls.
    :param end_time: epoch seconds after which a ``timeout`` event fires; None waits without a deadline.
    :param cancel_on_kill: cancel the run when a user kills the deferred task (the operator's choice;
        a sensor watches a run it does not own and passes False).
    :param env_slug: environment override for this run, as on the operator.
    :param max_outage: seconds the API may fail to answer in a row (no answer, 429, 5xx, an answer that is
        not its JSON) before an ``error`` event; None: any length. The run is never cancelled for it.
    :param max_poll_errors: deprecated and ignored (a count of failed polls, replaced by ``max_outage``);
        accepted so that triggers serialized by an earlier version still load.
    """

    def __init__(
        self,
        *,
        run_id: str,
        airplane_conn_id: str,
        poll_interval: float,
        end_time: float | None = None,
        cancel_on_kill: bool = True,
        env_slug: str | None = None,
        max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE,
        max_poll_errors: int | None = None,
    ) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, not {poll_interval!r}")
        if max_poll_errors is not None:
            warnings.warn(
                "AirplaneRunTrigger(max_poll_errors=) is ignored: failed polls are bounded by max_outage "
                "(seconds the API may be out of reach) since version 1.1",
                DeprecationWarning,
                stacklevel=2,
            )
        self.run_id = run_id
        self.airplane_conn_id = airplane_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = cancel_on_kill
        self.env_slug = env_slug
        self.max_outage = check_max_outage(max_outage)
        # Set just before the event is yielded: after that, killing the task must not cancel the run
        # (an error event means "could not watch it", not "stop it").
        self._fired_event = False
        self._kill_check: asyncio.Future[None] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "airplane_conn_id": self.airplane_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "env_slug": self.env_slug,
                "max_outage": self.max_outage,
            },
        )

    def _hook(self) -> AirplaneAsyncHook:
        return AirplaneAsyncHook(airplane_conn_id=self.airplane_conn_id, env_slug=self.env_slug)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            payload = await self._wait()
        except asyncio.CancelledError:
            # Airflow 3.3+ calls on_kill() for user actions; below that this is the only chance to act.
            if not AIRFLOW_V_3_3_PLUS:
                # Shielded: the triggerer cancels again while we ask, and a request to its supervisor
                # interrupted between write and reply crashes the whole trigger runner (replies out of
                # order). Kept on self so the task outlives a second cancellation of this one.
                self._kill_check = asyncio.ensure_future(self._cancel_if_task_gone())
                await asyncio.shield(self._kill_check)
            raise
        self._fired_event = True
        yield TriggerEvent(payload)

    async def _wait(self) -> dict[str, Any]:
        """Wait until the run ends, the deadline passes, or the API is out of reach past ``max_outage``.

        Through the watcher this triggerer shares for the connection: one listing per interval for all
        of its waiting runs, instead of a ``runs/get`` each.
        """
        async with watch_run(
            self.run_id,
            airplane_conn_id=self.airplane_conn_id,
            env_slug=self.env_slug,
            poll_interval=self.poll_interval,
            max_outage=self.max_outage,
            log=self.log,
        ) as watch:
            try:
                async with asyncio.timeout(self._remaining()) as deadline:
                    run = await watch.terminal()
            except Exception as err:
                if isinstance(err, TimeoutError) and deadline.expired():
                    return self._timeout_payload(watch.last_status)
                if isinstance(err, AirplaneOutageError) or is_transient(err):
                    return self._payload("error", watch.last_status, str(err))
                return self._payload(
                    "error", watch.last_status, f"Cannot watch Airplane run {self.run_id}: {err}"
                )
        self.log.info("Airplane run %s is %s", self.run_id, run.status)
        return self._terminal_payload(run)

    def _remaining(self) -> float | None:
        """Seconds until ``end_time`` (never negative), or None without a deadline."""
        return None if self.end_time is None else max(0.0, self.end_time - time.time())

    def _timeout_payload(self, last_status: str | None) -> dict[str, Any]:
        return self._payload(
            "timeout",
            last_status,
            f"Airplane run {self.run_id} had not finished by its deadline "
            f"(last status: {last_status or 'unknown'})",
        )

    def _terminal_payload(self, run: AirplaneRun) -> dict[str, Any]:
        status = _EVENT_STATUS[RunStatus(run.status)]
        if status == "cancelled":
            by = f" by {run.cancelled_by}" if run.cancelled_by else ""
            message = f"Airplane run {run.id} was cancelled{by}"
        else:
            message = f"Airplane run {run.id} {'succeeded' if status == 'success' else 'failed'}"
        return self._payload(status, str(run.status), message)

    def _payload(self, status: str, run_status: str | None, message: str) -> dict[str, Any]:
        return {"status": status, "run_id": self.run_id, "run_status": run_status, "message": message}

    async def on_kill(self) -> None:
        """Airflow 3.3+: a user marked the deferred task failed or success, or cleared it."""
        if self.cancel_on_kill and not self._fired_event:
            await self._cancel_run("the deferred task was stopped by a user")

    async def _cancel_if_task_gone(self) -> None:
        """Below Airflow 3.3: cancel only if the task instance left DEFERRED (a user acted on it)."""
        if self.cancel_on_kill and not self._fired_event and await self._safe_to_cancel():
            await self._cancel_run("the task instance is no longer deferred")

    async def _safe_to_cancel(self) -> bool:
        """False while the TI is still DEFERRED: the triggerer is only restarting or moving the trigger."""
        if self.task_instance is None:  # not run by a triggerer: nobody to ask
            return False
        try:
            state = await self._task_state()
        except Exception:
            self.log.warning(
                "Could not read the state of the task waiting on Airplane run %s; leaving the run alone",
                self.run_id,
                exc_info=True,
            )
            return False
        self.log.info("Trigger for Airplane run %s stopped; its task instance is %s", self.run_id, state)
        return state != "deferred"

    async def _task_state(self) -> str | None:
        """The TI's state through the triggerer's supervisor (None if the TI no longer exists)."""
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        ti = self.task_instance
        assert ti is not None
        states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
        )
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        state: str | None = states.get(ti.run_id, {}).get(key)
        return state

    async def _cancel_run(self, reason: str) -> None:
        """Best effort: log and carry on on failure, so the kill itself is never masked."""
        self.log.info("Cancelling Airplane run %s: %s", self.run_id, reason)
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT), self._hook() as hook:
                run = await hook.cancel_run(self.run_id)
        except Exception as err:
            self.log.warning("Could not cancel Airplane run %s: %s", self.run_id, err)
            return
        self.log.info("Airplane run %s is now %s", self.run_id, run.status)


class AirplaneRunEventTrigger(BaseEventTrigger):
    """Watch the runs of one Airplane task and fire one event per poll for the runs that ended since the last.

    For an ``AssetWatcher``: DAGs scheduled on the asset start when someone (or Airplane's own schedule)
    runs the task. Payload: ``{"runs": [...]}``, oldest end first, each run a dict with ``run_id``,
    ``status``, ``task_id``, ``task_slug``, ``param_values``, ``created_at``, ``ended_at`` (RFC 3339) and
    ``run_url``. One event carries all runs found by one poll, because Airflow turns a burst of events for
    one asset into a single DAG run. A run appears in at most one event, except after a SIGKILL or SIGTERM
    of the triggerer within seconds of an event (see docs/event-driven.md).

    Airflow 3.3: the cursor lives in the asset's ``asset_state_store`` under this watcher's own
    :attr:`cursor_key` (a restart misses no runs), and watchers on one connection, environment,
    ``poll_interval`` and ``max_outage`` share one listing per interval (shared streams). Below 3.3 the
    cursor lives in memory and starts at Airplane's time minus ``lookback`` seconds, so runs that end while
    the triggerer is down are missed unless ``lookback`` covers the outage.

    :param slug: the task's slug; give exactly one of ``slug`` and ``airplane_task_id``.
    :param airplane_task_id: the task's id (``tsk...``).
    :param statuses: the terminal statuses to report (``Succeeded``, ``Failed``, ``Cancelled``).
    :param airplane_conn_id: the Airplane connection (the API key stays there).
    :param env_slug: the environment to watch, overriding the connection's.
    :param poll_interval: seconds between two looks at ``runs/list``.
    :param lookback: seconds before the first start (and, below 3.3, every restart) to report runs from.
    :param max_outage: seconds (or a ``timedelta``) the API may be unreachable before the watcher logs an
        error; it never ends, keeps its cursor and tries again every 5 minutes at most. None: no error.
    """

    def __init__(
        self,
        *,
        slug: str | None = None,
        airplane_task_id: str | None = None,
        statuses: str | Iterable[str] = (RunStatus.SUCCEEDED.value,),
        airplane_conn_id: str = AirplaneAsyncHook.default_conn_name,
        env_slug: str | None = None,
        poll_interval: float = 60.0,
        lookback: float | timedelta = 0.0,
        max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE,
    ) -> None:
        super().__init__()
        if (slug is None) == (airplane_task_id is None):
            raise ValueError(
                "Give exactly one of slug= or airplane_task_id= to say which Airplane task's runs to watch"
            )
        self.slug = None if slug is None else check_reference(slug, "slug")
        self.airplane_task_id = (
            None if airplane_task_id is None else check_reference(airplane_task_id, "airplane_task_id")
        )
        self.statuses = check_statuses(statuses)
        self.airplane_conn_id = airplane_conn_id
        self.env_slug = env_slug
        self.poll_interval = check_positive(poll_interval, "poll_interval")
        seconds = lookback.total_seconds() if isinstance(lookback, timedelta) else lookback
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"lookback must be a number of seconds >= 0 or a timedelta, not {lookback!r}")
        self.lookback = float(seconds)
        self.max_outage = check_max_outage(max_outage)

    @property
    def cursor_key(self) -> str:
        """This watcher's key in the asset state store: its task, statuses, connection and environment."""
        return cursor_key(
            conn_id=self.airplane_conn_id,
            env_slug=self.env_slug,
            slug=self.slug,
            task_id=self.airplane_task_id,
            statuses=self.statuses,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "slug": self.slug,
                "airplane_task_id": self.airplane_task_id,
                "statuses": list(self.statuses),
                "airplane_conn_id": self.airplane_conn_id,
                "env_slug": self.env_slug,
                "poll_interval": self.poll_interval,
                "lookback": self.lookback,
                "max_outage": self.max_outage,
            },
        )

    def _hook(self) -> AirplaneAsyncHook:
        return AirplaneAsyncHook(self.airplane_conn_id, env_slug=self.env_slug)

    async def _open_watch(self) -> Watch:
        watch = Watch(
            task_id=self.airplane_task_id,
            slug=self.slug,
            statuses=self.statuses,
            lookback=self.lookback,
            # Airflow 3.3 injects it for a watcher; older versions have no such attribute.
            store=getattr(self, "asset_state_store", None),
            log=self.log,
            key=self.cursor_key,
            max_outage=self.max_outage,
        )
        await watch.open()
        return watch

    async def _own_listing(
        self, hook: AirplaneAsyncHook, watch: Watch, shared: Listing | None = None
    ) -> Listing:
        assert watch.cursor is not None
        listing = await list_window(
            hook,
            since=watch.cursor.window_start,
            task_id=self.airplane_task_id,
            task_slug=self.slug,
            outage=watch.outage,
        )
        watch.learn(listing, shared)
        return listing

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll alone (below Airflow 3.3, or when not shared); loops until Airflow cancels it."""
        async with self._hook() as hook:
            watch = await self._open_watch()
            next_poll = time.monotonic()
            while True:
                await watch.store_due()
                now = time.monotonic()
                if now < next_poll:
                    ripe = watch.store_wait()
                    await asyncio.sleep(next_poll - now if ripe is None else min(next_poll - now, ripe))
                    continue
                next_poll = now + self.poll_interval
                try:
                    if watch.needs_first_look(shared=False):
                        await watch.first_look(hook)
                    listing = await self._own_listing(hook, watch)
                    app = ApiCore(await hook.get_config())
                except Exception as err:
                    next_poll = now + watch.errors.failed(err, self.poll_interval)
                    continue
                watch.errors.recovered()
                payload = watch.take(listing, app)
                if payload is not None:
                    yield TriggerEvent(payload)

    # Airflow 3.3 shared streams: one env-wide listing per connection, environment and interval.

    def shared_stream_key(self) -> Hashable | None:
        return ("airplane-runs", self.airplane_conn_id, self.env_slug, self.poll_interval, self.max_outage)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """List every run of the environment that changed since the last look, once per interval."""
        trigger = cls(**kwargs)
        log = logging.getLogger(f"{cls.__module__}.{cls.__qualname__}")
        env = f"environment {trigger.env_slug}" if trigger.env_slug else "the connection's environment"
        subject = f"{env} of {trigger.airplane_conn_id} (shared by the Airplane event watchers)"
        outage = Outage(log, f"the runs of {subject}", trigger.max_outage, promise=OUTAGE_PROMISE)
        errors = ErrorLog(log, subject, outage)
        # From Airplane's clock at the first look, one more OVERLAP back: watchers that started with the
        # stream (created a little earlier, their Date a second earlier) find no gap to list on their own.
        since: float | None = None
        async with trigger._hook() as hook:
            while True:
                started = time.monotonic()
                try:
                    if since is None:
                        since = (await first_look(hook, outage=outage))[0] - 2 * OVERLAP
                    listing = await list_window(hook, since=since, outage=outage)
                except Exception as err:
                    await asyncio.sleep(errors.failed(err, trigger.poll_interval))
                    continue
                errors.recovered()
                if listing.watermark is not None:
                    since = max(since, listing.watermark - OVERLAP)
                yield listing
                await asyncio.sleep(max(0.0, trigger.poll_interval - (time.monotonic() - started)))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This task's runs from the shared listings; lists its own task only to close a gap after a
        (re)start, or to learn which task id its slug has."""
        async with self._hook() as hook:
            watch = await self._open_watch()
            # At once, alongside the stream's own first look; if it fails, the first listing retries it
            # and logs why.
            with contextlib.suppress(Exception):
                await watch.first_look(hook)
            listings = aiter(shared_stream)
            pending: asyncio.Future[Any] | None = None
            try:
                while True:
                    # Wait for the next listing, waking up meanwhile to store a cursor once it is due. The
                    # pull is never cancelled on such a wake-up: that would close the shared stream.
                    pending = pending or asyncio.ensure_future(anext(listings))
                    done, _ = await asyncio.wait({pending}, timeout=watch.store_wait())
                    await watch.store_due()
                    if not done:
                        continue
                    listing: Listing = pending.result()
                    pending = None
                    try:
                        if watch.needs_first_look(shared=True):
                            await watch.first_look(hook)
                        if watch.needs_own_listing(listing):
                            listing = (await self._own_listing(hook, watch, listing)).merged(listing)
                        app = ApiCore(await hook.get_config())
                    except Exception as err:
                        watch.errors.failed(err, self.poll_interval)
                        continue  # the next shared listing retries; the cursor did not move
                    watch.errors.recovered()
                    payload = watch.take(listing, app)
                    if payload is not None:
                        yield TriggerEvent(payload)
            finally:
                if pending is not None:
                    pending.cancel()
