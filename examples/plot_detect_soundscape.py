"""
Detect birds in a long field recording
======================================

Recorders left in the field return hours of audio. ``detect`` slides a trained model's
5-second window over each recording, reads it block by block (memory does not grow with
its length) and returns one row per window and species above a threshold. The rows go to
a CSV file and to a Raven Pro selection table that opens over the recording in Raven.
``make demo`` runs this after training (``plot_train_classifier.py``), on a real
10-minute soundscape of ``../shared/data/soundscapes``.

The soundscapes were recorded in New York and California, the training recordings in
Puerto Rico: the species do not overlap, so the detections here show the workflow and
its speed, not the model's accuracy (see ``benchmarks/accuracy.py`` for that).
"""

# %%
# A trained model and a recording
# -------------------------------
# The model is the pipeline the training example saved with ``save_model``. Without it (or with
# ``BIRDAUDIO_EXAMPLE_SMALL=1``) a small stand-in is trained on synthetic songs.
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
from sklearn.pipeline import Pipeline

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MelSpectrogramTransformer,
    detect,
    load_audio,
    load_model,
    make_birdsong,
    plot_detections,
    window_scores,
    write_detections,
    write_detections_per_file,
)

SMALL = os.environ.get("BIRDAUDIO_EXAMPLE_SMALL") == "1"
DATA = Path(
    os.environ.get("BIRDAUDIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
OUTPUT = Path(os.environ.get("BIRDAUDIO_OUTPUT", Path(__file__).resolve().parents[1] / "outputs"))
OUTPUT.mkdir(parents=True, exist_ok=True)

model_path = OUTPUT / "birdaudio_model.safetensors"
if model_path.is_file() and not SMALL:
    model = load_model(model_path)
    print(f"Model: {model_path}")
else:
    songs, labels, _ = make_birdsong(48, n_classes=6, duration=5.0, random_state=0, as_frame=True)
    tiny = {"module__base_filters": 8, "module__n_blocks": 2, "module__n_heads": 2}
    model = Pipeline(
        [
            ("mel", MelSpectrogramTransformer()),
            ("cnn", AttentionCNNClassifier(max_epochs=3, random_state=0, verbose=0, **tiny)),
        ]
    ).fit(songs, labels)
    print(f"Model: a small stand-in trained on synthetic songs ({model_path} not used)")

soundscape = DATA / "soundscapes" / "audio" / "SSW50.mp3"
if soundscape.is_file():
    recordings = [soundscape]
    print(f"Data: {soundscape.name}, a real 10-minute soundscape ({soundscape.parent})")
else:
    clips, _, _ = make_birdsong(24, n_classes=6, duration=5.0, noise=0.3, random_state=1)
    recordings = [np.concatenate(list(clips))]
    print("Data: 2 minutes of synthetic bird song (../shared/data not found)")

# %%
# Detection
# ---------
# Every 5-s window is scored; rows are kept from ``min_confidence`` on (0.1 by default),
# and ``thresholds={"species": 0.6}`` raises or lowers that for some species.
start = time.perf_counter()
detections = detect(model, recordings, min_confidence=0.1, verbose=1)
seconds = time.perf_counter() - start
audio_seconds = sum(detections.durations.values())
print(
    f"Scored {audio_seconds:.0f} s of audio in {seconds:.1f} s "
    f"({audio_seconds / seconds:.0f}x real time): {len(detections)} detections"
)
print(detections.head(8).to_string(index=False))
print("Most detected:", detections["label"].value_counts().head(5).to_dict())

# %%
# Tables for Raven, Audacity and spreadsheets
# -------------------------------------------
# Tables are written atomically: an interrupted run never leaves half a table.
csv_path = write_detections(detections, OUTPUT / "detections.csv")
raven_paths = write_detections_per_file(detections, OUTPUT / "raven", format="raven")
print(f"Tables: {csv_path} and {', '.join(str(path) for path in raven_paths)}")

# %%
# The detections over the spectrogram
# ------------------------------------
# ``window_scores`` returns every window's score for every class; ``plot_detections``
# draws the first minute's spectrogram with its detections as boxes and the scores of
# the highest-scoring classes under it.
first_minute = (
    load_audio(recordings[0], sample_rate=32000, duration_seconds=60.0)
    if isinstance(recordings[0], Path)
    else recordings[0][: 60 * 32000]
)
minute_detections = detect(model, first_minute, min_confidence=0.3, verbose=0)
scores = window_scores(model, first_minute)
figure = plot_detections(
    first_minute,
    detections=minute_detections,
    scores=scores,
    mel=model.steps[0][1],
    title="First minute: detections at confidence >= 0.3",
)
figure.savefig(OUTPUT / "detections.png", dpi=100)
print(f"Figure: {OUTPUT / 'detections.png'}")
