"""Run logs through real Airflow (``dag.test()``, triggers inline) against the emulator over real HTTP.

The task log is what Airflow's structlog writes to the process's stdout/stderr during ``dag.test()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_airplane.testing import AirplaneEmulator

RunDag = Callable[..., Any]
GET_LOGS = "/v0/runs/getLogs"
LINE = re.compile(r"\[airplane\] (chatty(?:_fails)?: line (\d+) of \d+)")

pytestmark = pytest.mark.slow


@pytest.fixture
def chatty(airplane_conn: AirplaneEmulator) -> AirplaneEmulator:
    airplane_conn.add_task("chatty", logs=250, duration=2.0, output={"ok": True})
    airplane_conn.add_task("chatty_fails", logs=30, duration=1.0, fail=True, error="disk full")
    return airplane_conn


def task_log(capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    return out + err


def written(log: str) -> list[int]:
    """The numbers of the run's lines the task wrote, in the order it wrote them."""
    return [int(match.group(2)) for match in LINE.finditer(log)]


@pytest.mark.parametrize("dag_id", ["test_airplane_logs_worker", "test_airplane_logs_deferred"])
def test_every_line_once_and_in_order(
    dag_id: str, chatty: AirplaneEmulator, run_dag: RunDag, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag(dag_id)
    assert result.state == "success"
    assert written(task_log(capfd)) == list(range(1, 251))
    assert chatty.request_counts()[GET_LOGS] >= 4  # 250 lines came over several pages of at most 100


def test_deferred_trigger_reads_no_logs(
    chatty: AirplaneEmulator, run_dag: RunDag, capfd: pytest.CaptureFixture[str]
) -> None:
    """Only execute_complete reads, once, page after page: 3 pages and the empty answer that ends them,
    then (``dag.test`` resumes the task within a second of the run's end) one more read once 5 s have
    passed since the end, for lines the API shows late."""
    run_dag("test_airplane_logs_deferred")
    assert chatty.request_counts()[GET_LOGS] == 5
    assert written(task_log(capfd)) == list(range(1, 251))


def test_failed_run_lines_in_the_log_and_the_error(
    chatty: AirplaneEmulator, run_dag: RunDag, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag("test_airplane_logs_failed")
    assert result.state_of("run") == "failed"
    log = task_log(capfd)
    assert written(log) == list(range(1, 31))
    error = log[log.index("disk full") :]
    assert "Last 20 lines of the run's log:" in error
    assert "  chatty_fails: line 11 of 30" in error
    assert "  chatty_fails: line 10 of 30" not in error


def test_log_max_lines(chatty: AirplaneEmulator, run_dag: RunDag, capfd: pytest.CaptureFixture[str]) -> None:
    result = run_dag("test_airplane_logs_capped")
    assert result.state == "success"
    log = task_log(capfd)
    assert written(log) == list(range(1, 101))
    run_id = result.xcom("run", "airplane_run_id")
    assert log.count("more lines of Airplane run") == 1
    assert (
        f"[airplane] 150 more lines of Airplane run {run_id} were left out (log_max_lines=100); "
        f"read them at https://app.example.test/runs/{run_id}"
    ) in log


def test_show_logs_false_makes_no_log_request(
    chatty: AirplaneEmulator, run_dag: RunDag, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run_dag("test_airplane_logs_off")  # one task waits in the worker, one deferred
    assert result.state == "success"
    assert chatty.request_counts().get(GET_LOGS, 0) == 0
    assert chatty.request_counts()["/v0/runs/get"] > 0
    assert written(task_log(capfd)) == []


def test_missing_endpoint_one_warning_no_more_requests(
    chatty: AirplaneEmulator, run_dag: RunDag, capfd: pytest.CaptureFixture[str]
) -> None:
    chatty.logs_endpoint = False
    result = run_dag("test_airplane_logs_worker")
    assert result.state == "success"
    assert result.xcom("run") == {"ok": True}
    assert chatty.request_counts()[GET_LOGS] == 1
    assert task_log(capfd).count("the server has no log endpoint") == 1


@pytest.mark.parametrize("dag_id", ["test_airplane_logs_worker", "test_airplane_logs_deferred_slow_poll"])
def test_faults_on_get_logs_lose_and_repeat_no_line(
    dag_id: str, chatty: AirplaneEmulator, run_dag: RunDag, capfd: pytest.CaptureFixture[str]
) -> None:
    chatty.inject_fault(GET_LOGS, status=429, count=2)
    chatty.inject_fault(GET_LOGS, status=503, count=2)
    result = run_dag(dag_id)
    assert result.state == "success"
    assert written(task_log(capfd)) == list(range(1, 251))
    statuses = [entry["status"] for entry in chatty.request_log() if entry["path"] == GET_LOGS]
    assert statuses[:4] == [429, 429, 503, 503]
    assert chatty.runs()[0]["status"] == "Succeeded"  # never cancelled
