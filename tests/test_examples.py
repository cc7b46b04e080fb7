"""Every example runs, in its small-size mode, so the documentation never rots."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Each example trains and plots in a subprocess: seconds to a minute each.
pytestmark = pytest.mark.slow

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


def run_example(script: Path, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "BIRDAUDIO_EXAMPLE_SMALL": "1",
        "BIRDAUDIO_OUTPUT": str(tmp_path),
        "MPLBACKEND": "Agg",
        **env,
    }
    return subprocess.run(
        [sys.executable, str(script)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("script", EXAMPLES, ids=[script.stem for script in EXAMPLES])
def test_example_runs_and_writes_its_figures(script, tmp_path):
    result = run_example(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Data:" in result.stdout  # every example says which data it used
    assert list(tmp_path.glob("*.png")), "the example wrote no figure"


def test_front_end_example_falls_back_to_synthetic_data(tmp_path):
    script = next(script for script in EXAMPLES if script.stem == "plot_log_mel_front_end")
    result = run_example(script, tmp_path, BIRDAUDIO_DATA=str(tmp_path / "no-data-here"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "synthetic bird-song clips" in result.stdout
    assert "Features: shape (8, 1, 128, 313)" in result.stdout
    difference_db = float(result.stdout.split("from librosa on 4 clips: ")[1].split(" dB")[0])
    assert difference_db < 1e-3
    assert (tmp_path / "front_end_spectrogram.png").stat().st_size > 10_000
