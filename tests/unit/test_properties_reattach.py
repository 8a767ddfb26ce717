"""Property-based tests: a retry of ``AirplaneExecuteTaskOperator`` follows docs/retries.md's re-attach table.

``start_or_reattach`` runs against a model of the API: Idempotency-Keys known for one hour, a server clock
off the worker's by up to two minutes, a ``runs/list`` snapshot that may miss the earlier run (it is not
on the first page, or not visible yet) and a ``Date`` header of one-second resolution. The earlier run
is at least a second old: one created within the ``Date``'s second and not listed counts as the retry's
own, a limit ``RunsSnapshot.had`` documents. The table is
restated below from the doc, independently of ``verdict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_airplane.exceptions import AirplaneNotFoundError
from airflow_provider_airplane.hooks._api import RunsSnapshot
from airflow_provider_airplane.models import AirplaneRun, RunStatus
from airflow_provider_airplane.operators._reattach import (
    ADOPT,
    CANCELLING,
    CONSUMED,
    DEFERRED,
    NEW,
    REATTACH,
    STARTED,
    RunRecord,
    start_or_reattach,
    verdict,
)

PHASES = [None, STARTED, DEFERRED, CANCELLING, CONSUMED]
WORKER_NOW = 1_800_000_000.0
KEY_LIFETIME = 3600.0  # Airplane keeps an Idempotency-Key for one hour


def table(status: RunStatus, phase: str | None, *, has_store: bool) -> str:
    """docs/retries.md, "The re-attach rules", row by row."""
    if not has_store:  # Airflow 3.1-3.2: the run alone
        if status in (RunStatus.FAILED, RunStatus.CANCELLED):
            return NEW
        return ADOPT if status == RunStatus.SUCCEEDED else REATTACH
    if phase == CONSUMED:  # returned, or handed downstream: the task was cleared
        return NEW
    if status in (RunStatus.FAILED, RunStatus.CANCELLED):
        return NEW
    if status == RunStatus.SUCCEEDED:
        # Not consumed: the try died (or its cancel came too late). No record: cleared after a success.
        return ADOPT if phase in (STARTED, DEFERRED, CANCELLING) else NEW
    return NEW if phase in (CANCELLING, DEFERRED) else REATTACH


@given(status=st.sampled_from(RunStatus), phase=st.sampled_from(PHASES), has_store=st.booleans())
def test_the_verdict_is_the_table(status: RunStatus, phase: str | None, has_store: bool) -> None:
    """For every (run status, store phase, store present) the verdict is the row docs/retries.md gives."""
    run = AirplaneRun(id="run1", status=status)
    assert verdict(run, phase if has_store else None, has_store=has_store) == table(
        status, phase if has_store else None, has_store=has_store
    )


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass
class Api:
    """What a retry can ask Airplane: runs, keys within their hour, the newest runs and the ``Date``."""

    offset: float  # the server's clock minus the worker's
    listing_holds_earlier: bool
    runs: dict[str, AirplaneRun] = field(default_factory=dict)
    keys: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (run id, server time)
    created: list[str] = field(default_factory=list)  # keys that started a run during the try
    cancels: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def server_now(self) -> float:
        self.elapsed += 0.05  # every request takes a little while
        return WORKER_NOW + self.offset + self.elapsed

    def add_earlier(self, key: str, status: RunStatus, age: float) -> AirplaneRun:
        created = WORKER_NOW + self.offset - age
        run = AirplaneRun(id="earlier", status=status, created_at=at(created))
        self.runs[run.id] = run
        if age < KEY_LIFETIME:
            self.keys[key] = (run.id, created)
        return run

    def start(self, key: str) -> str:
        now = self.server_now
        known = self.keys.get(key)
        if known is not None and now - known[1] < KEY_LIFETIME:
            return known[0]
        run = AirplaneRun(id=f"run-{len(self.created)}", status=RunStatus.QUEUED, created_at=at(now))
        self.runs[run.id] = run
        self.keys[key] = (run.id, now)
        self.created.append(key)
        return run.id

    # The slice of AirplaneHook that start_or_reattach uses.
    def runs_snapshot(self, *, task_id: str | None = None, task_slug: str | None = None) -> RunsSnapshot:
        listed = [self.runs["earlier"]] if self.listing_holds_earlier and "earlier" in self.runs else []
        return RunsSnapshot(listed, at(math.floor(self.server_now)))  # Date: whole seconds

    def get_run(self, run_id: str) -> AirplaneRun:
        if run_id not in self.runs:
            raise AirplaneNotFoundError(404, None, f"Run {run_id} not found")
        return self.runs[run_id]

    def cancel_run(self, run_id: str) -> AirplaneRun:
        self.cancels.append(run_id)
        return self.runs[run_id]

    def get_run_url(self, run_id: str) -> str:
        return f"https://app.airplane.dev/runs/{run_id}"


class Store:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, key: str) -> Any:
        return self.value

    def set(self, key: str, value: Any) -> None:
        self.value = value


class Log:
    def info(self, msg: str, /, *args: Any) -> None: ...

    def warning(self, msg: str, /, *args: Any) -> None: ...

    def error(self, msg: str, /, *args: Any) -> None: ...


@dataclass
class TI:
    try_number: int
    dag_id: str = "dag"
    task_id: str = "task"
    run_id: str = "manual__2026-12-02"
    map_index: int = -1


@given(
    status=st.sampled_from(RunStatus) | st.none(),  # None: no earlier run (try 1, or it never started)
    phase=st.sampled_from(PHASES),
    has_store=st.booleans(),
    record_vanished=st.booleans(),
    try_number=st.integers(1, 6),
    offset=st.floats(-120.0, 120.0),
    age=st.floats(1.0, 2 * KEY_LIFETIME),
    listed=st.booleans(),
)
def test_a_retry_takes_the_run_the_table_gives(
    status: RunStatus | None,
    phase: str | None,
    has_store: bool,
    record_vanished: bool,
    try_number: int,
    offset: float,
    age: float,
    listed: bool,
) -> None:
    """For every (run status, store phase, store present, try number, clock offset, age of the earlier run,
    whether the listing shows it) the try ends up with the run the table gives: the earlier try's run for
    re-attach and adopt (no run started: never a second run for a try that died), else exactly one new run,
    started with the try's own key when the task instance's key still names the earlier run; a run still
    going that an earlier try was cancelling is cancelled again. The server's clock never changes this."""
    if try_number == 1:
        status = None  # the first try of a task instance has no earlier run
    api = Api(offset=offset, listing_holds_earlier=listed)
    base = "airflow-key"
    earlier = None if status is None else api.add_earlier(base, status, age)
    value = None
    if has_store and earlier is not None and phase is not None:
        value = {"run_id": "gone" if record_vanished else earlier.id, "phase": phase}
    context: Any = {"ti": TI(try_number)}
    hook: Any = api

    run_id = start_or_reattach(
        context,
        hook,
        api.start,
        durable=True,
        user_key=base,
        slug="task",
        task_id=None,
        record=RunRecord(Store(value) if has_store else None, Log()),
        log=Log(),
    )

    recorded = value is not None and not record_vanished
    if earlier is None:
        expected = NEW
    elif recorded:
        expected = table(earlier.status, phase, has_store=True)  # type: ignore[arg-type]
    elif age < KEY_LIFETIME:  # the key hands the earlier run back; the store knows nothing of it
        expected = table(earlier.status, None, has_store=has_store)  # type: ignore[arg-type]
    else:
        expected = NEW  # older than the key's hour and not recorded: not found
    if expected in (REATTACH, ADOPT):
        assert run_id == "earlier"
        assert api.created == []
    else:
        assert run_id == "run-0"
        key_is_free = earlier is None or (not recorded and age >= KEY_LIFETIME)
        assert api.created == [base if key_is_free else f"{base}-try{try_number}"]
    going = earlier is not None and not earlier.is_terminal
    asked_again = going and recorded and phase in (CANCELLING, DEFERRED)
    assert api.cancels == (["earlier"] if asked_again else [])
