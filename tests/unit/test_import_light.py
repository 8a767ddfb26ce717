"""Every Airflow process imports the package and calls get_provider_info(), and every DAG file imports the
operators and the sensor: none of them may pull in the HTTP clients, which only a running task (requests)
or the triggerer (aiohttp) needs."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
import airflow_provider_airplane
from airflow_provider_airplane.get_provider_info import get_provider_info

HEAVY = ("requests", "aiohttp", "airflow_provider_airplane.hooks", "airflow_provider_airplane.hooks.airplane")

def loaded():
    return sorted(name for name in HEAVY if name in sys.modules)

get_provider_info()
light = loaded()
import airflow_provider_airplane.hooks.airplane  # proves the probe would notice
print(json.dumps({"light": light, "after_hook": loaded()}))
"""

_DAG_FILE_PROBE = """
import asyncio, json, sys
from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, task
import airflow_provider_airplane.links.airplane
import airflow_provider_airplane.operators.airplane
import airflow_provider_airplane.sensors.airplane
import airflow_provider_airplane.triggers.airplane

CLIENTS = ("aiohttp", "requests")

def loaded():
    return sorted(name for name in CLIENTS if name in sys.modules)

dag_file = loaded()
from airflow_provider_airplane.hooks._exchange import HttpRequest
from airflow_provider_airplane.hooks.airplane import AirplaneAsyncHook, AirplaneHook

AirplaneHook("unused").get_conn()  # a task's first call creates the session

async def one_exchange():
    async with AirplaneAsyncHook("unused") as hook:
        await hook._exchange(HttpRequest("GET", "http://127.0.0.1:9/v0/runs/list", {}, {}, None, 5.0))

asyncio.run(one_exchange())  # the triggerer's first request
print(json.dumps({"dag_file": dag_file, "after_calls": loaded()}))
"""


def _probe(code: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_package_and_provider_info_import_no_client_or_hook() -> None:
    found = _probe(_PROBE)
    assert found["light"] == []
    assert found["after_hook"] == [
        "airflow_provider_airplane.hooks",
        "airflow_provider_airplane.hooks.airplane",
    ]


def test_dag_file_imports_load_no_http_client() -> None:
    """Operators, sensor, trigger and link import without aiohttp or requests; the hooks load them on use."""
    found = _probe(_DAG_FILE_PROBE)
    assert found["dag_file"] == []
    assert found["after_calls"] == ["aiohttp", "requests"]
