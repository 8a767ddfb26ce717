"""A statsd server for tests: what Airflow's ``[metrics] statsd_on`` sends, as a server would get it."""

from __future__ import annotations

import socket
import threading


class StatsdListener:
    """A UDP statsd server on 127.0.0.1 that keeps the metric lines it receives that contain ``keep``
    (all by default; a long-lived stack's scheduler sends many of its own)."""

    def __init__(self, keep: str = "") -> None:
        self.keep = keep
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines.extend(line for line in data.decode().splitlines() if self.keep in line)

    def env(self) -> dict[str, str]:
        """What points an Airflow process's statsd at this listener."""
        return {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(self.port),
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def names(self, prefix: str = "airflow.airplane.") -> set[str]:
        """Metric names (``name:value|type`` lines) under ``prefix``."""
        return {line.split(":", 1)[0] for line in self.lines if line.startswith(prefix)}
