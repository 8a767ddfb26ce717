"""The `make up` stack and headless Chromium (Debian's package, driven by Playwright) for the module.

No browser is downloaded: Playwright launches /usr/bin/chromium (or ``$CHROMIUM``), which ``make test``
installs when missing (``make test-deps``); the session stops before any test when it is still missing
(tests/conftest.py). The flags keep Chromium off the network this machine does not have.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from airflow_stack import ADMIN_USER, AirflowStack
from up import example_stack

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """What `make up` starts: the emulator and Airflow with the example DAGs and airplane_default."""
    stack = example_stack(tmp_path_factory.mktemp("ui-stack"))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, ui_stack: AirflowStack) -> Iterator[Any]:
    """A fresh browser context, logged in to Airflow as `make up` tells a person to."""
    # Twice the pixels of the layout: the docs' screenshots stay sharp when shrunk to the page's width.
    context = browser.new_context(viewport={"width": 1200, "height": 800}, device_scale_factor=2)
    context.set_default_timeout(60_000)  # a shared 2-core machine: the UI can take a while to answer
    page = context.new_page()
    page.goto(f"{ui_stack.base_url}/")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ui_stack.admin_password())
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Dags").first.wait_for()
    try:
        yield page
    finally:
        context.close()
