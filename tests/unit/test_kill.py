"""When the Airflow task stops while its Airplane run is in progress, the run is cancelled.

Each path ends the task a different way: SIGTERM to a real task process (a user marked the task failed
or cleared it; Airflow calls ``on_kill``), ``execution_timeout`` in the worker, and the trigger's
deadline (``timeout`` or ``execution_timeout``) while deferred. Each test checks what the emulator saw:
one cancel request and a run that ended Cancelled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_airplane.testing import AirplaneEmulator

CANCEL = "/v0/runs/cancel"
RunDag = Callable[..., Any]


def assert_cancelled_once(emu: AirplaneEmulator) -> None:
    (run,) = emu.runs()
    assert run["status"] == "Cancelled"
    assert emu.request_counts()[CANCEL] == 1


@pytest.mark.slow
def test_sigterm_to_the_task_process_cancels_the_run(
    example_emulator: AirplaneEmulator, airflow_db: None, tmp_path: Path
) -> None:
    log_path = tmp_path / "task.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", "test_airplane_sigterm"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not any(r["status"] == "Active" for r in example_emulator.runs()):
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            time.sleep(1.5)  # the operator is in its wait loop
            assert example_emulator.request_counts().get(CANCEL, 0) == 0
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    output = log_path.read_text()
    assert_cancelled_once(example_emulator)
    assert "the task was killed" in output
    assert "AirplaneRunCancelledError" in output
    assert example_emulator.api_key not in output


@pytest.mark.slow
def test_execution_timeout_cancels_the_run(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("test_airplane_execution_timeout")
    assert result.state_of("export") == "failed"
    assert result.xcom("export", "airplane_run_id") == example_emulator.runs()[0]["id"]
    assert_cancelled_once(example_emulator)


@pytest.mark.slow
def test_deferred_timeout_cancels_the_run(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("test_airplane_deferred_timeout")
    assert result.state_of("export") == "failed"
    assert result.xcom("export", "_link_AirplaneRunLink") == result.xcom("export", "airplane_run_url")
    assert_cancelled_once(example_emulator)


@pytest.mark.slow
def test_deferred_execution_timeout_cancels_the_run(
    example_emulator: AirplaneEmulator, run_dag: RunDag
) -> None:
    started = time.monotonic()
    result = run_dag("test_airplane_deferred_execution_timeout")
    assert result.state_of("export") == "failed"
    assert_cancelled_once(example_emulator)
    assert time.monotonic() - started < 60  # the trigger's deadline, not the hour-long run


@pytest.mark.slow
def test_deferred_failure_fails_without_cancel(example_emulator: AirplaneEmulator, run_dag: RunDag) -> None:
    result = run_dag("test_airplane_deferred_failure")
    assert result.state_of("report") == "failed"
    (run,) = example_emulator.runs()
    assert run["status"] == "Failed"
    assert example_emulator.request_counts().get(CANCEL, 0) == 0
