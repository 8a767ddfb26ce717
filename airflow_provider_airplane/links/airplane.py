"""The "Airplane Run" button on a task, read from XCom so every try, segment and instance shows it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

    from airflow_provider_airplane.hooks.airplane import AirplaneHook

XCOM_RUN_ID = "airplane_run_id"
XCOM_RUN_URL = "airplane_run_url"

log = logging.getLogger(__name__)


def push_run_xcoms(context: Context, hook: AirplaneHook, run_id: str) -> str:
    """Record the run id and URL as soon as the run is known (the link and users read them).

    Returns the URL.
    """
    run_url = hook.get_run_url(run_id)
    ti = context["ti"]
    ti.xcom_push(key=XCOM_RUN_ID, value=run_id)
    ti.xcom_push(key=XCOM_RUN_URL, value=run_url)
    return run_url


class AirplaneRunLink(BaseOperatorLink):
    """Link to the Airplane run of a task instance.

    The URL comes from XCom, never from the operator object: a resumed deferral, a reschedule and the
    API server each see a fresh instance, and the XCom is what survives them.
    """

    name = "Airplane Run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url: Any = XCom.get_value(ti_key=ti_key, key=XCOM_RUN_URL)
        if url:
            return str(url)
        run_id: Any = XCom.get_value(ti_key=ti_key, key=XCOM_RUN_ID)
        if not run_id:
            return ""
        # Only the id was recorded (e.g. by an older version): build the URL from the connection's app_url.
        from airflow_provider_airplane.hooks.airplane import AirplaneHook

        conn_id = getattr(operator, "airplane_conn_id", "airplane_default")
        env_slug = getattr(operator, "env_slug", None)
        if not isinstance(env_slug, str) or "{" in env_slug:  # unset, or a template not rendered here
            env_slug = None
        try:
            return AirplaneHook(conn_id, env_slug=env_slug).get_run_url(str(run_id))
        except Exception as err:  # a link must never fail the task that renders it
            log.warning("Could not build the Airplane run link for run %s: %s", run_id, err)
            return ""
