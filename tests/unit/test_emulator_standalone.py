"""The standalone emulator (``python -m airflow_provider_airplane.testing``) and its ``/_emulator`` routes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_airplane.testing import EmulatorClient

KEY = "tkn_standalone"


def start_standalone(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the CLI; returns the process and the URL it printed first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_airplane.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url:
        process.kill()
        raise AssertionError(f"the emulator printed no URL: {process.communicate()[1]}")
    return process, url


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tasks = tmp_path_factory.mktemp("emulator") / "tasks.json"
    tasks.write_text(json.dumps({"hello": {"output": {"greeting": "hi"}, "task_id": "tsk_hello"}}))
    process, url = start_standalone("--api-key", KEY, "--tasks", str(tasks))
    yield url
    process.terminate()
    process.communicate(timeout=30)


@pytest.fixture
def client(standalone: str) -> Iterator[EmulatorClient]:
    client = EmulatorClient(standalone)
    client.reset()
    client.clock_offset = 0.0
    yield client
    client.reset()


def call(
    url: str,
    method: str,
    path: str,
    *,
    key: str = KEY,
    params: dict[str, str] | None = None,
    body: Any = None,
) -> requests.Response:
    return requests.request(
        method, url + "/v0" + path, headers={"X-Airplane-API-Key": key}, params=params, json=body, timeout=10
    )


def test_cli_prints_url_first_and_exits_cleanly_on_sigterm() -> None:
    process, url = start_standalone()
    assert url.startswith("http://127.0.0.1:")
    assert requests.get(url + "/v0/runs/list", timeout=10).status_code == 401  # serving, with a generated key
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "tkn_" in stderr  # the generated key is shown, so a user can configure a connection


def test_sigint_also_exits_cleanly() -> None:
    process, _ = start_standalone()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_tasks_file_is_loaded(standalone: str, client: EmulatorClient) -> None:
    response = call(standalone, "POST", "/tasks/execute", body={"id": "tsk_hello"})
    assert response.status_code == 200
    run_id = response.json()["runID"]
    assert call(standalone, "GET", "/runs/getOutputs", params={"id": run_id}).json() == {
        "output": {"greeting": "hi"}
    }
    assert [run["id"] for run in client.runs()] == [run_id]


def test_client_adds_tasks_and_keys(standalone: str, client: EmulatorClient) -> None:
    task_id = client.add_task("remote", output=[1, 2], fail=True, error="nope")
    assert task_id.startswith("tsk")
    client.add_key("tkn_denied", allowed=False)
    assert call(standalone, "GET", "/runs/list", key="tkn_denied").status_code == 403
    run_id = call(standalone, "POST", "/tasks/execute", body={"slug": "remote"}).json()["runID"]
    run = call(standalone, "GET", "/runs/get", params={"id": run_id}).json()
    assert (run["taskID"], run["status"]) == (task_id, "Failed")


def test_client_faults_counts_and_log(standalone: str, client: EmulatorClient) -> None:
    client.inject_fault("/v0/runs/list", status=429, count=1, headers={"Retry-After": "2"})
    limited = call(standalone, "GET", "/runs/list")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    client.inject_fault(status=503, rate=1.0)
    assert call(standalone, "GET", "/runs/list").status_code == 503
    client.clear_faults()
    assert call(standalone, "GET", "/runs/list").status_code == 200
    assert client.request_counts() == {"/v0/runs/list": 3}
    log = client.request_log()
    assert [entry["status"] for entry in log] == [429, 503, 200]
    assert all(entry["headers"]["X-Airplane-API-Key"] == "***" for entry in log)


def test_client_moves_the_clock(standalone: str, client: EmulatorClient) -> None:
    client.clock_offset = 3600.0
    assert client.clock_offset == 3600.0
    run_id = call(standalone, "POST", "/tasks/execute", body={"slug": "hello"}).json()["runID"]
    created = call(standalone, "GET", "/runs/get", params={"id": run_id}).json()["createdAt"]
    assert created.startswith(time.strftime("%Y-%m-%dT%H", time.gmtime(time.time() + 3600)))


def test_client_delays_cancels(standalone: str, client: EmulatorClient) -> None:
    client.add_task("slow_cancel", duration=3600)
    client.cancel_delay = 2.0
    try:
        assert client.cancel_delay == 2.0
        run_id = call(standalone, "POST", "/tasks/execute", body={"slug": "slow_cancel"}).json()["runID"]
        time.sleep(0.3)  # Active 0.2 s after it starts
        call(standalone, "POST", "/runs/cancel", body={"runID": run_id})
        assert call(standalone, "GET", "/runs/get", params={"id": run_id}).json()["status"] == "Active"
        deadline = time.monotonic() + 10
        while call(standalone, "GET", "/runs/get", params={"id": run_id}).json()["status"] != "Cancelled":
            assert time.monotonic() < deadline, "the delayed cancel never took effect"
            time.sleep(0.2)
        with pytest.raises(RuntimeError, match="seconds"):
            client.cancel_delay = -1.0
    finally:
        client.cancel_delay = 0.0


def test_client_ends_unfinished_runs_of_a_task(standalone: str, client: EmulatorClient) -> None:
    client.add_task("long", output={"done": True}, duration=3600)
    first, second = (
        call(standalone, "POST", "/tasks/execute", body={"slug": "long"}).json()["runID"] for _ in range(2)
    )
    call(standalone, "POST", "/runs/cancel", body={"runID": second})
    assert client.end_runs("long") == 1  # the cancelled run stays cancelled
    assert client.end_runs("hello") == 0
    deadline = time.monotonic() + 10  # a run ends no earlier than it became Active (0.2 s after start)
    while (statuses := {run["id"]: run["status"] for run in client.runs()})[first] != "Succeeded":
        assert time.monotonic() < deadline, statuses
        time.sleep(0.05)
    assert statuses[second] == "Cancelled"
    outputs = call(standalone, "GET", "/runs/getOutputs", params={"id": first}).json()
    assert outputs == {"output": {"done": True}}


def test_client_reports_refusals(client: EmulatorClient) -> None:
    with pytest.raises(RuntimeError, match="HTTP 400"):
        client.inject_fault(rate=2.0)


def test_testing_package_does_not_import_airflow(tmp_path: Path) -> None:
    script = (
        "import sys, airflow_provider_airplane.testing.__main__\n"
        "assert not [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=tmp_path)
