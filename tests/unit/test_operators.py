"""AirplaneExecuteTaskOperator, AirplaneGetRunOutputsOperator and AirplaneCancelRunOperator.

``execute`` and ``execute_complete`` are called directly with a recording task instance, against the
emulator over real HTTP; whole DAG runs are in test_example_dags.py and test_kill.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.sdk import DAG

from airflow_provider_airplane._deferral import CLOCK_SKEW_MARGIN
from airflow_provider_airplane.exceptions import (
    AirplaneAuthError,
    AirplaneError,
    AirplaneRunCancelledError,
    AirplaneRunFailedError,
    AirplaneRunTimeoutError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.models import AirplaneRun
from airflow_provider_airplane.operators._reattach import idempotency_key
from airflow_provider_airplane.operators.airplane import (
    AirplaneCancelRunOperator,
    AirplaneExecuteTaskOperator,
    AirplaneGetRunOutputsOperator,
    AirplaneOutputTooLargeError,
)
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers.airplane import AirplaneRunTrigger

EXECUTE = "/v0/tasks/execute"
CANCEL = "/v0/runs/cancel"
ContextFactory = Callable[..., dict[str, Any]]
IN_PROGRESS = {"NotStarted", "Queued", "Active"}


@pytest.fixture
def emu(airplane_conn: AirplaneEmulator) -> AirplaneEmulator:
    airplane_conn.add_task("quick", output={"rows": 3}, duration=0.3)
    airplane_conn.add_task("instant", output={"rows": 1})
    airplane_conn.add_task("broken", fail=True, error="quota exceeded", duration=0.3)
    airplane_conn.add_task("broken_now", fail=True, error="quota exceeded")
    airplane_conn.add_task("long", output={"rows": 9}, duration=600)
    return airplane_conn


def op(**kwargs: Any) -> AirplaneExecuteTaskOperator:
    kwargs.setdefault("slug", "quick")
    kwargs.setdefault("poll_interval", 0.1)
    return AirplaneExecuteTaskOperator(task_id="run_it", **kwargs)


def logged(capfd: pytest.CaptureFixture[str]) -> str:
    """What the task logged (Airflow's structlog writes to the process's stdout/stderr)."""
    out, err = capfd.readouterr()
    return out + err


def only_run(emu: AirplaneEmulator) -> dict[str, Any]:
    runs = emu.runs()
    assert len(runs) == 1, runs
    return runs[0]


def wait_for_run_in(emu: AirplaneEmulator, seconds: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while not emu.runs():
        assert time.monotonic() < deadline, "no run started"
        time.sleep(0.05)
    return emu.runs()[0]


# Validation -----------------------------------------------------------------------------------


def test_neither_slug_nor_task_id_fails_at_parse_time() -> None:
    with pytest.raises(ValueError, match="slug= or airplane_task_id="):
        AirplaneExecuteTaskOperator(task_id="t")


def test_both_literals_fail_at_parse_time() -> None:
    with pytest.raises(ValueError, match="not both"):
        AirplaneExecuteTaskOperator(task_id="t", slug="a", airplane_task_id="tsk1")


def test_both_after_rendering_fail_before_any_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    task = op(slug="{{ params.slug }}", airplane_task_id="tsk1")  # unknown until rendered: allowed
    task.slug = "quick"  # what rendering produced
    with pytest.raises(AirflowFailException, match="exactly one"):
        task.execute(task_ctx())
    assert emu.request_counts().get(EXECUTE, 0) == 0


def test_template_rendering_to_empty_counts_as_absent(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    task_id = emu.add_task("by_id", output={"ok": True})
    task = op(slug="{{ params.slug }}", airplane_task_id=task_id)
    task.slug = ""
    assert task.execute(task_ctx()) == {"ok": True}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval must be a positive"),
        ({"poll_interval": -1}, "poll_interval must be a positive"),
        ({"timeout": 0}, "timeout must be a positive"),
        ({"poll_interval": 10, "timeout": 5}, "shorter than poll_interval"),
        ({"output_max_bytes": 0}, "output_max_bytes must be a positive int"),
        ({"output_max_bytes": 1.5}, "output_max_bytes must be a positive int"),
    ],
)
def test_invalid_settings_fail_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        op(**kwargs)


def test_timeout_accepts_timedelta() -> None:
    assert op(timeout=timedelta(minutes=2)).timeout == 120.0


def test_unserialisable_param_value_known_at_parse_time_fails_the_dag_import() -> None:
    with pytest.raises(ValueError, match=r"param_values\['when'\] is not JSON-serialisable"):
        op(param_values={"ok": 1, "when": object()})
    with pytest.raises(ValueError, match="param_values must be a dict, got list"):
        op(param_values=[1, 2])
    with pytest.raises(ValueError, match="param_values keys must be strings, got 1"):
        op(param_values={1: "a"})
    # Only what rendering leaves alone is checked: the templated entry waits, the literal one fails.
    with pytest.raises(ValueError, match=r"param_values\['when'\]"):
        op(param_values={"region": "{{ params.region }}", "when": object()})


def test_templated_param_values_are_checked_once_rendered(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    task = op(param_values={"ok": "{{ params.ok }}", "when": "{{ params.when }}"})
    op(param_values="{{ params.all }}", airplane_resources="{{ params.resources }}")
    with DAG(dag_id="xcom_params", schedule=None):
        upstream = AirplaneExecuteTaskOperator(task_id="upstream", slug="quick")
        AirplaneExecuteTaskOperator(task_id="down", slug="quick", param_values={"rows": upstream.output})
        AirplaneExecuteTaskOperator(task_id="all", slug="quick", param_values=upstream.output)
    task.param_values = {"ok": 1, "when": object()}  # as rendered
    with pytest.raises(AirflowFailException, match=r"param_values\['when'\] is not JSON-serialisable"):
        task.execute(task_ctx())
    assert emu.request_counts().get(EXECUTE, 0) == 0


@pytest.mark.parametrize("resources", [["db"], {"db": 1}])
def test_bad_resources_fail_at_parse_time_or_start_nothing(
    task_ctx: ContextFactory, emu: AirplaneEmulator, resources: Any
) -> None:
    with pytest.raises(ValueError, match="airplane_resources must map resource aliases"):
        op(airplane_resources=resources)
    task = op(airplane_resources="{{ params.resources }}")
    task.airplane_resources = resources  # as rendered
    with pytest.raises(AirflowFailException, match="airplane_resources must map resource aliases"):
        task.execute(task_ctx())
    assert emu.request_counts().get(EXECUTE, 0) == 0


def test_templated_fields_and_renderers() -> None:
    task = op()
    assert set(task.template_fields) == {
        "slug",
        "airplane_task_id",
        "param_values",
        "airplane_resources",
        "env_slug",
        "idempotency_key",
    }
    assert task.template_fields_renderers == {"param_values": "json", "airplane_resources": "json"}


# Worker path ----------------------------------------------------------------------------------


def test_success_returns_outputs_and_pushes_run_xcoms(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    ctx = task_ctx()
    ti = ctx["ti"]
    result = op(param_values={"n": 2, "tags": ["a"]}, airplane_resources={"db": "res1"}).execute(ctx)
    run = only_run(emu)
    assert result == {"rows": 3}
    assert run["status"] == "Succeeded"
    assert run["paramValues"] == {"n": 2, "tags": ["a"]}  # JSON values, not strings
    assert run["resources"] == {"db": "res1"}
    assert ti.xcoms == {
        "airplane_run_id": run["id"],
        "airplane_run_url": f"https://app.example.test/runs/{run['id']}",
    }


def test_env_slug_overrides_the_connection(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    op(env_slug="staging").execute(task_ctx())
    assert only_run(emu)["envSlug"] == "staging"


def test_wait_for_completion_false_returns_the_run_id(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    ctx = task_ctx()
    ti = ctx["ti"]
    result = op(slug="long", wait_for_completion=False).execute(ctx)
    assert result == only_run(emu)["id"] == ti.xcoms["airplane_run_id"]
    assert only_run(emu)["status"] != "Cancelled"


def test_run_left_running_on_purpose_is_not_cancelled_by_on_kill(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    task = op(slug="long", wait_for_completion=False)
    task.execute(task_ctx())
    task.on_kill()  # e.g. SIGTERM while Airflow records the result
    assert emu.request_counts().get(CANCEL, 0) == 0


def test_idempotency_key_reused_within_a_try_and_new_per_task_instance(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    first = op(slug="long", wait_for_completion=False).execute(task_ctx(try_number=1))
    again = op(slug="long", wait_for_completion=False).execute(task_ctx(try_number=1))
    mapped = op(slug="long", wait_for_completion=False).execute(task_ctx(map_index=3))
    other_run = op(slug="long", wait_for_completion=False).execute(task_ctx(run_id="manual__other"))
    assert first == again
    assert len({first, mapped, other_run}) == 3
    sent = [e["headers"].get("Idempotency-Key") for e in emu.request_log() if e["path"] == EXECUTE]
    assert sent[0] == idempotency_key(task_ctx(try_number=1))  # type: ignore[arg-type]
    # The derived key leaves the try number out (a retry re-attaches, see test_durable.py) ...
    assert sent[0] == idempotency_key(task_ctx(try_number=2))  # type: ignore[arg-type]
    # ... and a try's own key is that key plus the try.
    assert idempotency_key(task_ctx(), try_number=2) == sent[0] + "-try2"  # type: ignore[arg-type]


def test_idempotency_key_new_per_try_without_durable(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    first = op(slug="long", wait_for_completion=False, durable=False).execute(task_ctx(try_number=1))
    again = op(slug="long", wait_for_completion=False, durable=False).execute(task_ctx(try_number=1))
    retry = op(slug="long", wait_for_completion=False, durable=False).execute(task_ctx(try_number=2))
    assert first == again
    assert retry != first
    assert len(emu.runs()) == 2


def test_failed_run_fails_with_error_and_url(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    ctx = task_ctx()
    ti = ctx["ti"]
    with pytest.raises(AirplaneRunFailedError, match="quota exceeded") as err:
        op(slug="broken").execute(ctx)
    assert ti.xcoms["airplane_run_url"] in str(err.value)
    assert emu.request_counts().get(CANCEL, 0) == 0


def test_run_cancelled_elsewhere_fails_without_retry(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op(slug="long").execute(task_ctx())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    AirplaneHook().cancel_run(wait_for_run_in(emu)["id"])  # somebody cancels it in Airplane
    thread.join(10)
    assert len(errors) == 1
    assert isinstance(errors[0], AirplaneRunCancelledError)
    assert isinstance(errors[0], AirflowFailException)
    assert emu.request_counts()[CANCEL] == 1  # only the outside cancel


def test_timeout_cancels_the_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    started = time.monotonic()
    with pytest.raises(AirplaneRunTimeoutError, match="did not finish before its deadline") as err:
        op(slug="long", timeout=0.5).execute(task_ctx())
    assert time.monotonic() - started < 8
    assert emu.request_counts()[CANCEL] == 1
    assert only_run(emu)["status"] == "Cancelled"
    assert str(err.value.run.status) == "Cancelled"


def test_timeout_cancels_even_with_cancel_on_kill_false(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    with pytest.raises(AirplaneRunTimeoutError):
        op(slug="long", timeout=0.3, cancel_on_kill=False).execute(task_ctx())
    assert only_run(emu)["status"] == "Cancelled"


def test_error_while_waiting_cancels_the_run_and_keeps_the_error(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    emu.inject_fault("/v0/runs/get", status=403, count=1)  # the first status check is refused
    with pytest.raises(AirplaneAuthError):
        op(slug="long").execute(task_ctx())
    assert emu.request_counts()[CANCEL] == 1
    assert only_run(emu)["status"] == "Cancelled"


def test_failing_cancel_never_hides_the_original_error(
    task_ctx: ContextFactory, emu: AirplaneEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    emu.inject_fault("/v0/runs/get", status=403, count=1)
    emu.inject_fault(CANCEL, status=403, count=5)
    with pytest.raises(AirplaneAuthError):
        op(slug="long").execute(task_ctx())
    run_id = only_run(emu)["id"]
    # An ERROR a person can act on: which run, and where to cancel it by hand.
    line = next(line for line in logged(capfd).splitlines() if "Could not cancel Airplane run" in line)
    assert "[error" in line
    assert f"Could not cancel Airplane run {run_id}" in line
    assert f"cancel it by hand at https://app.example.test/runs/{run_id}" in line
    assert only_run(emu)["status"] in IN_PROGRESS


def test_cancel_on_kill_false_leaves_the_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    emu.inject_fault("/v0/runs/get", status=403, count=1)
    with pytest.raises(AirplaneAuthError):
        op(slug="long", cancel_on_kill=False).execute(task_ctx())
    assert emu.request_counts().get(CANCEL, 0) == 0


def test_on_kill_cancels_once_while_waiting(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    task = op(slug="long")
    task.on_kill()  # before any run exists: nothing to cancel
    errors: list[BaseException] = []

    def run() -> None:
        try:
            task.execute(task_ctx())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for_run_in(emu)
    while task._run_id is None:
        time.sleep(0.01)
    task.on_kill()  # what SIGTERM / execution_timeout call
    task.on_kill()
    thread.join(10)
    assert emu.request_counts()[CANCEL] == 1
    assert only_run(emu)["status"] == "Cancelled"
    assert isinstance(errors[0], AirplaneRunCancelledError)


def test_api_key_never_in_xcom_or_errors(
    task_ctx: ContextFactory, emu: AirplaneEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    ctx = task_ctx()
    ti = ctx["ti"]
    with pytest.raises(AirplaneRunFailedError) as err:
        op(slug="broken").execute(ctx)
    assert emu.api_key not in str(err.value)
    assert emu.api_key not in repr(ti.xcoms)
    output = logged(capfd)
    assert "Started Airplane run" in output
    assert emu.api_key not in output


# Output cap ---------------------------------------------------------------------------------------


def test_outputs_over_the_cap_fail_without_pushing_them(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    emu.add_task("big", output={"blob": "x" * 2000})
    ctx = task_ctx()
    ti = ctx["ti"]
    with pytest.raises(AirplaneOutputTooLargeError, match="output_max_bytes=1000") as err:
        op(slug="big", output_max_bytes=1000).execute(ctx)
    assert "do_xcom_push=False" in str(err.value)
    assert isinstance(err.value, AirflowFailException)  # a new run would be just as big
    assert set(ti.xcoms) == {"airplane_run_id", "airplane_run_url"}
    assert emu.request_counts().get(CANCEL, 0) == 0


def test_no_cap_without_xcom_push(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    emu.add_task("big", output={"blob": "x" * 2000})
    assert op(slug="big", output_max_bytes=10, do_xcom_push=False).execute(task_ctx()) is not None


def test_outputs_at_the_cap_pass(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    emu.add_task("exact", output="abc")  # '"abc"' is 5 bytes of JSON
    assert op(slug="exact", output_max_bytes=5).execute(task_ctx()) == "abc"


def test_run_in_storage_zone_warns_and_returns_none(
    task_ctx: ContextFactory,
    emu: AirplaneEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # The emulator serves no zones; only the run object can say so.
    import dataclasses

    real_call = AirplaneHook._call

    def call_in_a_zone(self: AirplaneHook, op: Any, **kwargs: Any) -> Any:
        result = real_call(self, op, **kwargs)
        return dataclasses.replace(result, zone_id="zon1") if isinstance(result, AirplaneRun) else result

    monkeypatch.setattr(AirplaneHook, "_call", call_in_a_zone)
    assert op(slug="instant").execute(task_ctx()) is None
    assert "storage zone zon1" in logged(capfd)


# Deferrable path ----------------------------------------------------------------------------------


def test_defers_with_trigger_deadline_and_backstop(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    task = op(slug="long", deferrable=True, poll_interval=2, timeout=60, env_slug="staging")
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(task_ctx())
    trigger = deferred.value.trigger
    assert isinstance(trigger, AirplaneRunTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert trigger.run_id == only_run(emu)["id"]
    assert trigger.cancel_on_kill is True
    assert trigger.poll_interval == 2
    assert trigger.env_slug == "staging"
    assert trigger.end_time is not None
    assert before + 60 <= trigger.end_time <= time.time() + 60
    backstop = deferred.value.timeout
    assert isinstance(backstop, timedelta)
    # The framework's timeout skips execute_complete (no cancel), so it must come after the trigger's.
    assert 60 + 2 * 2 + CLOCK_SKEW_MARGIN - 1 <= backstop.total_seconds() <= 60 + 2 * 2 + CLOCK_SKEW_MARGIN


@pytest.mark.parametrize("poll_interval", [0.5, 10.0])
def test_backstop_survives_a_minute_of_clock_skew(
    task_ctx: ContextFactory, emu: AirplaneEmulator, poll_interval: float
) -> None:
    """Issue 13.6: the trigger compares end_time (worker clock) with the triggerer's clock; a minute of skew
    must not let the framework's timeout (which skips the cancel) fire first."""
    task = op(slug="long", deferrable=True, poll_interval=poll_interval, timeout=30)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(task_ctx())
    end_time = deferred.value.trigger.end_time  # type: ignore[attr-defined]
    assert deferred.value.timeout is not None
    margin = deferred.value.timeout.total_seconds() - (end_time - time.time())
    assert margin >= 60 + 2 * poll_interval


def test_execution_timeout_is_the_deadline_when_earlier(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    task = op(slug="long", deferrable=True, timeout=600, execution_timeout=timedelta(seconds=30))
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(task_ctx())
    assert before + 30 - 1 <= deferred.value.trigger.end_time <= time.time() + 30


def test_no_deadline_defers_without_framework_timeout(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    with pytest.raises(TaskDeferred) as deferred:
        op(slug="long", deferrable=True).execute(task_ctx())
    assert deferred.value.trigger.end_time is None
    assert deferred.value.timeout is None


def test_run_finished_before_defer_succeeds_without_deferring(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    ctx = task_ctx()
    ti = ctx["ti"]
    assert op(slug="instant", deferrable=True).execute(ctx) == {"rows": 1}
    assert set(ti.xcoms) == {"airplane_run_id", "airplane_run_url"}


def test_run_failed_before_defer_fails_without_deferring(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    with pytest.raises(AirplaneRunFailedError, match="quota exceeded"):
        op(slug="broken_now", deferrable=True).execute(task_ctx())


def start(emu: AirplaneEmulator, slug: str) -> str:
    hook = AirplaneHook()
    run_id = hook.execute_task(slug)
    if slug != "long":
        hook.wait_for_run(run_id, poll_interval=0.05, timeout=10)
    return run_id


def event(status: str, run_id: str) -> dict[str, Any]:
    return {"status": status, "run_id": run_id, "run_status": None, "message": "from the trigger"}


def test_execute_complete_success_matches_the_worker_path(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    run_id = start(emu, "quick")
    ctx = task_ctx()
    ti = ctx["ti"]
    assert op(deferrable=True).execute_complete(ctx, event("success", run_id)) == {"rows": 3}
    assert ti.xcoms == {
        "airplane_run_id": run_id,
        "airplane_run_url": f"https://app.example.test/runs/{run_id}",
    }


def test_execute_complete_failed(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start(emu, "broken")
    with pytest.raises(AirplaneRunFailedError, match="quota exceeded"):
        op(deferrable=True).execute_complete(task_ctx(), event("failed", run_id))


def test_execute_complete_cancelled(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start(emu, "long")
    AirplaneHook().cancel_run(run_id)
    with pytest.raises(AirplaneRunCancelledError):
        op(deferrable=True).execute_complete(task_ctx(), event("cancelled", run_id))


def test_execute_complete_timeout_cancels_the_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start(emu, "long")
    with pytest.raises(AirplaneRunTimeoutError):
        op(deferrable=True, timeout=5).execute_complete(task_ctx(), event("timeout", run_id))
    assert emu.request_counts()[CANCEL] == 1
    assert only_run(emu)["status"] == "Cancelled"


def test_execute_complete_timeout_after_success_returns_outputs(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    run_id = start(emu, "quick")  # finished just as the deadline passed
    assert op(deferrable=True).execute_complete(task_ctx(), event("timeout", run_id)) == {"rows": 3}


def test_execute_complete_error_raises_without_cancelling(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    run_id = start(emu, "long")
    with pytest.raises(AirplaneError, match="from the trigger"):
        op(deferrable=True).execute_complete(task_ctx(), event("error", run_id))
    assert emu.request_counts().get(CANCEL, 0) == 0
    assert only_run(emu)["status"] in IN_PROGRESS


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "success",
        {"status": "weird", "run_id": "run1"},
        {"status": "success"},
        {"status": "success", "run_id": ""},
    ],
)
def test_execute_complete_rejects_malformed_events(
    task_ctx: ContextFactory, emu: AirplaneEmulator, bad: Any
) -> None:
    with pytest.raises(AirplaneError, match="event"):
        op(deferrable=True).execute_complete(task_ctx(), bad)
    assert emu.request_counts() == {} or sum(emu.request_counts().values()) == 0


# Outputs and cancel operators ---------------------------------------------------------------------


def env_of(emu: AirplaneEmulator, path: str) -> list[str | None]:
    return [e["headers"].get("X-Airplane-Env-Slug") for e in emu.request_log() if e["path"] == path]


@pytest.mark.parametrize("operator", [AirplaneGetRunOutputsOperator, AirplaneCancelRunOperator])
def test_env_slug_is_templated(operator: type) -> None:
    assert set(operator(task_id="t", run_id="run1").template_fields) == {"run_id", "env_slug"}


def test_outputs_and_cancel_in_the_runs_environment(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    """Issue 13.5: a run started in another environment than the connection's is read and cancelled there."""
    done = AirplaneHook(env_slug="staging").execute_task("quick")
    running = AirplaneHook(env_slug="staging").execute_task("long")
    time.sleep(0.7)  # "quick" lasts 0.5 s
    ctx = task_ctx()

    assert AirplaneGetRunOutputsOperator(task_id="o", run_id=done, env_slug="staging").execute(ctx) == {
        "rows": 3
    }
    assert ctx["ti"].xcoms["airplane_run_url"] == f"https://app.example.test/runs/{done}?__env=staging"
    assert AirplaneCancelRunOperator(task_id="c", run_id=running, env_slug="staging").execute(task_ctx()) == (
        "Cancelled"
    )

    assert set(env_of(emu, "/v0/runs/get") + env_of(emu, "/v0/runs/getOutputs")) == {"staging"}
    assert env_of(emu, CANCEL) == ["staging"]


@pytest.mark.parametrize("run_id", ["", "   ", None, 42, "{{ ti.xcom_pull('x') }}"])
@pytest.mark.parametrize("operator", [AirplaneGetRunOutputsOperator, AirplaneCancelRunOperator])
def test_run_id_is_validated(
    task_ctx: ContextFactory, emu: AirplaneEmulator, operator: type, run_id: Any
) -> None:
    with pytest.raises(AirflowFailException, match="run_id"):
        operator(task_id="t", run_id=run_id).execute(task_ctx())
    assert sum(emu.request_counts().values()) == 0


def test_get_outputs_of_finished_run(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start(emu, "quick")
    ctx = task_ctx()
    ti = ctx["ti"]
    assert AirplaneGetRunOutputsOperator(task_id="t", run_id=f"  {run_id} ").execute(ctx) == {"rows": 3}
    assert ti.xcoms["airplane_run_id"] == run_id


def test_get_outputs_of_running_run_says_so(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start(emu, "long")
    with pytest.raises(AirplaneError, match=r"still (NotStarted|Queued|Active)"):
        AirplaneGetRunOutputsOperator(task_id="t", run_id=run_id).execute(task_ctx())


def test_get_outputs_cap(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    emu.add_task("big", output={"blob": "x" * 2000})
    run_id = start(emu, "big")
    with pytest.raises(AirplaneOutputTooLargeError, match="output_max_bytes=100"):
        AirplaneGetRunOutputsOperator(task_id="t", run_id=run_id, output_max_bytes=100).execute(task_ctx())


def test_cancel_operator_cancels_and_returns_status(task_ctx: ContextFactory, emu: AirplaneEmulator) -> None:
    run_id = start(emu, "long")
    ctx = task_ctx()
    ti = ctx["ti"]
    assert AirplaneCancelRunOperator(task_id="t", run_id=run_id).execute(ctx) == "Cancelled"
    assert only_run(emu)["status"] == "Cancelled"
    assert ti.xcoms["airplane_run_id"] == run_id


def test_cancel_operator_on_finished_run_is_not_an_error(
    task_ctx: ContextFactory, emu: AirplaneEmulator
) -> None:
    run_id = start(emu, "quick")
    assert AirplaneCancelRunOperator(task_id="t", run_id=run_id).execute(task_ctx()) == "Succeeded"


def test_cancel_operator_rejects_negative_wait() -> None:
    with pytest.raises(ValueError, match="wait_timeout"):
        AirplaneCancelRunOperator(task_id="t", run_id="run1", wait_timeout=-1)
