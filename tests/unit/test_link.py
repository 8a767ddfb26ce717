"""AirplaneRunLink reads XCom only, so it survives reschedule, deferral and a fresh operator instance.

Outside a task runner XCom has no backend to read, so ``XCom.get_value`` is replaced by a dict here;
the real read is covered by the DAG runs in test_example_dags.py (the ``_link_AirplaneRunLink`` XCom).
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_airplane.links import airplane as links
from airflow_provider_airplane.links.airplane import AirplaneRunLink
from airflow_provider_airplane.operators.airplane import (
    AirplaneCancelRunOperator,
    AirplaneExecuteTaskOperator,
    AirplaneGetRunOutputsOperator,
)
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.testing import AirplaneEmulator

TI_KEY: Any = object()


@pytest.fixture
def xcoms(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    stored: dict[str, Any] = {}

    class FakeXCom:
        @staticmethod
        def get_value(*, ti_key: Any, key: str) -> Any:
            assert ti_key is TI_KEY
            return stored.get(key)

    monkeypatch.setattr(links, "XCom", FakeXCom)
    return stored


def fresh_operator(**kwargs: Any) -> AirplaneExecuteTaskOperator:
    return AirplaneExecuteTaskOperator(task_id="t", slug="s", **kwargs)


def test_link_from_run_url_xcom(xcoms: dict[str, Any]) -> None:
    xcoms.update(airplane_run_id="run1", airplane_run_url="https://app.airplane.dev/runs/run1")
    assert AirplaneRunLink().get_link(fresh_operator(), ti_key=TI_KEY) == "https://app.airplane.dev/runs/run1"


def test_link_built_from_run_id_and_app_url(xcoms: dict[str, Any], airplane_conn: AirplaneEmulator) -> None:
    xcoms.update(airplane_run_id="run7")
    assert AirplaneRunLink().get_link(fresh_operator(), ti_key=TI_KEY) == "https://app.example.test/runs/run7"


def test_link_empty_when_no_run(xcoms: dict[str, Any]) -> None:
    assert AirplaneRunLink().get_link(fresh_operator(), ti_key=TI_KEY) == ""


def test_link_empty_when_connection_missing(xcoms: dict[str, Any]) -> None:
    xcoms.update(airplane_run_id="run7")
    operator = fresh_operator(airplane_conn_id="no_such_connection")
    assert AirplaneRunLink().get_link(operator, ti_key=TI_KEY) == ""


@pytest.mark.parametrize(
    "operator",
    [
        fresh_operator(),
        AirplaneRunSensor(task_id="s", run_id="r"),
        AirplaneGetRunOutputsOperator(task_id="o", run_id="r"),
        AirplaneCancelRunOperator(task_id="c", run_id="r"),
    ],
)
def test_every_operator_has_the_link(operator: Any) -> None:
    names = [link.name for link in operator.operator_extra_links]
    assert names == ["Airplane Run"]
