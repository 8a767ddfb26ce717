"""Shared test set-up: a private AIRFLOW_HOME with SQLite, and a real emulator per test.

The environment is set before anything imports Airflow, which reads it once at import.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
API_KEY = "tkn_test_5ecret_do_not_log"

# Set up once per process, even if this module is imported a second time (`from tests.conftest import`).
_marker = os.environ.get("_AIRPLANE_TEST_HOME", "")
if _marker.startswith(f"{os.getpid()}:"):
    _home = Path(_marker.split(":", 1)[1])
else:
    _home = Path(tempfile.mkdtemp(prefix="airplane-airflow-home-"))
    os.environ["_AIRPLANE_TEST_HOME"] = f"{os.getpid()}:{_home}"
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
# One DAG folder for dag.test(): the example DAGs as they ship, plus the DAGs only tests use.
DAGS_FOLDER = _home / "dags"
DAGS_FOLDER.mkdir(exist_ok=True)
for source in [*(REPO / "example_dags").glob("*.py"), *(REPO / "tests" / "dags").glob("*.py")]:
    shutil.copy(source, DAGS_FOLDER / source.name)
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

from airflow_provider_airplane.testing import AirplaneEmulator  # noqa: E402

# Markers of tests that need Debian packages (scripts/ensure-test-deps.sh checks and installs them).
SYSTEM_PACKAGE_MARKERS = ("cluster", "browser", "node")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase",
        choices=("parallel", "alone"),
        help="only the tests that start no Airflow stack (parallel) or only those that do (alone, the "
        "'integration' marker); scripts/run_tests.py runs the first on several processes, then the second",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    phase = config.getoption("--phase")
    if phase is None:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        starts_a_stack = item.get_closest_marker("integration") is not None
        (kept if starts_a_stack == (phase == "alone") else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop before the first test when a collected test needs a Debian package that is missing.

    It names the command that installs it (``make test`` runs it first), where a fixture would fail deep
    inside the run or the test would be skipped.
    """
    if session.config.option.collectonly:
        return
    parts = sorted({m for i in session.items for m in SYSTEM_PACKAGE_MARKERS if i.get_closest_marker(m)})
    if not parts:
        return
    check = subprocess.run(
        [REPO / "scripts" / "ensure-test-deps.sh", "--check", *parts], capture_output=True, text=True
    )
    if check.returncode:
        pytest.exit(check.stderr.strip(), returncode=pytest.ExitCode.USAGE_ERROR)


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


# --- Operators, sensor and example DAGs: a metadata DB and a way to run a DAG for real. ---

from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

EXAMPLE_TASKS = REPO / "example_dags" / "airplane_tasks.json"


def load_example_tasks(emu: AirplaneEmulator) -> None:
    """Register the tasks the example DAGs use, as the demo does with ``--tasks``."""
    for slug, settings in json.loads(EXAMPLE_TASKS.read_text()).items():
        emu.add_task(slug, **settings)


@pytest.fixture
def example_emulator(airplane_conn: AirplaneEmulator) -> AirplaneEmulator:
    """``airplane_default`` points at an emulator that knows the example DAGs' tasks."""
    load_example_tasks(airplane_conn)
    return airplane_conn


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh SQLite metadata DB in the private AIRFLOW_HOME, once per session."""
    from airflow.utils import db

    db.resetdb()
    _reuse_in_process_execution_api()


def _reuse_in_process_execution_api() -> None:
    """Build ``dag.test()``'s in-process Execution API once per session, as Airflow 3.3 does.

    Airflow 3.1 and 3.2 build a new one (a Cadwyn app, about 6.5 s of CPU on 3.1.8) for every task instance.
    This is the cache of apache/airflow#65235 (``functools.lru_cache`` on ``in_process_api_server``), a no-op
    where Airflow has it. Not its other half: a trigger run in-process keeps the last task's DAG-bag
    override, a ``DBDagBag`` over the same database, where 3.3 drops it.
    """
    from airflow.sdk.execution_time import supervisor

    if not hasattr(supervisor.in_process_api_server, "cache_clear"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(supervisor.in_process_api_server)


def dag_bag() -> Any:
    """The DagBag of DAGS_FOLDER (its module moved in Airflow 3.2)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=str(DAGS_FOLDER))


@dataclass
class DagResult:
    """What a finished ``dag.test()`` left in the DB."""

    state: str
    states: dict[tuple[str, int], str]
    xcoms: dict[tuple[str, int, str], Any]

    def state_of(self, task_id: str, map_index: int = -1) -> str:
        return self.states[(task_id, map_index)]

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return self.xcoms.get((task_id, map_index, key))


@pytest.fixture
def run_dag(airflow_db: None) -> Callable[..., DagResult]:
    """Run a DAG from DAGS_FOLDER with ``dag.test()`` (real task runner, triggers inline)."""

    def run(dag_id: str, *, conf: dict[str, Any] | None = None) -> DagResult:
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        bag = dag_bag()
        assert not bag.import_errors, bag.import_errors
        dag_run = bag.get_dag(dag_id).test(run_conf=conf)
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id
                )
            ).all()
            rows = session.scalars(
                select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id)
            ).all()
            return DagResult(
                state=str(dag_run.state),
                states={(ti.task_id, ti.map_index): str(ti.state) for ti in tis},
                xcoms={(x.task_id, x.map_index, x.key): XComModel.deserialize_value(x) for x in rows},
            )

    return run


@dataclass
class FakeTI:
    """The slice of a task instance the provider's operators use, recording pushed XComs.

    For calling ``execute``/``execute_complete`` directly; runs through Airflow use ``run_dag``.
    """

    dag_id: str = "unit_dag"
    task_id: str = "unit_task"
    run_id: str = "manual__2026-01-01T00:00:00+00:00"
    map_index: int = -1
    try_number: int = 1

    def __post_init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


def task_context(ti: FakeTI | None = None) -> dict[str, Any]:
    """A minimal execution context around ``ti`` (a new FakeTI by default)."""
    ti = ti or FakeTI()
    return {"ti": ti, "task_instance": ti}


@pytest.fixture
def task_ctx() -> Callable[..., dict[str, Any]]:
    """Factory of execution contexts around a new FakeTI (``task_ctx(try_number=2)``); ``ctx["ti"]``.

    A fixture rather than an import: importing this conftest from a test module would run its set-up a
    second time, with another AIRFLOW_HOME.
    """

    def make(**ti_fields: Any) -> dict[str, Any]:
        return task_context(FakeTI(**ti_fields))

    return make


@pytest.fixture
def dags_folder_bag() -> Any:
    """The DagBag of DAGS_FOLDER (example DAGs and test DAGs)."""
    return dag_bag()
