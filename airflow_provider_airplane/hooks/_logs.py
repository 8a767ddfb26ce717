"""Reading a run's log (``GET /v0/runs/getLogs``, API reference section 4.6) without I/O.

The endpoint is undocumented; what the reference marks unknown is read leniently:

- the server's order is unknown, so each answer is sorted by (timestamp, insert id);
- the page size is unknown, so a reader asks again with the new ``prev_token`` until an answer holds no new
  line (a line seen before, same pair, is dropped);
- an answer with no lines keeps the token sent (Airplane's CLI did the same);
- ``logs`` may be missing or null (no lines), the token may be named ``prev_token``, ``prevToken`` or
  ``prevPageToken``, and the answer's ``runID`` is not read at all;
- a 404 cannot tell "no such run" from "no such endpoint"; callers that have just read the run with
  ``runs/get`` know it exists, so for them a 404 means the server has no log endpoint.

The sync and async hooks both drive :class:`LogCursor`, so they follow tokens and dedupe identically.
"""

from __future__ import annotations

from airflow_provider_airplane._validation import text_or_none
from airflow_provider_airplane.hooks._exchange import Answer, json_object, server_time, snippet
from airflow_provider_airplane.models import AirplaneLogLine, AirplaneLogPage

LOG_LEVELS = ("info", "debug")
_TOKEN_KEYS = ("prev_token", "prevToken", "prevPageToken")


def parse_log_page(answer: Answer) -> AirplaneLogPage:
    body = json_object(answer)
    items = body.get("logs")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ValueError(f"'logs' is not a list of log lines: {snippet(answer.body)!r}")
    lines = [AirplaneLogLine.from_api(item) for item in items if isinstance(item, dict)]
    token = next((t for key in _TOKEN_KEYS if (t := text_or_none(body.get(key)))), None)
    return AirplaneLogPage(sorted(lines, key=lambda line: line.key), token, server_time(answer))


class LogCursor:
    """Where a reader is in one run's log: the token to send next and the lines already yielded."""

    def __init__(self, prev_token: str | None = None) -> None:
        self.prev_token = prev_token
        self._seen: set[tuple[object, str]] = set()

    def take(self, page: AirplaneLogPage) -> list[AirplaneLogLine]:
        """The page's lines not seen before, in order; moves the token on only when the page held lines."""
        fresh = []
        for line in page.lines:
            if line.key not in self._seen:
                self._seen.add(line.key)
                fresh.append(line)
        if page.lines and page.prev_token:
            self.prev_token = page.prev_token
        return fresh


def check_level(level: str | None) -> str | None:
    if level is not None and level not in LOG_LEVELS:
        raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)} or None (info lines), not {level!r}")
    return level
