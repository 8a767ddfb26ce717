"""AirplaneRunTrigger over real HTTP against the in-process emulator (no HTTP mocks)."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from airflow.sdk import BaseHook
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
from airflow.triggers.base import TriggerEvent

from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers import airplane as trigger_module
from airflow_provider_airplane.triggers.airplane import AirplaneRunTrigger
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

POLL = 0.05
RUNNING = ("NotStarted", "Queued", "Active")
USER_ACTION = "__airflow_user_action__"  # what Airflow 3.3's triggerer cancels a killed task's trigger with


@pytest.fixture(autouse=True)
def fast_hook_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook's own backoff stays real but short, so retry tests take milliseconds."""
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_base", 0.001)
    monkeypatch.setattr(AirplaneAsyncHook, "backoff_cap", 0.01)


def start_run(emu: AirplaneEmulator, slug: str = "job", **task: Any) -> str:
    emu.add_task(slug, **task)
    return AirplaneHook().execute_task(slug)


def emulated_run(emu: AirplaneEmulator, run_id: str) -> dict[str, Any]:
    return next(run for run in emu.runs() if run["id"] == run_id)


def make_trigger(run_id: str, **kwargs: Any) -> AirplaneRunTrigger:
    kwargs.setdefault("poll_interval", POLL)
    return AirplaneRunTrigger(run_id=run_id, airplane_conn_id="airplane_default", **kwargs)


async def collect(trigger: AirplaneRunTrigger) -> list[dict[str, Any]]:
    """Every event the trigger yields before its generator ends."""
    events: list[TriggerEvent] = [event async for event in trigger.run()]
    return [event.payload for event in events]


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def started(emu: AirplaneEmulator, trigger: AirplaneRunTrigger) -> asyncio.Task[Any]:
    """The trigger running as the triggerer runs it, once it has polled the (active) run at least once."""
    polls = emu.request_counts().get("/v0/runs/get", 0)
    gen: AsyncIterator[TriggerEvent] = trigger.run()
    task = asyncio.ensure_future(anext(gen))
    await wait_for(lambda: emu.request_counts().get("/v0/runs/get", 0) > polls)
    await wait_for(lambda: emulated_run(emu, trigger.run_id)["status"] == "Active")
    return task


async def kill(task: asyncio.Task[Any], *msg: str) -> None:
    task.cancel(*msg)
    with pytest.raises(asyncio.CancelledError):
        await task


# ---- serialization -----------------------------------------------------------------------------


def test_serialize_round_trips_without_the_api_key(airplane_conn: AirplaneEmulator) -> None:
    trigger = AirplaneRunTrigger(
        run_id="run123",
        airplane_conn_id="airplane_default",
        poll_interval=7,
        end_time=1_900_000_000.5,
        cancel_on_kill=False,
        env_slug="staging",
        max_outage=timedelta(minutes=20),
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_airplane.triggers.airplane.AirplaneRunTrigger"
    assert kwargs == {
        "run_id": "run123",
        "airplane_conn_id": "airplane_default",
        "poll_interval": 7.0,
        "end_time": 1_900_000_000.5,
        "cancel_on_kill": False,
        "env_slug": "staging",
        "max_outage": 1200.0,
    }
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    text = json.dumps(kwargs) + repr(trigger)
    assert airplane_conn.api_key not in text


def test_defaults_match_the_pinned_signature() -> None:
    _, kwargs = AirplaneRunTrigger(run_id="r", airplane_conn_id="c", poll_interval=1).serialize()
    assert kwargs["end_time"] is None
    assert kwargs["cancel_on_kill"] is True
    assert kwargs["max_outage"] == 1800.0


def test_a_trigger_serialized_with_max_poll_errors_still_loads() -> None:
    """Triggers written by 1.0 carry max_poll_errors; after an upgrade they load with the default."""
    with pytest.warns(DeprecationWarning, match="max_poll_errors.*ignored.*max_outage"):
        trigger = AirplaneRunTrigger(run_id="r", airplane_conn_id="c", poll_interval=1, max_poll_errors=5)
    assert "max_poll_errors" not in trigger.serialize()[1]
    assert trigger.max_outage == 1800.0


@pytest.mark.parametrize(("field", "value"), [("poll_interval", 0), ("max_outage", 0), ("max_outage", -1)])
def test_rejects_nonsense_settings(field: str, value: float) -> None:
    kwargs: dict[str, Any] = {"poll_interval": 1, field: value}
    with pytest.raises(ValueError, match=field):
        AirplaneRunTrigger(run_id="r", airplane_conn_id="c", **kwargs)


# ---- one event per outcome ---------------------------------------------------------------------


async def test_success_event(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, output={"rows": 3}, duration=0.3)
    assert await collect(make_trigger(run_id)) == [
        {
            "status": "success",
            "run_id": run_id,
            "run_status": "Succeeded",
            "message": f"Airplane run {run_id} succeeded",
        }
    ]


async def test_env_slug_override_reaches_the_api(airplane_conn: AirplaneEmulator) -> None:
    airplane_conn.add_task("job", duration=0.1)
    run_id = AirplaneHook(env_slug="staging").execute_task("job")
    [event] = await collect(make_trigger(run_id, env_slug="staging"))
    assert event["status"] == "success"
    polls = [e for e in airplane_conn.request_log() if e["path"] == "/v0/runs/get"]
    assert {e["headers"].get("X-Airplane-Env-Slug") for e in polls} == {"staging"}


async def test_failed_event(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, fail=True, error="quota exceeded", duration=0.2)
    [event] = await collect(make_trigger(run_id))
    assert event["status"] == "failed"
    assert event["run_status"] == "Failed"
    assert event["run_id"] == run_id


async def test_cancelled_event_names_who_cancelled(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, duration=30)
    trigger = make_trigger(run_id)
    task = await started(airplane_conn, trigger)
    await asyncio.to_thread(AirplaneHook().cancel_run, run_id)
    event = (await task).payload
    assert event["status"] == "cancelled"
    assert event["run_status"] == "Cancelled"
    assert event["message"].startswith(f"Airplane run {run_id} was cancelled")


async def test_timeout_event_leaves_the_run_running(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, duration=30)
    await wait_for(lambda: emulated_run(airplane_conn, run_id)["status"] == "Active")
    [event] = await collect(make_trigger(run_id, end_time=time.time() + 3))
    assert event["status"] == "timeout"
    assert event["run_status"] == "Active"
    assert "deadline" in event["message"]
    # The operator's execute_complete cancels; the trigger only reports.
    assert emulated_run(airplane_conn, run_id)["status"] == "Active"
    assert "/v0/runs/cancel" not in airplane_conn.request_counts()


async def test_deadline_interrupts_a_slow_poll(airplane_conn: AirplaneEmulator) -> None:
    """A hanging API (or the hook's retries) cannot hold the timeout event past the deadline."""
    run_id = start_run(airplane_conn, duration=30)
    airplane_conn.inject_fault("/v0/runs/get", delay=60.0, count=5)
    began = time.monotonic()
    [event] = await collect(make_trigger(run_id, end_time=time.time() + 0.5))
    assert event["status"] == "timeout"
    assert time.monotonic() - began < 20  # far below the hanging poll's 60 s


# ---- transient and persistent errors -----------------------------------------------------------


async def test_transient_errors_are_retried_then_success(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, output={"ok": True}, duration=0.2)
    # More 503s than one poll's attempts: the trigger itself has to poll again.
    airplane_conn.inject_fault("/v0/runs/get", status=503, count=13)
    [event] = await collect(make_trigger(run_id))
    assert event["status"] == "success"
    assert airplane_conn.request_counts()["/v0/runs/get"] >= 14


async def test_rate_limit_honours_retry_after(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, duration=0.0)
    airplane_conn.inject_fault("/v0/runs/get", status=429, count=1, headers={"Retry-After": "1"})
    began = time.monotonic()
    [event] = await collect(make_trigger(run_id))
    assert event["status"] == "success"
    assert time.monotonic() - began >= 1.0


async def test_connection_drops_are_transient(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, duration=0.1)
    airplane_conn.inject_fault("/v0/runs/get", drop=True, count=3)
    [event] = await collect(make_trigger(run_id))
    assert event["status"] == "success"


async def test_persistent_errors_end_in_an_error_event_without_cancel(
    airplane_conn: AirplaneEmulator,
) -> None:
    run_id = start_run(airplane_conn, duration=30)
    airplane_conn.inject_fault("/v0/runs/get", status=500, rate=1.0)
    [event] = await collect(make_trigger(run_id, max_outage=2))
    assert event["status"] == "error"
    assert event["run_id"] == run_id
    assert "longer than max_outage=2.0s" in event["message"]
    assert "HTTP 500" in event["message"]
    assert "The run was left as it is" in event["message"]
    assert "/v0/runs/cancel" not in airplane_conn.request_counts()
    airplane_conn.clear_faults()
    assert emulated_run(airplane_conn, run_id)["status"] in RUNNING


async def test_unknown_run_is_an_error_at_once(airplane_conn: AirplaneEmulator) -> None:
    [event] = await collect(make_trigger("run_does_not_exist"))
    assert event["status"] == "error"
    assert event["run_status"] is None
    assert airplane_conn.request_counts()["/v0/runs/get"] == 1


async def test_wrong_key_is_an_error_and_the_key_is_not_in_it(
    airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "tkn_wrong_key_value_123"
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRPLANE_DEFAULT",
        json.dumps({"conn_type": "airplane", "host": airplane_conn.url, "password": wrong}),
    )
    [event] = await collect(make_trigger("run123"))
    assert event["status"] == "error"
    assert wrong not in json.dumps(event)


# ---- nothing blocks the event loop -------------------------------------------------------------


@pytest.fixture
def no_blocking_calls_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Sync HTTP and sync connection reads raise when made on a thread that runs an event loop."""
    offences: list[str] = []

    def guard(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a worker thread (sync_to_async, to_thread): allowed
                return real(*args, **kwargs)
            offences.append(f"{name} on thread {threading.current_thread().name}")
            raise RuntimeError(f"blocking call {name} on the event loop")

        return guarded

    monkeypatch.setattr(requests.Session, "request", guard("requests", requests.Session.request))
    real_get_connection = BaseHook.get_connection.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        BaseHook, "get_connection", classmethod(guard("BaseHook.get_connection", real_get_connection))
    )
    return offences


async def test_guard_catches_blocking_calls(
    airplane_conn: AirplaneEmulator, no_blocking_calls_on_the_loop: list[str]
) -> None:
    with pytest.raises(RuntimeError, match="blocking call requests"):
        requests.get(airplane_conn.url, timeout=1)
    with pytest.raises(RuntimeError, match=r"blocking call BaseHook\.get_connection"):
        BaseHook.get_connection("airplane_default")


async def test_no_blocking_call_on_the_event_loop(
    airplane_conn: AirplaneEmulator, no_blocking_calls_on_the_loop: list[str]
) -> None:
    """Polling (with retries), the connection lookup and the cancel all stay off the loop's thread."""
    run_id = await asyncio.to_thread(start_run, airplane_conn, "quick", duration=0.3)
    airplane_conn.inject_fault("/v0/runs/get", status=503, count=2)
    [event] = await collect(make_trigger(run_id))
    assert event["status"] == "success"

    long_run = await asyncio.to_thread(start_run, airplane_conn, "long", duration=30)
    trigger = make_trigger(long_run)
    await kill(await started(airplane_conn, trigger), USER_ACTION)
    await trigger.on_kill()
    assert emulated_run(airplane_conn, long_run)["status"] == "Cancelled"
    assert no_blocking_calls_on_the_loop == []


# ---- cancel while deferred ---------------------------------------------------------------------

requires_on_kill = pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS, reason="BaseTrigger.on_kill is called by the triggerer from Airflow 3.3"
)


@requires_on_kill
async def test_on_kill_cancels_the_run(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, duration=30)
    trigger = make_trigger(run_id)
    await kill(await started(airplane_conn, trigger), USER_ACTION)
    assert "/v0/runs/cancel" not in airplane_conn.request_counts()  # the CancelledError alone does not
    await trigger.on_kill()
    assert emulated_run(airplane_conn, run_id)["status"] == "Cancelled"


@requires_on_kill
async def test_on_kill_respects_cancel_on_kill_false(airplane_conn: AirplaneEmulator) -> None:
    run_id = start_run(airplane_conn, duration=30)
    trigger = make_trigger(run_id, cancel_on_kill=False)
    await kill(await started(airplane_conn, trigger), USER_ACTION)
    await trigger.on_kill()
    assert emulated_run(airplane_conn, run_id)["status"] == "Active"


async def test_no_cancel_after_the_event_fired(airplane_conn: AirplaneEmulator) -> None:
    """An error event says "could not watch"; killing the task afterwards must not stop the run."""
    run_id = start_run(airplane_conn, duration=30)
    airplane_conn.inject_fault("/v0/runs/get", status=500, rate=1.0)
    trigger = make_trigger(run_id, max_outage=0.5)
    [event] = await collect(trigger)
    assert event["status"] == "error"
    airplane_conn.clear_faults()
    await trigger.on_kill()
    assert emulated_run(airplane_conn, run_id)["status"] in RUNNING
    assert "/v0/runs/cancel" not in airplane_conn.request_counts()


@requires_on_kill
async def test_triggerer_restart_does_not_cancel_on_3_3(airplane_conn: AirplaneEmulator) -> None:
    """A shutdown or redistribution cancels the trigger without the user-action message and no on_kill."""
    run_id = start_run(airplane_conn, duration=30)
    await kill(await started(airplane_conn, make_trigger(run_id)))
    assert emulated_run(airplane_conn, run_id)["status"] == "Active"
    assert "/v0/runs/cancel" not in airplane_conn.request_counts()


# ---- the fallback below Airflow 3.3: cancel only when the TI is no longer DEFERRED --------------


@pytest.fixture
def below_3_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trigger_module, "AIRFLOW_V_3_3_PLUS", False)


@pytest.fixture
def task_states(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Answer ``RuntimeTaskInstance.get_task_states`` (the triggerer supervisor's lookup) from a dict."""
    calls: dict[str, Any] = {"answer": {}, "calls": []}

    def get_task_states(**kwargs: Any) -> dict[str, Any]:
        calls["calls"].append(kwargs)
        if isinstance(calls["answer"], Exception):
            raise calls["answer"]
        answer: dict[str, Any] = calls["answer"]
        return answer

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    return calls


def with_ti(trigger: AirplaneRunTrigger, map_index: int = -1) -> AirplaneRunTrigger:
    trigger.task_instance = SimpleNamespace(  # type: ignore[assignment]
        dag_id="dag", task_id="wait", run_id="manual__1", map_index=map_index
    )
    return trigger


@pytest.mark.usefixtures("below_3_3")
@pytest.mark.parametrize("state", ["failed", "success", None, "scheduled"])
async def test_fallback_cancels_when_the_ti_left_deferred(
    airplane_conn: AirplaneEmulator, task_states: dict[str, Any], state: str | None
) -> None:
    run_id = start_run(airplane_conn, duration=30)
    task_states["answer"] = {"manual__1": {"wait": state}}
    trigger = with_ti(make_trigger(run_id))
    await kill(await started(airplane_conn, trigger))
    assert emulated_run(airplane_conn, run_id)["status"] == "Cancelled"
    assert task_states["calls"] == [
        {"dag_id": "dag", "task_ids": ["wait"], "run_ids": ["manual__1"], "map_index": -1}
    ]


@pytest.mark.usefixtures("below_3_3")
async def test_fallback_survives_being_cancelled_again(
    airplane_conn: AirplaneEmulator, task_states: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow 3.1 re-cancels a trigger each loop; the state lookup and the cancel must still complete.

    An interrupted lookup would leave the supervisor's reply unread and crash the trigger runner.
    """
    run_id = start_run(airplane_conn, duration=30)
    entered, release, answered = threading.Event(), threading.Event(), threading.Event()

    def slow_get_task_states(**kwargs: Any) -> dict[str, Any]:
        entered.set()
        release.wait(30)
        answered.set()
        return {"manual__1": {"wait": "failed"}}

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(slow_get_task_states))
    trigger = with_ti(make_trigger(run_id))
    task = await started(airplane_conn, trigger)
    task.cancel()
    await wait_for(entered.is_set)
    await kill(task)  # the second cancel arrives while the lookup is in flight
    assert not answered.is_set()
    release.set()
    await wait_for(lambda: emulated_run(airplane_conn, run_id)["status"] == "Cancelled")
    assert answered.is_set()


@pytest.mark.usefixtures("below_3_3")
async def test_fallback_keeps_the_run_while_the_ti_is_deferred(
    airplane_conn: AirplaneEmulator, task_states: dict[str, Any]
) -> None:
    """A triggerer restart: the TI is still DEFERRED and another triggerer picks the trigger up."""
    run_id = start_run(airplane_conn, duration=30)
    task_states["answer"] = {"manual__1": {"wait_2": "deferred"}}
    trigger = with_ti(make_trigger(run_id), map_index=2)
    await kill(await started(airplane_conn, trigger))
    assert task_states["calls"][0]["map_index"] == 2
    assert emulated_run(airplane_conn, run_id)["status"] == "Active"
    assert "/v0/runs/cancel" not in airplane_conn.request_counts()


@pytest.mark.usefixtures("below_3_3")
async def test_fallback_leaves_the_run_when_the_state_is_unknown(
    airplane_conn: AirplaneEmulator, task_states: dict[str, Any]
) -> None:
    run_id = start_run(airplane_conn, duration=30)
    task_states["answer"] = ConnectionError("supervisor gone")
    trigger = with_ti(make_trigger(run_id))
    await kill(await started(airplane_conn, trigger))
    assert emulated_run(airplane_conn, run_id)["status"] == "Active"


@pytest.mark.usefixtures("below_3_3")
async def test_fallback_respects_cancel_on_kill_false(
    airplane_conn: AirplaneEmulator, task_states: dict[str, Any]
) -> None:
    run_id = start_run(airplane_conn, duration=30)
    task_states["answer"] = {"manual__1": {"wait": "failed"}}
    trigger = with_ti(make_trigger(run_id, cancel_on_kill=False))
    await kill(await started(airplane_conn, trigger))
    assert emulated_run(airplane_conn, run_id)["status"] == "Active"
    assert task_states["calls"] == []


@pytest.mark.usefixtures("below_3_3")
async def test_fallback_without_a_task_instance_does_nothing(
    airplane_conn: AirplaneEmulator, task_states: dict[str, Any]
) -> None:
    run_id = start_run(airplane_conn, duration=30)
    await kill(await started(airplane_conn, make_trigger(run_id)))
    assert emulated_run(airplane_conn, run_id)["status"] == "Active"


async def test_real_task_state_lookup_is_used_on_3_3_only_through_on_kill(
    airplane_conn: AirplaneEmulator, task_states: dict[str, Any]
) -> None:
    """On 3.3+ the fallback branch is skipped entirely: cancellation is on_kill's job."""
    if not AIRFLOW_V_3_3_PLUS:
        pytest.skip("checks the Airflow 3.3+ branch")
    run_id = start_run(airplane_conn, duration=30)
    task_states["answer"] = {"manual__1": {"wait": "failed"}}
    await kill(await started(airplane_conn, with_ti(make_trigger(run_id))))
    assert task_states["calls"] == []
    assert emulated_run(airplane_conn, run_id)["status"] == "Active"
