"""The emulator's run page, ``GET /runs/<run id>``: what the Airplane web app showed for a run.

It sits at the path the provider's run links use (``{app_url}/runs/{id}``), so a connection whose extra
``app_url`` is the emulator's URL gets working "Airplane Run" links. No API key is asked for: a browser
following a link from the Airflow UI has none, and the emulator is a local development tool.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

from aiohttp import web

from airflow_provider_airplane.testing._state import NOT_TERMINAL, ApiError, State

RUN_PAGE_PREFIX = "/runs/"

_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:70em}"
    "pre{background:#f4f4f4;padding:.6em;overflow-x:auto}"
    "td{padding:.1em 1em .1em 0}.s{font-weight:bold}"
)


def _json(value: Any) -> str:
    return escape(json.dumps(value, indent=2, sort_keys=True))


def render(run: dict[str, Any], logs: list[dict[str, Any]], outputs: Any) -> str:
    status = str(run["status"])
    refresh = '<meta http-equiv="refresh" content="2">' if status in NOT_TERMINAL else ""
    times = "".join(
        f"<tr><td>{escape(label)}</td><td>{escape(str(run.get(key) or '-'))}</td></tr>"
        for label, key in (
            ("Created", "createdAt"),
            ("Active", "activeAt"),
            ("Succeeded", "succeededAt"),
            ("Failed", "failedAt"),
            ("Cancelled", "cancelledAt"),
        )
    )
    lines = "\n".join(f"{escape(str(item['timestamp']))}  {escape(str(item['text']))}" for item in logs)
    run_id = escape(str(run["id"]))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{refresh}"
        f"<title>Airplane run {run_id} ({escape(status)})</title><style>{_STYLE}</style></head><body>"
        f"<h1>Run {run_id}</h1>"
        f"<p>Task <code>{escape(str(run.get('taskSlug')))}</code> "
        f"(<code>{escape(str(run.get('taskID')))}</code>): "
        f"<span class='s' id='status'>{escape(status)}</span></p>"
        f"<table>{times}</table>"
        f"<h2>Parameters</h2><pre id='params'>{_json(run.get('paramValues'))}</pre>"
        f"<h2>Outputs</h2><pre id='outputs'>{_json(outputs)}</pre>"
        f"<h2>Logs ({len(logs)} lines)</h2><pre id='logs'>{lines}</pre>"
        "<p><small>Airplane API emulator (airflow-provider-airplane)</small></p></body></html>"
    )


def run_page_handler(state: State) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def run_page(request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        try:
            run, logs, outputs = state.run_page(run_id)
        except ApiError as exc:
            page = f"<!doctype html><title>Not found</title><p>{escape(exc.message)}</p>"
            return web.Response(status=exc.status, text=page, content_type="text/html")
        return web.Response(text=render(run, logs, outputs), content_type="text/html")

    return run_page
