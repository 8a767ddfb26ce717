"""Run logs through real Airflow (``dag.test()``) against the emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_airplane.testing import AirplaneEmulator

RunDag = Callable[..., Any]
GET_LOGS = "/v0/runs/getLogs"


@pytest.fixture
def chatty(airplane_conn: AirplaneEmulator) -> AirplaneEmulator:
    airplane_conn.add_task("chatty", logs=250, duration=2.0, output={"ok": True})
    airplane_conn.add_task("chatty_fails", logs=30, duration=1.0, fail=True, error="disk full")
    return airplane_conn


def test_probe(chatty: AirplaneEmulator, run_dag: RunDag, capfd: pytest.CaptureFixture[str]) -> None:
    result = run_dag("test_airplane_logs_worker")
    out, err = capfd.readouterr()
    print(result.state, chatty.request_counts())
    print(len(out), len(err))
    lines = [l for l in (out + err).splitlines() if "[airplane]" in l]
    print(len(lines), lines[:3], lines[-3:])
    assert False
