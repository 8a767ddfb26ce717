"""Review 17: lines read while the run goes on are never written when the task ends before the run.

Since ``LOG_SETTLE``, a line read by ``follow()`` waits in ``RunLogReader.pending`` for 5 s and a later
poll. Only ``_finish``/``_on_timeout`` call ``drain()``; every other way out of the wait loop
(``execution_timeout``, SIGTERM, an outage past ``max_outage``) goes through ``_after_error``, which
never writes ``pending``. So the lines of the run's last seconds before the task stopped, which the task
had read, vanish from its log; before the change each poll wrote what it read. With a short
``execution_timeout`` the task log shows none of the run's lines at all: exactly the task a user opens
the log of to see where the run hung.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.execution_time.timeout import timeout

try:
    from airflow.sdk.exceptions import AirflowTaskTimeout
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowTaskTimeout  # type: ignore[no-redef]

from airflow_provider_airplane.exceptions import AirplaneOutageError
from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.testing import AirplaneEmulator

LINES = 100  # over 20 s: one line every 0.2 s


def written_numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(rf"\[airplane\] slow: line (\d+) of {LINES}", text)]


def test_execution_timeout_keeps_the_lines_the_task_had_read(
    airplane_conn: AirplaneEmulator, task_ctx: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """What the task runner does on ``execution_timeout`` (``_run_task_with_timeout``): SIGALRM raises
    AirflowTaskTimeout in ``execute``, then ``on_kill``."""
    airplane_conn.add_task("slow", logs=LINES, duration=20.0)
    task = AirplaneExecuteTaskOperator(
        task_id="t",
        slug="slow",
        poll_interval=0.5,
        deferrable=False,
        execution_timeout=timedelta(seconds=4),
    )
    ctx = task_ctx()

    def run_with_timeout() -> None:
        try:
            with timeout(4):
                task.execute(ctx)
        except AirflowTaskTimeout:
            task.on_kill()
            raise

    with pytest.raises(AirflowTaskTimeout):
        run_with_timeout()
    out, err = capfd.readouterr()
    numbers = written_numbers(out + err)
    reader = task._run_log
    assert reader is not None
    assert reader.taken >= 10  # the task read the run's first seconds
    assert numbers == list(range(1, reader.taken + 1)), f"read {reader.taken} lines, wrote {numbers}"


def test_an_outage_past_max_outage_keeps_the_lines_the_task_had_read(
    airplane_conn: AirplaneEmulator, task_ctx: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """``runs/get`` stops answering (the log endpoint still does); past ``max_outage`` the task fails and
    leaves the run for a retry. The lines it read before are its log's last word on the run."""
    airplane_conn.add_task("slow", logs=LINES, duration=20.0)
    task = AirplaneExecuteTaskOperator(
        task_id="t", slug="slow", poll_interval=0.5, deferrable=False, max_outage=2.0
    )
    # 3 s into the wait, runs/get goes dark for longer than max_outage (runs/getLogs still answers).
    dark = threading.Timer(
        3.0, airplane_conn.start_outage, (60,), {"path": "/v0/runs/get", "mix": {"503": 1}}
    )
    dark.start()
    with pytest.raises(AirplaneOutageError):
        task.execute(task_ctx())
    out, err = capfd.readouterr()
    numbers = written_numbers(out + err)
    reader = task._run_log
    assert reader is not None
    assert reader.taken >= 10
    assert numbers == list(range(1, reader.taken + 1)), f"read {reader.taken} lines, wrote {numbers}"
