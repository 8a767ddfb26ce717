"""Hypothesis profiles for the property-based tests (tests/unit/test_properties_*.py).

``ci`` (the default) is derandomized: every run tries the same examples, so a red CI run reproduces on any
machine, and a bounded number of them keeps the suite fast; no deadline, since a shared CI machine can
stall any example. ``explore`` (``HYPOTHESIS_PROFILE=explore pytest tests/unit/test_properties_*.py``) draws
many more, randomly, to hunt for new failures; keep each one it finds as an ``@example`` of its test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    max_examples=5000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
