"""The provider's metrics, sent through Airflow's ``Stats``: statsd, Datadog or OpenTelemetry, whatever
``[metrics]`` configures, and nothing when it configures none. Every name is here and in
docs/observability.md.

Each name carries its one dimension (a status, an endpoint: a few values each) so that plain statsd, which
drops tags, still tells them apart; the same values go in tags for the backends that index them. Never a
run id, a DAG id or anything else without a small bound.
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_airplane.hooks._exchange import Answer, Failure
    from airflow_provider_airplane.models import AirplaneRun

log = logging.getLogger(__name__)

PREFIX = "airplane"

_stats: Any = None
_waits = 0


def _backend() -> Any:
    """Airflow's ``Stats``, imported on first use (every DAG file imports the operators)."""
    global _stats
    if _stats is None:
        from airflow.providers.common.compat.sdk import Stats

        _initialize_sdk_stats()
        _stats = Stats
    return _stats


def _initialize_sdk_stats() -> None:
    """Airflow 3.2+ keeps a second ``Stats`` for the task SDK: set it up from ``[metrics]`` where nobody did.

    The task runner sets it up, and on 3.2.2 and 3.3.2 so does importing ``airflow.sdk.serde`` (the
    triggerer's runner and ``dags test`` do), so this is a fallback for a process that did neither."""
    try:
        from airflow.sdk._shared.observability.metrics import stats
        from airflow.sdk.configuration import conf
        from airflow.sdk.observability.metrics.stats_utils import get_stats_factory
    except ImportError:  # Airflow 3.1: one Stats, configured on first use
        return
    if getattr(stats, "_factory", "") is None:
        stats.initialize(
            factory=get_stats_factory(),
            export_legacy_names=conf.getboolean("metrics", "legacy_names_on", fallback=False),
        )


def _emit(kind: str, name: str, value: Any = None, tags: dict[str, str] | None = None) -> None:
    """One metric; a broken metrics backend never fails an API call or a task."""
    try:
        stats = _backend()
        stat = f"{PREFIX}.{name}"
        if kind == "incr":
            stats.incr(stat, tags=tags)
        elif kind == "timing":
            stats.timing(stat, timedelta(seconds=value), tags=tags)
        else:
            stats.gauge(stat, value, tags=tags)
    except Exception:
        log.debug("Could not send metric %s.%s", PREFIX, name, exc_info=True)


def endpoint_name(path: str) -> str:
    """``/runs/get`` -> ``runs_get``: a metric name segment for one of the API's few endpoints."""
    return path.strip("/").replace("/", "_") or "root"


def api_outcome(path: str, outcome: Answer | Failure) -> None:
    """One attempt of an API call: ``api.request.<endpoint>.<2xx|4xx|5xx|...|no_answer>``, and 429s apart."""
    status = getattr(outcome, "status", None)
    status_class = "no_answer" if status is None else f"{status // 100}xx"
    endpoint = endpoint_name(path)
    _emit(
        "incr", f"api.request.{endpoint}.{status_class}", tags={"endpoint": endpoint, "status": status_class}
    )
    if status == 429:
        _emit("incr", "api.rate_limited", tags={"endpoint": endpoint})


def api_retry(path: str) -> None:
    endpoint = endpoint_name(path)
    _emit("incr", f"api.retry.{endpoint}", tags={"endpoint": endpoint})


def outage_started() -> None:
    _emit("incr", "api.outage_started")


def run_started(how: str) -> None:
    """``how``: ``started`` (a new run), ``reattached`` or ``adopted`` (an earlier try's run)."""
    _emit("incr", f"run.{how}")


def run_ended(run: AirplaneRun) -> None:
    """A task saw ``run`` end: its status, and its queue time and duration by the server's timestamps."""
    status = str(run.status).lower()
    _emit("incr", f"run.ended.{status}", tags={"status": status})
    ended = run.succeeded_at or run.failed_at or run.cancelled_at
    if run.created_at is not None and run.active_at is not None:
        _emit("timing", "run.queue_time", (run.active_at - run.created_at).total_seconds())
    start = run.active_at or run.created_at
    if start is not None and ended is not None:
        _emit("timing", f"run.duration.{status}", (ended - start).total_seconds(), tags={"status": status})


def event_watcher_listing(seconds: float) -> None:
    """How long one listing of the event watcher (``AirplaneRunEventTrigger``) took, pages included."""
    _emit("timing", "event_watcher.list_time", seconds)


def watcher_waits_changed(delta: int) -> None:
    """Waits held by this triggerer's shared run watchers, as a gauge tagged with the host."""
    global _waits
    _waits += delta
    _emit("gauge", "watcher.waits", _waits, tags={"host": socket.gethostname()})
