"""
From recordings to log-mel spectrograms
=======================================

The front end of every model in sklearn-birdaudio: read recordings of any format, length
and sample rate, and turn them into the log-mel spectrograms a classifier learns from.

This is what ``make demo`` runs. It uses the real xeno-canto recordings in
``../shared/data/xc-puerto-rico`` when they are there (set ``BIRDAUDIO_DATA`` to point
elsewhere) and the built-in synthetic bird songs otherwise, and says which it used.
Set ``BIRDAUDIO_EXAMPLE_SMALL=1`` for a quick run (the test suite does).
"""

# %%
# Find the data
# -------------
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import librosa
import matplotlib.pyplot as plt
import numpy as np

from sklearn_birdaudio import (
    MelSpectrogramTransformer,
    audio_info,
    load_audio,
    load_manifest,
    make_birdsong,
    stream_audio,
)

SMALL = os.environ.get("BIRDAUDIO_EXAMPLE_SMALL") == "1"
DATA = Path(
    os.environ.get("BIRDAUDIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
OUTPUT = Path(os.environ.get("BIRDAUDIO_OUTPUT", Path(__file__).resolve().parents[1] / "outputs"))
OUTPUT.mkdir(parents=True, exist_ok=True)
n_clips = 8 if SMALL else 64

manifest = DATA / "xc-puerto-rico" / "labels.csv"
if manifest.is_file():
    paths, Y, class_names = load_manifest(manifest, split="train")
    recordings = paths[:n_clips]
    labels = [", ".join(np.asarray(class_names)[row == 1]) for row in Y[:n_clips]]
    print(f"Data: {len(recordings)} real xeno-canto recordings from {manifest.parent}")
else:
    waveforms, Y, class_names = make_birdsong(n_samples=n_clips, n_classes=5, random_state=0)
    recordings = list(waveforms)
    labels = [", ".join(np.asarray(class_names)[row == 1]) for row in Y]
    print(f"Data: {len(recordings)} synthetic bird-song clips ({DATA} not found)")

# %%
# Five-second log-mel spectrograms
# --------------------------------
# The defaults are the specification's: 32 kHz, 5-s clips, a 1024-sample window, hop
# 512, 128 mel bands from 20 Hz to 16 kHz, floored 80 dB below each clip's peak. Longer
# recordings are cropped (only the kept part of a file is decoded), shorter ones padded.
mel = MelSpectrogramTransformer(verbose=1)
start = time.perf_counter()
spectrograms = mel.fit_transform(recordings)
seconds = time.perf_counter() - start
print(
    f"Features: shape {spectrograms.shape} {spectrograms.dtype}, "
    f"{len(recordings) / seconds:.0f} clips/s including decoding and resampling"
)

# %%
# The same numbers as librosa
# ---------------------------
# The transformer computes in batches with torch, but its output equals librosa's
# ``melspectrogram`` + ``power_to_db`` on the same waveform.
worst_db = 0.0
for recording, spectrogram in zip(recordings[:4], spectrograms, strict=False):
    waveform = librosa.util.fix_length(load_audio(recording, duration_seconds=5.0), size=160000)
    reference = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=waveform, sr=32000, n_fft=1024, hop_length=512, n_mels=128, fmin=20, fmax=16000
        ),
        top_db=80,
    )
    worst_db = max(worst_db, float(np.abs(reference - spectrogram[0]).max()))
print(f"Largest difference from librosa on 4 clips: {worst_db:.2e} dB")

# %%
# A whole recording
# -----------------
# ``duration=None`` keeps every recording whole; in a batch, frames past the end of a
# shorter recording are NaN, so padding is never mistaken for audio.
whole = MelSpectrogramTransformer(duration=None).fit_transform(recordings[:1])[0, 0]
frame_seconds = 512 / 32000
fig, ax = plt.subplots(figsize=(12, 4), layout="constrained")
image = ax.imshow(
    whole,
    origin="lower",
    aspect="auto",
    cmap="magma",
    extent=(0, whole.shape[1] * frame_seconds, 0, whole.shape[0]),
)
name = Path(recordings[0]).name if isinstance(recordings[0], str) else "synthetic clip 0"
ax.set(xlabel="time (s)", ylabel="mel band", title=f"{name}: {labels[0]}")
fig.colorbar(image, ax=ax, label="dB")
figure_path = OUTPUT / "front_end_spectrogram.png"
fig.savefig(figure_path, dpi=100)
print(f"Spectrogram of {whole.shape[1] * frame_seconds:.1f} s written to {figure_path}")

# %%
# Streaming a long recording
# --------------------------
# Field recordings last hours. :func:`~sklearn_birdaudio.stream_audio` decodes and
# resamples them block by block, so memory does not grow with their length.
soundscapes = sorted((DATA / "soundscapes" / "audio").glob("*.mp3"))
if soundscapes and not SMALL:
    long_recording = soundscapes[0]
    start = time.perf_counter()
    n_blocks = sum(1 for _ in stream_audio(long_recording, block_seconds=5.0))
    seconds = time.perf_counter() - start
    duration = audio_info(long_recording).duration_seconds
    print(
        f"Streamed {long_recording.name} ({duration:.0f} s) as {n_blocks} blocks of 5 s at "
        f"{duration / seconds:.0f}x real time"
    )
