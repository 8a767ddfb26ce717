"""Property-based tests: the event watcher's cursor loses no run and repeats one only across a restart.

docs/event-driven.md and ``triggers/_events.py``: a run that ends after a watcher starts is reported; a
triggerer killed before the cursor covering an event was stored (``PERSIST_MARGIN`` after the event)
reports that event's runs again after its restart, and only then.

The model: runs of several tasks created and ended at generated server times, each change visible in
``runs/list`` only after a lag of up to ``OVERLAP`` seconds (API servers that commit late); a listing
returns what is visible and changed after the ``since`` it was sent, newest first, with runs repeated
as pages shift under the reader; polls at generated intervals; restarts that load the newest stored
cursor, or an older one (a store write that failed); two watchers of different tasks and statuses
keeping their cursors in one asset's store under their own keys. The cursor sees only Airplane's
timestamps: the watcher's first cursor is the ``Date`` of a first answer (whole seconds), so the worker's
clock, however far off, never enters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_airplane.models import AirplaneRun, RunStatus
from airflow_provider_airplane.triggers._events import (
    OVERLAP,
    PERSIST_MARGIN,
    Cursor,
    Listing,
    cursor_key,
)

T0 = 1_800_000_000.0  # Airplane's clock when the watchers start
TERMINAL = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class Run:
    id: str
    task_id: str
    created: float
    ended: float
    status: RunStatus
    lag: float  # seconds before a change shows in runs/list

    def seen_at(self, now: float) -> AirplaneRun | None:
        """The run as a listing at ``now`` shows it, or None before its creation is visible."""
        if self.ended + self.lag <= now:
            stamps = {
                RunStatus.SUCCEEDED: "succeeded_at",
                RunStatus.FAILED: "failed_at",
                RunStatus.CANCELLED: "cancelled_at",
            }
            return AirplaneRun(
                id=self.id,
                status=self.status,
                task_id=self.task_id,
                created_at=at(self.created),
                active_at=at(self.created),
                **{stamps[self.status]: at(self.ended)},  # type: ignore[arg-type]
            )
        if self.created + self.lag <= now:
            return AirplaneRun(
                id=self.id,
                status=RunStatus.ACTIVE,
                task_id=self.task_id,
                created_at=at(self.created),
                active_at=at(self.created),
            )
        return None


@st.composite
def histories(draw: st.DrawFn) -> list[Run]:
    """Runs of tasks ``t1`` and ``t2``; some ended before the watchers started; ends share milliseconds."""
    runs = []
    for index in range(draw(st.integers(0, 25))):
        created = T0 + draw(st.integers(-60_000, 300_000)) / 1000
        ended = created + draw(st.integers(0, 120_000)) / 1000
        runs.append(
            Run(
                id=f"run{index}",
                task_id=draw(st.sampled_from(["t1", "t2"])),
                created=created,
                ended=ended,
                status=draw(st.sampled_from(TERMINAL)),
                lag=draw(st.integers(0, int(OVERLAP * 1000))) / 1000,
            )
        )
    return runs


def listing(runs: list[Run], now: float, since: float, data: st.DataObject) -> Listing:
    """``runs/list?since=``: what is visible at ``now`` and changed after ``since``, newest first, paged;
    a run pushed onto the next page by a newer one is read twice."""
    seen = [run for run in (r.seen_at(now) for r in runs) if run is not None]
    changed = [run for run in seen if (run.last_change or 0.0) > since]
    changed.sort(key=lambda run: run.last_change or 0.0, reverse=True)
    page_size = data.draw(st.integers(1, 5), label="page size")
    first_page = changed[:page_size]
    repeated = data.draw(st.lists(st.sampled_from(changed), max_size=3), label="shifted") if changed else []
    marks = [run.last_change for run in first_page if run.last_change is not None]
    return Listing(runs=[*changed, *repeated], window_start=since, watermark=max(marks) if marks else None)


@dataclass
class Watcher:
    """One watcher: its key in the asset's store, what it wants, its cursor and what it emitted."""

    key: str
    task_id: str
    statuses: tuple[str, ...]
    cursor: Cursor
    snapshots: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (taken, cursor)
    emitted: list[tuple[str, float]] = field(default_factory=list)  # (run id, when)
    restarts: list[tuple[float, float]] = field(default_factory=list)  # (when, taken of the cursor loaded)

    def matches(self, run: AirplaneRun) -> bool:
        return run.task_id == self.task_id


@given(
    runs=histories(),
    gaps=st.lists(st.integers(500, 40_000), min_size=1, max_size=30),
    restarts=st.sets(st.integers(0, 29), max_size=4),
    data=st.data(),
)
def test_no_run_that_ends_after_the_start_is_lost(
    runs: list[Run], gaps: list[int], restarts: set[int], data: Any
) -> None:
    """Two watchers on one asset's store (task t1 Succeeded; task t2 Failed or Cancelled), polling at any
    intervals through shifting, lagging listings and restarting from the stored or an older cursor:

    - every run of a watcher's task and statuses that ends at or after the watcher started is emitted;
    - a run is emitted again only after a restart that loaded a cursor taken before its first emission
      (the newest stored cursor is at least ``PERSIST_MARGIN`` old: the documented window), never twice
      within one life of the triggerer;
    - nothing is emitted that had not ended, is of another task or status, or ended before the start;
    - each watcher's cursor lives under its own key, whatever the other one writes.
    """
    start = math.floor(T0)  # the first answer's Date: whole seconds, at or before Airplane's clock
    store: dict[str, dict[str, Any]] = {}
    watchers = [
        Watcher(
            cursor_key(
                conn_id="airplane_default", env_slug="prod", slug=None, task_id=task, statuses=statuses
            ),
            task,
            statuses,
            Cursor.fresh(start),
        )
        for task, statuses in (("t1", ("Succeeded",)), ("t2", ("Failed", "Cancelled")))
    ]
    assert watchers[0].key != watchers[1].key
    for watcher in watchers:
        store[watcher.key] = watcher.cursor.to_json()
        watcher.snapshots.append((-math.inf, store[watcher.key]))
    now = T0
    last_change = max((run.ended + run.lag for run in runs), default=T0)
    # Generated polls, then polls every 30 s until every change has been visible for a while.
    schedule = [gap / 1000 for gap in gaps]
    while now + sum(schedule) < last_change + 2 * OVERLAP:
        schedule.append(30.0)
    for poll, gap in enumerate(schedule):
        now += gap
        for watcher in watchers:
            if poll in restarts:  # the triggerer was killed: load what the store holds, or an older one
                ripe = [
                    (taken, cursor) for taken, cursor in watcher.snapshots if taken <= now - PERSIST_MARGIN
                ]
                older = data.draw(st.booleans(), label="a store write failed")
                taken, stored = ripe[0] if older else ripe[-1]
                store[watcher.key] = stored
                watcher.cursor = Cursor.from_json(stored)
                watcher.restarts.append((now, taken))
                watcher.snapshots = [(taken, stored)]
            since = watcher.cursor.window_start
            taken_runs = watcher.cursor.take(
                listing(runs, now, since, data), watcher.statuses, watcher.matches
            )
            watcher.emitted += [(run.id, now) for run in taken_runs]
            watcher.snapshots.append((now, watcher.cursor.to_json()))
            for run in taken_runs:
                assert run.is_terminal
                assert str(run.status) in watcher.statuses
                assert run.task_id == watcher.task_id
    by_id = {run.id: run for run in runs}
    for watcher in watchers:
        wanted = {
            run.id
            for run in runs
            if run.task_id == watcher.task_id and run.status in watcher.statuses and run.ended >= start
        }
        emitted = [run_id for run_id, _ in watcher.emitted]
        assert wanted <= set(emitted), f"lost: {sorted(wanted - set(emitted))}"
        assert set(emitted) <= wanted  # ended before the start: not this watcher's
        first: dict[str, float] = {}
        for run_id, when in watcher.emitted:
            if run_id in first:
                # Again: only after a restart that loaded a cursor taken before the first emission.
                assert any(
                    first[run_id] < restarted <= when and taken < first[run_id]
                    for restarted, taken in watcher.restarts
                ), f"{run_id} emitted at {first[run_id]} and again at {when} without such a restart"
            first[run_id] = when
        assert all(by_id[run_id].ended >= start for run_id in first)
