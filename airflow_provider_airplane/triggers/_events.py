"""The logic behind ``AirplaneRunEventTrigger``: list the runs that ended since a cursor, emit each once.

One core serves both ways a watcher runs: polling on its own (``run()``, every Airflow version) and
filtering a listing shared by every watcher of one connection, environment and interval (Airflow 3.3
shared streams). Only where the listing comes from differs.

The cursor. ``since`` is a *server* timestamp: the largest timestamp on the first page of the last
complete listing. Every timestamp the server shows is at or before its clock when it answered, so
everything that changed after ``since`` is still to be listed, whatever the local clock says. Each listing
re-reads ``OVERLAP`` seconds before it (commit lag between API servers) and pages to the end of the
window, so a run pushed onto the next page by newer runs is seen twice, never skipped (runs that move
ahead change, and so fall into the next window). The ids emitted inside the overlap are kept, so nothing
in it is emitted twice; a run is emitted only once it is terminal and only if it ended inside the window
(a server that ignored ``since`` would not re-fire old runs).

The first cursor is server time too: the ``Date`` header of a first ``runs/list`` answer. That look
also tells a slug watcher its task's id (the public run object has no slug).

Storage (Airflow 3.3, ``asset_state_store``): every watcher of an asset gets the asset's one store, so
each keeps its cursor under a key of its own (:func:`cursor_key`). A cursor is written
``PERSIST_MARGIN`` seconds after it was taken, so after the event it covers was handed to Airflow (which
stores events within about a second). A SIGKILL or SIGTERM of the triggerer in between leaves the older
cursor in the store, and the runs of that event are emitted again after the restart: duplicates are
possible, losses are not.

Outages: a watcher never ends. Within ``max_outage`` its requests are retried (one log line when the
outage starts, one when it ends); past it, one error is logged, the cursor stays where it was, and the
watcher tries again every ``MAX_BACKOFF`` seconds at most until the API answers.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from airflow_provider_airplane import _metrics
from airflow_provider_airplane._outage import DEFAULT_MAX_OUTAGE, Outage, describe_seconds
from airflow_provider_airplane.exceptions import (
    AirplaneAuthError,
    AirplaneNotFoundError,
    AirplaneOutageError,
)
from airflow_provider_airplane.hooks._api import MAX_PAGE_SIZE, ApiCore
from airflow_provider_airplane.hooks._exchange import backoff
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook
from airflow_provider_airplane.models import AirplaneRun, RunStatus

# The one key every watcher of an asset wrote before cursors were keyed by watcher; adopted on upgrade.
LEGACY_CURSOR_KEY = "airplane_runs_cursor"
# Watchers that open within this many seconds of the first adoption of the legacy cursor adopt it too
# (every watcher of the asset restarts with the upgrade); a watcher added later starts afresh.
ADOPT_WINDOW = 600.0
MAX_KEY_LENGTH = 512  # the asset_state_store's key column
CURSOR_VERSION = 1
# Seconds of server time every listing re-reads before the cursor (commit lag between API servers). Each
# listing pages through every run that changed in it: a busy environment pays for a long one.
OVERLAP = 10.0
# A cursor is stored only once the newest event it covers is this old (Airflow stores events in ~1 s).
PERSIST_MARGIN = 5.0
# Failed polls back off from the poll interval, doubling, up to this (also the pace past max_outage).
MAX_BACKOFF = 300.0
# What an outage does not cost a watcher, for the outage's first log line.
OUTAGE_PROMISE = (
    f"and then every {MAX_BACKOFF / 60:.0f} minutes at most, keeping the cursor: runs that end meanwhile "
    "are reported once it answers"
)
TERMINAL = tuple(status.value for status in RunStatus if status.is_terminal)


class StateStore(Protocol):
    """The part of Airflow 3.3's ``AssetStateStoreAccessors`` a watcher uses."""

    async def aget(self, key: str, default: Any = None) -> Any: ...

    async def aset(self, key: str, value: Any) -> None: ...


def check_statuses(statuses: str | Iterable[str]) -> tuple[str, ...]:
    """Terminal statuses only: a watcher never reports a run that has not ended."""
    chosen = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    unknown = [status for status in chosen if status not in TERMINAL]
    if not chosen or unknown:
        raise ValueError(
            f"statuses must be a non-empty list of terminal Airplane run statuses from {list(TERMINAL)}, "
            f"not {list(chosen)!r}" + (f" (unknown or not terminal: {unknown!r})" if unknown else "")
        )
    return tuple(dict.fromkeys(chosen))


def cursor_key(
    *, conn_id: str, env_slug: str | None, slug: str | None, task_id: str | None, statuses: Iterable[str]
) -> str:
    """The watcher's own key in the asset's state store: two watchers of one asset never share a cursor."""
    task = f"slug={slug}" if slug is not None else f"task_id={task_id}"
    key = f"{LEGACY_CURSOR_KEY}/{conn_id}/{env_slug or '-'}/{task}/{','.join(sorted(statuses))}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{LEGACY_CURSOR_KEY}/sha256={hashlib.sha256(key.encode()).hexdigest()}"


def _stamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _ended(run: AirplaneRun) -> float | None:
    return _stamp(run.succeeded_at or run.failed_at or run.cancelled_at)


def _rfc3339(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _epoch(text: Any) -> float:
    return datetime.fromisoformat(str(text)).timestamp()


@dataclass
class Listing:
    """One complete look at ``runs/list``: every run that changed in ``[window_start, answer)``."""

    runs: list[AirplaneRun]
    window_start: float
    # The largest timestamp on the first page: a server time at or before the listing began.
    watermark: float | None

    def merged(self, other: Listing) -> Listing:
        marks = [mark for mark in (self.watermark, other.watermark) if mark is not None]
        return Listing(
            runs=[*self.runs, *other.runs],
            window_start=min(self.window_start, other.window_start),
            watermark=max(marks) if marks else None,
        )


async def first_look(
    hook: AirplaneAsyncHook,
    *,
    task_id: str | None = None,
    task_slug: str | None = None,
    outage: Outage | None = None,
) -> tuple[float, list[AirplaneRun]]:
    """Airplane's time now and the newest runs (of the task, if given), from one ``runs/list`` page.

    The time is the answer's ``Date``: at or before the server's clock when it answered, so a cursor
    started there misses no run that ends later, whatever the local clock says. Without a ``Date`` (a
    proxy dropped it), the local clock, logged.
    """
    api = ApiCore(await hook.get_config())
    snapshot = await hook._call(api.runs_snapshot(task_id=task_id, task_slug=task_slug), outage=outage)
    if snapshot.server_time is None:
        hook.log.warning("Airplane's answer had no Date header; taking the local clock for the server's")
        return time.time(), snapshot.runs
    return snapshot.server_time.timestamp(), snapshot.runs


async def list_window(
    hook: AirplaneAsyncHook,
    *,
    since: float,
    task_id: str | None = None,
    task_slug: str | None = None,
    outage: Outage | None = None,
) -> Listing:
    """Every run that changed since ``since``, page after page until a short page."""
    runs: list[AirplaneRun] = []
    watermark: float | None = None
    page = 0
    started = time.monotonic()
    while True:
        batch = await hook.list_runs(
            task_id=task_id,
            task_slug=task_slug,
            since=datetime.fromtimestamp(since, UTC),
            limit=MAX_PAGE_SIZE,
            page=page,
            outage=outage,
        )
        if page == 0:
            stamps = [stamp for run in batch if (stamp := run.last_change) is not None]
            watermark = max(stamps) if stamps else None
        runs.extend(batch)
        if len(batch) < MAX_PAGE_SIZE:
            _metrics.event_watcher_listing(time.monotonic() - started)
            return Listing(runs=runs, window_start=since, watermark=watermark)
        page += 1


@dataclass
class Cursor:
    """What a watcher has covered: server time ``since`` and the runs it emitted inside the overlap.

    ``not_before`` is set on a watcher's first start (now minus ``lookback``): the overlap re-reads for
    late commits, it must not report runs that ended before the watcher existed.
    """

    since: float
    emitted: dict[str, float] = field(default_factory=dict)  # run id -> when it ended
    not_before: float | None = None

    @classmethod
    def fresh(cls, start: float) -> Cursor:
        return cls(since=start, not_before=start)

    @property
    def window_start(self) -> float:
        return self.since - OVERLAP

    def take(self, listing: Listing, wanted: Sequence[str], matches: Any) -> list[AirplaneRun]:
        """The runs of ``listing`` to emit now (oldest end first); advances the cursor past them."""
        start = self.window_start
        floor = start if self.not_before is None else max(start, self.not_before)
        fresh: dict[str, tuple[float, AirplaneRun]] = {}
        for run in listing.runs:
            if not (run.is_terminal and str(run.status) in wanted and matches(run)):
                continue
            if run.id in self.emitted or run.id in fresh:
                continue
            ended = _ended(run)
            if ended is None:  # terminal without an end time: treat it as ending now
                ended = max(self.since, listing.watermark or self.since)
            if ended < floor:
                continue  # before the window: covered by an earlier look
            fresh[run.id] = (ended, run)
        ordered = sorted(fresh.values(), key=lambda item: (item[0], item[1].id))
        self.emitted.update({run.id: ended for ended, run in ordered})
        if listing.watermark is not None and listing.window_start <= start:
            self.since = max(self.since, listing.watermark)
        start = self.window_start
        self.emitted = {run_id: ended for run_id, ended in self.emitted.items() if ended >= start}
        if self.not_before is not None and self.not_before <= start:
            self.not_before = None
        return [run for _, run in ordered]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CURSOR_VERSION,
            "since": _rfc3339(self.since),
            "emitted": {run_id: _rfc3339(ended) for run_id, ended in sorted(self.emitted.items())},
            "not_before": _rfc3339(self.not_before),
        }

    @classmethod
    def from_json(cls, value: Any) -> Cursor:
        if not isinstance(value, dict) or value.get("version") != CURSOR_VERSION:
            raise ValueError(f"not a version {CURSOR_VERSION} cursor: {value!r}")
        emitted = value.get("emitted") or {}
        not_before = value.get("not_before")
        return cls(
            since=_epoch(value["since"]),
            emitted={str(k): _epoch(v) for k, v in emitted.items()},
            not_before=None if not_before is None else _epoch(not_before),
        )


class ErrorLog:
    """Logs a failing API clearly: a bad key, an unknown task or an outage past ``max_outage`` once per
    change, other failures with the retry delay."""

    def __init__(self, log: logging.Logger | Any, subject: str, outage: Outage) -> None:
        self.log = log
        self.subject = subject
        self.outage = outage
        self.failures = 0
        self._last: str | None = None

    def failed(self, error: BaseException, poll_interval: float) -> float:
        """Record one failed look; returns the seconds to wait before the next."""
        self.failures += 1
        delay = backoff(self.failures, min(poll_interval, MAX_BACKOFF), MAX_BACKOFF)
        if isinstance(error, AirplaneOutageError):
            outage = self.outage
            self._once(
                "outage",
                "The Airplane API has not answered for %s (%d failed requests) while watching %s, longer "
                "than max_outage=%s; last error: %s. The watcher keeps its cursor and tries again every "
                "%.0f s at most: runs that end meanwhile are reported once the API answers.",
                describe_seconds(outage.seconds),
                outage.failures,
                self.subject,
                describe_seconds(outage.max_outage or 0.0),
                outage.last_error,
                MAX_BACKOFF,
            )
        elif isinstance(error, AirplaneAuthError):
            self._once(
                f"auth {error.status_code} {error.message}",
                "Airplane refused the API key while watching %s (%s); fix the key or its permissions in the "
                "connection. Still retrying, every %.0f s at most.",
                self.subject,
                error,
                delay,
            )
        elif isinstance(error, AirplaneNotFoundError):
            self._once(
                f"404 {error.message}",
                "Airplane does not know %s (%s): check the task slug or id and the environment. "
                "Still retrying, every %.0f s at most.",
                self.subject,
                error,
                delay,
            )
        else:
            self._last = f"other {type(error).__name__}"
            self.log.warning(
                "Could not list the runs of %s (failure %d in a row): %s; next try in %.1f s",
                self.subject,
                self.failures,
                error,
                delay,
            )
        return delay

    def _once(self, key: str, message: str, *args: Any) -> None:
        if key != self._last:
            self._last = key
            self.log.error(message, *args)

    def recovered(self) -> None:
        # The end of an outage is the outage's own line.
        if self.failures and self._last != "outage":
            self.log.info("Listing the runs of %s works again after %d failures", self.subject, self.failures)
        self.failures = 0
        self._last = None


class Watch:
    """One watcher's cursor, its storage, and what it emits."""

    def __init__(
        self,
        *,
        task_id: str | None,
        slug: str | None,
        statuses: Sequence[str],
        lookback: float,
        store: StateStore | None,
        log: logging.Logger | Any,
        key: str,
        max_outage: float | timedelta | None = DEFAULT_MAX_OUTAGE,
    ) -> None:
        self.task_id = task_id
        self.slug = slug
        self.statuses = statuses
        self.lookback = lookback
        self.store = store
        self.log = log
        self.key = key
        self.subject = f"Airplane task {slug!r}" if slug else f"Airplane task id {task_id!r}"
        self.outage = Outage(log, f"the runs of {self.subject}", max_outage, promise=OUTAGE_PROMISE)
        self.errors = ErrorLog(log, self.subject, self.outage)
        # None until the stored cursor is loaded or the first look took Airplane's time.
        self.cursor: Cursor | None = None
        # Task ids of this slug, and of other tasks, learnt from listings (the public run has no slug).
        self.task_ids: set[str] = {task_id} if task_id else set()
        self.foreign: set[str] = set()
        self._looked = False
        self._created = time.monotonic()
        self._snapshots: list[tuple[float, dict[str, Any]]] = []  # (monotonic time taken, cursor)
        self._stored: dict[str, Any] | None = None

    async def open(self) -> None:
        """Load the stored cursor (3.3), or adopt the single cursor of an earlier provider version."""
        if self.store is None:
            self.log.info("The cursor of %s lives in memory (no asset state store)", self.subject)
            return
        adopted = False
        try:
            stored = await self.store.aget(self.key)
            if stored is None:
                stored = await self._adopt_legacy(self.store)
                adopted = stored is not None
        except ValueError as err:  # one trigger row for several assets: no single store to use
            self.log.warning(
                "Cannot keep the cursor of %s in the asset state store (%s). This happens when two assets "
                "have watchers with identical arguments (they share one trigger); give each watcher "
                "different arguments (e.g. its own poll_interval or lookback). Carrying on with a cursor in "
                "memory: a triggerer restart may miss or repeat runs.",
                self.subject,
                err,
            )
            self.store = None
            return
        if stored is None:
            return
        try:
            self.cursor = Cursor.from_json(stored)
        except (ValueError, KeyError, TypeError) as err:
            self.log.warning("Ignoring an unreadable stored cursor for %s: %s", self.subject, err)
            return
        self.log.info(
            "Watching %s from the stored cursor %s (%d recent runs already emitted)",
            self.subject,
            stored.get("since"),
            len(self.cursor.emitted),
        )
        if adopted:  # under this watcher's own key from now on
            self._snapshots.append((-float("inf"), self.cursor.to_json()))
            await self.store_due()
        else:
            self._stored = stored

    async def _adopt_legacy(self, store: StateStore) -> dict[str, Any] | None:
        """The cursor an earlier version kept under the one key of the asset, taken over once per watcher
        during an upgrade: by the watchers that open within ``ADOPT_WINDOW`` of the first to take it."""
        legacy = await store.aget(LEGACY_CURSOR_KEY)
        if not isinstance(legacy, dict):
            return None
        marked = legacy.get("migrated_at")
        if marked is None:
            await store.aset(LEGACY_CURSOR_KEY, {**legacy, "migrated_at": _rfc3339(time.time())})
        elif not (isinstance(marked, str) and time.time() - _epoch(marked) <= ADOPT_WINDOW):
            return None
        self.log.info(
            "Adopting the cursor an earlier version of the provider stored under %r for %s",
            LEGACY_CURSOR_KEY,
            self.subject,
        )
        return {key: value for key, value in legacy.items() if key != "migrated_at"}

    def needs_first_look(self, *, shared: bool) -> bool:
        """A fresh watcher needs Airplane's time for its first cursor; a slug watcher on a shared listing
        also looks once for its task's id, so it can attribute runs that carry no slug."""
        if self.cursor is None:
            return True
        return shared and self.slug is not None and not self.task_ids and not self._looked

    async def first_look(self, hook: AirplaneAsyncHook) -> None:
        """One ``runs/list`` page of the task: its id (if it ever ran), and Airplane's time, which
        starts a fresh cursor (minus ``lookback``), stored at once.

        The cursor starts when the watcher was created, in Airplane's time: the answer's time minus the
        seconds elapsed here since then (a failing first look does not move the start later)."""
        moment, runs = await first_look(hook, task_id=self.task_id, task_slug=self.slug, outage=self.outage)
        created = moment - (time.monotonic() - self._created)
        self.task_ids.update(run.task_id for run in runs if run.task_id)
        self._looked = True
        if self.cursor is not None:
            return
        self.cursor = Cursor.fresh(created - self.lookback)
        self.log.info(
            "Watching %s from %s (Airplane's clock) minus %.0f s of lookback",
            self.subject,
            _rfc3339(created),
            self.lookback,
        )
        if self.store is not None:
            self._snapshots.append((-float("inf"), self.cursor.to_json()))
            await self.store_due()

    def matches(self, run: AirplaneRun) -> bool:
        slug = run.raw.get("taskSlug")
        if self.slug is not None and slug:
            return bool(slug == self.slug)
        return run.task_id is not None and run.task_id in self.task_ids

    def learn(self, own: Listing, shared: Listing | None = None) -> None:
        """Every run of a listing of this watcher's own task is its task's: remember the task id. A run of
        the shared listing (taken before) that changed inside the own listing's window but is not in it
        belongs to another task: remember that too, so its runs need no own listing again."""
        self.task_ids.update(run.task_id for run in own.runs if run.task_id)
        if shared is None:
            return
        mine = {run.id for run in own.runs}
        self.foreign.update(
            run.task_id
            for run in shared.runs
            if run.task_id
            and run.id not in mine
            and run.task_id not in self.task_ids
            and (stamp := run.last_change) is not None
            and stamp > own.window_start
        )

    def needs_own_listing(self, shared: Listing) -> bool:
        """A shared listing cannot stand alone when it starts after this cursor (a gap: first listing
        after a restart) or holds finished runs of a task this watcher cannot tell from its own while it
        does not know its slug's task id (the public run object has no slug)."""
        assert self.cursor is not None
        if shared.window_start > self.cursor.window_start:
            return True
        return (
            self.slug is not None
            and not self.task_ids
            and any(
                run.is_terminal
                and not run.raw.get("taskSlug")
                and run.task_id
                and run.task_id not in self.foreign
                for run in shared.runs
            )
        )

    def take(self, listing: Listing, app: ApiCore) -> dict[str, Any] | None:
        """The event payload for the runs of ``listing`` not emitted yet, or None."""
        assert self.cursor is not None
        runs = self.cursor.take(listing, self.statuses, self.matches)
        snapshot = self.cursor.to_json()
        latest = self._snapshots[-1][1] if self._snapshots else self._stored
        if self.store is not None and snapshot != latest:
            self._snapshots.append((time.monotonic(), snapshot))
        if not runs:
            return None
        self.log.info("%d run(s) of %s ended: %s", len(runs), self.subject, ", ".join(r.id for r in runs))
        return {"runs": [self._payload(run, app) for run in runs]}

    def _payload(self, run: AirplaneRun, app: ApiCore) -> dict[str, Any]:
        return {
            "run_id": run.id,
            "status": str(run.status),
            "task_id": run.task_id,
            "task_slug": run.raw.get("taskSlug") or self.slug,
            "param_values": run.param_values,
            "created_at": _rfc3339(_stamp(run.created_at)),
            "ended_at": _rfc3339(_ended(run)),
            "run_url": app.run_url(run.id),
        }

    def store_wait(self) -> float | None:
        """Seconds until the oldest cursor not stored yet may be stored; None if there is none."""
        if self.store is None or not self._snapshots:
            return None
        return max(0.0, self._snapshots[0][0] + PERSIST_MARGIN - time.monotonic())

    async def store_due(self) -> None:
        """Write the newest cursor taken at least ``PERSIST_MARGIN`` ago (its events are stored by now)."""
        if self.store is None:
            return
        ripe = time.monotonic() - PERSIST_MARGIN
        due = [snapshot for taken, snapshot in self._snapshots if taken <= ripe]
        if not due:
            return
        self._snapshots = [(taken, s) for taken, s in self._snapshots if taken > ripe]
        if due[-1] != self._stored:
            try:
                await self.store.aset(self.key, due[-1])
            except Exception as err:  # the next store retries with a newer cursor; nothing is lost
                self.log.warning("Could not store the cursor of %s: %s", self.subject, err)
                return
            self._stored = due[-1]
