"""Sphinx configuration of the sklearn-birdaudio documentation (``make docs``).

The build needs no network: intersphinx is not used, and the examples are not executed
(they train models; the test suite runs them in their small mode, tests/test_examples.py).
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import sklearn_birdaudio  # noqa: E402

project = "sklearn-birdaudio"
author = "sklearn-birdaudio developers"
copyright = "sklearn-birdaudio developers"
version = release = sklearn_birdaudio.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "cli_help",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext", "auto_examples/*.ipynb", "auto_examples/*.py"]
suppress_warnings = []

# -- autodoc and numpydoc --------------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False  # no autosummary tables of every method
numpydoc_class_members_toctree = False

# -- MyST (the Markdown pages, which also read well on GitHub) --------------------------
myst_heading_anchors = 3

# -- sphinx-gallery ---------------------------------------------------------------------
# The examples are rendered as pages with their code, not run: they train models and read
# ../shared/data. `plot_gallery` is the Sphinx-level switch that sphinx-gallery obeys.
plot_gallery = "False"
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"^$",  # execute none
    "plot_gallery": "False",
    "download_all_examples": False,
    "write_computation_times": False,
    "remove_config_comments": True,
}


def _remove_stale_gallery_pages(gallery: Path, examples: Path) -> None:
    """Delete the generated pages of examples that no longer exist.

    sphinx-gallery regenerates pages only for the examples it finds and leaves the others,
    which would then fail the build as documents outside any toctree.
    """
    current = {script.stem for script in examples.glob("*.py")}
    for generated in gallery.glob("*.*"):
        stem = generated.name.split(".")[0]
        if generated.is_file() and stem != "index" and stem not in current:
            generated.unlink(missing_ok=True)


_remove_stale_gallery_pages(DOCS / "auto_examples", DOCS.parent / "examples")

# -- HTML -------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"sklearn-birdaudio {release}"
html_static_path = []


def skip_metadata_request_methods(app, what, name, obj, skip, options):
    """Leave out the ``set_*_request`` methods scikit-learn generates on every estimator.

    They are documented by scikit-learn (metadata routing), and their docstrings refer to
    labels of scikit-learn's own documentation, which do not resolve here.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", skip_metadata_request_methods)
