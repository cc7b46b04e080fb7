"""
Train on a folder of labelled recordings
========================================

The simplest way to bring your own data: one sub-folder per species, its recordings
inside (``songs/<species>/<recording>.wav``, any format, length and sample rate).
``load_folder`` turns it into paths and targets, the pipeline trains on the paths, and
``sklearn.metrics`` and the package's metrics and plots evaluate it.

So that it runs anywhere, the example first writes such a folder of synthetic bird
songs (``make_birdsong``); point ``FOLDER`` at your own recordings instead.
"""

# %%
# A folder of recordings
# ----------------------
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import soundfile
from sklearn.metrics import classification_report
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from sklearn_birdaudio import (
    AttentionCNNClassifier,
    MelSpectrogramTransformer,
    load_folder,
    make_birdsong,
)
from sklearn_birdaudio.metrics import f1_at_threshold, mean_average_precision
from sklearn_birdaudio.plotting import plot_precision_recall, plot_training_curves

SMALL = os.environ.get("BIRDAUDIO_EXAMPLE_SMALL") == "1"
OUTPUT = Path(os.environ.get("BIRDAUDIO_OUTPUT", Path(__file__).resolve().parents[1] / "outputs"))
FOLDER = OUTPUT / "songs"

n_recordings, seconds = (48, 2.0) if SMALL else (240, 5.0)
X, Y, species = make_birdsong(
    n_recordings, n_classes=4, duration=seconds, n_labels=1.0, random_state=0
)
for index, (waveform, labels) in enumerate(zip(X, Y, strict=True)):
    folder = FOLDER / species[int(np.argmax(labels))]  # one species per folder
    folder.mkdir(parents=True, exist_ok=True)
    soundfile.write(folder / f"recording_{index:03d}.wav", waveform, 32000)

paths, Y, species = load_folder(FOLDER, as_frame=True)
print(f"Data: {len(paths)} recordings of {len(species)} species in {FOLDER}")

# %%
# Train and evaluate
# ------------------
# A folder gives one label per recording. The targets are still an indicator matrix, so
# the classifier is multi-label (sigmoid outputs): a recording may hold other species.
paths_train, paths_test, Y_train, Y_test = train_test_split(
    paths, Y, test_size=0.25, random_state=0, stratify=Y.to_numpy().argmax(axis=1)
)
network = (
    {"module__base_filters": 8, "module__n_blocks": 2, "module__n_heads": 2}
    if SMALL
    else {"module__base_filters": 16}
)
pipeline = Pipeline(
    [
        ("mel", MelSpectrogramTransformer(duration=seconds)),
        (
            "cnn",
            AttentionCNNClassifier(
                max_epochs=4 if SMALL else 20,
                window_seconds=seconds,
                overlap_seconds=0.0,
                random_state=0,
                verbose=0,
                **network,
            ),
        ),
    ]
).fit(paths_train, Y_train)

scores = pipeline.predict_proba(paths_test)
print(
    f"Test macro mAP {mean_average_precision(Y_test, scores):.3f}, "
    f"micro F1 {f1_at_threshold(Y_test, scores, threshold=0.5):.3f}"
)
print(classification_report(Y_test, pipeline.predict(paths_test), target_names=species))

# %%
# Training curves and precision-recall curves
# -------------------------------------------
plot_training_curves(pipeline).savefig(OUTPUT / "folder_training_curves.png", dpi=100)
plot_precision_recall(Y_test, scores).savefig(OUTPUT / "folder_precision_recall.png", dpi=100)
print(f"Figures: {OUTPUT / 'folder_training_curves.png'}, {OUTPUT / 'folder_precision_recall.png'}")
