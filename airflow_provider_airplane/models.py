"""Runs as the API describes them, parsed leniently (see the API reference, section 5)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import pendulum

log = logging.getLogger(__name__)


class RunStatus(StrEnum):
    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def parse_status(value: Any) -> RunStatus | str:
    """A known status, or the raw string for one this version does not know (never terminal)."""
    try:
        return RunStatus(value)
    except ValueError:
        log.warning(
            "Airplane reported run status %r, which this provider version does not know; "
            "treating it as not finished. Upgrade airflow-provider-airplane if it persists.",
            value,
        )
        return str(value)


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 or Postgres text (``2022-01-11 22:32:45.601486+00``); empty or null is unset."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    text = str(value).strip()
    if len(text) >= 3 and text[-3] in "+-" and text[-2:].isdigit() and ":" not in text[-6:]:
        text += ":00"  # Postgres writes "+00"; ISO 8601 parsers want "+00:00"
    try:
        parsed = pendulum.parse(text)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        log.warning("Could not parse Airplane timestamp %r; ignoring it.", value)
        return None
    return parsed if isinstance(parsed, datetime) else None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


@dataclass(frozen=True)
class AirplaneRun:
    id: str
    status: RunStatus | str
    task_id: str | None = None
    param_values: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    active_at: datetime | None = None
    succeeded_at: datetime | None = None
    failed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    zone_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return isinstance(self.status, RunStatus) and self.status.is_terminal

    @property
    def last_change(self) -> float | None:
        """The latest server timestamp in the run (epoch seconds): a moment at or before the server
        answered, so cursors built on it do not depend on the local clock."""
        stamps = [
            moment.timestamp()
            for moment in (
                self.created_at,
                self.active_at,
                self.succeeded_at,
                self.failed_at,
                self.cancelled_at,
            )
            if moment is not None
        ]
        return max(stamps) if stamps else None

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> AirplaneRun:
        """Accept the public flat object, the CLI's ``{"run": {...}}`` and ``runID`` instead of ``id``."""
        data = body["run"] if isinstance(body.get("run"), dict) else body
        run_id = _text(data.get("id")) or _text(data.get("runID"))
        if run_id is None:
            raise ValueError(f"Airplane run object has neither 'id' nor 'runID': {sorted(data)}")
        return cls(
            id=run_id,
            status=parse_status(data.get("status")),
            task_id=_text(data.get("taskID")),
            param_values=data.get("paramValues") or {},
            created_at=parse_time(data.get("createdAt")),
            active_at=parse_time(data.get("activeAt")),
            succeeded_at=parse_time(data.get("succeededAt")),
            failed_at=parse_time(data.get("failedAt")),
            cancelled_at=parse_time(data.get("cancelledAt")),
            cancelled_by=_text(data.get("cancelledBy")),
            zone_id=_text(data.get("zoneID")),
            raw=data,
        )


@dataclass(frozen=True)
class AirplaneLogLine:
    """One line a run wrote (``runs/getLogs``, API reference section 4.6).

    ``(timestamp, insert_id)`` is the line's identity: readers sort and dedupe on it, as Airplane's CLI did.
    """

    timestamp: datetime
    insert_id: str
    text: str
    level: str = "info"
    task_slug: str | None = None

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.timestamp, self.insert_id)

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> AirplaneLogLine:
        """Lenient: a missing or unreadable timestamp sorts first, missing text is an empty line."""
        return cls(
            timestamp=parse_time(item.get("timestamp")) or _EPOCH,
            insert_id=_text(item.get("insertID")) or _text(item.get("insertId")) or "",
            text="" if item.get("text") is None else str(item["text"]),
            level=_text(item.get("level")) or "info",
            task_slug=_text(item.get("taskSlug")),
        )


@dataclass(frozen=True)
class AirplaneLogPage:
    """One ``runs/getLogs`` answer: its lines in (timestamp, insert id) order and the token to go on from.

    ``prev_token`` is None when the answer carried none; a reader then keeps the token it sent.
    """

    lines: list[AirplaneLogLine]
    prev_token: str | None
    # The answer's ``Date`` (epoch seconds, the server's clock), None without one.
    server_time: float | None = None


_EPOCH = datetime(1970, 1, 1, tzinfo=pendulum.UTC)
