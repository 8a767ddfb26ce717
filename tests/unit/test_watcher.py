"""The shared run watcher over real HTTP against the in-process emulator (no HTTP mocks).

Polls every 0.2 s; bounds on request counts are generous, so the tests do not depend on timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from email.utils import formatdate
from typing import Any

import pytest

from airflow_provider_airplane.exceptions import (
    AirplaneAuthError,
    AirplaneNotFoundError,
    AirplaneOutageError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.models import AirplaneRun, RunStatus
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers import _watcher
from airflow_provider_airplane.triggers._watcher import watch_run

POLL = 0.2
GET = "/v0/runs/get"
LIST = "/v0/runs/list"
DEADLINE = 30.0


@pytest.fixture(autouse=True)
def fast_hook_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook's own backoff stays real but short, so a failing poll takes milliseconds."""
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_base", 0.001)
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_cap", 0.01)


@pytest.fixture(autouse=True)
async def no_watcher_left() -> AsyncIterator[None]:
    """Every test ends with the registry empty: a watcher nobody waits on has stopped."""
    yield
    await asyncio.sleep(0)
    assert not _watcher._WATCHERS


def start_runs(emu: AirplaneEmulator, durations: Sequence[float], *, fail: bool = False) -> list[str]:
    """One run per duration, each of its own task (so runs end at different times)."""
    with AirplaneHook() as hook:
        ids = []
        for number, duration in enumerate(durations):
            slug = f"job_{number}_{'fail' if fail else 'ok'}"
            emu.add_task(slug, duration=duration, fail=fail, output={"n": number})
            ids.append(hook.execute_task(slug))
        return ids


async def wait_one(run_id: str, **kwargs: Any) -> AirplaneRun:
    kwargs.setdefault("poll_interval", POLL)
    async with watch_run(run_id, **kwargs) as watch:
        async with asyncio.timeout(DEADLINE):
            return await watch.terminal()


async def wait_all(run_ids: Sequence[str], **kwargs: Any) -> list[AirplaneRun | BaseException]:
    return await asyncio.gather(*(wait_one(run_id, **kwargs) for run_id in run_ids), return_exceptions=True)


def polls(emu: AirplaneEmulator) -> int:
    counts = emu.request_counts()
    return counts.get(GET, 0) + counts.get(LIST, 0)


async def test_already_finished_run_is_seen_at_once(airplane_conn: AirplaneEmulator) -> None:
    (run_id,) = start_runs(airplane_conn, [0.0])
    await asyncio.sleep(0.3)

    run = await wait_one(run_id, poll_interval=60)  # no second poll: the first check sees it

    assert run.status is RunStatus.SUCCEEDED
    assert airplane_conn.request_counts().get(GET) == 1


async def test_runs_finishing_between_polls(airplane_conn: AirplaneEmulator) -> None:
    ok = start_runs(airplane_conn, [0.5, 0.9, 1.3, 1.7, 2.1])
    failed = start_runs(airplane_conn, [1.1], fail=True)

    results = await wait_all([*ok, *failed])

    statuses = [run.status for run in results if isinstance(run, AirplaneRun)]
    assert statuses == [RunStatus.SUCCEEDED] * 5 + [RunStatus.FAILED]
    assert [run.id for run in results if isinstance(run, AirplaneRun)] == [*ok, *failed]
    assert airplane_conn.request_counts().get(LIST, 0) >= 2  # settled by listings, not by gets


async def test_many_waiters_cost_far_fewer_requests_than_a_get_each(airplane_conn: AirplaneEmulator) -> None:
    n = 40
    run_ids = start_runs(airplane_conn, [1.0 + number / n for number in range(n)])

    results = await wait_all(run_ids)

    assert all(isinstance(run, AirplaneRun) and run.status is RunStatus.SUCCEEDED for run in results)
    # One get per waiter per interval would be n * (~1.5 s / 0.2 s), about 300; a listing per interval
    # plus the first check is about 12.
    assert polls(airplane_conn) <= n // 2, airplane_conn.request_counts()
    assert airplane_conn.request_counts().get(GET, 0) <= 3


async def test_listing_spans_pages(airplane_conn: AirplaneEmulator) -> None:
    n = 120  # more than two pages of 50 change within one interval
    run_ids = start_runs(airplane_conn, [1.5] * n)

    results = await wait_all(run_ids)

    assert all(isinstance(run, AirplaneRun) and run.status is RunStatus.SUCCEEDED for run in results)
    pages = {entry["query"].get("page") for entry in airplane_conn.request_log() if entry["path"] == LIST}
    assert {"0", "1", "2"} <= pages
    assert airplane_conn.request_counts().get(GET, 0) <= 3
    assert polls(airplane_conn) < n


@pytest.mark.parametrize("offset", [5.0, -5.0])
async def test_server_clock_off_by_seconds(
    airplane_conn: AirplaneEmulator, offset: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small overlap: a cursor taken from the local clock would now skip changes when the server lags.
    monkeypatch.setattr(_watcher, "OVERLAP", 0.5)
    airplane_conn.clock_offset = offset
    run_ids = start_runs(airplane_conn, [0.6, 1.0, 1.4, 1.8])

    results = await wait_all(run_ids)

    assert all(isinstance(run, AirplaneRun) and run.status is RunStatus.SUCCEEDED for run in results)
    # Seen by listings whose cursor follows the server's clock, not by fallback gets. Only the last run
    # is ever watched alone, and a lone run is cheaper to get than to list.
    gets = {entry["query"].get("id") for entry in airplane_conn.request_log() if entry["path"] == GET}
    assert gets <= {run_ids[-1]}
    since = [entry["query"]["since"] for entry in airplane_conn.request_log() if "since" in entry["query"]]
    assert since, "no listing used a cursor"


async def test_cancelling_one_waiter_leaves_the_others(airplane_conn: AirplaneEmulator) -> None:
    first, second = start_runs(airplane_conn, [1.5, 1.5])
    cancelled = asyncio.create_task(wait_one(first))
    same_run = asyncio.create_task(wait_one(first))  # a second waiter on the same run
    other = asyncio.create_task(wait_one(second))
    await asyncio.sleep(0.5)

    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    assert (await same_run).status is RunStatus.SUCCEEDED
    assert (await other).status is RunStatus.SUCCEEDED


async def test_own_deadline_does_not_disturb_others(airplane_conn: AirplaneEmulator) -> None:
    slow, fast = start_runs(airplane_conn, [30.0, 1.0])

    async def with_deadline() -> str:
        async with watch_run(slow, poll_interval=POLL) as watch:
            # The deadline starts once the run has been seen, so a slow first poll cannot decide the outcome.
            async with asyncio.timeout(DEADLINE):
                while watch.last_status is None:
                    await asyncio.sleep(POLL / 4)
            try:
                async with asyncio.timeout(0.5):
                    await watch.terminal()
            except TimeoutError:
                return f"timeout, last status {watch.last_status}"
        return "finished"

    outcome, run = await asyncio.gather(with_deadline(), wait_one(fast))

    assert outcome == "timeout, last status Active"
    assert isinstance(run, AirplaneRun)
    assert run.status is RunStatus.SUCCEEDED


async def test_unknown_run_fails_only_its_waiter(airplane_conn: AirplaneEmulator) -> None:
    run_ids = start_runs(airplane_conn, [0.5, 0.7, 0.9])
    unknown = "run20990101zdoesnotexist"

    results = await wait_all([*run_ids, unknown])

    assert [run.status for run in results[:3] if isinstance(run, AirplaneRun)] == [RunStatus.SUCCEEDED] * 3
    assert isinstance(results[3], AirplaneNotFoundError)
    assert unknown in str(results[3])


async def test_5xx_backs_off_for_all_waiters_together(airplane_conn: AirplaneEmulator) -> None:
    n = 30
    run_ids = start_runs(airplane_conn, [2.5] * n)
    waiting = asyncio.gather(*(wait_one(run_id, max_outage=60) for run_id in run_ids))
    await asyncio.sleep(0.5)  # every run has had its first check

    airplane_conn.inject_fault(status=503, rate=1.0)
    await asyncio.sleep(1.5)
    airplane_conn.clear_faults()
    results = await waiting

    assert all(run.status is RunStatus.SUCCEEDED for run in results)
    faulted = [entry for entry in airplane_conn.request_log() if entry["status"] == 503]
    # Each failed poll is one call the hook tries 3 times; polls back off 0.2, 0.4, 0.8 s (jittered),
    # so at most about 6 polls fail. One call per waiter would be 30 * 3 requests per interval.
    assert 3 <= len(faulted) <= 30


async def test_retry_after_holds_the_next_poll(
    airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AirplaneAsyncHook, "retry_after_max", 0.001)  # the hook's own waits stay short
    run_ids = start_runs(airplane_conn, [3.0] * 10)
    waiting = asyncio.gather(*(wait_one(run_id, max_outage=60) for run_id in run_ids))
    await asyncio.sleep(0.5)

    airplane_conn.inject_fault(status=429, rate=1.0, headers={"Retry-After": "2"})
    await asyncio.sleep(2.5)
    airplane_conn.clear_faults()
    results = await waiting

    assert all(run.status is RunStatus.SUCCEEDED for run in results)
    faulted = [entry for entry in airplane_conn.request_log() if entry["status"] == 429]
    # Two failed polls (3 attempts each) fit in 2.5 s when each is followed by 2 s; the poll interval
    # alone (0.2, 0.4, 0.8, 1.6 s) would allow five.
    assert 3 <= len(faulted) <= 6


async def test_an_outage_past_max_outage_reaches_waiters_with_its_length(
    airplane_conn: AirplaneEmulator,
) -> None:
    run_ids = start_runs(airplane_conn, [30.0] * 3)
    airplane_conn.inject_fault(status=503, rate=1.0)
    began = time.monotonic()

    results = await wait_all(run_ids, max_outage=1.5)

    assert 1.5 <= time.monotonic() - began < 6
    for error in results:
        assert isinstance(error, AirplaneOutageError)
        assert error.status_code == 503
        assert "longer than max_outage=1.5s" in str(error)
        assert "HTTP 503" in str(error)
    assert airplane_conn.request_counts().get(GET, 0) + airplane_conn.request_counts().get(LIST, 0) <= 40


async def test_one_unreadable_listing_fails_no_waiter(airplane_conn: AirplaneEmulator) -> None:
    """Review 2.3: a 200 that is not the API's JSON is transient, not every waiter's end."""
    run_ids = start_runs(airplane_conn, [1.5] * 4)
    waiting = asyncio.gather(*(wait_one(run_id) for run_id in run_ids))
    await asyncio.sleep(0.6)
    airplane_conn.inject_fault(
        LIST, status=200, body="<html><body>Sign in to continue</body></html>", count=4
    )
    airplane_conn.inject_fault(GET, status=200, body='{"id": "run', count=4)
    results = await waiting
    assert [run.status for run in results] == [RunStatus.SUCCEEDED] * 4


async def test_a_refused_listing_reaches_every_waiter_at_once(airplane_conn: AirplaneEmulator) -> None:
    run_ids = start_runs(airplane_conn, [30.0] * 4)
    airplane_conn.inject_fault(LIST, status=403, rate=1.0)

    results = await wait_all(run_ids)

    assert all(isinstance(error, AirplaneAuthError) for error in results)
    assert airplane_conn.request_counts().get(LIST) == 1  # a 403 is not retried, nor polled again


async def test_waiters_on_other_environments_do_not_share(airplane_conn: AirplaneEmulator) -> None:
    (prod,) = start_runs(airplane_conn, [1.0])
    async with (
        watch_run(prod, poll_interval=POLL) as first,
        watch_run(prod, poll_interval=POLL) as second,
        watch_run(prod, poll_interval=POLL, env_slug="dev") as other,
    ):
        assert len(_watcher._WATCHERS) == 2
        runs = await asyncio.gather(first.terminal(), second.terminal(), other.terminal())
    assert {run.status for run in runs} == {RunStatus.SUCCEEDED}


async def test_arguments_are_checked(airplane_conn: AirplaneEmulator) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        async with watch_run("run1", poll_interval=0):
            pass
    with pytest.raises(ValueError, match="max_outage"):
        async with watch_run("run1", max_outage=0):
            pass


async def test_retry_after_date_holds_the_next_poll(
    airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13.1: an HTTP-date holds the shared poll as delay-seconds do."""
    monkeypatch.setattr(AirplaneAsyncHook, "retry_after_max", 0.001)  # the hook's own waits stay short
    run_ids = start_runs(airplane_conn, [4.0] * 5)
    waiting = asyncio.gather(*(wait_one(run_id, max_outage=60) for run_id in run_ids))
    await asyncio.sleep(0.5)

    until = formatdate(time.time() + 3, usegmt=True)
    airplane_conn.inject_fault(status=429, rate=1.0, headers={"Retry-After": until})
    await asyncio.sleep(2.0)
    airplane_conn.clear_faults()
    results = await waiting

    assert all(run.status is RunStatus.SUCCEEDED for run in results)
    faulted = [entry for entry in airplane_conn.request_log() if entry["status"] == 429]
    # One failed poll (3 attempts), then nothing until the date; backoff alone (0.2, 0.4, 0.8 s) would
    # have polled three or four times in the 2 s.
    assert 3 <= len(faulted) <= 5


async def test_a_waiter_joining_during_an_outage_gets_its_own_error_budget(
    airplane_conn: AirplaneEmulator,
) -> None:
    """Issue 13.2: failures before a waiter joined are not charged to it."""
    early, late = start_runs(airplane_conn, [60.0, 6.0])
    airplane_conn.inject_fault(status=503, rate=1.0)
    first = asyncio.ensure_future(wait_one(early, max_outage=3.0))
    while len([e for e in airplane_conn.request_log() if e["status"] == 503]) < 6:  # two failed polls
        await asyncio.sleep(0.05)

    second = asyncio.ensure_future(wait_one(late, max_outage=3.0))
    with pytest.raises(AirplaneOutageError):
        await first  # 3 s of failures of its own
    airplane_conn.clear_faults()

    assert (await second).status is RunStatus.SUCCEEDED  # one or two failures of its own: still waiting
