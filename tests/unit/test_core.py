"""The I/O-free core: connection parsing, retry decisions, delays, time and id validation."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pendulum
import pytest

from airflow_provider_airplane._validation import check_reference, rfc3339
from airflow_provider_airplane.exceptions import AirplaneError
from airflow_provider_airplane.hooks._config import DEFAULT_API_URL, DEFAULT_APP_URL, AirplaneConfig
from airflow_provider_airplane.hooks._exchange import Answer, Failure, RetryPolicy, retry_after_seconds

KEY = "tkn_core_5ecret_value"


def config(host: str | None = None, port: int | None = None, **kwargs: Any) -> AirplaneConfig:
    extra = kwargs.pop("extra", {})
    return AirplaneConfig.from_connection("c", host=host, port=port, password=KEY, extra=extra, **kwargs)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, DEFAULT_API_URL),
        ("", None, DEFAULT_API_URL),
        ("api.airplane.dev", None, "https://api.airplane.dev"),
        ("https://api.airplane.dev/", None, "https://api.airplane.dev"),
        ("https://api.airplane.dev/v0", None, "https://api.airplane.dev"),
        ("https://api.airplane.dev/v0/", None, "https://api.airplane.dev"),
        ("http://127.0.0.1:5055", None, "http://127.0.0.1:5055"),
        ("http://127.0.0.1", 5055, "http://127.0.0.1:5055"),  # the URI form splits the port off
        ("https://proxy.example.com/airplane/v0", None, "https://proxy.example.com/airplane"),
        ("  api.airplane.dev  ", None, "https://api.airplane.dev"),
    ],
)
def test_base_url(host: str | None, port: int | None, expected: str) -> None:
    assert config(host, port).base_url == expected


@pytest.mark.parametrize("host", ["ftp://api.airplane.dev", "https://", "http://host:notaport"])
def test_bad_host(host: str) -> None:
    with pytest.raises(AirplaneError, match="not an http"):
        config(host)


def test_extras_plain_prefixed_and_empty() -> None:
    cfg = config(
        extra={
            "extra__airplane__env_slug": "prod",
            "team_id": "tea1",
            "app_url": "https://app.example.test/",
            "env_id": "",
            "timeout": "12.5",
        }
    )
    assert (cfg.env_slug, cfg.env_id, cfg.team_id) == ("prod", None, "tea1")
    assert cfg.app_url == "https://app.example.test"
    assert cfg.timeout == 12.5
    defaults = config()
    assert (defaults.env_slug, defaults.env_id, defaults.team_id) == (None, None, None)
    assert defaults.app_url == DEFAULT_APP_URL
    assert defaults.timeout == 30.0
    assert defaults.environment == "the default environment"


def test_timeout_precedence() -> None:
    assert config(extra={"timeout": 5}).timeout == 5.0
    assert config(extra={"timeout": 5}, timeout=2).timeout == 2.0
    with pytest.raises(AirplaneError, match="extra 'timeout'"):
        config(extra={"timeout": "0"})


def test_env_override_and_conflict() -> None:
    cfg = config(extra={"env_id": "env1"}, env_slug="staging")
    assert (cfg.env_slug, cfg.env_id) == ("staging", None)
    assert cfg.headers(idempotency_key=None)["X-Airplane-Env-Slug"] == "staging"
    assert "X-Airplane-Env-ID" not in cfg.headers(idempotency_key=None)
    assert config(extra={"env_id": "env1"}).headers(idempotency_key=None)["X-Airplane-Env-ID"] == "env1"
    with pytest.raises(AirplaneError, match="both env_slug and env_id"):
        config(extra={"env_slug": "prod", "env_id": "env1"})


def test_missing_key() -> None:
    with pytest.raises(AirplaneError, match="has no API key"):
        AirplaneConfig.from_connection("c", host=None, port=None, password="  ", extra={})


def test_key_kept_out_of_repr_and_scrubbed() -> None:
    cfg = config()
    assert KEY not in repr(cfg)
    assert KEY not in str(cfg)
    assert cfg.scrub(f"server said {KEY}") == "server said ***"


def test_post_headers() -> None:
    headers = config().headers(idempotency_key="k1")
    assert headers["Idempotency-Key"] == "k1"
    assert headers["Content-Type"] == "application/json"
    assert "Content-Type" not in config().headers(idempotency_key=None)


def answer(status: int, **headers: str) -> Answer:
    return Answer.of(status, {name.replace("_", "-"): value for name, value in headers.items()}, b"")


@pytest.mark.parametrize(
    ("status", "headers", "retry"),
    [
        (429, {}, True),
        (500, {}, True),
        (502, {}, True),
        (503, {}, True),
        (599, {}, True),
        (501, {}, False),
        (400, {}, False),
        (404, {}, False),
        (409, {}, False),
        (409, {"X-Airplane-Retryable": "true"}, True),
        (500, {"X-Airplane-Retryable": "false"}, False),
        (501, {"x-airplane-retryable": "TRUE"}, True),
        (500, {"X-Airplane-Retryable": "maybe"}, True),  # not a boolean: the status rule
    ],
)
def test_should_retry(status: int, headers: dict[str, str], retry: bool) -> None:
    assert RetryPolicy.should_retry(Answer.of(status, headers, b"")) is retry


def test_delays() -> None:
    policy = RetryPolicy(backoff_base=0.1, backoff_cap=30.0, jitter=lambda: 1.0)
    assert [policy.delay(n, None) for n in range(1, 11)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0]
    )
    half = RetryPolicy(jitter=lambda: 0.5)
    assert half.delay(3, None) == pytest.approx(0.2)
    retry_after = Answer.of(429, {"Retry-After": " 4 "}, b"")
    assert policy.delay(1, retry_after) == 4.0
    assert policy.delay(9, Answer.of(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"")) == 0.0
    assert policy.delay(1, Answer.of(429, {"Retry-After": "1.5"}, b"")) == pytest.approx(0.1)
    assert RetryPolicy(retry_after_max=60).delay(1, Answer.of(429, {"Retry-After": "3600"}, b"")) == 60


def retry_after(value: str) -> Answer:
    return Answer.of(429, {"Retry-After": value}, b"")


def test_retry_after_as_an_http_date() -> None:
    """RFC 9110: an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms) or delay-seconds."""
    now = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds(retry_after("Wed, 02 Dec 2026 10:00:30 GMT"), now=now) == 30.0
    assert retry_after_seconds(retry_after("Wednesday, 02-Dec-26 10:00:30 GMT"), now=now) == 30.0
    assert retry_after_seconds(retry_after("Wed, 02 Dec 2026 09:00:00 GMT"), now=now) == 0.0  # past: now
    assert retry_after_seconds(retry_after("12"), now=now) == 12.0
    for garbage in ("soon", "1.5", "-3", "Wed, 02 Dec 2026 25:00:00 GMT", "2026-12-02T10:00:30Z"):
        assert retry_after_seconds(retry_after(garbage), now=now) is None, garbage
    assert retry_after_seconds(Answer.of(429, {}, b""), now=now) is None


def test_retry_after_date_is_capped_like_seconds() -> None:
    policy = RetryPolicy(retry_after_max=60, jitter=lambda: 1.0)
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    assert policy.delay(1, retry_after(in_an_hour.strftime("%a, %d %b %Y %H:%M:%S GMT"))) == 60
    in_ten = datetime.now(UTC) + timedelta(seconds=10)
    assert 8.0 <= policy.delay(1, retry_after(in_ten.strftime("%a, %d %b %Y %H:%M:%S GMT"))) <= 10.0


@pytest.mark.parametrize(
    ("host", "schema", "expected"),
    [
        ("proxy.example.com", "airplane", "https://proxy.example.com/airplane"),
        ("proxy.example.com", "/airplane/v0/", "https://proxy.example.com/airplane"),
        ("https://proxy.example.com/airplane", "airplane", "https://proxy.example.com/airplane"),
        ("https://proxy.example.com/airplane", "", "https://proxy.example.com/airplane"),
    ],
)
def test_path_in_schema_is_kept(host: str, schema: str, expected: str) -> None:
    assert config(host, schema=schema).base_url == expected


def test_path_in_host_and_another_in_schema_is_refused() -> None:
    with pytest.raises(AirplaneError, match="leave schema empty"):
        config("https://proxy.example.com/airplane", schema="other")


def test_failure_kinds() -> None:
    refused = ConnectionError("wrapped")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert Failure(refused).kind == "refused"
    dns = OSError("outer")
    dns.__context__ = socket.gaierror(-2, "Name or service not known")
    assert Failure(dns).kind == "dns"
    assert Failure(TimeoutError()).kind == "timeout"
    assert Failure(ConnectionResetError()).kind == "connection"
    assert Failure(ValueError(ConnectionRefusedError())).kind == "refused"  # found in args too


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (pendulum.datetime(2024, 1, 2, 3, 4, 5, tz="Europe/Paris"), "2024-01-02T02:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2024-01-02T03:04:05.123456Z"),
        (datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=-5))), "2024-01-02T05:00:00Z"),
        ("2022-01-01T12:00:00-00:00", "2022-01-01T12:00:00Z"),
        ("2022-01-01T12:00:00Z", "2022-01-01T12:00:00Z"),
    ],
)
def test_rfc3339(value: Any, expected: str) -> None:
    assert rfc3339(value, "since") == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (datetime(2024, 1, 1), ValueError),
        ("2024-01-01", ValueError),
        ("last week", ValueError),
        (1700000000, TypeError),
    ],
)
def test_rfc3339_rejects(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        rfc3339(value, "since")


def test_check_reference() -> None:
    assert check_reference("run20220215zv10o6s52qj", "run_id") == "run20220215zv10o6s52qj"
    for bad in ("", " ", "run 1", "run1\n", "{{ ti.xcom_pull() }}", "{% if x %}"):
        with pytest.raises(ValueError, match="run_id"):
            check_reference(bad, "run_id")
