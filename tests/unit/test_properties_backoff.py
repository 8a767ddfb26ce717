"""Property-based tests: ``Retry-After`` and the backoff between attempts stay within docs/hook.md's bounds.

docs/hook.md: full-jitter exponential backoff capped at 30 s; ``Retry-After`` honoured in both RFC 9110
forms (delay-seconds or an HTTP-date), a date in the past meaning now, anything else ignored, and capped at
120 s. The watchers back off from their poll interval up to their own cap, for as long as an outage lasts.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from airflow_provider_airplane.hooks._exchange import Answer, RetryPolicy, backoff, retry_after_seconds

NOW = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC).timestamp()

# RFC 9110 section 5.6.7: IMF-fixdate and the two obsolete forms a recipient must also accept.
IMF_FIXDATE = "%a, %d %b %Y %H:%M:%S GMT"
RFC_850 = "%A, %d-%b-%y %H:%M:%S GMT"


def asctime(moment: datetime) -> str:
    """``Sun Nov  6 08:49:37 1994``: the day of the month padded with a space."""
    return moment.strftime(f"%a %b {moment.day:>2} %H:%M:%S %Y")


def answer(value: str) -> Answer:
    return Answer.of(429, {"Retry-After": value}, b"")


# Whole seconds, as a date header has them; RFC 850's two-digit years read back as 1969-2068.
moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2068, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))
http_dates = st.tuples(moments, st.sampled_from(["imf", "rfc850", "asctime"])).map(
    lambda pair: (
        pair[0],
        asctime(pair[0])
        if pair[1] == "asctime"
        else pair[0].strftime(IMF_FIXDATE if pair[1] == "imf" else RFC_850),
    )
)
# What proxies, broken servers and the network put in a header: any text, Latin-1 as http.client decodes
# it, characters that count as digits in some script, numbers that are not delay-seconds, mangled dates.
garbage = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="latin-1")),
    st.text(alphabet=st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=4),
    st.from_regex(r"\A[ \t]*[-+]?[0-9]{1,6}([.,][0-9]{0,3})?(e[-+]?[0-9]{1,3})?[ \t]*\Z"),
    st.builds(lambda moment, cut: moment.strftime(IMF_FIXDATE)[:cut], moments, st.integers(0, 28)),
)
any_value = st.one_of(st.integers(0, 10**40).map(str), http_dates.map(lambda pair: pair[1]), garbage)


@given(seconds=st.integers(0, 10**40), pad=st.sampled_from(["", " ", "\t", "  "]), zeros=st.integers(0, 3))
def test_delay_seconds_are_read_as_given(seconds: int, pad: str, zeros: int) -> None:
    """Any delay-seconds value (ASCII digits, surrounding whitespace, leading zeros) is that many seconds."""
    value = f"{pad}{'0' * zeros}{seconds}{pad}"
    assert retry_after_seconds(answer(value), now=NOW) == float(seconds)


@given(date=http_dates, now=st.floats(0, 4e9))
@example(date=(datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC), "Sun Nov  6 08:49:37 1994"), now=NOW)
def test_an_http_date_in_any_form_is_the_time_left_until_it(date: tuple[datetime, str], now: float) -> None:
    """An HTTP-date in each of RFC 9110's three forms is the seconds from ``now`` until it, 0 once it has
    passed (a date in the past means now)."""
    moment, value = date
    assert retry_after_seconds(answer(value), now=now) == max(0.0, moment.timestamp() - now)


@given(value=garbage)
@example(value="²")  # a digit to str.isdigit(), not to float(): the call raised ValueError
@example(value="١٢")  # Arabic-Indic digits are not RFC 9110 delay-seconds
def test_anything_else_is_ignored(value: str) -> None:
    """A value that is neither ASCII delay-seconds nor an HTTP-date is ignored (None), never an error."""
    stripped = value.strip()
    if stripped.isascii() and stripped.isdigit():
        return  # garbage that happens to be delay-seconds: the test above
    result = retry_after_seconds(answer(value), now=NOW)
    assert result is None or result >= 0.0  # a readable date among the garbage counts as one


@given(
    retry=st.integers(1, 10**6),
    value=st.none() | any_value,
    jitter=st.floats(0.0, 1.0),
    base=st.floats(0.001, 60.0),
    cap=st.floats(0.01, 600.0),
    retry_after_max=st.floats(0.0, 600.0),
)
@example(retry=1026, value=None, jitter=1.0, base=0.1, cap=30.0, retry_after_max=120.0)  # OverflowError
def test_any_header_gives_a_delay_within_the_bounds(
    retry: int, value: str | None, jitter: float, base: float, cap: float, retry_after_max: float
) -> None:
    """For any attempt number (an outage without ``max_outage`` counts on for hours) and any header, the
    delay is a finite number of seconds: a readable ``Retry-After`` capped at ``retry_after_max``,
    otherwise the jittered backoff, at most ``min(cap, base * 2**(retry - 1))``."""
    policy = RetryPolicy(
        backoff_base=base, backoff_cap=cap, retry_after_max=retry_after_max, jitter=lambda: jitter
    )
    given_answer = None if value is None else answer(value)
    delay = policy.delay(retry, given_answer)
    assert math.isfinite(delay)
    assert delay >= 0.0
    header = None if given_answer is None else retry_after_seconds(given_answer)
    if header is not None:  # read again a moment later: a date is seconds from the wall clock
        assert math.isclose(delay, min(header, retry_after_max), abs_tol=1.0)
        assert delay <= retry_after_max
    else:
        assert math.isclose(delay, jitter * min(cap, base * 2.0 ** min(retry - 1, 64)))
        assert delay <= cap


@given(
    first=st.integers(1, 10**6),
    later=st.integers(0, 10**6),
    base=st.floats(0.001, 600.0),
    cap=st.floats(0.01, 600.0),
)
@example(first=1025, later=1, base=0.1, cap=30.0)  # 2.0 ** 1025 overflowed
def test_backoff_grows_to_its_cap_and_stays_there(first: int, later: int, base: float, cap: float) -> None:
    """The backoff ceiling never shrinks as failures add up, never passes its cap, and reaches the cap; the
    watchers (cap 5 minutes) use it for as long as an outage lasts, which has no bound."""
    assert backoff(first, base, cap) <= backoff(first + later, base, cap) <= cap
    assert backoff(10**6, base, cap) == cap
    assert backoff(1, base, cap) == min(cap, base)


def test_a_date_one_hour_ahead_is_capped_like_seconds() -> None:
    """The cap applies to the date form as to delay-seconds (the policy reads the wall clock)."""
    policy = RetryPolicy(retry_after_max=60.0)
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    assert policy.delay(1, answer(in_an_hour.strftime(IMF_FIXDATE))) == 60.0
