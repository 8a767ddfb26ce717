"""Review of issue 16: ``Retry-After`` as an HTTP-date (RFC 9110 10.2.3) is compared with the *local*
clock (``_exchange.retry_after_seconds``: ``moment - time.time()``), not with the answer's own ``Date``.

With Airplane's clock 100 s ahead, "retry in 2 s" becomes a 102 s wait (a worker or the triggerer's
watcher parked for minutes); with it 100 s behind, the date is "in the past" and every retry goes out at
once, hammering a rate-limited API. Either way the clocks of two machines are compared, which issue 16
rules out ("a clock that is off"), although the answer carries the server's time in ``Date``.
"""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from airflow_provider_airplane.hooks.airplane import AirplaneHook
from airflow_provider_airplane.testing import AirplaneEmulator

ASKED = 2.0  # what the server means: retry 2 s after its answer


@pytest.fixture
def emu(airplane_conn: AirplaneEmulator) -> AirplaneEmulator:
    airplane_conn.add_task("forever", duration=100_000)
    return airplane_conn


def delays_for_retry_after_date(emu: AirplaneEmulator, offset: float) -> list[float]:
    """The hook's waits after one 429 whose Retry-After is the server's now + ASKED, as an HTTP-date."""
    run_id = AirplaneHook().execute_task("forever")
    emu.clock_offset = offset
    server_now = time.time() + offset
    emu.inject_fault(
        "/v0/runs/get",
        status=429,
        count=1,
        headers={"Retry-After": formatdate(server_now + ASKED, usegmt=True)},
    )
    hook = AirplaneHook()
    waits: list[float] = []
    hook.sleep = waits.append
    hook.get_run(run_id)
    return waits


@pytest.mark.parametrize("offset", [100.0, -100.0], ids=["airplane-ahead", "airplane-behind"])
def test_retry_after_date_is_read_against_the_answers_date(emu: AirplaneEmulator, offset: float) -> None:
    (wait,) = delays_for_retry_after_date(emu, offset)
    # The Date and the Retry-After both have one-second resolution: ASKED +/- 1 s is what was meant.
    assert ASKED - 1.5 <= wait <= ASKED + 1.5, f"waited {wait:.1f}s for a Retry-After of {ASKED:g}s"
