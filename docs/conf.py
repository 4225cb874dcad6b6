"""Sphinx configuration of the hmm_fenics documentation (``make docs``).

The run-file reference, the demo pages and the API page are generated from the code into
``_generated/`` when the build starts (``builder-inited``), so they cannot drift from it.
``HMM_FENICS_ROOT`` points at the source tree when this folder is built from a copy (the
docs test builds a copy in a temporary folder).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("HMM_FENICS_ROOT", HERE.parent)).resolve()
sys.path[:0] = [str(ROOT), str(HERE)]

import hmm_fenics  # first: it loads the wheel's MPI before anything imports dolfinx

project = "hmm_fenics"
author = "hmm_fenics developers"
copyright = "2026, hmm_fenics developers"
release = hmm_fenics.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

html_theme = "alabaster"
html_title = f"hmm_fenics {release}"
html_theme_options = {"description": "FE² / HMM on FEniCSx", "fixed_sidebar": True}


def _generate(app: object) -> None:
    """Write the generated pages into ``_generated/`` of the source folder."""
    import generate_api
    import generate_reference
    import render_demos

    target = HERE / "_generated"
    generate_reference.write(target / "reference.md")
    render_demos.write(ROOT / "demos", target / "demos")
    generate_api.write(target / "api.md")
    (target / "changelog.md").write_text((ROOT / "CHANGELOG.md").read_text())


def _plain_bars(
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Docstrings write |Y| and |R| for norms: keep reST from reading them as substitutions.

    Bars outside ````literals```` are escaped; the docstrings stay plain text for ``help()``.
    """
    for i, line in enumerate(lines):
        parts = line.split("``")
        parts[::2] = [part.replace("|", "\\|") for part in parts[::2]]
        lines[i] = "``".join(parts)


def setup(app: object) -> dict[str, object]:
    """Generate the pages before Sphinx reads the sources; plain bars in docstrings."""
    app.connect("builder-inited", _generate)  # type: ignore[attr-defined]
    app.connect("autodoc-process-docstring", _plain_bars)  # type: ignore[attr-defined]
    return {"parallel_read_safe": True}
