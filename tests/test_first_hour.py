"""docs/first_hour.md, run as a user would: its shell commands, in order, on the real data.

Each ``birdaudio`` line of the page's command block runs in a fresh folder with
``../shared`` pointing at the real data, and what the page says it does is checked. The
one change: ``train`` gets ``--max-epochs 2`` (the page's 30 epochs take minutes; what is
tested here is the path from a manifest to tables and a figure, not the model's quality,
which ``benchmarks/`` measures). ``make demo`` (step 1) is ``examples/plot_distilled_student.py``,
run by ``test_examples.py``.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA

pytestmark = pytest.mark.slow

PAGE = Path(__file__).resolve().parents[1] / "docs" / "first_hour.md"
# The commands between these markers of the page, one per line.
BLOCK = re.compile(
    r"<!-- first-hour: begin -->\s*```bash\n(.*?)```\s*<!-- first-hour: end -->", re.S
)


def page_commands() -> list[list[str]]:
    [block] = BLOCK.findall(PAGE.read_text())
    lines = [line.split(" #")[0].strip() for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line and not line.startswith("#")]


def test_the_page_lists_the_five_steps():
    commands = page_commands()
    assert [command[:2] for command in commands] == [
        ["make", "demo"],
        ["birdaudio", "train"],
        ["birdaudio", "evaluate"],
        ["birdaudio", "predict"],
        ["birdaudio", "plot"],
    ]
    assert "--split" in commands[1] and "--split" in commands[2]
    assert commands[4][commands[4].index("--start") + 1] == "60"


def run(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    birdaudio = [sys.executable, "-m", "sklearn_birdaudio.cli"]
    return subprocess.run(
        birdaudio + command[1:], cwd=folder, capture_output=True, text=True, timeout=900,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip


def test_the_first_hour_runs_from_a_fresh_folder(tmp_path):
    if not (SHARED_DATA / "xc-puerto-rico" / "labels.csv").is_file():
        pytest.skip("../shared/data is not present")
    folder = tmp_path / "work"
    folder.mkdir()
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)  # ../shared, as beside a clone
    _, train, evaluate, predict, plot = page_commands()

    trained = run([*train, "--max-epochs", "2"], folder)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Model: recipe (the default" in trained.stdout
    assert "Data: 225 recordings of 23 classes" in trained.stdout
    assert (folder / "m.safetensors").is_file()

    evaluated = run(evaluate, folder)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "Data: 71 recordings" in evaluated.stdout
    scores = dict(re.findall(r"^(macro mAP|top-1 accuracy)\s+([\d.]+)$", evaluated.stdout, re.M))
    assert set(scores) == {"macro mAP", "top-1 accuracy"}
    assert all(0 <= float(value) <= 1 for value in scores.values())

    predicted = run(predict, folder)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    tables = sorted((folder / "tables").glob("*.txt"))
    assert len(tables) == 7  # one Raven table per soundscape
    for table in tables:
        rows = pd.read_csv(table, sep="\t")
        assert list(rows.columns[:3]) == ["Selection", "View", "Channel"]
        assert (rows["High Freq (Hz)"] == 11025.0).all()  # the 22.05 kHz files' Nyquist
    assert "part2_3_length" not in predicted.stderr  # the MP3 decoder stays quiet

    plotted = run(plot, folder)
    assert plotted.returncode == 0, plotted.stderr[-3000:]
    figure = folder / plot[plot.index("--out") + 1]
    assert figure.is_file() and figure.read_bytes()[:4] == b"\x89PNG"
    assert re.search(r"^Figure: .*, 60-90 s", plotted.stdout, re.M)
