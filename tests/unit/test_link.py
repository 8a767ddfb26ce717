"""AirplaneRunLink reads XCom only, so it survives reschedule, deferral and a fresh operator instance;
each try also records its run in the task state store, which the API server's per-try link reads.

Outside a task runner XCom has no backend to read, so ``XCom.get_value`` is replaced by a dict here;
the real read is covered by the DAG runs in test_example_dags.py (the ``_link_AirplaneRunLink`` XCom).
The per-try link through a real api-server is tests/integration/test_links_in_airflow.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_airplane.exceptions import AirplaneRunFailedError
from airflow_provider_airplane.links import airplane as links
from airflow_provider_airplane.links.airplane import STATE_STORE_RUN_URLS, AirplaneRunLink, url_of_try
from airflow_provider_airplane.links.per_try import AirplanePlugin, AirplaneRunPerTryLink
from airflow_provider_airplane.operators.airplane import (
    AirplaneCancelRunOperator,
    AirplaneExecuteTaskOperator,
    AirplaneGetRunOutputsOperator,
)
from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor
from airflow_provider_airplane.testing import AirplaneEmulator
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

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
    kwargs.setdefault("slug", "s")
    return AirplaneExecuteTaskOperator(task_id="t", **kwargs)


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


class DictStore:
    """Airflow 3.3's ``task_state_store`` (``get``/``set``), kept in a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def test_each_try_records_the_run_it_waited_for(
    task_ctx: Callable[..., dict[str, Any]], airplane_conn: AirplaneEmulator
) -> None:
    airplane_conn.add_task("flaky", fail=True, error="first run breaks", duration=0.2)
    store = DictStore()
    with pytest.raises(AirplaneRunFailedError):
        fresh_operator(slug="flaky", poll_interval=0.1).execute(
            {**task_ctx(try_number=1), "task_state_store": store}
        )
    airplane_conn.add_task("flaky", output={"ok": True}, duration=0.2)
    ctx = {**task_ctx(try_number=2), "task_state_store": store}
    fresh_operator(slug="flaky", poll_interval=0.1).execute(ctx)

    failed, succeeded = (run["id"] for run in airplane_conn.runs())
    urls = store.values[STATE_STORE_RUN_URLS]
    assert urls == {"1": f"https://app.example.test/runs/{failed}", "2": ctx["ti"].xcoms["airplane_run_url"]}
    assert urls["2"].endswith(succeeded)


def test_a_store_that_fails_leaves_the_xcom_link(
    task_ctx: Callable[..., dict[str, Any]], airplane_conn: AirplaneEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore(DictStore):
        def set(self, key: str, value: Any) -> None:
            raise RuntimeError("store down")

    airplane_conn.add_task("quick", output={"ok": True})
    ctx = {**task_ctx(), "task_state_store": BrokenStore()}
    assert fresh_operator(slug="quick", poll_interval=0.1).execute(ctx) == {"ok": True}
    assert ctx["ti"].xcoms["airplane_run_url"]
    assert "Could not record the run of try 1 in the task state store: store down" in caplog.text


@pytest.mark.parametrize(
    ("urls", "try_number", "expected"),
    [
        ({"1": "u1", "2": "u2"}, 1, "u1"),
        ({"1": "u1", "2": "u2"}, 2, "u2"),
        ({"2": "u2"}, 1, ""),  # try 1 never had a run (e.g. the API refused to start it)
        ({"1": "u1"}, 2, None),  # try 2 has no run yet, or could not record it: the XCom decides
        (None, 1, None),  # no store, or [state_store] clear_on_success cleared it: the XCom decides
        ("not a dict", 1, None),
    ],
)
def test_url_of_try(urls: Any, try_number: int, expected: str | None) -> None:
    assert url_of_try(urls, try_number) == expected


def test_plugin_replaces_the_link_of_every_operator_on_the_api_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API server's deserialized operator gets the plugin's link (Airflow 3.3+), matched by class."""
    if not AIRFLOW_V_3_3_PLUS:
        assert AirplanePlugin.operator_extra_links == []
        return
    from airflow import plugins_manager
    from airflow.serialization.serialized_objects import OperatorSerialization

    monkeypatch.setattr(
        plugins_manager, "get_operator_extra_links", lambda: AirplanePlugin.operator_extra_links
    )
    for operator in (
        fresh_operator(),
        AirplaneRunSensor(task_id="s", run_id="r"),
        AirplaneGetRunOutputsOperator(task_id="o", run_id="r"),
        AirplaneCancelRunOperator(task_id="c", run_id="r"),
    ):
        encoded = OperatorSerialization.serialize_operator(operator)
        served = OperatorSerialization.deserialize_operator(encoded)
        (served_link,) = served.operator_extra_links
        assert isinstance(served_link, AirplaneRunPerTryLink)
        assert served_link.name == "Airplane Run"
        assert served_link.xcom_key == "_link_AirplaneRunLink"  # the XCom the worker writes, as fallback
