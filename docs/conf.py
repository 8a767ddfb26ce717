"""Sphinx configuration: Markdown pages (MyST) and an API reference from the docstrings.

Sphinx, as Airflow's own provider docs use. Built by `make docs` with the project venv (autodoc
imports the provider, so Airflow must be importable), with warnings as errors.
"""

from __future__ import annotations

import os
import re
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

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Airflow's docstrings ("Override when deriving this class.") are not ours to show.
autodoc_inherit_docstrings = False
# One parameter per line once a signature is longer than a page is wide.
maximum_signature_line_length = 90
# Airflow's own classes are documented by Airflow; don't fail the build on their cross-references.
nitpicky = False

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"airflow-provider-airplane {__version__}"
html_theme_options = {"description": "Run Airplane tasks from Apache Airflow", "fixed_sidebar": True}


# The default of `deferrable` is read from Airflow's config when the module is imported: show where it
# comes from, not the value it had on the machine that built the docs.
_DEFERRABLE_DEFAULT = re.compile(r"deferrable=(True|False)")


def _deferrable_from_config(app, what, name, obj, options, signature, return_annotation):  # type: ignore[no-untyped-def]
    if signature:
        signature = _DEFERRABLE_DEFAULT.sub(
            "deferrable=conf.getboolean('operators', 'default_deferrable')", signature
        )
    return signature, return_annotation


def _public(bases: list[type]) -> list[type]:
    """Each private class (``_AirplaneHookBase``) replaced by the public classes it derives from."""
    shown: list[type] = []
    for base in bases:
        shown += _public(list(base.__bases__)) if base.__name__.startswith("_") else [base]
    return list(dict.fromkeys(shown))


def _public_bases(app, name, obj, options, bases):  # type: ignore[no-untyped-def]
    bases[:] = _public(bases)


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-signature", _deferrable_from_config)
    app.connect("autodoc-process-bases", _public_bases)
