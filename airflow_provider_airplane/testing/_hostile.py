"""Hostile conditions: what a production API, and the network in front of it, do to a client.

Every knob is off by default, so the emulator answers as a quiet, fast server unless a test asks for
more. ``realistic`` turns on :data:`REALISTIC`. Every random choice comes from one generator seeded
with ``seed``, so a failure seen with a seed comes back with it when the requests arrive in the same
order. The server applies the knobs (``_server.py``: latency, failures, the outage; ``_state.py``:
listing and log paging); this module holds the settings and draws the decisions.
"""

from __future__ import annotations

import math
import random
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# How a request can fail. "drop": the connection closes before the request is handled; "hang": the
# request is held ``hang_seconds`` (past a client's timeout) and then handled, so its work happens but
# the answer is lost; "truncated": the real answer with its body cut short; "html": a 200 with a
# proxy's login page instead of the API's JSON, the request not handled.
MODES = ("429", "502", "503", "504", "drop", "hang", "truncated", "html")
OUTAGE_MIX: dict[str, float] = {mode: 1.0 for mode in MODES if mode != "429"}
ERROR_MIX: dict[str, float] = {
    "429": 2.0,
    "502": 2.0,
    "503": 2.0,
    "504": 1.0,
    "drop": 1.0,
    "truncated": 1.0,
    "html": 1.0,
}

# The knobs: name -> (default, what it does). Every default is off; ``configure`` takes exactly these.
KNOBS: dict[str, tuple[Any, str]] = {
    "latency": (0.0, "median seconds added to each /v0 request (0: none)"),
    "latency_sigma": (1.0, "spread of the log-normal latency around its median: the long tail"),
    "latency_max": (5.0, "the most seconds latency adds to one request"),
    "error_rate": (0.0, "share of /v0 requests that fail, in a mode drawn from error_mix"),
    "error_mix": (ERROR_MIX, "failure modes and their weights, e.g. 503=2,drop=1"),
    "hang_seconds": (45.0, "how long a 'hang' holds a request (the provider's default timeout is 30 s)"),
    "list_lag": (0.0, "seconds before runs/list shows a run's change"),
    "list_shift": (
        0.0,
        "chance a runs/list page after the first starts one run early; runs ordered by last change",
    ),
    "log_jitter": (0.0, "up to this many seconds between writing a log line and it being readable"),
    "log_overlap": (0, "log lines before the token repeated at the start of the next page"),
}
DEFAULTS: dict[str, Any] = {name: default for name, (default, _) in KNOBS.items()}

# ``realistic=True``: a production API on a bad day, slow and flaky but up, with a lagging listing.
REALISTIC: dict[str, Any] = {
    "latency": 0.03,
    "latency_sigma": 1.2,
    "latency_max": 3.0,
    "error_rate": 0.03,
    "error_mix": ERROR_MIX,
    "list_lag": 2.0,
    "list_shift": 0.3,
    "log_jitter": 0.5,
    "log_overlap": 2,
    "cancel_delay": 1.0,
}


def v0_path(path: str | None) -> str | None:
    """``runs/get`` or ``/v0/runs/get`` as the request path ``/v0/runs/get``; None stays None."""
    if path is not None and not path.startswith("/v0/"):
        return "/v0/" + path.lstrip("/")
    return path


def parse_mix(text: str) -> dict[str, float]:
    """``"503=2,drop=1"`` (the CLI's form) as a mix; a bare mode weighs 1."""
    mix: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        mode, _, weight = part.partition("=")
        mix[mode.strip()] = float(weight) if weight else 1.0
    return check_mix(mix)


def check_mix(mix: Mapping[str, Any]) -> dict[str, float]:
    """A mix of known modes with weights >= 0, not all 0."""
    unknown = set(mix) - set(MODES)
    if unknown:
        raise ValueError(f"unknown failure mode(s) {sorted(unknown)}; known: {', '.join(MODES)}")
    weights = {str(mode): float(weight) for mode, weight in mix.items()}
    if any(weight < 0 or math.isnan(weight) for weight in weights.values()) or not any(weights.values()):
        raise ValueError("a mix needs weights >= 0, at least one of them above 0")
    return weights


def _check(name: str, value: Any) -> Any:
    if name == "error_mix":
        if not isinstance(value, Mapping):
            raise ValueError("error_mix maps failure modes to weights")
        return check_mix(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or math.isnan(value):
        raise ValueError(f"{name} must be a number >= 0")
    if name in ("error_rate", "list_shift") and value > 1:
        raise ValueError(f"{name} is a probability between 0 and 1")
    if name == "log_overlap":
        if value != int(value):
            raise ValueError("log_overlap is a whole number of lines")
        return int(value)
    return float(value)


@dataclass
class Outage:
    """Until ``until`` (``time.monotonic()``), every request to ``path`` (None: all) fails."""

    until: float
    path: str | None
    mix: dict[str, float]

    def applies(self, path: str) -> bool:
        return self.until > time.monotonic() and self.path in (None, path)

    def describe(self) -> dict[str, Any]:
        return {
            "remaining": max(0.0, self.until - time.monotonic()),
            "path": self.path,
            "mix": dict(self.mix),
        }


class Hostile:
    """The hostile settings and the seeded generator behind every hostile decision (thread-safe)."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, Any] = dict(DEFAULTS)
        self.seed = secrets.randbelow(2**31) if seed is None else int(seed)
        self._random = random.Random(self.seed)
        self.outage: Outage | None = None

    def get(self, name: str) -> Any:
        """The current value of knob ``name``."""
        with self._lock:
            return self.values[name]

    @property
    def active(self) -> bool:
        """True when any knob differs from its default."""
        return self.values != DEFAULTS

    def configure(self, *, seed: int | None = None, **settings: Any) -> None:
        """Change the named knobs (unknown names raise); ``seed`` restarts the generator."""
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
        checked = {name: _check(name, value) for name, value in settings.items()}
        with self._lock:
            self.values.update(checked)
            if seed is not None:
                self.seed = int(seed)
                self._random = random.Random(self.seed)

    def reset(self) -> None:
        """Every knob back to off and no outage; the seed stays."""
        with self._lock:
            self.values = dict(DEFAULTS)
            self.outage = None

    def settings(self) -> dict[str, Any]:
        with self._lock:
            return {**self.values, "error_mix": dict(self.values["error_mix"]), "seed": self.seed}

    def start_outage(
        self, seconds: float, *, path: str | None = None, mix: Mapping[str, Any] | None = None
    ) -> None:
        if seconds <= 0:
            raise ValueError("an outage lasts a number of seconds above 0")
        outage = Outage(
            time.monotonic() + seconds, v0_path(path), check_mix(mix) if mix else dict(OUTAGE_MIX)
        )
        with self._lock:
            self.outage = outage

    def end_outage(self) -> None:
        with self._lock:
            self.outage = None

    def outage_state(self) -> dict[str, Any]:
        """``{"active": False}`` or the outage's remaining seconds, path and mix."""
        with self._lock:
            outage = self.outage
            if outage is None or outage.until <= time.monotonic():
                return {"active": False}
            return {"active": True, **outage.describe()}

    # Decisions ----------------------------------------------------------------------------------

    def failure(self, path: str) -> str | None:
        """The way this request fails (an outage first, then ``error_rate``), or None."""
        with self._lock:
            outage = self.outage
            if outage is not None and outage.applies(path):
                return self._pick(outage.mix)
            if self.values["error_rate"] and self._random.random() < self.values["error_rate"]:
                return self._pick(self.values["error_mix"])
            return None

    def latency_draw(self) -> float:
        """Seconds to hold a request: log-normal around ``latency``, capped at ``latency_max``."""
        with self._lock:
            median = self.values["latency"]
            if not median:
                return 0.0
            draw = median * math.exp(self.values["latency_sigma"] * self._random.gauss(0.0, 1.0))
            return float(min(draw, self.values["latency_max"]))

    def log_delays(self, count: int) -> list[float]:
        """For each of a run's ``count`` lines, the seconds between writing it and it being readable."""
        with self._lock:
            jitter = self.values["log_jitter"]
            return [jitter * self._random.random() if jitter else 0.0 for _ in range(count)]

    def list_shifted(self) -> bool:
        """Whether this page (not the first) reads a listing that gained a run since the last page."""
        with self._lock:
            shift = self.values["list_shift"]
            return bool(shift) and self._random.random() < shift

    def _pick(self, mix: Mapping[str, float]) -> str:
        modes = list(mix)
        return self._random.choices(modes, weights=[mix[mode] for mode in modes])[0]
