"""AirplaneRunEventTrigger over real HTTP against the in-process emulator."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_airplane._outage import DEFAULT_MAX_OUTAGE, Outage
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.models import AirplaneRun
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers import _events
from airflow_provider_airplane.triggers._events import OVERLAP, Cursor, Listing, list_window
from airflow_provider_airplane.triggers.airplane import AirplaneRunEventTrigger
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

POLL = 0.1
PAYLOAD_KEYS = {
    "run_id",
    "status",
    "task_id",
    "task_slug",
    "param_values",
    "created_at",
    "ended_at",
    "run_url",
}


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short hook backoff and persist margin, so tests take fractions of a second."""
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_base", 0.001)
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_cap", 0.01)
    monkeypatch.setattr(_events, "PERSIST_MARGIN", 0.2)


class Store:
    """A stand-in for Airflow 3.3's asset state store: JSON values by key, as the DB row keeps them."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        assert value is not None
        self.values[key] = json.dumps(value)
        self.writes += 1


class SharedTriggerRow(Store):
    """Two assets whose watchers have identical arguments: Airflow's accessor refuses to pick one."""

    async def aget(self, key: str, default: Any = None) -> Any:
        raise ValueError(
            "Task has 2 concrete inlets and outlets — use context['asset_state_store'][MY_ASSET]"
        )


def start(emu: AirplaneEmulator, slug: str = "job", count: int = 1, **params: Any) -> list[str]:
    hook = AirplaneHook()
    return [hook.execute_task(slug, param_values=params or None) for _ in range(count)]


def watcher(store: Store | None = None, **kwargs: Any) -> AirplaneRunEventTrigger:
    kwargs.setdefault("slug", "job")
    kwargs.setdefault("poll_interval", POLL)
    trigger = AirplaneRunEventTrigger(**kwargs)
    if store is not None:
        trigger.asset_state_store = store  # type: ignore[assignment]  # what the 3.3 triggerer injects
    return trigger


class Events:
    """A trigger's ``run()`` driven as the triggerer drives it, collecting every event."""

    def __init__(self, gen: AsyncIterator[TriggerEvent]) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._task = asyncio.ensure_future(self._drain(gen))

    async def _drain(self, gen: AsyncIterator[TriggerEvent]) -> None:
        async for event in gen:
            self.payloads.append(event.payload)

    @property
    def run_ids(self) -> list[str]:
        return [run["run_id"] for payload in self.payloads for run in payload["runs"]]

    async def until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self._task.done():
                self._task.result()
                raise AssertionError("the watcher ended")
            assert time.monotonic() < deadline, f"not reached; events so far: {self.payloads}"
            await asyncio.sleep(0.02)

    async def quiet(self, polls: int, emu: AirplaneEmulator) -> None:
        """Let the watcher poll ``polls`` more times (nothing new may arrive meanwhile)."""
        target = emu.request_counts().get("/v0/runs/list", 0) + polls
        await self.until(lambda: emu.request_counts().get("/v0/runs/list", 0) >= target)

    async def stop(self) -> None:
        """End it as a SIGKILL would, from Airflow's point of view: no clean-up runs after this."""
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def list_requests(emu: AirplaneEmulator) -> list[dict[str, Any]]:
    return [entry for entry in emu.request_log() if entry["path"] == "/v0/runs/list"]


def own_listings(emu: AirplaneEmulator, slug: str) -> int:
    """Full listings of one task (not its first look, which has no ``since``)."""
    return sum(1 for e in list_requests(emu) if e["query"].get("taskSlug") == slug and "since" in e["query"])


# --- Arguments: checked when the DAG file is parsed ------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({}, "exactly one of slug= or airplane_task_id="),
        ({"slug": "job", "airplane_task_id": "tsk1"}, "exactly one of slug= or airplane_task_id="),
        ({"slug": "job", "statuses": ["Done"]}, "terminal Airplane run statuses from ['Succeeded'"),
        ({"slug": "job", "statuses": ["Succeeded", "Active"]}, "not terminal: ['Active']"),
        ({"slug": "job", "statuses": []}, "non-empty list"),
        ({"slug": "job", "poll_interval": 0}, "poll_interval must be a positive number of seconds"),
        ({"slug": "job", "poll_interval": -5}, "poll_interval must be a positive number of seconds"),
        ({"slug": "job", "lookback": -1}, "lookback must be a number of seconds >= 0"),
        ({"slug": "job", "max_outage": 0}, "max_outage must be a number of seconds > 0"),
        ({"slug": "has space"}, "without whitespace"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fix)):
        AirplaneRunEventTrigger(**kwargs)


def test_serialize_round_trips_and_keeps_no_secret() -> None:
    trigger = AirplaneRunEventTrigger(slug="job", statuses="Failed", env_slug="prod", lookback=60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_airplane.triggers.airplane.AirplaneRunEventTrigger"
    assert kwargs["statuses"] == ["Failed"]
    assert kwargs["lookback"] == 60.0
    assert kwargs["max_outage"] == DEFAULT_MAX_OUTAGE
    again = AirplaneRunEventTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert "tkn" not in json.dumps(kwargs)


def test_max_outage_takes_a_timedelta_or_none_and_splits_shared_streams() -> None:
    ten_minutes = AirplaneRunEventTrigger(slug="job", max_outage=timedelta(minutes=10))
    unbounded = AirplaneRunEventTrigger(slug="job", max_outage=None)
    assert ten_minutes.serialize()[1]["max_outage"] == 600.0
    assert unbounded.serialize()[1]["max_outage"] is None
    assert AirplaneRunEventTrigger(**unbounded.serialize()[1]).max_outage is None
    default = AirplaneRunEventTrigger(slug="other")
    assert default.shared_stream_key() == AirplaneRunEventTrigger(slug="job").shared_stream_key()
    assert len({t.shared_stream_key() for t in (ten_minutes, unbounded, default)}) == 3


# --- Events ----------------------------------------------------------------------------------------


async def test_a_burst_is_one_event_oldest_end_first(airplane_conn: AirplaneEmulator) -> None:
    emu = airplane_conn
    emu.add_task("job", duration=0.3)
    events = Events(watcher().run())
    await events.quiet(1, emu)
    # Three runs that end between two polls in a known order: the emulator's clock jumps past both ends.
    emu.add_task("job", duration=50)
    slow = start(emu, region="eu")
    emu.add_task("job", duration=40)
    fast_ones = start(emu, count=2, region="us")
    await events.quiet(1, emu)
    emu.clock_offset = 100
    await events.until(lambda: len(events.run_ids) == 3)
    assert len(events.payloads) == 1, events.payloads
    runs = events.payloads[0]["runs"]
    assert [run["run_id"] for run in runs][-1] == slow[0]
    assert set(events.run_ids) == {*slow, *fast_ones}
    ended = [run["ended_at"] for run in runs]
    assert ended == sorted(ended)
    first = runs[0]
    assert set(first) == PAYLOAD_KEYS
    assert first["status"] == "Succeeded"
    assert first["task_slug"] == "job"
    assert first["param_values"] == {"region": "us"}
    assert first["run_url"] == f"https://app.example.test/runs/{first['run_id']}"
    assert first["created_at"].endswith("Z")
    assert first["ended_at"] > first["created_at"]
    await events.quiet(3, emu)
    assert len(events.run_ids) == 3  # nothing twice
    await events.stop()


async def test_only_terminal_runs_in_the_chosen_statuses(airplane_conn: AirplaneEmulator) -> None:
    emu = airplane_conn
    emu.add_task("job", duration=600)
    events = Events(watcher(statuses=["Failed", "Cancelled"]).run())
    await events.quiet(1, emu)
    running = start(emu)[0]
    emu.add_task("job", duration=0.1)
    succeeded = start(emu)[0]
    emu.add_task("job", fail=True, error="boom")
    failed = start(emu)[0]
    await events.until(lambda: failed in events.run_ids)
    AirplaneHook().cancel_run(running)
    await events.until(lambda: running in events.run_ids)
    assert succeeded not in events.run_ids
    statuses = {run["run_id"]: run["status"] for p in events.payloads for run in p["runs"]}
    assert statuses == {failed: "Failed", running: "Cancelled"}
    await events.stop()


async def test_never_emits_a_run_before_it_ends(airplane_conn: AirplaneEmulator) -> None:
    emu = airplane_conn
    emu.add_task("job", duration=600)
    events = Events(watcher().run())
    run_id = start(emu)[0]
    await events.quiet(5, emu)
    assert events.payloads == []  # polled while it was active
    emu.end_runs("job")
    await events.until(lambda: events.run_ids == [run_id])
    await events.stop()


async def test_other_tasks_are_not_reported(airplane_conn: AirplaneEmulator) -> None:
    emu = airplane_conn
    emu.add_task("other", duration=0.1)
    task_id = emu.add_task("job", duration=0.1)
    events = Events(watcher(slug=None, airplane_task_id=task_id).run())
    await events.quiet(1, emu)
    start(emu, "other")
    mine = start(emu)[0]
    await events.until(lambda: mine in events.run_ids)
    await events.quiet(2, emu)
    assert events.run_ids == [mine]
    await events.stop()


async def test_paging_while_runs_arrive_loses_and_repeats_nothing(airplane_conn: AirplaneEmulator) -> None:
    """60 finished runs span two pages; 7 more start between the pages and push runs across the page
    boundary. Every run is emitted exactly once."""
    emu = airplane_conn
    emu.add_task("job", duration=0.0)
    events_trigger = watcher(lookback=600)
    early = start(emu, count=60)
    arrived: list[str] = []

    class Racing(AirplaneAsyncHook):
        async def list_runs(self, **kwargs: Any) -> list[AirplaneRun]:
            page = await super().list_runs(**kwargs)
            if kwargs.get("page") == 0 and not arrived:
                arrived.extend(await asyncio.to_thread(start, emu, "job", 7))
            return page

    events_trigger._hook = lambda: Racing("airplane_default", max_attempts=3)  # type: ignore[method-assign]
    events = Events(events_trigger.run())
    await events.until(lambda: len(events.run_ids) >= 67)
    await events.quiet(3, emu)
    assert sorted(events.run_ids) == sorted([*early, *arrived])
    assert len(events.run_ids) == len(set(events.run_ids)) == 67
    await events.stop()


def _run(run_id: str, ended: float, status: str = "Succeeded", task_id: str = "tsk1") -> AirplaneRun:
    stamp = datetime.fromtimestamp(ended, UTC).isoformat()
    return AirplaneRun.from_api(
        {"id": run_id, "status": status, "taskID": task_id, "createdAt": stamp, "succeededAt": stamp}
    )


def test_overlap_rereads_late_commits_and_dedupes() -> None:
    """A run committed late (ended before the cursor) is still emitted if inside the overlap; a run
    re-listed in the overlap is not emitted twice; a run before the window is not re-fired."""
    cursor = Cursor(since=1_000.0)
    everyone: Callable[[AirplaneRun], bool] = lambda run: True  # noqa: E731
    first = Listing(runs=[_run("a", 1_005.0)], window_start=cursor.window_start, watermark=1_010.0)
    assert [run.id for run in cursor.take(first, ["Succeeded"], everyone)] == ["a"]
    assert cursor.since == 1_010.0
    late = _run("late", 1_010.0 - OVERLAP / 2)
    stale = _run("stale", 1_010.0 - OVERLAP - 1)
    second = Listing(runs=[_run("a", 1_005.0), late, stale], window_start=cursor.window_start, watermark=None)
    assert [run.id for run in cursor.take(second, ["Succeeded"], everyone)] == ["late"]
    assert cursor.take(second, ["Succeeded"], everyone) == []
    assert Cursor.from_json(json.loads(json.dumps(cursor.to_json()))) == cursor


def test_a_listing_with_a_gap_does_not_advance_the_cursor() -> None:
    cursor = Cursor(since=1_000.0)
    gap = Listing(runs=[], window_start=cursor.window_start + 50, watermark=2_000.0)
    cursor.take(gap, ["Succeeded"], lambda run: True)
    assert cursor.since == 1_000.0


async def test_list_window_reads_every_page_and_the_first_pages_watermark(
    airplane_conn: AirplaneEmulator,
) -> None:
    emu = airplane_conn
    emu.add_task("job")
    ids = start(emu, count=55)
    async with AirplaneAsyncHook() as hook:
        listing = await list_window(hook, since=time.time() - 60, task_slug="job")
    assert sorted(run.id for run in listing.runs) == sorted(ids)
    newest = max(run.created_at.timestamp() for run in listing.runs if run.created_at)
    assert listing.watermark is not None
    assert listing.watermark <= time.time()
    assert listing.watermark >= newest - 1.0
    pages = [e["query"]["page"] for e in emu.request_log() if e["path"] == "/v0/runs/list"]
    assert pages == ["0", "1"]


# --- Errors ------------------------------------------------------------------------------------------


def log_lines(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> list[str]:
    """Logged lines so far (Airflow's structlog writes to the terminal, plain logging to caplog)."""
    out, err = capfd.readouterr()
    return [*out.splitlines(), *err.splitlines(), *(r.getMessage() for r in caplog.records)]


async def test_an_outage_within_max_outage_costs_two_log_lines_and_no_run(
    airplane_conn: AirplaneEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """503s and dropped connections while a run ends: the watcher rides them out, logs the outage once
    when it starts and once when it ends, and reports the run once the API answers."""
    emu = airplane_conn
    emu.add_task("job", duration=0.1)
    events = Events(watcher().run())
    await events.quiet(2, emu)
    capfd.readouterr()
    emu.inject_fault("/v0/runs/list", status=503, count=8)
    emu.inject_fault("/v0/runs/list", drop=True, count=4)
    emu.inject_fault("/v0/runs/list", status=502, count=8, body="<html>Bad gateway</html>")
    with caplog.at_level(logging.INFO):
        run_id = start(emu)[0]
        await events.until(lambda: events.run_ids == [run_id], timeout=30)
        await events.quiet(3, emu)
    lines = log_lines(capfd, caplog)
    began = [line for line in lines if "stopped answering" in line]
    ended = [line for line in lines if "answers again after an outage" in line]
    assert len(began) == 1, began
    assert "the runs of Airplane task 'job'" in began[0]
    assert "keeping the cursor" in began[0]
    assert "without failing the task" not in began[0]
    assert len(ended) == 1, ended
    failed = re.search(r"\((\d+) failed requests\)", ended[0])
    assert failed is not None, ended
    # 16 error answers and 4 drops; aiohttp itself retries a request whose kept-alive connection dropped.
    assert 16 < int(failed[1]) <= 20, ended
    assert not [line for line in lines if "Could not list" in line or "longer than max_outage" in line]
    assert events.run_ids == [run_id]
    await events.stop()


async def test_past_max_outage_one_error_then_slow_polls_and_the_cursor_kept(
    airplane_conn: AirplaneEmulator,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API stays down longer than max_outage: one ERROR, the watcher does not end, polls no faster
    than MAX_BACKOFF allows, the stored cursor stays, and the run that ended meanwhile is reported."""
    monkeypatch.setattr(_events, "MAX_BACKOFF", 0.4)
    emu = airplane_conn
    emu.add_task("job", duration=0.0)
    store = Store()
    events = Events(watcher(store, max_outage=0.5).run())
    await events.quiet(2, emu)
    await asyncio.sleep(0.3)  # the first cursor is stored
    stored = dict(store.values)
    capfd.readouterr()
    emu.inject_fault("/v0/runs/list", status=503, rate=1.0)
    with caplog.at_level(logging.INFO):
        run_id = start(emu)[0]
        await asyncio.sleep(1.0)  # past max_outage
        past = len(list_requests(emu))
        await asyncio.sleep(2.0)
        slow = list_requests(emu)[past:]
        assert store.values == stored  # nothing moved while the API was down
        emu.clear_faults()
        await events.until(lambda: events.run_ids == [run_id], timeout=30)
        await events.quiet(2, emu)
    lines = log_lines(capfd, caplog)
    errors = [line for line in lines if "longer than max_outage" in line]
    assert len(errors) == 1, errors
    assert "keeps its cursor" in errors[0]
    assert "last error: HTTP 503" in errors[0]
    assert 2 <= len(slow) <= 8, [entry["time"] for entry in slow]  # one request per slow poll
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(slow)]
    assert max(gaps) < 0.4 + 0.3, gaps  # at most MAX_BACKOFF apart (plus scheduling slack)
    assert len([line for line in lines if "answers again after an outage" in line]) == 1
    assert not [line for line in lines if "works again after" in line]
    assert events.run_ids == [run_id]
    await events.stop()


def test_backoff_doubles_from_the_interval_up_to_the_cap() -> None:
    log = logging.getLogger("test")
    errors = _events.ErrorLog(log, "task", Outage(log, "task"))
    delays = [errors.failed(TimeoutError("slow"), 10.0) for _ in range(8)]
    assert delays == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]


async def test_bad_key_and_unknown_task_are_logged_once_per_change(
    airplane_conn: AirplaneEmulator,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = airplane_conn
    monkeypatch.setattr(_events, "MAX_BACKOFF", POLL)  # keep polling fast while failing
    emu.add_task("job", duration=0.1)
    emu.inject_fault("/v0/runs/list", status=401, count=6, body='{"error": "invalid API key"}')
    emu.inject_fault("/v0/runs/list", status=404, count=6, body='{"error": "Task not found"}')
    emu.inject_fault("/v0/runs/list", status=401, count=3, body='{"error": "invalid API key"}')
    events = Events(watcher().run())
    run_id = start(emu)[0]
    with caplog.at_level(logging.INFO):
        await events.until(lambda: events.run_ids == [run_id], timeout=30)
    out, err = capfd.readouterr()
    text = out + err + caplog.text
    errors = [line for line in text.splitlines() if "Still retrying" in line]
    assert len(errors) == 3, errors  # 401 (6 polls), 404 (6 polls), 401 again (3 polls)
    assert "refused the API key" in errors[0]
    assert "fix the key" in errors[0]
    assert "does not know Airplane task 'job'" in errors[1]
    assert "refused the API key" in errors[2]
    assert emu.api_key not in text
    await events.stop()


# --- The cursor in the asset state store -------------------------------------------------------------


async def test_restart_with_the_stored_cursor_neither_refires_nor_misses(
    airplane_conn: AirplaneEmulator,
) -> None:
    emu = airplane_conn
    emu.add_task("job", duration=0.1)
    store = Store()
    events = Events(watcher(store).run())
    await events.until(lambda: store.writes >= 1)  # the first start stores its cursor at once
    before = start(emu, count=3)
    await events.until(lambda: len(events.run_ids) == 3)
    await events.quiet(4, emu)  # past the persist margin: the cursor covering the event is stored
    await events.stop()
    down = start(emu, count=2)  # end while no watcher runs
    await asyncio.sleep(0.3)
    again = Events(watcher(store).run())
    await again.until(lambda: len(again.run_ids) == 2)
    await again.quiet(3, emu)
    assert sorted(again.run_ids) == sorted(down)
    assert not set(again.run_ids) & set(before)
    await again.stop()


async def test_kill_between_event_and_stored_cursor_repeats_never_loses(
    airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented choice: the cursor covering an event is stored only after Airflow had time to store
    the event, so a kill in between emits those runs again after the restart (at least once)."""
    monkeypatch.setattr(_events, "PERSIST_MARGIN", 60.0)  # the kill always lands inside the window
    emu = airplane_conn
    emu.add_task("job", duration=0.1)
    store = Store()
    events = Events(watcher(store).run())
    await events.until(lambda: store.writes >= 1)
    runs = start(emu, count=2)
    await events.until(lambda: len(events.run_ids) == 2)
    await events.stop()
    assert store.writes == 1  # still the initial cursor
    monkeypatch.setattr(_events, "PERSIST_MARGIN", 0.2)
    again = Events(watcher(store).run())
    await again.until(lambda: len(again.run_ids) == 2)
    assert sorted(again.run_ids) == sorted(runs)
    await again.stop()


@pytest.mark.parametrize("one_asset", [False, True], ids=["an-asset-each", "two-watchers-one-asset"])
async def test_two_watchers_on_one_asset_keep_their_own_cursors(
    airplane_conn: AirplaneEmulator, one_asset: bool
) -> None:
    """Review 2026-12 (issue 16, 2.2): on 3.3 both watchers of one asset get the same asset_state_store.
    A fast watcher's cursor moves a minute ahead; after a restart the slow one still reports its own run
    that ended while it was waiting for its next poll."""
    emu = airplane_conn
    emu.add_task("a", duration=0.0)
    emu.add_task("b", duration=0.0)
    store_a = Store()
    store_b = store_a if one_asset else Store()
    watcher_a = watcher(store_a, slug="a", poll_interval=0.1)
    a = Events(watcher_a.run())
    b = Events(watcher(store_b, slug="b", poll_interval=1000.0).run())  # one poll at start
    await b.until(lambda: own_listings(emu, "b") >= 1)
    await a.until(lambda: own_listings(emu, "a") >= 1)

    rb = start(emu, "b")[0]  # ends at once; b polls next in 1000 s
    emu.clock_offset = 60.0  # a minute later (server clock)
    ra = start(emu, "a")[0]
    await a.until(lambda: a.run_ids == [ra])
    await a.until(lambda: json.loads(store_a.values[watcher_a.cursor_key])["emitted"].get(ra) is not None)
    await a.stop()
    await b.stop()  # triggerer restart

    b_again = Events(watcher(store_b, slug="b", poll_interval=1000.0).run())
    await b_again.until(lambda: own_listings(emu, "b") >= 2)
    await b_again.until(lambda: b.run_ids + b_again.run_ids == [rb])
    assert _events.LEGACY_CURSOR_KEY not in store_b.values
    assert len(store_a.values) == (2 if one_asset else 1)
    await b_again.stop()


def test_the_cursor_key_names_the_watchers_task_statuses_and_environment() -> None:
    keys = {
        AirplaneRunEventTrigger(**kwargs).cursor_key
        for kwargs in (
            {"slug": "job"},
            {"slug": "job", "statuses": ["Failed"]},
            {"slug": "job", "env_slug": "stage"},
            {"slug": "job", "airplane_conn_id": "other"},
            {"slug": "other"},
            {"airplane_task_id": "job"},
        )
    }
    assert len(keys) == 6
    same = AirplaneRunEventTrigger(slug="job", statuses=["Failed", "Succeeded"], poll_interval=5, lookback=9)
    assert same.cursor_key == AirplaneRunEventTrigger(slug="job", statuses=["Succeeded", "Failed"]).cursor_key
    long = AirplaneRunEventTrigger(slug="j" * 600).cursor_key
    assert len(long) <= 512
    assert long != AirplaneRunEventTrigger(slug="j" * 601).cursor_key


async def test_an_upgrade_adopts_the_single_cursor_of_earlier_versions_once(
    airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before 2.2 every watcher of an asset kept its cursor under one key. The watchers that start with
    the upgrade resume from it (so runs that ended during the upgrade are reported), each under its own
    key from then on; a watcher added to the asset after ADOPT_WINDOW starts afresh."""
    emu = airplane_conn
    emu.add_task("a", duration=0.0)
    emu.add_task("b", duration=0.0)
    store = Store()
    await store.aset(_events.LEGACY_CURSOR_KEY, Cursor(since=time.time() - 5).to_json())
    during = {"a": start(emu, "a")[0], "b": start(emu, "b")[0]}  # end while the triggerer is upgraded
    watcher_a = watcher(store, slug="a")
    a = Events(watcher_a.run())
    b = Events(watcher(store, slug="b").run())
    await a.until(lambda: a.run_ids == [during["a"]])
    await b.until(lambda: b.run_ids == [during["b"]])
    legacy = json.loads(store.values[_events.LEGACY_CURSOR_KEY])
    assert "migrated_at" in legacy
    stored = lambda: json.loads(store.values.get(watcher_a.cursor_key, "{}"))  # noqa: E731
    await a.until(lambda: during["a"] in stored().get("emitted", {}))
    await a.stop()
    await b.stop()
    again = Events(watcher(store, slug="a").run())  # a restart: its own key, the legacy one ignored
    await again.quiet(3, emu)
    assert again.run_ids == []
    await again.stop()
    assert json.loads(store.values[_events.LEGACY_CURSOR_KEY]) == legacy  # adopted once, marked once

    monkeypatch.setattr(_events, "ADOPT_WINDOW", 0.0)  # the asset gets a new watcher much later
    await asyncio.sleep(1.1)  # (its first cursor is a Date header: whole seconds)
    late = Events(watcher(store, slug="a", statuses=["Succeeded", "Failed"]).run())
    await late.quiet(3, emu)
    assert late.run_ids == []
    await late.stop()


async def test_identical_watcher_arguments_warn_and_carry_on(
    airplane_conn: AirplaneEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    emu = airplane_conn
    emu.add_task("job", duration=0.1)
    store = SharedTriggerRow()
    events = Events(watcher(store).run())
    await events.quiet(1, emu)
    run_id = start(emu)[0]
    await events.until(lambda: events.run_ids == [run_id])
    warnings = [line for line in log_lines(capfd, caplog) if "identical arguments" in line]
    assert len(warnings) == 1
    assert "give each watcher different arguments" in warnings[0]
    assert store.writes == 0
    await events.stop()


async def test_lookback_reports_runs_that_ended_before_the_first_start(
    airplane_conn: AirplaneEmulator,
) -> None:
    emu = airplane_conn
    emu.add_task("job", duration=0.0)
    old = start(emu, count=2)
    await asyncio.sleep(1.1)  # the first cursor is Airplane's Date header: whole seconds
    without = Events(watcher().run())
    await without.quiet(2, emu)
    await without.stop()
    assert without.run_ids == []
    with_lookback = Events(watcher(lookback=120).run())
    await with_lookback.until(lambda: sorted(with_lookback.run_ids) == sorted(old))
    await with_lookback.stop()


@pytest.mark.parametrize(
    "offset", [0.0, -30.0, 30.0], ids=["same-clock", "airplane-behind", "airplane-ahead"]
)
async def test_the_first_cursor_follows_airplanes_clock(
    airplane_conn: AirplaneEmulator, offset: float
) -> None:
    """Review 2026-12 (issue 16, 2.6): with Airplane's clock 30 s behind Airflow's, a first cursor from the
    local clock dropped every run that ended in the watcher's first 30 s; 30 s ahead, it reported runs
    that ended before the watcher started. The first cursor is the Date of Airplane's answer."""
    emu = airplane_conn
    emu.clock_offset = offset
    emu.add_task("job", duration=0.0)
    before = start(emu)[0]
    await asyncio.sleep(1.1)  # the Date header has whole seconds
    emu.add_task("job", duration=0.2)
    events = Events(watcher(Store()).run())
    await events.until(lambda: own_listings(emu, "job") >= 1)
    run_id = start(emu)[0]  # starts after the watcher, ends 0.2 s later
    await asyncio.sleep(0.5)
    await events.quiet(5, emu)
    assert events.run_ids == [run_id], before
    await events.stop()


def test_the_emulators_date_header_follows_its_clock(airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.clock_offset = -3600.0
    with AirplaneHook() as hook:
        answer = hook.get_conn().get(f"{airplane_conn.url}/v0/runs/list", headers={"X-Airplane-API-Key": "x"})
    assert abs(parsedate_to_datetime(answer.headers["Date"]).timestamp() - (time.time() - 3600)) < 2


# --- Shared streams (Airflow 3.3) ----------------------------------------------------------------------


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="shared streams are new in Airflow 3.3")
async def test_watchers_share_one_listing_and_each_gets_its_own_task(
    airplane_conn: AirplaneEmulator,
) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    emu = airplane_conn
    slugs = [f"job{i}" for i in range(5)]
    for slug in slugs:
        emu.add_task(slug, duration=0.1)
    manager = SharedStreamManager()
    triggers = [watcher(Store(), slug=slug, poll_interval=0.3) for slug in slugs]
    keys = {trigger.shared_stream_key() for trigger in triggers}
    assert len(keys) == 1
    (key,) = keys
    events = [
        Events(trigger.filter_shared_stream(manager.subscribe(trigger_id=i, trigger=trigger, key=key)))
        for i, trigger in enumerate(triggers)
    ]

    def shared_listings() -> int:
        listed = [e["query"] for e in list_requests(emu)]
        return sum(1 for query in listed if "since" in query and "taskSlug" not in query)

    await events[0].until(lambda: shared_listings() >= 3)

    def own_full_listings() -> list[str]:
        queries = [e["query"] for e in list_requests(emu)]
        return [query["taskSlug"] for query in queries if "taskSlug" in query and "since" in query]

    started = {slug: start(emu, slug, count=2) for slug in slugs}
    for slug, collected in zip(slugs, events, strict=True):
        await collected.until(lambda c=collected, s=slug: sorted(c.run_ids) == sorted(started[s]))
    listed = [e["query"] for e in list_requests(emu)]
    shared = [query for query in listed if "taskSlug" not in query and "since" in query]
    # Each watcher took one look (no since) at its task when it started, and the stream one at the
    # environment. The runs carry no taskSlug (the public API) and no task had run yet: a watcher lists
    # its own task when a finished run of a task it does not know shows up, and learns from it which
    # task is its own and which are not.
    assert sorted(q.get("taskSlug", "") for q in listed if "since" not in q) == ["", *slugs]
    assert len(shared) >= 4
    learning = own_full_listings()
    assert set(learning) <= set(slugs)
    assert len(learning) <= 2 * len(slugs), learning
    # Now that every watcher knows its task's id, a second round needs no listing of their own.
    again = {slug: start(emu, slug) for slug in slugs}
    for slug, collected in zip(slugs, events, strict=True):
        await collected.until(lambda c=collected, s=slug: again[s][0] in c.run_ids)
    assert own_full_listings() == learning
    # A watcher restarted with a stored cursor from before the shared poll's first window catches up
    # with one listing of its own task, then follows the shared listings.
    late_store = Store()
    late = watcher(late_store, slug="job0", poll_interval=0.3)
    old_cursor = Cursor(since=time.time() - 600)
    await late_store.aset(late.cursor_key, old_cursor.to_json())
    missed = start(emu, "job0")
    late_events = Events(late.filter_shared_stream(manager.subscribe(trigger_id=99, trigger=late, key=key)))
    expected = sorted([*started["job0"], *again["job0"], *missed])
    await late_events.until(lambda: sorted(late_events.run_ids) == expected)
    await late_events.quiet(3, emu)
    assert own_full_listings() == [*learning, "job0"]
    assert sorted(late_events.run_ids) == expected
    for collected in [*events, late_events]:
        await collected.stop()
    await manager.stop_all()


def test_a_slug_watcher_tells_its_runs_from_others_where_runs_carry_no_slug() -> None:
    """The public run object has ``taskID`` but no slug (reference section 5). A slug watcher on a shared
    listing learns its task's id from its own runs, and from an own listing that leaves out another
    task's run that it is another task's: each unknown task costs one own listing, not one per poll."""
    watch = _events.Watch(
        task_id=None,
        slug="job",
        statuses=["Succeeded"],
        lookback=0,
        store=None,
        log=logging.getLogger("t"),
        key="k",
    )
    now = time.time()
    watch.cursor = Cursor.fresh(now - 5)
    start = watch.cursor.window_start

    def listing(*runs: AirplaneRun) -> Listing:
        return Listing(runs=list(runs), window_start=start, watermark=now)

    other = _run("r1", now, task_id="tsk2")
    assert watch.needs_own_listing(listing(other))
    watch.learn(listing(), listing(other))  # its own listing came back without r1
    assert not watch.matches(other)
    assert not watch.needs_own_listing(listing(_run("r2", now + 1, task_id="tsk2")))
    builtin = AirplaneRun.from_api({"id": "r3", "status": "Succeeded", "succeededAt": "2026-01-01T00:00:00Z"})
    assert not watch.needs_own_listing(listing(builtin))  # a run of no task is nobody's
    mine = _run("r4", now, task_id="tsk1")
    assert watch.needs_own_listing(listing(mine))
    watch.learn(listing(mine), listing(mine))
    assert watch.matches(mine)
    assert not watch.needs_own_listing(listing(_run("r5", now, task_id="tsk9")))  # known id: no doubt


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="shared streams are new in Airflow 3.3")
async def test_quiet_slug_watchers_cost_one_listing_per_interval_without_task_slug(
    airplane_conn: AirplaneEmulator,
) -> None:
    """Review 2026-12 (issue 16, 2.9): five slug watchers of quiet tasks share one stream while another
    task keeps finishing runs, against an API whose runs carry no ``taskSlug``. Each watcher lists its own
    task once to learn that the busy task is not its own, then follows the shared listing; a run of a
    quiet task still reaches its watcher, and only its watcher."""
    from airflow.triggers.shared_stream import SharedStreamManager

    emu = airplane_conn
    emu.add_task("noise", duration=0.0)
    slugs = [f"quiet{i}" for i in range(5)]
    for slug in slugs:
        emu.add_task(slug, duration=0.0)
    manager = SharedStreamManager()
    triggers = [watcher(Store(), slug=slug, poll_interval=0.3) for slug in slugs]
    (key,) = {t.shared_stream_key() for t in triggers}
    events = [
        Events(t.filter_shared_stream(manager.subscribe(trigger_id=i, trigger=t, key=key)))
        for i, t in enumerate(triggers)
    ]

    def shared_polls() -> int:
        return sum(1 for e in list_requests(emu) if "taskSlug" not in e["query"])

    await events[0].until(lambda: shared_polls() >= 2)
    await asyncio.sleep(0.3)
    before = len(list_requests(emu))
    start_polls = shared_polls()
    with AirplaneHook() as hook:
        for _ in range(6):  # the rest of the environment keeps finishing runs
            hook.execute_task("noise")
            await asyncio.sleep(0.3)
    await events[0].until(lambda: shared_polls() >= start_polls + 6)
    listed = [e["query"] for e in list_requests(emu)][before:]
    own = [q for q in listed if "taskSlug" in q]
    assert "taskSlug" not in AirplaneHook().list_runs(limit=1)[0].raw  # the public API's run shape
    assert len(own) <= len(slugs), f"{len(own)} per-watcher listings for {len(listed) - len(own)} shared ones"
    quiet = start(emu, "quiet0")
    await events[0].until(lambda: events[0].run_ids == quiet)
    await events[0].quiet(3, emu)
    assert [e.run_ids for e in events] == [quiet, [], [], [], []]
    for e in events:
        await e.stop()
    await manager.stop_all()


def test_bad_arguments_fail_when_the_dag_file_is_parsed(tmp_path: Any) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    (tmp_path / "bad_watcher.py").write_text(
        "from airflow.sdk import DAG, Asset, AssetWatcher\n"
        "from airflow_provider_airplane.triggers.airplane import AirplaneRunEventTrigger\n"
        "asset = Asset('a', watchers=[AssetWatcher(name='w', trigger=AirplaneRunEventTrigger(\n"
        "    slug='job', statuses=['Succeded']))])\n"
        "with DAG('bad_watcher', schedule=[asset]):\n"
        "    pass\n"
    )
    bag = DagBag(dag_folder=str(tmp_path))
    (error,) = bag.import_errors.values()
    assert "statuses must be a non-empty list of terminal Airplane run statuses" in error
    assert "'Succeded'" in error
    assert "bad_watcher" not in bag.dag_ids
