"""Past ``log_max_lines`` nothing more is written, so nothing much more is read: PAST_LIMIT_PAGES pages,
then one line says the rest was not read. A 20,000-line run used to cost 201 requests whatever the limit."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_airplane._run_logs import PAST_LIMIT_PAGES, RunLogReader
from airflow_provider_airplane.exceptions import AirplaneRunFailedError
from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.testing import AirplaneEmulator
from tests.log_recorder import Recorder

GET_LOGS = "/v0/runs/getLogs"
LINES = 20_000
PAGE = 100  # the emulator's page size


def ended_run(emu: AirplaneEmulator, slug: str, **task: Any) -> str:
    emu.add_task(slug, logs=LINES, duration=0.2, **task)
    with AirplaneHook() as hook:
        run_id = hook.execute_task(slug)
        hook.wait_for_run(run_id, poll_interval=0.1)
    return run_id


def log_requests(emu: AirplaneEmulator) -> int:
    return emu.request_counts().get(GET_LOGS, 0)


def test_the_reader_stops_ten_pages_past_the_limit_and_says_so(airplane_conn: AirplaneEmulator) -> None:
    run_id = ended_run(airplane_conn, "chatty")
    log = Recorder()
    url = f"https://app/runs/{run_id}"
    with AirplaneHook() as hook:
        reader = RunLogReader(hook, run_id, log=log, run_url=url, max_wait=5.0, max_lines=10_000)
        reader.drain()
        reader.follow()  # nothing more is read once it stopped
        reader.drain()
    assert log_requests(airplane_conn) == 10_000 // PAGE + PAST_LIMIT_PAGES  # 110, was 201
    assert len(log.infos) == 10_000
    left_out = PAST_LIMIT_PAGES * PAGE
    assert log.warnings == [
        f"[airplane] {left_out} more lines of Airplane run {run_id} were left out (log_max_lines=10000), "
        f"and the rest of its log was not read; read them at {url}"
    ]
    assert reader.cut_short
    assert list(reader.tail) == []  # the lines read last are not the run's last lines


def test_a_waiting_task_reads_a_bounded_number_of_pages(
    airplane_conn: AirplaneEmulator, task_ctx: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    airplane_conn.add_task("chatty", logs=LINES, duration=1.0, output={"ok": True})
    task = AirplaneExecuteTaskOperator(task_id="t", slug="chatty", poll_interval=0.2, log_max_lines=500)
    assert task.execute(task_ctx()) == {"ok": True}
    # the pages up to the limit, the pages past it, and at most one short page per poll before it
    assert log_requests(airplane_conn) <= 500 // PAGE + PAST_LIMIT_PAGES + 10
    out, err = capfd.readouterr()
    assert sum("[airplane] chatty: line" in line for line in (out + err).splitlines()) == 500
    assert "and the rest of its log was not read" in out + err


def test_a_failed_run_past_the_bound_has_no_misleading_tail(
    airplane_conn: AirplaneEmulator, task_ctx: Any
) -> None:
    run_id = ended_run(airplane_conn, "breaks", fail=True, error="disk full")
    sensor = AirplaneRunSensor(task_id="watch", run_id=run_id)  # reads only for the error's tail
    with pytest.raises(AirplaneRunFailedError, match="disk full") as caught:
        sensor.poke(task_ctx())
    assert "Last" not in str(caught.value)
    assert log_requests(airplane_conn) == 10_000 // PAGE + PAST_LIMIT_PAGES
