"""Log-mel front end against librosa: agreement in dB and throughput, measured in one run.

Usage (from the repository root, after ``make install``)::

    .venv/bin/python benchmarks/log_mel.py [--n-recordings 64] [--n-clips 256]

Agreement is measured on real recordings from ../shared/data/xc-puerto-rico (skipped with a
note when absent); speed on random 5-s clips at 32 kHz, so decoding is not counted. librosa
runs one clip at a time (its documented usage); ours runs MelSpectrogramTransformer on the
same clips in batches of 64. The printed table is what docs/benchmarks.md records.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import librosa
import numpy as np
import torch
from _measure import best_seconds

from sklearn_birdaudio import MelSpectrogramTransformer, load_audio, load_manifest

PARAMS = {"sr": 32000, "n_fft": 1024, "hop_length": 512, "n_mels": 128, "fmin": 20, "fmax": 16000}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def librosa_log_mel(waveform: np.ndarray) -> np.ndarray:
    return librosa.power_to_db(librosa.feature.melspectrogram(y=waveform, **PARAMS), top_db=80)


def real_clips(n_recordings: int) -> list[np.ndarray]:
    """The first 5 s of real recordings, as librosa and we both see them."""
    manifest = DATA / "xc-puerto-rico" / "labels.csv"
    if not manifest.is_file():
        return []
    paths, _, _ = load_manifest(manifest)
    return [
        librosa.util.fix_length(load_audio(path, duration_seconds=5.0), size=160000)
        for path in paths[:n_recordings]
    ]


def largest_difference_db(clips: list[np.ndarray], references, precision: str) -> float:
    """Largest |ours - librosa| in dB over every bin of every clip."""
    ours = MelSpectrogramTransformer(fft_precision=precision).fit_transform(clips)
    return max(
        float(np.abs(spectrogram[0] - reference).max())
        for spectrogram, reference in zip(ours, references, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-recordings", type=int, default=64)
    parser.add_argument("--n-clips", type=int, default=256)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((args.n_clips, 160000))).astype(np.float32)
    n_librosa = max(16, args.n_clips // 4)
    librosa_log_mel(clips[0])  # warm-up
    librosa_rate = n_librosa / best_seconds(lambda: [librosa_log_mel(c) for c in clips[:n_librosa]])
    recordings = real_clips(args.n_recordings)
    references = [librosa_log_mel(clip) for clip in recordings]

    print(
        f"# Log-mel front end ({platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, librosa {librosa.__version__})"
    )
    print()
    print(
        f"| implementation | 5-s clips/s | vs librosa | max abs dB difference, "
        f"{len(recordings)} real recordings |"
    )
    print("|---|---|---|---|")
    print(f"| librosa, one clip at a time | {librosa_rate:.0f} | 1.00x | reference |")
    for precision in ("float64", "float32"):
        transformer = MelSpectrogramTransformer(batch_size=64, fft_precision=precision)
        transformer.fit_transform(clips[:64])  # warm-up
        rate = args.n_clips / best_seconds(lambda t=transformer: t.fit_transform(clips))
        difference = (
            f"{largest_difference_db(recordings, references, precision):.1e}"
            if recordings
            else f"not measured ({DATA} absent)"
        )
        print(
            f"| MelSpectrogramTransformer, fft_precision={precision!r} | {rate:.0f} | "
            f"{rate / librosa_rate:.2f}x | {difference} |"
        )


if __name__ == "__main__":
    main()
