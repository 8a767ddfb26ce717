"""AirplaneRunSensor in poke, reschedule and deferrable mode; it never cancels the run it watches."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_stack import wait_until

from airflow_provider_airplane._deferral import CLOCK_SKEW_MARGIN
from airflow_provider_airplane.exceptions import (
    AirplaneError,
    AirplaneRunCancelledError,
    AirplaneRunFailedError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers.airplane import AirplaneRunTrigger

CANCEL = "/v0/runs/cancel"
ContextFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def emu(airplane_conn: AirplaneEmulator) -> AirplaneEmulator:
    airplane_conn.add_task("quick", output={"rows": 3}, duration=0.5)
    airplane_conn.add_task("instant", output={"rows": 1})
    airplane_conn.add_task("broken", fail=True, error="quota exceeded")
    airplane_conn.add_task("long", duration=600)
    return airplane_conn


def start(slug: str) -> str:
    return AirplaneHook().execute_task(slug)


def sensor(run_id: str, **kwargs: Any) -> AirplaneRunSensor:
    kwargs.setdefault("poke_interval", 0.1)
    return AirplaneRunSensor(task_id="watch", run_id=run_id, **kwargs)


def status_of(emu: AirplaneEmulator, run_id: str) -> str:
    return next(str(r["status"]) for r in emu.runs() if r["id"] == run_id)


def finish(emu: AirplaneEmulator, run_id: str) -> None:
    """End a long run now and wait until the API reads it Succeeded."""
    emu.end_runs("long")
    wait_until(
        lambda: True if status_of(emu, run_id) == "Succeeded" else None,
        timeout=30,
        interval=0.05,
        what=f"run {run_id} Succeeded",
    )


def test_poke_false_while_running_true_once_succeeded(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    run_id = start("long")
    watch = sensor(run_id)
    assert watch.poke(task_ctx()) is False
    finish(emu, run_id)
    assert watch.poke(task_ctx()) is True


def test_poke_raises_for_failed_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    with pytest.raises(AirplaneRunFailedError, match="quota exceeded"):
        sensor(start("broken")).poke(task_ctx())


def test_poke_raises_for_cancelled_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start("long")
    AirplaneHook().cancel_run(run_id)
    with pytest.raises(AirplaneRunCancelledError):
        sensor(run_id).poke(task_ctx())


def test_poke_mode_waits_and_pushes_run_xcoms(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start("quick")
    ctx = task_ctx()
    ti = ctx["ti"]
    sensor(run_id, mode="poke").execute(ctx)
    assert status_of(emu, run_id) == "Succeeded"
    assert ti.xcoms == {
        "airplane_run_id": run_id,
        "airplane_run_url": f"https://app.example.test/runs/{run_id}",
    }


def test_poke_mode_timeout_never_cancels(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start("long")
    with pytest.raises(AirflowSensorTimeout):
        sensor(run_id, timeout=0.3).execute(task_ctx())
    assert emu.request_counts().get(CANCEL, 0) == 0
    assert status_of(emu, run_id) != "Cancelled"


def test_reschedule_mode_frees_the_slot_then_succeeds(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    from airflow.exceptions import AirflowRescheduleException

    run_id = start("long")
    ctx = task_ctx()
    ti = ctx["ti"]
    with pytest.raises(AirflowRescheduleException):
        sensor(run_id, mode="reschedule").execute(ctx)
    assert ti.xcoms["airplane_run_id"] == run_id  # the link works while rescheduled
    finish(emu, run_id)
    assert sensor(run_id, mode="reschedule").execute(ctx) is None


def test_soft_fail_skips_a_cancelled_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start("long")
    AirplaneHook().cancel_run(run_id)
    with pytest.raises(AirflowSkipException):
        sensor(run_id, soft_fail=True).execute(task_ctx())


@pytest.mark.parametrize("run_id", ["", " ", "{{ ti.xcom_pull('a') }}"])
def test_run_id_validated(task_ctx: ContextFactory, emu: AirplaneEmulator, run_id: str) -> None:
    with pytest.raises(AirflowFailException, match="run_id"):
        sensor(run_id).execute(task_ctx())


def test_env_slug_reaches_the_api_the_trigger_and_the_link(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    """Issue 13.5: a run in another environment than the connection's is watched there, on every path."""
    run_id = AirplaneHook(env_slug="staging").execute_task("long")
    ctx = task_ctx()
    assert sensor(run_id, env_slug="staging").poke(ctx) is False
    with pytest.raises(TaskDeferred) as deferred:
        sensor(run_id, env_slug="staging", deferrable=True).execute(ctx)

    assert deferred.value.trigger.env_slug == "staging"  # type: ignore[attr-defined]
    assert ctx["ti"].xcoms["airplane_run_url"] == f"https://app.example.test/runs/{run_id}?__env=staging"
    gets = [e for e in emu.request_log() if e["path"] == "/v0/runs/get"]
    assert [e["headers"].get("X-Airplane-Env-Slug") for e in gets] == ["staging", "staging"]


def test_run_id_is_templated() -> None:
    assert {"run_id", "env_slug"} <= set(AirplaneRunSensor.template_fields)


# Deferrable ---------------------------------------------------------------------------------------


def test_defers_with_sensor_timeout_as_deadline_and_no_cancel(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    run_id = start("long")
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor(run_id, deferrable=True, poke_interval=5, timeout=120).execute(task_ctx())
    trigger = deferred.value.trigger
    assert isinstance(trigger, AirplaneRunTrigger)
    assert trigger.run_id == run_id
    assert trigger.cancel_on_kill is False  # the sensor does not own the run
    assert trigger.poll_interval == 5
    assert before + 120 <= trigger.end_time <= time.time() + 120
    assert deferred.value.timeout is not None
    assert (
        120 + 10 + CLOCK_SKEW_MARGIN - 1
        <= deferred.value.timeout.total_seconds()
        <= 120 + 10 + CLOCK_SKEW_MARGIN
    )


def test_execution_timeout_shortens_the_deadline(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor(start("long"), deferrable=True, timeout=600, execution_timeout=timedelta(seconds=20)).execute(
            task_ctx()
        )
    assert before + 19 <= deferred.value.trigger.end_time <= time.time() + 20


def test_finished_before_defer(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    assert sensor(start("instant"), deferrable=True).execute(task_ctx()) is None
    with pytest.raises(AirplaneRunFailedError):
        sensor(start("broken"), deferrable=True).execute(task_ctx())


def event(status: str, run_id: str) -> dict[str, Any]:
    return {"status": status, "run_id": run_id, "run_status": None, "message": "from the trigger"}


def test_execute_complete_success(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start("instant")
    ctx = task_ctx()
    ti = ctx["ti"]
    assert sensor(run_id, deferrable=True).execute_complete(ctx, event("success", run_id)) is None
    assert ti.xcoms["airplane_run_id"] == run_id


def test_execute_complete_failed_and_cancelled(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    failed = start("broken")
    with pytest.raises(AirplaneRunFailedError, match="quota exceeded"):
        sensor(failed, deferrable=True).execute_complete(task_ctx(), event("failed", failed))
    cancelled = start("long")
    AirplaneHook().cancel_run(cancelled)
    with pytest.raises(AirplaneRunCancelledError):
        sensor(cancelled, deferrable=True).execute_complete(task_ctx(), event("cancelled", cancelled))


def test_execute_complete_timeout_is_sensor_timeout_without_cancel(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    run_id = start("long")
    with pytest.raises(AirflowSensorTimeout, match="left running"):
        sensor(run_id, deferrable=True).execute_complete(task_ctx(), event("timeout", run_id))
    assert emu.request_counts().get(CANCEL, 0) == 0


def test_execute_complete_error(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start("long")
    with pytest.raises(AirplaneError, match="from the trigger"):
        sensor(run_id, deferrable=True).execute_complete(task_ctx(), event("error", run_id))
    assert emu.request_counts().get(CANCEL, 0) == 0


def test_execute_complete_rejects_malformed_event(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    with pytest.raises(AirplaneError, match="event"):
        sensor("run1", deferrable=True).execute_complete(task_ctx(), {"status": "done", "run_id": "run1"})


@pytest.mark.slow
def test_reschedule_in_airflow_keeps_xcoms_and_link(
    example_emulator: AirplaneEmulator, run_dag: Callable[..., Any]
) -> None:
    # The run ends only once the sensor has poked it: however long a task takes to start (over 5 s on a
    # busy machine), the first poke sees it running and the sensor reschedules.
    example_emulator.add_task("slow_sync", output={"ok": True}, duration=900)

    def end_after_first_poke() -> None:
        wait_until(
            lambda: example_emulator.request_counts().get("/v0/runs/get") or None,
            timeout=300,
            what="the sensor's first poke",
        )
        example_emulator.end_runs("slow_sync")

    ender = threading.Thread(target=end_after_first_poke, daemon=True)
    ender.start()
    result = run_dag("test_airplane_sensor_reschedule")
    ender.join(timeout=5)
    assert result.state_of("watch") == "success"
    run_id = result.xcom("start")
    assert result.xcom("watch", "airplane_run_id") == run_id
    assert result.xcom("watch", "_link_AirplaneRunLink") == f"https://app.example.test/runs/{run_id}"
    # More than one poke, each in a fresh run of the task: it was rescheduled, not kept in a slot.
    assert example_emulator.request_counts()["/v0/runs/get"] >= 2
    assert example_emulator.request_counts().get(CANCEL, 0) == 0


SENSOR_VARIANTS = (  # the sensors of tests/dags/airplane_test_dags.py's test_airplane_sensor_outcomes
    "poke_plain",
    "poke_soft_fail",
    "poke_never_fail",
    "reschedule_soft_fail",
    "deferred_plain",
    "deferred_soft_fail",
    "deferred_never_fail",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("slug", "cancel", "cancel_delay"),
    [
        ("fails_now", False, 0.0),
        ("fails_soon", False, 0.0),
        ("runs_long", True, 0.0),
        ("runs_long", True, 2.0),
    ],
    ids=["failed-before-start", "failed-while-waiting", "cancelled-before-start", "cancelled-while-waiting"],
)
def test_one_outcome_per_run_status_in_every_mode(
    airplane_conn: AirplaneEmulator,
    run_dag: Callable[..., Any],
    slug: str,
    cancel: bool,
    cancel_delay: float,
) -> None:
    """Issue 13.3: soft_fail/never_fail skip, plain fails, in poke, reschedule and deferrable mode, whether
    the run ended before the sensor started or while it waited (real dag.test, triggers inline)."""
    airplane_conn.add_task("fails_now", fail=True, error="boom")
    airplane_conn.add_task("fails_soon", fail=True, error="boom", duration=2.0)
    airplane_conn.add_task("runs_long", duration=600)
    airplane_conn.cancel_delay = cancel_delay

    result = run_dag("test_airplane_sensor_outcomes", conf={"slug": slug, "cancel": cancel})

    outcomes = {name: result.state_of(name) for name in SENSOR_VARIANTS}
    expected = {name: "failed" if name.endswith("plain") else "skipped" for name in SENSOR_VARIANTS}
    assert outcomes == expected
    ended = "Cancelled" if cancel else "Failed"
    assert {run["status"] for run in airplane_conn.runs()} == {ended}
    assert len(airplane_conn.runs()) == len(SENSOR_VARIANTS)
