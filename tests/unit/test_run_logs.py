"""Run logs: the hooks' ``get_run_logs``/``iter_run_logs``, the reader the operator uses, the emulator's
``runs/getLogs`` and run page. All over real HTTP; whole DAG runs are in test_run_logs_dags.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_airplane._run_logs import LOG_SETTLE, RunLogReader
from airflow_provider_airplane.exceptions import (
    AirplaneNotFoundError,
    AirplaneRateLimitedError,
    AirplaneRunFailedError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.models import AirplaneLogLine
from airflow_provider_airplane.operators.airplane import AirplaneExecuteTaskOperator
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.testing import AirplaneEmulator, EmulatorClient
from tests.log_recorder import Recorder

GET_LOGS = "/v0/runs/getLogs"


@pytest.fixture
def hook(airplane_conn: AirplaneEmulator) -> Iterator[AirplaneHook]:
    with AirplaneHook() as h:
        yield h


def finished_run(hook: AirplaneHook, emu: AirplaneEmulator, slug: str = "chatty", **task: Any) -> str:
    emu.add_task(slug, **{"logs": 250, "duration": 0.5, **task})
    run_id = hook.execute_task(slug)
    hook.wait_for_run(run_id, poll_interval=0.1)
    return run_id


def numbers(lines: list[AirplaneLogLine] | list[str]) -> list[int]:
    texts = [line if isinstance(line, str) else line.text for line in lines]
    return [int(text.split("line ")[1].split(" of")[0]) for text in texts]


# Hook ------------------------------------------------------------------------------------------


def test_iter_run_logs_reads_every_page_once_in_order(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    run_id = finished_run(hook, airplane_conn)
    lines = list(hook.iter_run_logs(run_id))
    assert numbers(lines) == list(range(1, 251))
    assert all(line.task_slug == "chatty" and line.level == "info" for line in lines)
    assert lines[0].timestamp.tzinfo is not None
    # 3 pages of at most 100 lines, then one answer without lines that ends the iteration.
    assert airplane_conn.request_counts()[GET_LOGS] == 4
    queries = [entry["query"] for entry in airplane_conn.request_log() if entry["path"] == GET_LOGS]
    assert queries[0] == {"runID": run_id}
    assert all(query["prev_token"] for query in queries[1:])


async def test_async_hook_reads_the_same_lines(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    run_id = finished_run(hook, airplane_conn)
    async with AirplaneAsyncHook() as ahook:
        page = await ahook.get_run_logs(run_id)
        lines = [line async for line in ahook.iter_run_logs(run_id)]
    assert numbers(page.lines) == list(range(1, 101))
    assert page.prev_token
    assert numbers(lines) == list(range(1, 251))


def test_get_run_logs_sorts_dedupes_and_keeps_the_token(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    """The server's order, page size and token names are unknown (reference 4.6): read them leniently."""
    line = {"level": "info", "taskSlug": "t"}
    unsorted = {
        # no runID; the token under another name; lines out of order, one twice, one without insertID
        "prevToken": "tok1",
        "logs": [
            {**line, "timestamp": "2026-01-01T00:00:02Z", "insertID": "b", "text": "third"},
            {**line, "timestamp": "2026-01-01T00:00:01Z", "insertID": "z", "text": "second"},
            {**line, "timestamp": "2026-01-01T00:00:01Z", "insertID": "a", "text": "first"},
            {**line, "timestamp": "2026-01-01T00:00:02Z", "insertID": "b", "text": "third"},
            {"timestamp": "2026-01-01T00:00:03Z", "text": "fourth"},
            "not a line",
        ],
    }
    airplane_conn.inject_fault(GET_LOGS, body=json.dumps(unsorted))
    airplane_conn.inject_fault(GET_LOGS, body=json.dumps({"logs": None, "prev_token": ""}))
    airplane_conn.inject_fault(GET_LOGS, body=json.dumps({"logs": []}))
    assert [line.text for line in hook.iter_run_logs("run1")] == ["first", "second", "third", "fourth"]
    queries = [entry["query"] for entry in airplane_conn.request_log() if entry["path"] == GET_LOGS]
    assert queries == [{"runID": "run1"}, {"runID": "run1", "prev_token": "tok1"}]
    page = hook.get_run_logs("run1", prev_token="tok1")  # the empty answer gives no token: None
    assert page.lines == []
    assert page.prev_token is None


def test_level_and_bad_arguments(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    run_id = finished_run(hook, airplane_conn)
    hook.get_run_logs(run_id, level="debug")
    assert airplane_conn.request_log()[-1]["query"]["level"] == "debug"
    before = airplane_conn.request_counts()[GET_LOGS]
    with pytest.raises(ValueError, match="level must be one of info, debug"):
        hook.get_run_logs(run_id, level="verbose")
    with pytest.raises(ValueError, match="prev_token must be"):
        hook.iter_run_logs(run_id, prev_token="")
    assert airplane_conn.request_counts()[GET_LOGS] == before


def test_missing_endpoint_is_a_not_found_error_that_says_so(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    run_id = finished_run(hook, airplane_conn)
    airplane_conn.logs_endpoint = False
    with pytest.raises(AirplaneNotFoundError, match="may not serve the undocumented runs/getLogs"):
        hook.get_run_logs(run_id)


def test_a_read_gives_up_within_its_max_wait(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    """Logs must not hold a task up: a 429 asking for 30 s is not waited for with max_wait=1."""
    run_id = finished_run(hook, airplane_conn)
    airplane_conn.inject_fault(GET_LOGS, status=429, headers={"Retry-After": "30"}, count=5)
    slept: list[float] = []
    hook.sleep = slept.append
    with pytest.raises(AirplaneRateLimitedError):
        hook.get_run_logs(run_id, max_wait=1.0)
    assert slept == []  # it did not wait for Retry-After
    assert airplane_conn.request_counts()[GET_LOGS] == 1
    airplane_conn.clear_faults()
    airplane_conn.inject_fault(GET_LOGS, status=503, count=2)
    assert len(hook.get_run_logs(run_id, max_wait=5.0).lines) == 100  # short backoffs fit: retried
    assert len(slept) == 2


# The reader the operator and sensor use -------------------------------------------------------


def reader(hook: AirplaneHook, run_id: str, **kwargs: Any) -> tuple[RunLogReader, Recorder]:
    log = Recorder()
    kwargs.setdefault("max_wait", 1.0)
    return RunLogReader(hook, run_id, log=log, run_url=f"https://app/runs/{run_id}", **kwargs), log


def test_reader_catches_up_on_each_poll_then_drains_once(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    run_id = finished_run(hook, airplane_conn)
    now = [0.0]
    follower, log = reader(hook, run_id, clock=lambda: now[0])
    follower.follow()  # 100, 100, then 50 lines: a short page says it caught up
    assert airplane_conn.request_counts()[GET_LOGS] == 3
    assert log.infos == []  # read just now: they wait LOG_SETTLE for lines the API shows late
    now[0] += LOG_SETTLE
    follower.follow()  # an answer without lines: caught up, and the lines have settled
    assert len(log.infos) == 250
    follower.drain()  # the one more read after the end: an answer without lines
    follower.drain()  # a second drain reads nothing
    assert numbers([text.removeprefix("[airplane] ") for text in log.infos]) == list(range(1, 251))
    assert all(text.startswith("[airplane] ") for text in log.infos)
    assert airplane_conn.request_counts()[GET_LOGS] == 5
    assert not log.warnings
    assert numbers(list(follower.tail)) == list(range(231, 251))


def test_reader_caps_lines_and_says_how_many_were_left_out(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    run_id = finished_run(hook, airplane_conn)
    capped, log = reader(hook, run_id, max_lines=30)
    capped.drain()
    assert len(log.infos) == 30
    assert log.warnings == [
        f"[airplane] 220 more lines of Airplane run {run_id} were left out (log_max_lines=30); "
        f"read them at https://app/runs/{run_id}"
    ]
    assert numbers(list(capped.tail)) == list(range(231, 251))  # the failure tail still has the end


def test_reader_never_writes_the_api_key(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    run_id = finished_run(hook, airplane_conn, "leaky", logs=[f"key={airplane_conn.api_key}", "done"])
    leaky, log = reader(hook, run_id)
    leaky.drain()
    assert log.infos == ["[airplane] key=***", "[airplane] done"]


def test_reader_stops_after_a_404_with_one_warning(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    run_id = finished_run(hook, airplane_conn)
    airplane_conn.logs_endpoint = False
    follower, log = reader(hook, run_id)
    follower.follow()
    follower.follow()
    follower.drain()
    assert airplane_conn.request_counts()[GET_LOGS] == 1
    assert len(log.warnings) == 1
    assert "no log endpoint" in log.warnings[0]


def test_reader_resumes_from_its_token_after_transient_errors(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    run_id = finished_run(hook, airplane_conn)
    follower, log = reader(hook, run_id)
    airplane_conn.inject_fault(GET_LOGS, body=json.dumps({"logs": []}), count=1)  # a first empty answer
    follower.follow()
    # Retry-After longer than max_wait: not waited for; the poll is skipped and the token kept.
    airplane_conn.inject_fault(GET_LOGS, status=503, headers={"Retry-After": "5"})
    follower.follow()
    airplane_conn.inject_fault(GET_LOGS, status=429, headers={"Retry-After": "5"})
    follower.follow()
    follower.drain()
    assert numbers([text.removeprefix("[airplane] ") for text in log.infos]) == list(range(1, 251))
    assert len(log.warnings) == 2
    assert all("Could not read" in w for w in log.warnings)


# Operator and sensor called directly: the failure's error text --------------------------------


def test_failed_run_error_carries_its_last_lines(
    airplane_conn: AirplaneEmulator, task_ctx: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    airplane_conn.add_task("breaks", logs=30, duration=0.5, fail=True, error="disk full")
    task = AirplaneExecuteTaskOperator(task_id="t", slug="breaks", poll_interval=0.2)
    with pytest.raises(AirplaneRunFailedError) as caught:
        task.execute(task_ctx())
    message = str(caught.value)
    assert message.index("disk full") < message.index("Last 20 lines of the run's log:")
    assert "breaks: line 11 of 30" in message
    assert "breaks: line 30 of 30" in message
    assert "breaks: line 10 of 30" not in message
    out, err = capfd.readouterr()
    written = [line for line in (out + err).splitlines() if "[airplane] breaks: line" in line]
    assert len(written) == 30


def test_sensor_writes_no_lines_but_puts_the_tail_in_its_error(
    airplane_conn: AirplaneEmulator, task_ctx: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    airplane_conn.add_task("breaks", logs=30, duration=0.2, fail=True, error="disk full")
    with AirplaneHook() as h:
        run_id = h.execute_task("breaks")
        h.wait_for_run(run_id, poll_interval=0.1)
    sensor = AirplaneRunSensor(task_id="watch", run_id=run_id, poke_interval=0.1)
    with pytest.raises(AirplaneRunFailedError, match=r"disk full(.|\n)*breaks: line 30 of 30"):
        sensor.poke(task_ctx())
    out, err = capfd.readouterr()
    assert "[airplane]" not in out + err


def test_show_logs_false_makes_no_log_request(airplane_conn: AirplaneEmulator, task_ctx: Any) -> None:
    airplane_conn.add_task("chatty", logs=50, duration=0.5, output={"ok": True})
    task = AirplaneExecuteTaskOperator(task_id="t", slug="chatty", poll_interval=0.1, show_logs=False)
    assert task.execute(task_ctx()) == {"ok": True}
    assert airplane_conn.request_counts().get(GET_LOGS, 0) == 0


def test_log_max_lines_is_checked() -> None:
    with pytest.raises(ValueError, match="log_max_lines must be an integer >= 0"):
        AirplaneExecuteTaskOperator(task_id="t", slug="s", log_max_lines=-1)


# Emulator ------------------------------------------------------------------------------------


def test_emulator_spreads_lines_and_a_cancel_stops_them(
    hook: AirplaneHook, airplane_conn: AirplaneEmulator
) -> None:
    airplane_conn.add_task(
        "slow", logs=lambda params: [f"{params['who']}: line {n} of 100" for n in range(1, 101)], duration=5
    )
    run_id = hook.execute_task("slow", param_values={"who": "ann"})
    deadline = time.monotonic() + 60
    while len(written := list(hook.iter_run_logs(run_id))) < 10:
        assert time.monotonic() < deadline, "no lines appeared"
        time.sleep(0.05)
    assert written[0].text == "ann: line 1 of 100"
    hook.cancel_run(run_id)
    written = list(hook.iter_run_logs(run_id))
    airplane_conn.clock_offset = 60  # long past the run's planned end: the cancel stopped the rest
    assert list(hook.iter_run_logs(run_id)) == written
    assert 10 <= len(written) < 100


def test_emulator_admin_switches_the_endpoint_off(airplane_conn: AirplaneEmulator) -> None:
    client = EmulatorClient(airplane_conn.url)
    assert client.logs_endpoint is True
    client.logs_endpoint = False
    answer = requests.get(
        f"{airplane_conn.url}/v0/runs/getLogs",
        params={"runID": "run1"},
        headers={"X-Airplane-API-Key": airplane_conn.api_key},
        timeout=10,
    )
    assert answer.status_code == 404
    assert airplane_conn.logs_endpoint is False
    client.add_task("counted", logs=3)
    assert [t["logs"] for t in client._call("GET", "tasks") if t["slug"] == "counted"] == [3]


def test_emulator_rejects_bad_logs_setting(airplane_conn: AirplaneEmulator) -> None:
    with pytest.raises(ValueError, match="logs must be a list of strings"):
        airplane_conn.add_task("bad", logs="one line")  # type: ignore[arg-type]


def test_run_page_shows_the_run_without_a_key(hook: AirplaneHook, airplane_conn: AirplaneEmulator) -> None:
    run_id = finished_run(hook, airplane_conn, "paged", logs=["hello <world>"], output={"rows": 3})
    hook.execute_task("paged")  # another run, not on this page
    page = requests.get(f"{airplane_conn.url}/runs/{run_id}", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert run_id in page.text
    assert ">Succeeded<" in page.text
    assert "hello &lt;world&gt;" in page.text
    assert "&quot;rows&quot;: 3" in page.text
    assert requests.get(f"{airplane_conn.url}/runs/run_nope", timeout=10).status_code == 404
    assert "/runs/" + run_id not in airplane_conn.request_counts()  # pages are not API requests
