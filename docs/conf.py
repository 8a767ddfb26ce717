"""Sphinx configuration: Markdown pages (MyST) and an API reference from the docstrings.

Sphinx, as Airflow's own provider docs use. Built by `make docs` with the project venv (autodoc
imports the provider, so Airflow must be importable), with warnings as errors.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# autodoc imports the provider, which imports Airflow: give it a throw-away home, not ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airplane-docs-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow_provider_airplane import __version__

project = "airflow-provider-airplane"
author = "airflow-provider-airplane contributors"
copyright = "the airflow-provider-airplane contributors, Apache-2.0"
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Airflow's own classes are documented by Airflow; don't fail the build on their cross-references.
nitpicky = False

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"airflow-provider-airplane {__version__}"
html_theme_options = {"description": "Run Airplane tasks from Apache Airflow", "fixed_sidebar": True}
