"""Review of issue 16: ``max_outage=None`` "waits through any outage, up to the task's own
``timeout``/``execution_timeout``" (docs/deferrable.md, docs/sensor.md). In a worker, the wait rides the
outage inside one request, where nobody looks at ``timeout``: the task hangs as long as the outage does.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout
from airflow_stack import wait_until

from airflow_provider_airplane.exceptions import AirplaneRunTimeoutError
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.testing import AirplaneEmulator

ContextFactory = Callable[..., Any]
OUTAGE = 120.0  # far longer than any timeout below: the wait must not need it to end


@pytest.fixture
def emu(airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> AirplaneEmulator:
    monkeypatch.setattr(AirplaneHook, "backoff_cap", 0.2)
    airplane_conn.add_task("forever", duration=100_000)
    return airplane_conn


def run_in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        started = time.monotonic()
        try:
            outcome["value"] = work()
        except BaseException as err:  # the test inspects whatever ended the wait
            outcome["error"] = err
            outcome["tb"] = traceback.format_exc()
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def gets(emu: AirplaneEmulator) -> int:
    return emu.request_counts().get("/v0/runs/get", 0)


def test_worker_wait_with_max_outage_none_ends_at_its_timeout_during_an_outage(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """timeout=3 s, max_outage=None, and the API goes down while the task waits: the task must end
    with AirplaneRunTimeoutError about 3 s in, not wait for the API to come back."""
    operator = AirplaneExecuteTaskOperator(
        task_id="run_it", slug="forever", poll_interval=0.5, timeout=3, max_outage=None, show_logs=False
    )
    thread, outcome = run_in_thread(lambda: operator.execute(task_ctx()))
    wait_until(lambda: gets(emu) >= 1 or None, timeout=30, interval=0.05, what="first poll")
    emu.start_outage(OUTAGE, path="runs/get", mix={"503": 1})
    try:
        thread.join(20)
        ended = not thread.is_alive()
    finally:
        emu.end_outage()
        thread.join(30)
    assert ended, "the task still waits 20 s into the outage although its timeout is 3 s"
    assert isinstance(outcome.get("error"), AirplaneRunTimeoutError), outcome.get("tb")


def test_poke_sensor_with_max_outage_none_ends_at_its_timeout_during_an_outage(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """docs/sensor.md: ``None``: any length, up to ``timeout``. A poke-mode sensor with timeout=3 s
    whose API goes down must fail with AirflowSensorTimeout near 3 s."""
    run_id = AirplaneHook().execute_task("forever")
    sensor = AirplaneRunSensor(
        task_id="watch", run_id=run_id, poke_interval=0.5, timeout=3, mode="poke", max_outage=None
    )
    thread, outcome = run_in_thread(lambda: sensor.execute(task_ctx()))
    wait_until(lambda: gets(emu) >= 1 or None, timeout=30, interval=0.05, what="first poke")
    emu.start_outage(OUTAGE, path="runs/get", mix={"503": 1})
    try:
        thread.join(20)
        ended = not thread.is_alive()
    finally:
        emu.end_outage()
        thread.join(30)
    assert ended, "the sensor still pokes 20 s into the outage although its timeout is 3 s"
    assert isinstance(outcome.get("error"), AirflowSensorTimeout), outcome
