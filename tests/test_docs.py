"""The documentation builds with warnings as errors, and holds what it is generated from.

The same build as ``make docs`` (examples are rendered, not run), into a temporary folder.
"""

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

# A whole Sphinx build: about 20 s.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


def page_text(path: Path) -> str:
    """The visible text of an HTML page, roughly: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("docs") / "html"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"),
            *("-d", str(output.parent / "doctrees"), str(ROOT / "docs"), str(output)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stderr[-5000:]}"
    return output


def test_every_page_is_built(built_docs):
    for page in ["index", "install", "quickstart", "user_guide", "api", "api_reference"]:
        assert (built_docs / f"{page}.html").is_file(), page
    for page in ["cli", "benchmarks", "auto_examples/index"]:
        assert (built_docs / f"{page}.html").is_file(), page


def test_api_reference_is_generated_from_the_docstrings(built_docs):
    text = page_text(built_docs / "api_reference.html")
    for name in [
        "sklearn_birdaudio.features.MelSpectrogramTransformer",
        "sklearn_birdaudio.classifier.AttentionCNNClassifier",
        "sklearn_birdaudio.ensemble.VotingClassifier",
        "sklearn_birdaudio.distillation.DistilledClassifier",
        "sklearn_birdaudio.detection.detect",
        "sklearn_birdaudio.tables.write_detections",
        "sklearn_birdaudio.datasets.load_manifest",
        "sklearn_birdaudio.audio.load_audio",
        "sklearn_birdaudio.metrics.mean_average_precision",
        "sklearn_birdaudio.plotting.plot_detections",
    ]:
        assert name in text, name
    # numpydoc turned the docstring sections into field lists
    assert "Parameters:" in text and "Returns:" in text
    # scikit-learn's generated set_*_request methods are left out
    assert "set_fit_request" not in text


def test_cli_reference_is_generated_from_the_parser(built_docs):
    from sklearn_birdaudio.cli import build_parser

    text = page_text(built_docs / "cli.html")
    assert "usage: birdaudio [-h] [--version] COMMAND ..." in text
    for command in ["train", "predict", "evaluate", "info", "plot"]:
        assert f"usage: birdaudio {command} " in text, command
    for option in ["--resume", "--min-confidence", "--thresholds", "--max-epochs", "--set"]:
        assert option in text, option
    assert "Exit codes" in text  # the module docstring
    # every option of every sub-command is on the page
    (commands,) = [action for action in build_parser()._actions if action.choices]
    for sub in commands.choices.values():
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text, flag


def test_gallery_lists_every_example(built_docs):
    assert EXAMPLES
    index = (built_docs / "auto_examples" / "index.html").read_text(encoding="utf-8")
    for script in EXAMPLES:
        assert f"{script.stem}.html" in index, script.name
        page = page_text(built_docs / "auto_examples" / f"{script.stem}.html")
        title = script.read_text(encoding="utf-8").split('"""')[1].strip().splitlines()[0]
        assert title in page, script.name
