"""The "Airplane Run" link as the API server renders it: each try its own run (Airflow 3.3+).

Since Airflow 3.2 the extra-links endpoint takes ``try_number`` and hands the link that try's key, but it
rebuilds every link of a serialized DAG as an ``XComOperatorLink`` reading one XCom row, which each retry
clears and the latest try rewrites: every try shows the latest try's run (apache/airflow#71471). A link
that a plugin registers for the provider's operators replaces that one on the API server only (workers
still record the link through :class:`~airflow_provider_airplane.links.airplane.AirplaneRunLink`); this
one reads the URL each try kept in the task state store, which retries do not clear (Airflow 3.3+).
Below 3.3 the plugin registers nothing, so Airflow's own link (the latest try's run) stays.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin
from airflow.providers.common.compat.sdk import BaseOperatorLink

from airflow_provider_airplane.links.airplane import STATE_STORE_RUN_URLS, AirplaneRunLink, url_of_try
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey

log = logging.getLogger(__name__)


class AirplaneRunPerTryLink(BaseOperatorLink):
    """The run the requested try waited for; without a record of it, the latest try's (the XCom link)."""

    name = AirplaneRunLink.name

    @property
    def operators(self) -> list[type]:  # type: ignore[override]
        """Imported on first use, by the API server: loading the plugin in any process stays cheap."""
        from airflow_provider_airplane.operators.airplane import (
            AirplaneCancelRunOperator,
            AirplaneExecuteTaskOperator,
            AirplaneGetRunOutputsOperator,
        )
        from airflow_provider_airplane.sensors.airplane import AirplaneRunSensor

        return [
            AirplaneExecuteTaskOperator,
            AirplaneRunSensor,
            AirplaneGetRunOutputsOperator,
            AirplaneCancelRunOperator,
        ]

    @property
    def xcom_key(self) -> str:
        return AirplaneRunLink().xcom_key

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:  # type: ignore[override]
        url = url_of_try(_recorded_urls(ti_key), ti_key.try_number)
        if url is not None:
            return url
        from airflow.serialization.definitions.operatorlink import XComOperatorLink

        return XComOperatorLink(name=self.name, xcom_key=self.xcom_key).get_link(operator, ti_key=ti_key)


def _recorded_urls(ti_key: TaskInstanceKey) -> Any:
    """``{"<try>": url}`` the task instance's tries kept in the task state store (None if nothing)."""
    from airflow.state import TaskScope, get_state_backend

    scope = TaskScope(
        dag_id=ti_key.dag_id, run_id=ti_key.run_id, task_id=ti_key.task_id, map_index=ti_key.map_index
    )
    try:
        raw = get_state_backend().get(scope, STATE_STORE_RUN_URLS)
        return json.loads(raw) if raw else None
    except Exception as err:  # a link must never fail the page that renders it
        log.warning("Could not read the Airplane runs of %s from the task state store: %s", ti_key, err)
        return None


class AirplanePlugin(AirflowPlugin):
    """Registered through the provider's ``plugins`` entry: the per-try link on Airflow 3.3+."""

    name = "airplane"
    operator_extra_links = [AirplaneRunPerTryLink()] if AIRFLOW_V_3_3_PLUS else []
