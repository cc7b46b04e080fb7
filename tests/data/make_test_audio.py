"""The small audio files the tests read (run from the repository root to regenerate).

They are synthetic (chirps and noise), a few kilobytes each. The WAV and broken files are
committed under tests/data; the FLAC and OGG ones, like every MP3, are written by the test
session into a temporary folder (``write_compressed``), so that the repository holds no
compressed audio.
"""

from pathlib import Path

import numpy as np
import soundfile

HERE = Path(__file__).parent


def chirp(seconds: float, rate: int, low: float, high: float) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * (low * time + (high - low) * time**2 / (2 * seconds))
    return (0.5 * np.sin(phase)).astype(np.float32)


def write_compressed(folder: Path) -> None:
    """Write chirp_22k05.flac and chirp_48k.ogg into ``folder``."""
    soundfile.write(folder / "chirp_22k05.flac", chirp(0.75, 22050, 2000, 5000), 22050)
    soundfile.write(folder / "chirp_48k.ogg", chirp(0.5, 48000, 3000, 8000), 48000)


def main() -> None:
    """Regenerate the committed files."""
    rng = np.random.default_rng(20261125)
    left = chirp(0.5, 44100, 1000, 6000)
    right = 0.5 * left + 0.05 * rng.standard_normal(left.shape[0]).astype(np.float32)
    soundfile.write(HERE / "stereo_44k1.wav", np.stack([left, right], axis=1), 44100, "PCM_16")
    complete = (HERE / "stereo_44k1.wav").read_bytes()
    (HERE / "truncated.wav").write_bytes(complete[: len(complete) // 3])
    (HERE / "not_audio.wav").write_text("This is a text file renamed to .wav, not audio.\n")
    (HERE / "empty.wav").write_bytes(b"")


if __name__ == "__main__":
    main()
