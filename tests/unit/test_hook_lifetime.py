"""Every hook the sensor creates is closed when it is done: a sensor that pokes for days in one worker
process holds no socket between pokes, whether or not the garbage collector runs."""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_airplane.exceptions import AirplaneRunCancelledError, AirplaneRunFailedError
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.testing import AirplaneEmulator

POKES = 1_000


def open_sockets() -> int:
    """Sockets this process holds, client and (in-process emulator) server ends alike."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed while listing
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def settled_sockets(baseline: int, timeout: float = 5.0) -> int:
    """The socket count once it is down to ``baseline``, or after ``timeout``: the emulator closes its end
    of a connection a moment after the client closed its own."""
    deadline = time.monotonic() + timeout
    while (count := open_sockets()) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


class Sessions:
    """Counts the hooks' HTTP sessions as they are opened and closed."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Sessions:
    counts = Sessions()
    real_get_conn, real_close = AirplaneHook.get_conn, AirplaneHook.close

    def get_conn(hook: AirplaneHook) -> Any:
        counts.opened += hook._session is None
        return real_get_conn(hook)

    def close(hook: AirplaneHook) -> None:
        counts.closed += hook._session is not None
        real_close(hook)

    monkeypatch.setattr(AirplaneHook, "get_conn", get_conn)
    monkeypatch.setattr(AirplaneHook, "close", close)
    return counts


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only what the code closes is closed: no collection of a hook caught in a reference cycle."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_thousand_pokes_leak_no_socket(
    airplane_conn: AirplaneEmulator,
    task_ctx: Callable[..., dict[str, Any]],
    sessions: Sessions,
    no_gc: None,
) -> None:
    airplane_conn.add_task("long", duration=600)
    airplane_conn.add_task("broken", fail=True, logs=5, error="disk full")
    with AirplaneHook() as hook:
        running, failed = hook.execute_task("long"), hook.execute_task("broken")
        hook.wait_for_run(failed, poll_interval=0.05)
    watch = AirplaneRunSensor(task_id="watch", run_id=running, poke_interval=0.1)
    sessions.opened = sessions.closed = 0
    before = open_sockets()  # the set-up's connection may still be closing: at most this many after

    for _ in range(POKES):
        assert watch.poke(task_ctx()) is False
    for _ in range(3):  # a finished run: the verdict reads outputs and the log's tail with the same hook
        with pytest.raises(AirplaneRunFailedError):
            AirplaneRunSensor(task_id="watch", run_id=failed).poke(task_ctx())
    with pytest.raises(TaskDeferred):  # deferrable: the hook is closed before the task defers
        AirplaneRunSensor(task_id="watch", run_id=running, deferrable=True).execute(task_ctx())
    with pytest.raises(AirplaneRunFailedError):  # resumed after the trigger's event
        AirplaneRunSensor(task_id="watch", run_id=failed).execute_complete(
            task_ctx(), {"status": "failed", "run_id": failed}
        )

    assert sessions.opened == POKES + 3 + 1 + 1
    assert sessions.closed == sessions.opened
    assert settled_sockets(before) <= before, "sockets left open by the sensor's hooks"


def test_the_operators_close_every_hook_they_open(
    airplane_conn: AirplaneEmulator,
    task_ctx: Callable[..., dict[str, Any]],
    sessions: Sessions,
    no_gc: None,
) -> None:
    """Execute (in a worker, deferring, resuming), outputs and cancel operators close their hooks."""
    from airflow_provider_airplane.operators.airplane import (
        AirplaneCancelRunOperator,
        AirplaneExecuteTaskOperator,
        AirplaneGetRunOutputsOperator,
    )

    airplane_conn.add_task("quick", output={"rows": 1}, duration=0.1)
    airplane_conn.add_task("slow", duration=30)
    baseline = open_sockets()
    for n in range(10):
        ctx = task_ctx()
        quick = AirplaneExecuteTaskOperator(
            task_id="run", slug="quick", poll_interval=0.1, idempotency_key=f"q{n}"
        )
        quick.execute(ctx)
        run_id = ctx["ti"].xcoms["airplane_run_id"]
        AirplaneGetRunOutputsOperator(task_id="outputs", run_id=run_id).execute(task_ctx())
    deferring = AirplaneExecuteTaskOperator(task_id="run", slug="slow", deferrable=True, idempotency_key="s")
    slow = task_ctx()
    with pytest.raises(TaskDeferred):
        deferring.execute(slow)
    slow_run = slow["ti"].xcoms["airplane_run_id"]
    AirplaneCancelRunOperator(task_id="cancel", run_id=slow_run).execute(task_ctx())
    with pytest.raises(AirplaneRunCancelledError):
        deferring.execute_complete(slow, {"status": "cancelled", "run_id": slow_run})

    assert sessions.opened >= 23
    assert sessions.closed == sessions.opened
    assert settled_sockets(baseline) <= baseline
