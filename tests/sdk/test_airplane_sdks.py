"""Airplane's own SDKs, unchanged, against the standalone emulator: execute a task, wait, read output.

The Python SDK (``airplanesdk``) comes from the venv; the Node SDK (npm ``airplane``, pinned in
``node/package.json`` and ``node/package-lock.json``) is installed with ``npm ci`` into
``node/node_modules`` (git-ignored) the first time, and again only when the lock file changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_airplane.testing import EmulatorClient

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
NODE_PROJECT = HERE / "node"
KEY = "tkn_sdk_compat"
TASKS = {
    "greet": {"output": {"message": "hello from the emulator"}, "duration": 1.2, "task_id": "tsk_greet"},
    "broken": {"fail": True, "error": "quota exceeded"},
}


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tasks = tmp_path_factory.mktemp("sdk") / "tasks.json"
    tasks.write_text(json.dumps(TASKS))
    command = [sys.executable, "-m", "airflow_provider_airplane.testing", "--port", "0", "--api-key", KEY]
    process = subprocess.Popen(
        [*command, "--tasks", str(tasks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://"), process.communicate(timeout=30)[1]
    yield url
    process.terminate()
    process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.fixture
def client(emulator_url: str) -> EmulatorClient:
    client = EmulatorClient(emulator_url)
    client.reset()
    return client


def run_json(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any]]:
    """Run ``command`` and parse the JSON line it prints last."""
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output (exit {done.returncode}): {done.stderr}"
    return done.returncode, json.loads(lines[-1])


# Python SDK -------------------------------------------------------------------------------------


def python_sdk(url: str, slug: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    env = {
        **os.environ,
        "AIRPLANE_API_HOST": url,
        "AIRPLANE_TOKEN": KEY,
        "AIRPLANE_ENV_ID": "env_sdk_test",
        "AIRPLANE_TEAM_ID": "tea_sdk_test",
    }
    return run_json([sys.executable, str(HERE / "python_execute.py"), slug, json.dumps(params)], env, HERE)


def assert_retried_execute_started_one_run(client: EmulatorClient) -> None:
    """The injected 503 was retried with the same Idempotency-Key, and only one run exists."""
    executes = [entry for entry in client.request_log() if entry["path"] == "/v0/tasks/execute"]
    assert [entry["status"] for entry in executes] == [503, 200]
    assert executes[0]["headers"]["Idempotency-Key"] == executes[1]["headers"]["Idempotency-Key"]
    assert len(client.runs()) == 1


def test_python_sdk_executes_waits_and_reads_output(emulator_url: str, client: EmulatorClient) -> None:
    client.inject_fault("/v0/tasks/execute", status=503)
    code, run = python_sdk(emulator_url, "greet", {"name": "Ada"})
    assert code == 0, run
    assert_retried_execute_started_one_run(client)
    assert run["status"] == "Succeeded"
    assert run["output"] == {"message": "hello from the emulator"}
    assert run["taskID"] == "tsk_greet"
    seen = client.runs()
    assert [(r["id"], r["paramValues"], r["envID"]) for r in seen] == [
        (run["id"], {"name": "Ada"}, "env_sdk_test")
    ]
    counts = client.request_counts()
    assert counts["/v0/tasks/execute"] == 2
    assert counts["/v0/runs/getOutputs"] == 1
    assert counts["/v0/runs/get"] >= 2  # it polled while the run was in progress
    kinds = {entry["headers"].get("X-Airplane-Client-Kind") for entry in client.request_log()}
    assert kinds == {"sdk/python"}


def test_python_sdk_sees_a_failed_run_with_its_error(emulator_url: str, client: EmulatorClient) -> None:
    code, run = python_sdk(emulator_url, "broken", {})
    assert code == 3
    assert run == {"error": "quota exceeded", "status": "Failed"}


# Node SDK ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_project() -> Path:
    """``node/`` with its locked dependencies installed; ``npm ci`` runs only when the lock changed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:  # the collection hook has checked; only a changed PATH gets here
        pytest.fail("node and npm are needed for the Node SDK test: run make test-deps")
    lock = NODE_PROJECT / "package-lock.json"
    marker = NODE_PROJECT / "node_modules" / ".emulator-test-lock.sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if not (marker.exists() and marker.read_text() == digest):
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_PROJECT,
            check=True,
            timeout=600,
        )
        marker.write_text(digest)
    return NODE_PROJECT


def node_sdk(project: Path, url: str, slug: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "AIRPLANE_API_HOST": url, "AIRPLANE_API_KEY": KEY, "AIRPLANE_ENV_SLUG": "sdk-test"}
    env.pop("AIRPLANE_TOKEN", None)  # the Node SDK refuses a token and an API key together
    node = shutil.which("node")
    assert node is not None
    return run_json([node, "execute.js", slug, json.dumps(params)], env, project)


@pytest.mark.node
def test_node_sdk_executes_waits_and_reads_output(
    node_project: Path, emulator_url: str, client: EmulatorClient
) -> None:
    client.inject_fault("/v0/tasks/execute", status=503)
    code, run = node_sdk(node_project, emulator_url, "greet", {"name": "Grace", "n": 2})
    assert code == 0, run
    assert_retried_execute_started_one_run(client)
    assert run["status"] == "Succeeded"
    assert run["output"] == {"message": "hello from the emulator"}
    assert run["taskID"] == "tsk_greet"
    seen = client.runs()
    assert [(r["id"], r["paramValues"], r["envSlug"]) for r in seen] == [
        (run["id"], {"name": "Grace", "n": 2}, "sdk-test")
    ]
    counts = client.request_counts()
    assert counts["/v0/tasks/execute"] == 2
    assert counts["/v0/runs/getOutputs"] == 1
    assert counts["/v0/runs/get"] >= 2
    log = client.request_log()
    assert {entry["headers"].get("X-Airplane-Client-Kind") for entry in log} == {"sdk/js"}
    assert all(entry["headers"]["X-Airplane-API-Key"] == "***" for entry in log)


@pytest.mark.node
def test_node_sdk_sees_a_failed_run_with_its_error(node_project: Path, emulator_url: str) -> None:
    code, run = node_sdk(node_project, emulator_url, "broken", {})
    assert code == 3
    assert run["status"] == "Failed"
    assert "quota exceeded" in run["error"]
