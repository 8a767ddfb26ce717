"""One shared poller per Airplane connection in the triggerer, so that waiting costs requests in proportion
to how many runs *changed*, not to how many runs are waiting.

A trigger used to call ``runs/get`` once per interval: 1,000 deferred tasks cost 1,000 requests per
interval and ran into rate limits. Here every trigger of one process that watches a run on the same
connection (conn id + environment) registers with one :class:`RunWatcher`, which each interval asks
``runs/list`` for the runs *updated since* it last looked (a page or two), settles every waiting run it
sees, and only falls back to ``runs/get`` where that is cheaper or the only way to know.

Times: ``since`` is compared by the server with its own clock, so the cursor must never be later than the
server's time of the previous look, whatever the local clock says. Every timestamp in an answer is at or
before the server's time when it answered, so ``max(timestamp) - local monotonic time at receipt`` is a
lower bound of the offset between the two clocks; the local send time plus that bound is a safe cursor,
and ``overlap`` seconds are re-read on top for commit lag between API servers.

    async with watch_run(run_id, airplane_conn_id="airplane_default", poll_interval=10) as watch:
        async with asyncio.timeout(remaining):
            run = await watch.terminal()  # the terminal AirplaneRun, or raises the error that ended the watch
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_airplane import _metrics
from airflow_provider_airplane._outage import DEFAULT_MAX_OUTAGE, Outage, is_transient
from airflow_provider_airplane._validation import check_positive, check_reference
from airflow_provider_airplane.exceptions import AirplaneApiError
from airflow_provider_airplane.hooks._api import MAX_PAGE_SIZE
from airflow_provider_airplane.hooks._exchange import (
    Answer,
    Failure,
    HttpRequest,
    backoff,
    retry_after_seconds,
)
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook
from airflow_provider_airplane.models import AirplaneRun

log = logging.getLogger(__name__)

# Attempts of one request inside a poll; the watcher's own backoff spaces the polls of an outage.
HOOK_ATTEMPTS = 3
# Seconds of server time every listing re-reads before its cursor: commit lag, several API servers.
OVERLAP = 5.0
# Each run is also fetched on its own about this many intervals after it was last seen: a guard against
# a server whose list misses an update. Jittered down to 3/4, so runs started together spread out.
RECHECK_POLLS = 30
# New runs arriving within this many seconds (or one interval, if shorter) share their first check.
FIRST_CHECK_DELAY = 1.0
# Failed polls back off from the poll interval, doubling, up to this (or the interval, if longer): an
# outage costs a poll a minute, and a run that ended meanwhile is seen within a minute of the API's return.
MAX_BACKOFF = 60.0
# A Retry-After is honoured up to this.
RETRY_AFTER_MAX = 300.0
MAX_CONCURRENT_GETS = 20
# Worst drift assumed between the local monotonic clock and the server's clock (100 ppm).
CLOCK_DRIFT = 1e-4
# Fewer new runs than this are fetched one by one; more are looked for in the newest runs first.
DISCOVERY_MIN = 3


class _Hook(AirplaneAsyncHook):
    """The async hook, remembering the last answer's Retry-After for the watcher's own backoff."""

    retry_after: float | None = None

    async def _exchange(self, request: HttpRequest) -> Answer | Failure:
        outcome = await super()._exchange(request)
        if isinstance(outcome, Answer):
            self.retry_after = retry_after_seconds(outcome) if outcome.status >= 400 else None
        return outcome


class RunWatch:
    """One trigger's wait on one run, from :func:`watch_run`.

    Its ``outage`` counts the failed polls that started after it joined (its own budget, so a trigger
    that joins during an outage gets all of it), and logs in the context of the trigger that made the
    watch: the outage's two lines land in that task's log, not only in the triggerer's.
    """

    def __init__(self, run_id: str, poll_interval: float, outage: Outage) -> None:
        self.run_id = run_id
        self.poll_interval = poll_interval
        self.outage = outage
        self._context = contextvars.copy_context()
        self.joined = time.monotonic()
        # The status the watcher last saw (None before the first check), for the trigger's messages.
        self.last_status: str | None = None
        self._result: asyncio.Future[AirplaneRun] = asyncio.get_running_loop().create_future()

    async def terminal(self) -> AirplaneRun:
        """The run once it is terminal; raises the error that ended the watch (unknown run, API down).

        Shielded: a deadline around this call cancels only the caller's wait, never the shared poll.
        """
        return await asyncio.shield(self._result)

    def _failed(self, error: BaseException) -> None:
        self._context.run(self.outage.failed, str(error))

    def _recovered(self) -> None:
        if self.outage.ongoing:
            self._context.run(self.outage.recovered)

    def _resolve(self, run: AirplaneRun) -> None:
        if not self._result.done():
            self._recovered()  # the answer that ends the wait also ends its outage
            self._result.set_result(run)

    def _fail(self, error: BaseException) -> None:
        if not self._result.done():
            self._result.set_exception(error)
            self._result.exception()  # retrieved: a trigger that already left must not log "never retrieved"


class _Entry:
    """A run somebody waits on, and how fresh the watcher's knowledge of it is."""

    __slots__ = ("covered_at", "recheck_at", "run_id", "watches")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.watches: list[RunWatch] = []
        # Server time (a lower bound) as of which the status is known; None until the first check.
        self.covered_at: float | None = None
        # Monotonic time of this run's next runs/get of its own.
        self.recheck_at = math.inf


class RunWatcher:
    """Polls for every run waited on through one connection and environment on one event loop."""

    def __init__(self, airplane_conn_id: str, env_slug: str | None) -> None:
        self.airplane_conn_id = airplane_conn_id
        self.env_slug = env_slug
        self._hook = _Hook(airplane_conn_id, env_slug=env_slug, max_attempts=HOOK_ATTEMPTS)
        # The watcher's own outage, for the triggerer's log: one line when polls start failing, one
        # when they work again (each waiter's lines go to its task's log).
        self._outage = Outage(log, f"the runs of connection {airplane_conn_id!r}", None)
        self._entries: dict[str, _Entry] = {}
        self._pending: set[str] = set()  # runs not checked yet
        self._pending_since = 0.0
        self._offset: float | None = None  # lower bound of (server epoch seconds - local monotonic)
        self._offset_at = 0.0
        self._pages = 1  # pages the last listing took: what the next one is expected to cost
        self._failures = 0
        self._hold_until = 0.0  # backing off until this monotonic time
        self._next_full = 0.0
        self._interval = math.inf  # the shortest poll interval of the waiters
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"RunWatcher({self.airplane_conn_id!r}, env_slug={self.env_slug!r}, runs={len(self._entries)})"

    @property
    def closed(self) -> bool:
        return self._closed

    # Waiters --------------------------------------------------------------------------------------

    def add(self, watch: RunWatch) -> None:
        entry = self._entries.get(watch.run_id)
        if entry is None:
            entry = self._entries[watch.run_id] = _Entry(watch.run_id)
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.add(watch.run_id)
            self._wake.set()
        entry.watches.append(watch)
        _metrics.watcher_waits_changed(+1)
        self._interval = min(self._interval, watch.poll_interval)
        if self._task is None:
            # A context of its own: the shared loop's logs belong to the triggerer, not to the first
            # trigger's task log, which would otherwise inherit them.
            self._task = asyncio.get_running_loop().create_task(
                self._loop(),
                name=f"airplane-run-watcher-{self.airplane_conn_id}",
                context=contextvars.Context(),
            )

    def remove(self, watch: RunWatch) -> None:
        """Forget one waiter (idempotent); the last one to leave stops the loop and frees the session."""
        entry = self._entries.get(watch.run_id)
        if entry is not None and watch in entry.watches:
            entry.watches.remove(watch)
            _metrics.watcher_waits_changed(-1)
            if not entry.watches:
                self._drop(entry.run_id)

    def _drop(self, run_id: str) -> None:
        entry = self._entries.pop(run_id, None)
        if entry is not None and entry.watches:  # a run that ended takes its waiters with it
            _metrics.watcher_waits_changed(-len(entry.watches))
        self._pending.discard(run_id)
        if not self._entries and not self._closed:
            self._closed = True
            if _WATCHERS.get(self._key) is self:
                del _WATCHERS[self._key]
            if self._task is not None and self._task is not asyncio.current_task():
                self._task.cancel()

    @property
    def _key(self) -> tuple[asyncio.AbstractEventLoop, str, str | None]:
        return asyncio.get_running_loop(), self.airplane_conn_id, self.env_slug

    def _settle(self, run: AirplaneRun, covered_at: float, now: float) -> None:
        """Record what the server said about a run: resolve its waiters if it is terminal."""
        entry = self._entries.get(run.id)
        if entry is None:
            return
        for watch in entry.watches:
            watch.last_status = str(run.status)
        if run.is_terminal:
            for watch in entry.watches:
                watch._resolve(run)
            self._drop(run.id)
            return
        entry.covered_at = covered_at
        entry.recheck_at = now + RECHECK_POLLS * self._interval * random.uniform(0.75, 1.0)
        self._pending.discard(run.id)

    def _fail(self, watches: Iterable[RunWatch], error: BaseException) -> None:
        for watch in list(watches):
            watch._fail(error)
            self.remove(watch)

    # Clocks -----------------------------------------------------------------------------------------

    def _min_interval(self) -> float:
        return min(
            (watch.poll_interval for entry in self._entries.values() for watch in entry.watches),
            default=math.inf,
        )

    def _observe(self, run: AirplaneRun, received: float) -> None:
        """Tighten the clock-offset bound with a timestamp the server wrote before ``received``."""
        change = run.last_change
        if change is None:
            return
        sample = change - received
        if self._offset is None:
            self._offset = sample
        else:
            # The old bound loosens by the drift allowed since it was set; a newer sample may beat it.
            self._offset = max(sample, self._offset - CLOCK_DRIFT * (received - self._offset_at))
        self._offset_at = received

    def _server_time(self, sent: float) -> float:
        """A moment at or before the server's time when a request sent at ``sent`` reached it (the local
        wall clock only until the server has shown a timestamp, which every run it serves has)."""
        if self._offset is None:
            return sent - time.monotonic() + time.time() - OVERLAP
        return sent + self._offset

    # The loop ---------------------------------------------------------------------------------------

    async def _loop(self) -> None:
        try:
            while not self._closed:
                await self._sleep()
                if self._closed:
                    break
                started = time.monotonic()
                try:
                    error = await self._poll()
                except Exception as err:  # a bug here must not leave every trigger waiting forever
                    log.exception("Airplane run watcher for %s failed to poll", self.airplane_conn_id)
                    error = err
                self._after_poll(error, started)
        finally:
            await self._hook.close()

    async def _sleep(self) -> None:
        while not self._closed:
            now = time.monotonic()
            due = self._next_full if len(self._entries) > len(self._pending) else math.inf
            if self._pending:
                due = min(due, self._pending_since + min(self._interval, FIRST_CHECK_DELAY))
            due = max(due, self._hold_until)
            if now >= due:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if math.isinf(due) else due - now):
                    await self._wake.wait()

    def _after_poll(self, error: BaseException | None, started: float) -> None:
        now = time.monotonic()
        watches = [watch for entry in self._entries.values() for watch in entry.watches]
        if error is None:
            self._failures = 0
            self._hold_until = 0.0
            self._outage.recovered()
            for watch in watches:
                watch._recovered()
            return
        self._failures += 1
        self._outage.failed(str(error))
        for watch in watches:
            if watch.joined <= started:
                watch._failed(error)
        given_up = [watch for watch in watches if watch.outage.over]
        status = error.status_code if isinstance(error, AirplaneApiError) else None
        for watch in given_up:
            self._fail([watch], watch.outage.error(status_code=status))
        interval = self._interval
        cap = max(MAX_BACKOFF, interval)
        delay = backoff(self._failures, interval, cap) * random.uniform(0.5, 1.0)
        if self._hook.retry_after is not None:
            delay = max(delay, min(self._hook.retry_after, RETRY_AFTER_MAX))
        # Never sleep past the moment a waiter's max_outage ends: it gets one more poll right then.
        remaining = [
            r for entry in self._entries.values() for w in entry.watches if (r := w.outage.remaining)
        ]
        if remaining:
            delay = min(delay, max(min(remaining), interval))
        self._hold_until = now + delay
        self._next_full = max(self._next_full, self._hold_until)
        log.debug(
            "Polling Airplane runs on %s failed (%d in a row, %d runs waiting); next poll in %.1fs: %s",
            self.airplane_conn_id,
            self._failures,
            len(self._entries),
            delay,
            error,
        )

    async def _poll(self) -> BaseException | None:
        """One round: list what changed (or get, where cheaper), then first checks of new runs.

        Returns the error of a request that failed transiently, after which the round stops.
        """
        started = time.monotonic()
        self._interval = self._min_interval()
        self._hook.retry_after = None
        to_get: set[str] = set()
        if started >= self._next_full and len(self._entries) > len(self._pending):
            established = [entry for entry in self._entries.values() if entry.covered_at is not None]
            if len(established) <= self._pages:  # as many requests one by one as a listing would take
                to_get.update(entry.run_id for entry in established)
                self._pages = max(1, self._pages // 2)  # a burst's many pages are no estimate for long
            else:
                since = min(entry.covered_at for entry in established if entry.covered_at is not None)
                outcome = await self._list(
                    {entry.run_id for entry in established}, since=since - OVERLAP, budget=len(established)
                )
                if isinstance(outcome, BaseException):
                    return outcome
                to_get |= outcome
            # Runs no listing has shown for a long while (a list that misses updates would strand them).
            to_get.update(entry.run_id for entry in self._entries.values() if entry.recheck_at <= started)
        if len(self._pending) >= DISCOVERY_MIN:
            outcome = await self._list(set(self._pending), since=None, budget=len(self._pending))
            if isinstance(outcome, BaseException):
                return outcome
            to_get |= outcome
        else:
            to_get |= self._pending
        error = await self._get(to_get)
        if self._next_full <= started:
            self._next_full = started + self._interval
        return error

    async def _list(self, wanted: set[str], *, since: float | None, budget: int) -> set[str] | BaseException:
        """Page through ``runs/list`` and settle the waiting runs it shows.

        With ``since``, a complete listing also covers the wanted runs it does not show (they did not
        change). Without, it looks for new runs among the newest and stops once all are found. Either
        way it stops when another page would cost more than fetching the rest one by one; the runs still
        unknown are returned for ``runs/get``.
        """
        sent = time.monotonic()
        unseen = set(wanted)
        page = 0
        while not (since is None and not unseen):
            if page >= (budget if since is not None else len(unseen)):
                return {run_id for run_id in unseen if run_id in self._entries}
            try:
                runs = await self._hook.list_runs(
                    since=None if since is None else datetime.fromtimestamp(since, UTC),
                    limit=MAX_PAGE_SIZE,
                    page=page,
                )
            except Exception as err:
                if is_transient(err):
                    return err
                # A 4xx will not get better (bad key, permission): every waiter learns why now.
                self._fail([watch for entry in self._entries.values() for watch in entry.watches], err)
                return set()
            received = time.monotonic()
            for run in runs:
                self._observe(run, received)
            for run in runs:
                unseen.discard(run.id)
                self._settle(run, self._server_time(sent), received)
            page += 1
            if len(runs) < MAX_PAGE_SIZE:
                break
        if since is None:
            return {run_id for run_id in unseen if run_id in self._entries}
        self._pages = page
        covered_at = self._server_time(sent)
        for run_id in unseen:
            entry = self._entries.get(run_id)
            if entry is not None:
                entry.covered_at = covered_at
        return set()

    async def _get(self, run_ids: set[str]) -> BaseException | None:
        """``runs/get`` each run, a few at a time; an error about one run reaches only its waiters."""
        gate = asyncio.Semaphore(MAX_CONCURRENT_GETS)
        transient: list[BaseException] = []

        async def get(run_id: str) -> None:
            async with gate:
                if run_id not in self._entries or transient:
                    return
                sent = time.monotonic()
                try:
                    run = await self._hook.get_run(run_id)
                except Exception as err:
                    if is_transient(err):
                        transient.append(err)
                    elif (entry := self._entries.get(run_id)) is not None:
                        self._fail(entry.watches, err)
                    return
                received = time.monotonic()
                self._observe(run, received)
                self._settle(run, self._server_time(sent), received)

        await asyncio.gather(*(get(run_id) for run_id in run_ids))
        return transient[0] if transient else None


_WATCHERS: dict[tuple[asyncio.AbstractEventLoop, str, str | None], RunWatcher] = {}


@contextlib.asynccontextmanager
async def watch_run(
    run_id: str,
    *,
    airplane_conn_id: str = AirplaneAsyncHook.default_conn_name,
    env_slug: str | None = None,
    poll_interval: float = 10.0,
    max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE,
    log: Any = log,
) -> AsyncIterator[RunWatch]:
    """Wait on a run through the watcher shared by this event loop's waiters on the same connection.

    Leaving the block (normally, by an exception, or cancelled) forgets only this waiter. Polls that fail
    transiently (see ``_outage.is_transient``) end this watch only once they have failed for
    ``max_outage`` seconds in a row (None: never); ``log`` gets the outage's start and end lines.
    """
    check_reference(run_id, "run_id")
    interval = check_positive(poll_interval, "poll_interval")
    outage = Outage(log, f"Airplane run {run_id}", max_outage)
    key = (asyncio.get_running_loop(), airplane_conn_id, env_slug)
    watcher = _WATCHERS.get(key)
    if watcher is None or watcher.closed:
        watcher = _WATCHERS[key] = RunWatcher(airplane_conn_id, env_slug)
    watch = RunWatch(run_id, interval, outage)
    watcher.add(watch)
    try:
        yield watch
    finally:
        watcher.remove(watch)
