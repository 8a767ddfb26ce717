"""Shared test set-up: a private AIRFLOW_HOME with SQLite, and a real emulator per test.

The environment is set before anything imports Airflow, which reads it once at import.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
API_KEY = "tkn_test_5ecret_do_not_log"

_home = Path(tempfile.mkdtemp(prefix="airplane-airflow-home-"))
# One DAG folder for dag.test(): the example DAGs as they ship, plus the DAGs only tests use.
DAGS_FOLDER = _home / "dags"
DAGS_FOLDER.mkdir()
for source in [*(REPO / "example_dags").glob("*.py"), *(REPO / "tests" / "dags").glob("*.py")]:
    shutil.copy(source, DAGS_FOLDER / source.name)
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

from airflow_provider_airplane.testing import AirplaneEmulator  # noqa: E402


def connection_json(emu: AirplaneEmulator, **extra: object) -> str:
    """The ``AIRFLOW_CONN_*`` value pointing at ``emu``."""
    return json.dumps(
        {
            "conn_type": "airplane",
            "host": emu.url,
            "password": emu.api_key,
            "extra": {"env_slug": "prod", "app_url": "https://app.example.test", **extra},
        }
    )


@pytest.fixture
def emulator() -> Iterator[AirplaneEmulator]:
    """A fresh in-process emulator over real HTTP on 127.0.0.1."""
    with AirplaneEmulator(api_key=API_KEY) as emu:
        yield emu


@pytest.fixture
def airplane_conn(emulator: AirplaneEmulator, monkeypatch: pytest.MonkeyPatch) -> AirplaneEmulator:
    """``airplane_default`` points at the emulator (through the environment, as users configure it)."""
    monkeypatch.setenv("AIRFLOW_CONN_AIRPLANE_DEFAULT", connection_json(emulator))
    return emulator
