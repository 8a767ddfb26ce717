"""The bad-input matrix: each wrong input gives an error that names the fix, early, and leaves no run behind.

Through the operators' ``execute(context)`` (the path a worker takes), the hook where the case is the
hook's, and ``dag.test()`` for a ``run_id`` template that renders a missing XCom. Every test checks the
emulator afterwards: no ``/v0/tasks/execute`` when the error can be found before a run starts, and no
run still in progress in any case.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_airplane.exceptions import (
    AirplaneApiError,
    AirplaneAuthError,
    AirplaneError,
    AirplaneNotFoundError,
)
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook
from airflow_provider_airplane.operators.airplane import (
    AirplaneCancelRunOperator,
    AirplaneExecuteTaskOperator,
    AirplaneGetRunOutputsOperator,
    AirplaneOutputTooLargeError,
)
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.triggers.airplane import AirplaneRunTrigger

EXECUTE = "/v0/tasks/execute"
GET = "/v0/runs/get"
CANCEL = "/v0/runs/cancel"
IN_PROGRESS = {"NotStarted", "Queued", "Active"}
ContextFactory = Callable[..., Any]  # a Context-shaped dict (tests.conftest.task_ctx)


@pytest.fixture
def emu(airplane_conn: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[AirplaneEmulator]:
    """The emulator behind ``airplane_default``, fast retries, and the "nothing left running" check."""
    airplane_conn.add_task("quick", output={"rows": 3}, duration=0.2)
    airplane_conn.add_task("long", output={"rows": 9}, duration=600)
    airplane_conn.add_task("big", output={"blob": "x" * 5000})
    monkeypatch.setattr(AirplaneHook, "backoff_base", 0.001)
    yield airplane_conn
    left = [run for run in airplane_conn.runs() if run["status"] in IN_PROGRESS]
    assert not left, f"runs left in progress: {left}"


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str = "airplane_default", **fields: Any) -> None:
    conn = {"conn_type": "airplane", "extra": {"env_slug": "prod"}, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def execute_op(**kwargs: Any) -> AirplaneExecuteTaskOperator:
    kwargs.setdefault("slug", "quick")
    kwargs.setdefault("poll_interval", 0.1)
    return AirplaneExecuteTaskOperator(task_id="run_it", **kwargs)


def no_execute(emu: AirplaneEmulator) -> None:
    assert emu.request_counts().get(EXECUTE, 0) == 0
    assert emu.runs() == []


# Connection ------------------------------------------------------------------------------------


def test_missing_connection(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    with pytest.raises(AirplaneError, match="'airplane_missing' is not defined") as info:
        execute_op(airplane_conn_id="airplane_missing").execute(task_ctx())
    assert "AIRFLOW_CONN_AIRPLANE_MISSING" in str(info.value)
    assert "Admin > Connections" in str(info.value)
    no_execute(emu)


async def test_missing_connection_in_the_triggerer(emu: AirplaneEmulator) -> None:
    async with AirplaneAsyncHook("airplane_missing") as hook:
        with pytest.raises(
            AirplaneError, match=r"'airplane_missing' is not defined.*AIRFLOW_CONN_AIRPLANE_MISSING"
        ):
            await hook.get_run("run_any")
    assert emu.request_counts() == {}


def test_empty_key(emu: AirplaneEmulator, task_ctx: ContextFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, host=emu.url, password="  ")
    with pytest.raises(AirplaneError, match=r"has no API key: put the key \(tkn_...\) in its password"):
        execute_op().execute(task_ctx())
    no_execute(emu)


def test_wrong_key(emu: AirplaneEmulator, task_ctx: ContextFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, host=emu.url, password="tkn_not_the_key")
    with pytest.raises(AirplaneAuthError, match=r"key was rejected.*check the password of connection"):
        execute_op().execute(task_ctx())
    assert emu.request_counts()[EXECUTE] == 1  # refused at once: a 401 is not retried
    assert emu.runs() == []


def test_wrong_host_unreachable(
    emu: AirplaneEmulator, task_ctx: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # bound, then closed: nothing listens there any more
    set_conn(monkeypatch, host=f"http://127.0.0.1:{port}", password=emu.api_key)
    with pytest.raises(AirplaneApiError, match=r"connection refused.*check the host of connection") as info:
        execute_op().execute(task_ctx())
    assert info.value.status_code is None
    no_execute(emu)


class _WebSite(BaseHTTPRequestHandler):
    """A web site, not an API: every path is an HTML 404 page."""

    def _page(self) -> None:
        body = b"<!doctype html><html><body><h1>Page not found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, *args: Any) -> None:
        pass


def test_wrong_host_not_the_api(
    emu: AirplaneEmulator, task_ctx: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _WebSite) as site:
        threading.Thread(target=site.serve_forever, daemon=True).start()
        set_conn(monkeypatch, host=f"http://127.0.0.1:{site.server_address[1]}", password=emu.api_key)
        try:
            with pytest.raises(AirplaneNotFoundError, match="not the Airplane API's") as info:
                execute_op().execute(task_ctx())
        finally:
            site.shutdown()
    assert "set the host of connection 'airplane_default' to the API base URL" in str(info.value)
    no_execute(emu)


def test_host_that_is_not_a_url(
    emu: AirplaneEmulator, task_ctx: ContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_conn(monkeypatch, host="ftp://files.example.com", password=emu.api_key)
    with pytest.raises(AirplaneError, match=r"is not an http\(s\) URL; use the API base URL"):
        execute_op().execute(task_ctx())
    no_execute(emu)


# Which task ------------------------------------------------------------------------------------


def test_unknown_slug(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    with pytest.raises(AirplaneNotFoundError, match="task slug 'no_such_task' was not found") as info:
        execute_op(slug="no_such_task").execute(task_ctx())
    assert "check the task's slug or ID" in str(info.value)
    assert "env_slug" in str(info.value)
    assert emu.runs() == []


def test_both_slug_and_task_id(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    with pytest.raises(ValueError, match="Give either slug= or airplane_task_id=, not both"):
        execute_op(slug="quick", airplane_task_id="tsk_quick")
    # Templated values are only known once rendered: the same check runs before the execute call.
    op = execute_op(slug="{{ params.slug }}", airplane_task_id="{{ params.task_id }}")
    op.slug, op.airplane_task_id = "quick", "tsk_quick"  # as rendered
    with pytest.raises(AirflowFailException, match="Give exactly one of slug= and airplane_task_id="):
        op.execute(task_ctx())
    no_execute(emu)


def test_neither_slug_nor_task_id(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    with pytest.raises(ValueError, match="Give the Airplane task as slug= or airplane_task_id="):
        AirplaneExecuteTaskOperator(task_id="run_it")
    op = execute_op(slug="{{ params.slug }}")
    op.slug = ""  # a template that rendered empty
    with pytest.raises(AirflowFailException, match="Give exactly one of slug= and airplane_task_id="):
        op.execute(task_ctx())
    no_execute(emu)


def test_params_not_json_serialisable(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    with pytest.raises(ValueError, match=r"param_values\['when'\] is not JSON-serialisable"):
        execute_op(param_values={"when": datetime(2026, 1, 1)})  # known when the DAG is parsed
    op = execute_op(param_values={"when": "{{ params.when }}"})
    op.param_values = {"when": datetime(2026, 1, 1)}  # a template that rendered to a datetime
    with pytest.raises(AirflowFailException, match=r"param_values\['when'\] is not JSON-serialisable"):
        op.execute(task_ctx())
    hook = AirplaneHook()
    with pytest.raises(ValueError, match=r"param_values must be JSON-serialisable.*as \.isoformat\(\)"):
        hook.execute_task("quick", param_values={"when": datetime(2026, 1, 1)})
    # NaN is not JSON: json.dumps would write it, and the API would reject the body.
    with pytest.raises(ValueError, match="param_values must be JSON-serialisable"):
        hook.execute_task("quick", param_values={"ratio": math.nan})
    no_execute(emu)


# Run ids on the sensor, the outputs and the cancel operators -----------------------------------

RUN_ID_OPERATORS: dict[str, Callable[[Any], BaseOperator]] = {
    "sensor": lambda run_id: AirplaneRunSensor(task_id="watch", run_id=run_id, poke_interval=0.1, timeout=5),
    "outputs": lambda run_id: AirplaneGetRunOutputsOperator(task_id="outputs", run_id=run_id),
    "cancel": lambda run_id: AirplaneCancelRunOperator(task_id="cancel", run_id=run_id, wait_timeout=1),
}
BAD_RUN_IDS = {
    "empty": ("", "run_id is empty.*check that the upstream task pushed 'airplane_run_id'"),
    "whitespace": ("   ", "run_id is empty.*check that the upstream task pushed 'airplane_run_id'"),
    "not_a_string": (42, "run_id must be a string, got int"),
    "unrendered_template": (
        "{{ ti.xcom_pull(task_ids='start', key='airplane_run_id') }}",
        "run_id was not rendered as a template.*Pass the template as this operator's run_id=",
    ),
    "rendered_none": ("None", "run_id rendered as 'None': the XCom it pulls does not exist"),
    "inner_whitespace": ("run 123", "contains whitespace"),
}


@pytest.mark.parametrize("kind", list(RUN_ID_OPERATORS))
@pytest.mark.parametrize("case", list(BAD_RUN_IDS))
def test_malformed_run_id(emu: AirplaneEmulator, task_ctx: ContextFactory, kind: str, case: str) -> None:
    value, message = BAD_RUN_IDS[case]
    with pytest.raises(AirflowFailException, match=message):
        RUN_ID_OPERATORS[kind](value).execute(task_ctx())
    assert emu.request_counts() == {}  # refused before any call


@pytest.mark.parametrize("kind", list(RUN_ID_OPERATORS))
def test_run_that_does_not_exist(emu: AirplaneEmulator, task_ctx: ContextFactory, kind: str) -> None:
    with pytest.raises(AirplaneNotFoundError, match="run 'run_doesnotexist' was not found") as info:
        RUN_ID_OPERATORS[kind]("run_doesnotexist").execute(task_ctx())
    assert "check the run id" in str(info.value)
    no_execute(emu)


MISSING_XCOM_DAG = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider_airplane.operators.airplane import AirplaneGetRunOutputsOperator

with DAG("bad_input_missing_xcom", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    AirplaneGetRunOutputsOperator(
        task_id="outputs", run_id="{{ ti.xcom_pull(task_ids='start', key='airplane_run_id') }}", retries=0
    )
"""


@pytest.mark.slow
def test_run_id_template_of_a_missing_xcom(emu: AirplaneEmulator, run_dag: Callable[..., Any]) -> None:
    """A template pulling an XCom nobody pushed renders as 'None': the task fails before any request."""
    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "bad_input_missing_xcom.py"
    dag_file.write_text(MISSING_XCOM_DAG)
    try:
        result = run_dag("bad_input_missing_xcom")
    finally:
        dag_file.unlink()
    assert result.state_of("outputs") == "failed"
    assert emu.request_counts() == {}
    no_execute(emu)


def test_not_found_hint_for_a_run_id_of_none(emu: AirplaneEmulator) -> None:
    with pytest.raises(AirplaneNotFoundError, match="rendered an XCom that does not exist"):
        AirplaneHook().get_run("None")


# What the API answers -------------------------------------------------------------------------


def test_html_error_page(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    emu.inject_fault(EXECUTE, status=502, body=page, count=100)
    with pytest.raises(AirplaneApiError, match=r"HTML, not JSON \(a proxy or the wrong host\?\)") as info:
        execute_op().execute(task_ctx())
    assert info.value.status_code == 502
    assert "after 10 attempts" in str(info.value)
    assert emu.runs() == []  # every attempt got the page, none reached the API


def test_html_page_with_200(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    """A host that is not the API answers so every time; the start's retries stay bounded."""
    emu.inject_fault(EXECUTE, status=200, body="<html><body>Welcome to our web site</body></html>", count=50)
    with pytest.raises(AirplaneApiError, match="HTML, not JSON") as info:
        execute_op().execute(task_ctx())
    assert "check that the host of connection 'airplane_default' is the Airplane API base URL" in str(
        info.value
    )
    assert emu.runs() == []


def test_truncated_json_is_retried(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    """A body cut short (a proxy, a reset) is transient: the wait goes on and the run is kept."""
    emu.inject_fault(GET, status=200, body='{"id": "run', count=1)
    ctx = task_ctx()
    execute_op(slug="quick").execute(ctx)
    (run,) = emu.runs()
    assert run["status"] == "Succeeded"
    assert emu.request_counts().get(CANCEL, 0) == 0


def test_outputs_over_the_cap(emu: AirplaneEmulator, task_ctx: ContextFactory) -> None:
    ctx = task_ctx()
    with pytest.raises(AirplaneOutputTooLargeError, match="more than output_max_bytes=1000") as info:
        execute_op(slug="big", output_max_bytes=1000).execute(ctx)
    assert "Raise output_max_bytes" in str(info.value)
    assert "do_xcom_push=False" in str(info.value)
    assert ctx["ti"].xcoms["airplane_run_id"]  # the run can still be found
    run_id = ctx["ti"].xcoms["airplane_run_id"]
    with pytest.raises(AirplaneOutputTooLargeError, match="Raise output_max_bytes"):
        AirplaneGetRunOutputsOperator(task_id="outputs", run_id=run_id, output_max_bytes=1000).execute(
            task_ctx()
        )


def test_unknown_status_value(
    emu: AirplaneEmulator, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    hook = AirplaneHook()
    run_id = hook.execute_task("quick")
    paused = json.dumps({"id": run_id, "status": "Paused", "taskID": "tsk"})
    emu.inject_fault(GET, status=200, body=paused, count=2)
    run = hook.wait_for_run(run_id, poll_interval=0.05, timeout=30)
    assert run.status == "Succeeded"  # an unknown status is "not finished yet", never success or failure
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "'Paused', which this provider version does not know" in logged
    assert "Upgrade airflow-provider-airplane" in logged


# Waiting -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [0, -1, timedelta(0)])
def test_zero_or_negative_poll_interval(emu: AirplaneEmulator, interval: Any) -> None:
    with pytest.raises(ValueError, match="poll_interval must be a positive number of seconds"):
        execute_op(poll_interval=interval)
    if not isinstance(interval, timedelta):
        with pytest.raises(ValueError, match="poll_interval must be a positive number of seconds"):
            AirplaneHook().wait_for_run("run_any", poll_interval=interval)
        with pytest.raises(ValueError, match="poll_interval must be a positive number of seconds"):
            AirplaneRunTrigger(run_id="run_any", airplane_conn_id="airplane_default", poll_interval=interval)
    assert emu.request_counts() == {}


@pytest.mark.parametrize("timeout", [5, timedelta(seconds=5)])
def test_timeout_shorter_than_poll_interval(emu: AirplaneEmulator, timeout: Any) -> None:
    message = r"shorter than poll_interval \(10 s\); lower poll_interval or raise timeout"
    with pytest.raises(ValueError, match=message):
        execute_op(poll_interval=10, timeout=timeout)
    assert emu.request_counts() == {}
