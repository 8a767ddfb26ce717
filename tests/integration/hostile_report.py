"""What the hostile suite (test_hostile.py) reports at the end of the session: its seed and wall time."""

from __future__ import annotations

SUMMARY: dict[str, str] = {}
