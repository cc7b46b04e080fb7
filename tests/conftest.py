"""Shared fixtures: paths to the committed test audio and to the optional real data."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

TEST_DATA = Path(__file__).parent / "data"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """The small test audio files: those committed under tests/data, plus the FLAC and OGG
    ones that make_test_audio.py writes (the repository holds no compressed audio)."""
    from data.make_test_audio import write_compressed

    folder = tmp_path_factory.mktemp("test_audio")
    for path in TEST_DATA.iterdir():
        if path.is_file() and path.suffix == ".wav":
            shutil.copy(path, folder / path.name)
    write_compressed(folder)
    return folder


@pytest.fixture
def shared_data() -> Path:
    """The real recordings in ../shared/data; skips the test when they are absent."""
    if not (SHARED_DATA / "xc-puerto-rico" / "labels.csv").is_file():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def write_audio(tmp_path):
    """Write a waveform to tmp_path in any soundfile format and return the path."""

    def write(name: str, waveform, sample_rate: int, **kwargs) -> Path:
        path = tmp_path / name
        soundfile.write(path, np.asarray(waveform), sample_rate, **kwargs)
        return path

    return write


def tone(frequency: float, seconds: float, sample_rate: int, amplitude: float = 0.5):
    """A float32 sine wave."""
    time = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def peak_frequency(waveform: np.ndarray, sample_rate: int) -> float:
    """Frequency (Hz) of the largest FFT magnitude."""
    spectrum = np.abs(np.fft.rfft(waveform))
    return float(np.argmax(spectrum) * sample_rate / len(waveform))
