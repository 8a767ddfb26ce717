"""``EmulatorClient``: the emulator's controls for a server in another process, over ``/_emulator``.

Standard library only (urllib), so a test or a script can steer an emulator without extra packages.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


class EmulatorClient:
    """The same controls as :class:`AirplaneEmulator`, sent to the emulator at ``url``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, route: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_emulator/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(
                f"emulator refused {method} /_emulator/{route}: HTTP {exc.code} {detail}"
            ) from exc

    @property
    def logs_endpoint(self) -> bool:
        """False makes the emulator's ``runs/getLogs`` answer 404."""
        return bool(self._call("GET", "logs-endpoint")["enabled"])

    @logs_endpoint.setter
    def logs_endpoint(self, enabled: bool) -> None:
        self._call("POST", "logs-endpoint", {"enabled": enabled})

    @property
    def cancel_delay(self) -> float:
        """Seconds between a cancel request and the run reading Cancelled (the API cancels asynchronously)."""
        return float(self._call("GET", "cancel-delay")["seconds"])

    @cancel_delay.setter
    def cancel_delay(self, seconds: float) -> None:
        self._call("POST", "cancel-delay", {"seconds": seconds})

    @property
    def clock_offset(self) -> float:
        """Seconds the emulator adds to the wall clock."""
        return float(self._call("GET", "clock")["offset"])

    @clock_offset.setter
    def clock_offset(self, seconds: float) -> None:
        self._call("POST", "clock", {"offset": seconds})

    def add_task(
        self,
        slug: str,
        *,
        task_id: str | None = None,
        output: Any = None,
        duration: float = 0.0,
        fail: bool = False,
        error: str | None = None,
        requires_request: bool = False,
        logs: list[str] | int | None = None,
    ) -> str:
        """Register (or replace) a task; ``output`` and ``logs`` are JSON values here (no callables)."""
        answer = self._call(
            "POST",
            "tasks",
            {
                "slug": slug,
                "task_id": task_id,
                "output": output,
                "duration": duration,
                "fail": fail,
                "error": error,
                "requires_request": requires_request,
                "logs": logs,
            },
        )
        return str(answer["id"])

    def add_key(self, key: str, *, allowed: bool = True) -> None:
        self._call("POST", "keys", {"key": key, "allowed": allowed})

    def inject_fault(
        self,
        path: str | None = None,
        *,
        status: int | None = None,
        count: int = 1,
        rate: float | None = None,
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
        drop: bool = False,
        delay: float = 0.0,
    ) -> None:
        self._call(
            "POST",
            "faults",
            {
                "path": path,
                "status": status,
                "count": count,
                "rate": rate,
                "headers": dict(headers or {}),
                "body": body,
                "drop": drop,
                "delay": delay,
            },
        )

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings by name (as ``AirplaneEmulator.configure``); returns them all as they are now."""
        return dict(self._call("POST", "settings", settings))

    def settings(self) -> dict[str, Any]:
        """Every setting, ``seed`` included."""
        return dict(self._call("GET", "settings"))

    def start_outage(
        self, seconds: float, *, path: str | None = None, mix: Mapping[str, float] | None = None
    ) -> None:
        """For ``seconds``, fail every ``/v0`` request (or those to ``path``) in a mode drawn from ``mix``."""
        self._call("POST", "outage", {"seconds": seconds, "path": path, "mix": dict(mix or {}) or None})

    def end_outage(self) -> None:
        self._call("DELETE", "outage")

    def outage(self) -> dict[str, Any]:
        """``{"active": False}``, or the outage's ``remaining`` seconds, ``path`` and ``mix``."""
        return dict(self._call("GET", "outage"))

    def end_runs(self, slug: str, *, after: float = 0.0) -> int:
        """End every unfinished run of ``slug`` ``after`` seconds from now; returns how many."""
        return int(self._call("POST", "runs/end", {"slug": slug, "after": after})["ended"])

    def request_counts(self) -> dict[str, int]:
        return {str(path): int(n) for path, n in self._call("GET", "requests").items()}

    def request_log(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "log"))

    def runs(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "runs"))

    def reset(self) -> None:
        self._call("POST", "reset", {})
