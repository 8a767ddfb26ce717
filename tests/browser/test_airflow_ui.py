"""Airflow's own UI, as a person clicks through it, on the `make up` stack.

The connection form must show what the provider declares (read from ``get_provider_info``, not copied
here), a saved connection must reach Airflow's database, and a finished run's "Airplane Run" link must
point at that run's page. The screenshots land in docs/_static/screenshots for the docs.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow_stack import AirflowStack, wait_until

from airflow_provider_airplane.get_provider_info import get_provider_info
from airflow_provider_airplane.version_compat import AIRFLOW_V_3_2_PLUS, AIRFLOW_V_3_3_PLUS

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

DAG_ID = "example_airplane_execute"
TASK_ID = "refresh_customers"
CONN_ID = "airplane_from_the_ui"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "_static" / "screenshots"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """The docs show Airflow 3.3's UI: other versions' screenshots go to a temp dir, not over them."""
    return DOCS_SCREENSHOTS if AIRFLOW_V_3_3_PLUS else tmp_path


def airplane_connection_type() -> dict[str, Any]:
    (declared,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "airplane"]
    return declared


def test_connection_form_shows_the_declared_fields_and_saves(
    page: Any, ui_stack: AirflowStack, screenshots: Path
) -> None:
    declared = airplane_connection_type()
    behaviour, conn_fields = declared["ui-field-behaviour"], declared["conn-fields"]

    page.goto(f"{ui_stack.base_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(CONN_ID)
    dialog.locator("input").nth(1).fill(declared["hook-name"])  # the type is a searchable select
    page.get_by_role("option", name=declared["hook-name"], exact=True).click()

    # Standard fields: relabelled, with the declared placeholders; the hidden ones are absent.
    for field, label in behaviour["relabeling"].items():
        box = dialog.get_by_label(label, exact=True)
        assert box.get_attribute("name") == field
        assert box.get_attribute("placeholder") == behaviour["placeholders"].get(field)
    assert dialog.get_by_label(behaviour["relabeling"]["password"], exact=True).get_attribute("type") == (
        "password"
    )
    for field in behaviour["hidden-fields"]:
        assert dialog.locator(f"input[name='{field}']").count() == 0, f"{field} should be hidden"

    emulator = ui_stack.emulator_url
    dialog.get_by_label(behaviour["relabeling"]["host"], exact=True).fill(emulator)
    dialog.get_by_label(behaviour["relabeling"]["password"], exact=True).fill(ui_stack.api_key)
    dialog.screenshot(path=screenshots / "connection-form.png")

    # Extra fields (their section replaces the standard one): every declared one, under its label, with
    # its description where the UI shows them.
    # (The UI's labels of extra fields are not tied to their inputs, so each is read from its group.)
    dialog.get_by_text("Extra Fields", exact=True).click()
    for name, spec in conn_fields.items():
        box, group = extra_field(dialog, name)
        box.wait_for()
        assert group.locator("label").inner_text().strip() == spec["label"]
        if AIRFLOW_V_3_2_PLUS:  # 3.1 builds the form from the hook's wtforms widgets: no descriptions
            assert group.get_by_text(spec["description"], exact=True).is_visible()

    extra_field(dialog, "env_slug")[0].fill("prod")
    extra_field(dialog, "app_url")[0].fill(emulator)
    extra_field(dialog, "timeout")[0].fill("12")
    dialog.screenshot(path=screenshots / "connection-form-extra.png")

    dialog.get_by_role("button", name="Save").click()
    saved = wait_until(lambda: _connection(ui_stack, CONN_ID), timeout=60, what=f"connection {CONN_ID} saved")
    assert saved["conn_type"] == declared["connection-type"]
    assert saved["host"] == emulator
    assert saved["password"] not in (None, "", ui_stack.api_key)  # stored, and masked by the API
    extra = json.loads(saved["extra"])
    assert extra["env_slug"] == "prod"
    assert extra["app_url"] == emulator
    assert float(extra["timeout"]) == 12
    page.get_by_text(CONN_ID, exact=True).wait_for()  # and the list shows it


def extra_field(dialog: Any, name: str) -> tuple[Any, Any]:
    """The input of extra field ``name`` and the group that holds its label and description."""
    selector = f"input[name='element_{name}']"
    return dialog.locator(selector), dialog.get_by_role("group").filter(has=dialog.page.locator(selector))


def _connection(stack: AirflowStack, conn_id: str) -> dict[str, Any] | None:
    response = requests.get(
        f"{stack.base_url}/api/v2/connections/{conn_id}",
        headers={"Authorization": f"Bearer {stack.token()}"},
        timeout=10,
    )
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def test_finished_run_links_to_its_airplane_run(page: Any, ui_stack: AirflowStack, screenshots: Path) -> None:
    dag_run_id = ui_stack.trigger_dag(DAG_ID)
    ui_stack.wait_for_ti_state(DAG_ID, dag_run_id, TASK_ID, ["success"], timeout=180)
    run_id = ui_stack.xcom(DAG_ID, dag_run_id, TASK_ID, "airplane_run_id")
    expected = f"{ui_stack.emulator_url}/runs/{run_id}"

    quoted = urllib.parse.quote(dag_run_id, safe="")
    page.goto(f"{ui_stack.base_url}/dags/{DAG_ID}/runs/{quoted}/tasks/{TASK_ID}/details")
    link = page.get_by_role("link", name="Airplane Run")
    link.wait_for()
    assert link.get_attribute("href") == expected
    # The task's panel, from its name to a few rows below the link: legible at the docs' page width.
    heading, button = page.get_by_role("heading", name=TASK_ID).first.bounding_box(), link.bounding_box()
    panel = page.get_by_text("Extra Links", exact=True).bounding_box()
    left, top = panel["x"] - 16, heading["y"] - 16
    bottom = button["y"] + button["height"] + 165
    page.screenshot(
        path=screenshots / "task-run-link.png",
        clip={"x": left, "y": top, "width": page.viewport_size["width"] - left, "height": bottom - top},
    )

    # The emulator's run page (GET /runs/<id>): follow the link as a person would, where it exists.
    if requests.get(expected, timeout=10).status_code != 200:
        return  # an emulator without run pages (before the run-logs work): the link's target is the check
    with page.context.expect_page() as opened:
        link.click()
    run_page = opened.value
    run_page.wait_for_load_state()
    assert run_page.url == expected
    assert run_id in run_page.content()
    run_page.set_viewport_size({"width": 820, "height": 600})  # the page's text at the docs' width
    run_page.screenshot(path=screenshots / "emulator-run-page.png", full_page=True)
