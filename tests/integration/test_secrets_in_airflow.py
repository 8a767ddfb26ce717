"""The Airplane API key never lands anywhere Airflow keeps things: logs, XCom, rendered fields, triggers.

DAGs run through the real scheduler, worker and triggerer of the session stack (its key is
``tkn_integration_5ecret``, distinctive enough to search for): a deferred task that succeeds, a deferred
task whose run fails, and a task whose execute call answers with an error that echoes the key. Then
every log file, every text value in the metadata DB and the decrypted kwargs of the trigger rows
(captured while the task was deferred: Airflow deletes them afterwards) are searched.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import AirflowStack, wait_until
from cryptography.fernet import Fernet

from airflow_provider_airplane.testing import EmulatorClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = "run"
COMPONENT_LOGS = ("api-server.log", "scheduler.log", "dag-processor.log", "triggerer.log")


def needles(key: str) -> list[str]:
    """The key, and the key without its ``tkn_`` prefix (a partial leak is a leak too)."""
    return [key, key.removeprefix("tkn_")]


def db_path(stack: AirflowStack) -> Path:
    return stack.home / "airflow.db"


def query(stack: AirflowStack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the stack's SQLite metadata DB without writing to it."""
    with sqlite3.connect(f"file:{db_path(stack)}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


def all_db_text(stack: AirflowStack) -> Iterator[tuple[str, str, str]]:
    """(table, column, text) of every text or blob value in every table of the metadata DB."""
    tables = [row[0] for row in query(stack, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        columns = [row[1] for row in query(stack, f'PRAGMA table_info("{table}")')]
        for row in query(stack, f'SELECT * FROM "{table}"'):
            for column, value in zip(columns, row, strict=True):
                if isinstance(value, bytes):
                    yield table, column, value.decode("utf-8", errors="replace")
                elif isinstance(value, str):
                    yield table, column, value


def decrypt_kwargs(stack: AirflowStack, encrypted: str) -> str:
    """A trigger row's kwargs as JSON text (Airflow encrypts them with the stack's Fernet key)."""
    if encrypted.startswith("{"):
        return encrypted
    return Fernet(stack._fernet_key.encode()).decrypt(encrypted.encode()).decode()


def capture_trigger(stack: AirflowStack, run_id: str) -> str:
    """The decrypted kwargs of the trigger row that watches ``run_id``, while it exists."""

    def probe() -> str | None:
        for (encrypted,) in query(stack, "SELECT kwargs FROM trigger"):
            text = decrypt_kwargs(stack, encrypted)
            if run_id in text:
                return text
        return None

    return wait_until(probe, timeout=20, interval=0.2, what=f"trigger row of run {run_id}")


def run_id_xcom(stack: AirflowStack, dag_id: str, dag_run_id: str) -> str:
    value: str = wait_until(
        lambda: stack.xcom(dag_id, dag_run_id, TASK, "airplane_run_id"), timeout=20, what="run id XCom"
    )
    return value


def task_logs(stack: AirflowStack, dag_id: str) -> list[Path]:
    return sorted((stack.home / "logs").glob(f"dag_id={dag_id}/**/*.log"))


def logged_text(stack: AirflowStack, dag_id: str, *words: str) -> str:
    """The task logs of ``dag_id`` once they contain every one of ``words``."""

    def probe() -> str | None:
        text = "".join(p.read_text(errors="replace") for p in task_logs(stack, dag_id))
        return text if all(word in text for word in words) else None

    return wait_until(probe, timeout=30, what=f"{words} in the task logs of {dag_id}")


def test_the_api_key_appears_nowhere(airflow_stack: AirflowStack, emulator_client: EmulatorClient) -> None:
    stack = airflow_stack
    key = stack.api_key
    assert key.startswith("tkn_"), "the stack's key should look like an Airplane key"
    assert "5ecret" in key, "the stack's key should carry a marker no other text has"
    # Runs long enough for the scheduler to see the deferral before the trigger fires: on Airflow 3.1 a
    # resume that overtakes the deferral's executor event is failed by the scheduler without running.
    emulator_client.add_task("secrets_ok", output={"rows": 3}, duration=12)
    emulator_client.add_task("secrets_fail", fail=True, error="quota exceeded", duration=12)

    # 1. An API error whose body echoes the key (faults match by path: nothing else executes meanwhile).
    emulator_client.inject_fault(
        "/v0/tasks/execute", status=400, body=json.dumps({"error": f"unknown key {key} for this team"})
    )
    error_run = stack.trigger_dag("it_secrets_api_error")
    stack.wait_for_ti_state("it_secrets_api_error", error_run, TASK, ["failed"], timeout=90)

    # 2. A deferred success and a deferred failure; the trigger rows are read while they wait.
    ok_run = stack.trigger_dag("it_secrets_deferred")
    fail_run = stack.trigger_dag("it_secrets_failing")
    stack.wait_for_ti_state("it_secrets_deferred", ok_run, TASK, ["deferred"], timeout=90)
    ok_airplane_run = run_id_xcom(stack, "it_secrets_deferred", ok_run)
    trigger_kwargs = [capture_trigger(stack, ok_airplane_run)]
    stack.wait_for_ti_state("it_secrets_deferred", ok_run, TASK, ["success"], timeout=90)
    stack.wait_for_ti_state("it_secrets_failing", fail_run, TASK, ["failed"], timeout=90)

    # The searches found what they search: otherwise "no key" would prove nothing.
    assert '"airplane_conn_id"' in trigger_kwargs[0]
    assert "airplane_default" in trigger_kwargs[0]

    xcoms = query(stack, "SELECT dag_id, key, value FROM xcom WHERE dag_id LIKE 'it_secrets_%'")
    keys = {(dag_id, xcom_key) for dag_id, xcom_key, _ in xcoms}
    assert ("it_secrets_deferred", "return_value") in keys
    assert ("it_secrets_deferred", "airplane_run_id") in keys
    assert ("it_secrets_failing", "airplane_run_url") in keys

    rendered = query(
        stack,
        "SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id LIKE 'it_secrets_%'",
    )
    assert len(rendered) == 3
    assert all("airplane_default" in str(row[0]) for row in rendered)

    logs_dir = stack.home / "logs"
    # The task runner may still be writing a log when the state changes: wait for the words.
    failing_text = logged_text(stack, "it_secrets_failing", "AirplaneRunFailedError", "quota exceeded")
    error_text = logged_text(
        stack, "it_secrets_api_error", "AirplaneApiError", "unknown key *** for this team"
    )
    logged_text(stack, "it_secrets_deferred", ok_airplane_run)
    assert "Deferring until Airplane run" in failing_text
    assert error_text
    for name in COMPONENT_LOGS:
        assert (logs_dir / name).stat().st_size > 0, f"{name} is empty"
    # The emulator prints its key on start: proof that the file search below would see a leak.
    assert key in (logs_dir / "emulator.log").read_text(errors="replace")

    # 3. The key is nowhere.
    leaks: list[str] = []
    searched = 0
    for path in sorted(p for p in logs_dir.rglob("*") if p.is_file() and p.name != "emulator.log"):
        text = path.read_text(errors="replace")
        searched += 1
        leaks += [f"log {path.relative_to(logs_dir)}" for needle in needles(key) if needle in text]
    db_values = 0
    for table, column, text in all_db_text(stack):
        db_values += 1
        leaks += [f"db {table}.{column}" for needle in needles(key) if needle in text]
    for text in trigger_kwargs:
        leaks += ["trigger kwargs" for needle in needles(key) if needle in text]
    assert searched >= len(COMPONENT_LOGS) + 3
    assert db_values > 0
    assert not leaks, f"the API key leaked into: {sorted(set(leaks))}"
