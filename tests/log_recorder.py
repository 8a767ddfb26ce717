"""A stand-in for a task's logger that keeps what it was told, formatted (the run-log tests share it)."""

from __future__ import annotations

from typing import Any


class Recorder:
    """A logger that keeps what it was told, formatted."""

    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def info(self, msg: str, /, *args: Any) -> None:
        self.infos.append(msg % args)

    def warning(self, msg: str, /, *args: Any) -> None:
        self.warnings.append(msg % args)
