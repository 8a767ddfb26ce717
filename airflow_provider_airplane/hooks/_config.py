"""The connection, read once into an :class:`AirplaneConfig`: base URL, API key, environment, headers.

Shared by the sync and async hooks; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow import __version__ as AIRFLOW_VERSION

from airflow_provider_airplane import __version__ as PROVIDER_VERSION
from airflow_provider_airplane._validation import check_positive, text_or_none
from airflow_provider_airplane.exceptions import AirplaneError

DEFAULT_API_URL = "https://api.airplane.dev"
DEFAULT_APP_URL = "https://app.airplane.dev"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"airflow-provider-airplane/{PROVIDER_VERSION} apache-airflow/{AIRFLOW_VERSION}"


def _base_url(conn_id: str, host: str | None, port: int | None, schema: str | None = None) -> str:
    """Normalise the connection host: add https when there is no scheme, drop a trailing ``/`` or ``/v0``.

    A path is kept whole (an API behind a proxy, ``https://proxy.example.com/airplane``). In URI form
    (``airplane://:KEY@proxy.example.com/airplane``) Airflow puts that path in ``schema``: used too.
    """
    text = text_or_none(host)
    if text is None:
        return DEFAULT_API_URL
    extra_path = (text_or_none(schema) or "").strip("/")
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    try:
        has_port = parts.port is not None
    except ValueError:
        has_port = False
        parts = parts._replace(scheme="")  # an unparsable port: reported below
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AirplaneError(
            f"Airplane connection {conn_id!r}: host {host!r} is not an http(s) URL; "
            f"use the API base URL, e.g. {DEFAULT_API_URL}"
        )
    netloc = parts.netloc if has_port or not port else f"{parts.netloc}:{port}"
    path = parts.path.rstrip("/")
    if extra_path:
        if path and path.strip("/") != extra_path:
            raise AirplaneError(
                f"Airplane connection {conn_id!r}: host {host!r} has a path and schema {schema!r} gives "
                "another; put the whole base URL in host and leave schema empty"
            )
        path = "/" + extra_path
    if path.endswith("/v0"):
        path = path[: -len("/v0")].rstrip("/")
    return f"{parts.scheme}://{netloc}{path}"


def _extra(extra: Mapping[str, Any], name: str) -> str | None:
    """Extras saved by the UI are plain names; older forms stored ``extra__airplane__<name>``."""
    return text_or_none(extra.get(name)) or text_or_none(extra.get(f"extra__airplane__{name}"))


@dataclass(frozen=True)
class AirplaneConfig:
    """Everything a request needs from the connection, shared by the sync and async hooks.

    The API key is left out of ``repr()`` so that the config can be logged or shown in a traceback.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    env_slug: str | None = None
    env_id: str | None = None
    team_id: str | None = None
    app_url: str = DEFAULT_APP_URL
    timeout: float = DEFAULT_TIMEOUT
    # The environment run links name: set when a task overrides the connection's (env_slug=), whose
    # runs live elsewhere than the app's links for the connection assume.
    link_env: str | None = None

    @classmethod
    def from_connection(
        cls,
        conn_id: str,
        *,
        host: str | None,
        port: int | None,
        password: str | None,
        extra: Mapping[str, Any],
        timeout: float | None = None,
        env_slug: str | None = None,
        schema: str | None = None,
    ) -> AirplaneConfig:
        """Build the config; ``timeout`` and ``env_slug`` given to the hook win over the connection's."""
        api_key = text_or_none(password)
        if api_key is None:
            raise AirplaneError(
                f"Airplane connection {conn_id!r} has no API key: put the key (tkn_...) in its password."
            )
        override = text_or_none(env_slug)
        slug = override or _extra(extra, "env_slug")
        env_id = None if override else _extra(extra, "env_id")
        if slug and env_id:
            raise AirplaneError(
                f"Airplane connection {conn_id!r} sets both env_slug and env_id; keep only one of them."
            )
        if timeout is not None:
            seconds = check_positive(timeout, "timeout")
        elif (raw_timeout := _extra(extra, "timeout")) is not None:
            try:
                seconds = check_positive(raw_timeout, f"Airplane connection {conn_id!r} extra 'timeout'")
            except ValueError as err:
                raise AirplaneError(str(err)) from None
        else:
            seconds = DEFAULT_TIMEOUT
        app_url = (_extra(extra, "app_url") or DEFAULT_APP_URL).rstrip("/")
        return cls(
            conn_id=conn_id,
            base_url=_base_url(conn_id, host, port, schema),
            api_key=api_key,
            env_slug=slug,
            env_id=env_id,
            team_id=_extra(extra, "team_id"),
            app_url=app_url,
            timeout=seconds,
            link_env=override,
        )

    @property
    def environment(self) -> str:
        """The environment in words, for error messages."""
        if self.env_slug:
            return f"environment {self.env_slug!r}"
        if self.env_id:
            return f"environment ID {self.env_id!r}"
        return "the default environment"

    def scrub(self, text: str) -> str:
        """Remove the API key from text that may echo it (a server message, an exception)."""
        return text.replace(self.api_key, "***")

    def headers(self, *, idempotency_key: str | None) -> dict[str, str]:
        headers = {
            "X-Airplane-API-Key": self.api_key,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if self.env_slug:
            headers["X-Airplane-Env-Slug"] = self.env_slug
        elif self.env_id:
            headers["X-Airplane-Env-ID"] = self.env_id
        if self.team_id:
            headers["X-Team-ID"] = self.team_id
        if idempotency_key is not None:
            headers["Content-Type"] = "application/json"
            headers["Idempotency-Key"] = idempotency_key
        return headers
